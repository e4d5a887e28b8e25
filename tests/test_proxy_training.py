"""Proxy training through the services and tasks: claim, metrics, artefact, re-score, hooks."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from labeling import hooks
from labeling.models import Interaction, Project
from sampling.models import InteractionTopic, ProxyModel, SamplingRun, SamplingStrategy
from sampling.services.proxy import proxy_claim, proxy_train, retrain_due
from sampling.services.scoring import interactions_score
from sampling.tasks.runs import dispatch_scheduled_runs
from sampling.tasks.scoring import score_sweep
from tests.sampling_fixtures import label, seed_interactions


@pytest.fixture(autouse=True)
def _model_root(tmp_path: Path):
    with override_settings(MODEL_ROOT=tmp_path / "models"):
        yield


@pytest.fixture
def labelled(project: Project) -> list[Interaction]:
    rows = seed_interactions(project, 120)
    label(project, rows[:60])
    return rows


def test_training_stores_a_versioned_artefact_with_metrics(
    project: Project, labelled: list[Interaction], tmp_path: Path
) -> None:
    model = proxy_train(project=project)
    assert model is not None
    assert model.status == ProxyModel.Status.READY
    assert model.kind == "logistic"
    assert model.version == 1
    assert model.n_labels == 60
    assert (tmp_path / "models" / model.artifact_path).exists()
    cv = model.metrics["cv"]
    assert cv["auc"] > 0.9  # "Sorry, I cannot help" is easy to learn
    assert {"log_loss", "brier", "calibration"} <= set(cv)
    assert model.metrics["n_clusters"] > 0
    second = proxy_train(project=project)
    assert second is not None
    assert second.version == 2


def test_a_claim_prevents_a_second_training(project: Project, labelled: list[Interaction]) -> None:
    claim = proxy_claim(project=project)
    assert claim is not None
    assert proxy_claim(project=project) is None
    assert proxy_train(project=project) is None
    assert ProxyModel.objects.filter(project=project).count() == 1
    # a claim whose worker died long ago is expired, and training goes ahead
    ProxyModel.objects.filter(pk=claim.pk).update(created_at=timezone.now() - dt.timedelta(days=1))
    model = proxy_train(project=project)
    assert model is not None
    assert model.status == ProxyModel.Status.READY
    claim.refresh_from_db()
    assert claim.status == ProxyModel.Status.FAILED
    assert "expired" in claim.error


def test_without_both_classes_the_proxy_is_the_prior(project: Project) -> None:
    rows = seed_interactions(project, 40)
    good = [r for r in rows if r.metadata["good"]]
    label(project, good[:10])
    model = proxy_train(project=project)
    assert model is not None
    assert model.kind == "prior"
    assert "prior" in model.metrics["note"]


def test_scoring_writes_scores_versions_and_topics(
    project: Project, labelled: list[Interaction]
) -> None:
    model = proxy_train(project=project)
    ids = [r.pk for r in labelled[60:]]
    assert interactions_score(project=project, interaction_ids=ids) == 60
    scored = Interaction.objects.filter(pk__in=ids)
    assert not scored.filter(proxy_score__isnull=True).exists()
    assert set(scored.values_list("proxy_version", flat=True)) == {model.version}
    bad = scored.filter(response__startswith="Sorry")
    good = scored.exclude(response__startswith="Sorry")
    assert max(bad.values_list("proxy_score", flat=True)) < min(
        good.values_list("proxy_score", flat=True)
    )
    assert InteractionTopic.objects.filter(interaction_id__in=ids).count() == 60
    # idempotent: scoring again writes the same values
    before = dict(scored.values_list("id", "proxy_score"))
    interactions_score(project=project, interaction_ids=ids)
    assert dict(scored.values_list("id", "proxy_score")) == pytest.approx(before)


def test_labels_submitted_hook_retrains_after_retrain_every_labels(
    project: Project, django_capture_on_commit_callbacks
) -> None:
    project.retrain_every = 20
    project.save()
    rows = seed_interactions(project, 100)
    label(project, rows[:30])
    with django_capture_on_commit_callbacks(execute=True):
        hooks.fire("labels_submitted", project_id=project.pk, count=30)
    first = ProxyModel.objects.get(project=project)
    assert first.n_labels == 30
    # re-scored the unconsidered pool with the new model
    assert not Interaction.objects.filter(project=project, proxy_version__isnull=True).exists()
    label(project, rows[30:40])  # 10 more: not yet due
    assert not retrain_due(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        hooks.fire("labels_submitted", project_id=project.pk, count=10)
    assert ProxyModel.objects.filter(project=project).count() == 1
    label(project, rows[40:55])
    with django_capture_on_commit_callbacks(execute=True):
        hooks.fire("labels_submitted", project_id=project.pk, count=15)
    assert ProxyModel.objects.filter(project=project).count() == 2


def test_interactions_processed_hook_scores_them(
    project: Project, django_capture_on_commit_callbacks
) -> None:
    rows = seed_interactions(project, 30)
    with django_capture_on_commit_callbacks(execute=True):
        hooks.fire(
            "interactions_processed", project_id=project.pk, interaction_ids=[r.pk for r in rows]
        )
    assert not Interaction.objects.filter(project=project, proxy_score__isnull=True).exists()


def test_score_sweep_scores_what_was_missed(project: Project) -> None:
    seed_interactions(project, 25)
    score_sweep()
    assert not Interaction.objects.filter(project=project, proxy_score__isnull=True).exists()


def test_demo_loaded_gives_the_demo_a_queue(
    project: Project, django_capture_on_commit_callbacks
) -> None:
    seed_interactions(project, 300)
    with django_capture_on_commit_callbacks(execute=True):
        hooks.fire("demo_loaded", project_id=project.pk)
    strategy = SamplingStrategy.objects.get(project=project, name="default")
    assert strategy.weights == {"uncertainty": 0.6, "coverage": 0.2, "random": 0.2}
    assert strategy.batch_size == 200
    # The demo's history: weekly runs over all but the last two days (sampling.services.demo).
    runs = list(SamplingRun.objects.filter(project=project))
    assert runs
    for run in runs:
        assert run.status == SamplingRun.Status.DONE
        assert run.proxy_model is not None  # the prior with topic clusters
    assert sum(r.selected_count for r in runs) > 0
    assert project.queue_items.count() == sum(r.selected_count for r in runs)
    # idempotent: loading again does not start another run
    with django_capture_on_commit_callbacks(execute=True):
        hooks.fire("demo_loaded", project_id=project.pk)
    assert SamplingRun.objects.filter(project=project).count() == len(runs)


def test_scheduled_strategies_run_when_due_and_once(project: Project) -> None:
    seed_interactions(project, 50)
    strategy = SamplingStrategy.objects.create(
        project=project,
        name="hourly",
        weights={"uncertainty": 0.6, "coverage": 0.2, "random": 0.2},
        batch_size=5,
        schedule="0 * * * *",
    )
    SamplingStrategy.objects.filter(pk=strategy.pk).update(
        created_at=timezone.now() - dt.timedelta(hours=2)
    )
    SamplingStrategy.objects.create(project=project, name="manual", weights=strategy.weights)
    assert dispatch_scheduled_runs() == 1
    assert dispatch_scheduled_runs() == 0  # the run just made is the schedule's memory
    run = SamplingRun.objects.get(project=project)
    assert run.strategy_id == strategy.pk


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_trainings_train_once() -> None:
    import threading

    from django.db import connection

    from tests.factories import ProjectFactory

    project = ProjectFactory(slug="concurrent-train")
    rows = seed_interactions(project, 80)
    label(project, rows[:40])
    barrier = threading.Barrier(3)
    results: list[object] = []

    def work() -> None:
        try:
            barrier.wait()
            results.append(proxy_train(project=project))
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trained = [r for r in results if r is not None]
    assert len(results) == 3
    assert len(trained) >= 1
    models = sorted(ProxyModel.objects.filter(project=project), key=lambda m: m.created_at)
    assert all(m.status == ProxyModel.Status.READY for m in models)
    assert len(models) == len(trained)
    # no two trainings overlapped in time: each started after the previous one finished
    for before, after in itertools.pairwise(models):
        assert after.created_at >= before.finished_at


def test_a_primary_judge_is_calibrated_by_the_labels(project: Project) -> None:
    from sampling.services.scoring import proxy_load

    project.primary_judge = "judge"
    project.save()
    rows = seed_interactions(project, 120)
    for row in rows:  # a 1-10 judge that mostly agrees with the truth
        row.scores = {"judge": 8.0 if row.metadata["good"] else 3.0}
        row.response = "Here is an answer."  # the text no longer tells good from bad
    Interaction.objects.bulk_update(rows, ["scores", "response"])
    label(project, rows[:60])
    model = proxy_train(project=project)
    assert model is not None
    assert model.metrics["judge_coverage"] == 1.0
    assert model.metrics["cv"]["auc"] > 0.95
    proxy = proxy_load(model)
    assert proxy is not None
    assert proxy.calibrator is not None
