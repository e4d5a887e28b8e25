"""Judges in the loop: the trust report is recomputed after labels (a debounced task and a beat
sweep), a judge whose calibrated R^2 <= 0 loses its weight without anyone opening a page, and the
dashboard shows judge vs human agreement and the judge's share of good next to the unbiased
PPI++ estimate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test.utils import override_settings
from django.urls import reverse

from labeling import hooks
from labeling.models import Project
from sampling.judges import tasks
from sampling.judges.calibration_report import calibration_due, judges_calibrate
from sampling.judges.config import judge_create, judge_version_current
from sampling.judges.models import Judge
from sampling.models import ProxyModel
from tests.judge_server import StubJudge
from tests.sampling_fixtures import label
from tests.test_judges_trust import judged_project


@pytest.fixture
def stub() -> Iterator[StubJudge]:
    server = StubJudge().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _model_root(tmp_path: Path) -> Iterator[None]:
    with override_settings(MODEL_ROOT=tmp_path / "models"):
        yield


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def test_labels_recalibrate_the_judge_and_a_noise_judge_loses_its_weight(
    project: Project, stub: StubJudge
) -> None:
    judge = judged_project(project, stub, informative=False)
    version = judge_version_current(judge=judge)
    assert version.calibrated_at is None
    assert calibration_due(judge=judge)
    project.refresh_from_db()
    assert project.primary_judge == "judge:rubric"  # until a report says otherwise

    # A label arrives: labeling fires the hook, the (eager) debounced task recalibrates.
    hooks.fire("labels_submitted", project_id=project.pk, count=1)
    version.refresh_from_db()
    judge.refresh_from_db()
    project.refresh_from_db()
    assert version.calibrated_at is not None
    assert version.calibration["n_labels"] == 70
    assert version.calibration["r2"] <= 0
    assert judge.weight == 0.0
    assert project.primary_judge == ""  # the proxy stops reading it...
    assert ProxyModel.objects.filter(project=project).exists()  # ...from a retrain right away
    assert not calibration_due(judge=judge)
    # Debounced: a burst of labels enqueues one calibration per window.
    assert tasks.calibrate_soon(project.pk) is False


def test_the_sweep_calibrates_only_what_changed(project: Project, stub: StubJudge) -> None:
    judge = judged_project(project, stub, informative=True)
    assert tasks.calibrate_sweep() == 1
    version = judge_version_current(judge=judge)
    assert version.calibrated_at is not None
    assert version.calibration["r2"] > 0.3
    assert judges_calibrate(project_id=project.pk) == {}  # nothing changed
    judge.refresh_from_db()
    assert judge.weight == 1.0
    # New labels make it due again.
    from tests.factories import InteractionFactory

    more = [
        InteractionFactory(project=project, response="late [[score=9]]", metadata={"good": True})
    ]
    label(project, more)
    assert calibration_due(judge=judge)
    assert set(judges_calibrate(project_id=project.pk)) == {"rubric"}


def test_a_judge_without_results_or_labels_is_not_due(project: Project, stub: StubJudge) -> None:
    judge = judge_create(project=project, data={"name": "idle", "base_url": stub.url, "model": "m"})
    assert not calibration_due(judge=judge)
    assert judges_calibrate(project_id=project.pk) == {}
    hooks.fire("labels_submitted", project_id=project.pk, count=1)  # no error, nothing to do
    assert Judge.objects.get(pk=judge.pk).weight == 1.0


def test_the_dashboard_shows_judge_agreement_next_to_the_unbiased_estimate(
    project: Project, stub: StubJudge, client, member
) -> None:
    client.force_login(member("reviewer"))
    page = client.get(reverse("project-dashboard", kwargs={"slug": "support-bot"})).content.decode()
    assert 'data-testid="judges-panel"' not in page  # no judge, no panel

    judge = judged_project(project, stub, informative=True)
    page = client.get(reverse("project-dashboard", kwargs={"slug": "support-bot"})).content.decode()
    assert 'data-testid="judges-panel"' in page
    assert "not calibrated yet" in page

    judges_calibrate(project_id=project.pk)
    report = judge_version_current(judge=judge).calibration
    page = client.get(reverse("project-dashboard", kwargs={"slug": "support-bot"})).content.decode()
    assert f"{report['r2']:.3f}" in page
    assert f"{100 * report['judge_share_good_all']:.1f}%" in page
    assert "a biased estimator" in page
    assert "labels instead of" in page
    assert (
        reverse("project-judge-trust", kwargs={"slug": "support-bot", "judge_id": judge.pk}) in page
    )


def test_the_dashboard_warns_about_a_judge_with_weight_zero(
    project: Project, stub: StubJudge, client, member
) -> None:
    judged_project(project, stub, informative=False)
    judges_calibrate(project_id=project.pk)
    client.force_login(member("reviewer"))
    page = client.get(reverse("project-dashboard", kwargs={"slug": "support-bot"})).content.decode()
    assert "weight 0, the proxy ignores this judge" in page
