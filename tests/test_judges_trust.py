"""The trust report end to end: a judge served on loopback scores interactions, humans label some,
the report (API and page) shows cross-fitted agreement; a useless judge gets weight 0 and stops
feeding the proxy."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from django.urls import reverse

from labeling.models import Project
from sampling.judges.config import judge_create
from sampling.judges.execution import judge_schedule
from sampling.judges.models import Judge
from sampling.judges.tasks import run_judge
from tests.factories import InteractionFactory
from tests.judge_server import StubJudge
from tests.sampling_fixtures import label


@pytest.fixture
def stub() -> Iterator[StubJudge]:
    server = StubJudge().start()
    yield server
    server.stop()


def judged_project(project: Project, stub: StubJudge, *, informative: bool) -> Judge:
    rng = np.random.default_rng(7)
    items = []
    for i in range(90):
        good = bool(rng.random() < 0.6)
        if informative:
            score = int(np.clip(round((7.5 if good else 3.5) + rng.normal(0, 1.2)), 1, 10))
        else:
            score = int(rng.integers(1, 11))
        items.append(
            InteractionFactory(
                project=project,
                response=f"reply {i} [[score={score}]]",
                metadata={"good": good},
                segment={"tier": "pro" if i % 3 == 0 else "free"},
                model_version="model-a" if i % 2 else "model-b",
            )
        )
    project.segment_keys = ["tier"]
    project.save(update_fields=["segment_keys"])
    judge = judge_create(
        project=project,
        data={"name": "rubric", "base_url": stub.url, "model": "m", "is_primary": True},
    )
    judge_schedule(judge=judge, interaction_ids=[i.pk for i in items])
    run_judge(judge.pk)
    label(project, items[:70])
    return judge


def test_an_informative_judge_reports_agreement_and_savings(project, stub, api_as, client, member):
    judge = judged_project(project, stub, informative=True)
    report = api_as("engineer").get(
        reverse(
            "sampling_api:judge-calibration", kwargs={"slug": "support-bot", "judge_id": judge.pk}
        )
    )
    assert report.status_code == 200, report.content
    body = report.json()
    assert body["n_labels"] == 70
    assert body["judged"] == 90
    assert body["auc"] > 0.85
    assert body["r2"] > 0.3
    assert body["r2_ci"][0] < body["r2"] < body["r2_ci"][1]
    assert body["weight"] == 1.0
    assert body["power"]["with_judge"] < body["power"]["uniform"]
    assert {g["group"] for g in body["groups"]["segment.tier"]} == {"free", "pro"}
    assert {g["group"] for g in body["groups"]["model_version"]} == {"model-a", "model-b"}
    assert body["groups"]["week"]
    assert body["unbiased_method"] == "ppi++"
    project.refresh_from_db()
    assert project.primary_judge == "judge:rubric"
    client.force_login(member("reviewer"))
    page = client.get(
        reverse("project-judge-trust", kwargs={"slug": "support-bot", "judge_id": judge.pk})
    )
    assert page.status_code == 200
    text = page.content.decode()
    assert "labels instead of" in text
    assert f"{body['r2']:.3f}" in text
    assert "a biased estimator" in text


def test_a_noise_judge_gets_weight_zero_and_leaves_the_proxy(project, stub, api_as):
    judge = judged_project(project, stub, informative=False)
    body = (
        api_as("engineer")
        .get(
            reverse(
                "sampling_api:judge-calibration",
                kwargs={"slug": "support-bot", "judge_id": judge.pk},
            )
        )
        .json()
    )
    assert body["r2"] <= 0
    assert body["weight"] == 0.0
    assert body["power"]["with_judge"] == body["power"]["uniform"]
    judge.refresh_from_db()
    project.refresh_from_db()
    assert judge.weight == 0.0
    assert judge.is_primary
    assert project.primary_judge == ""


def test_the_power_report_says_what_each_judge_saves(project, stub, api_as):
    from sampling.judges.calibration_report import judges_calibrate

    judge = judged_project(project, stub, informative=True)
    power = api_as("engineer").get(
        reverse("sampling_api:report-power", kwargs={"slug": "support-bot"})
    )
    assert power.status_code == 200, power.content
    before = power.json()["judges"]
    if before[0]["labels_uniform"] is None:  # not calibrated yet: said, never a number
        assert before[0]["sentence"] is None
        assert "not calibrated yet" in before[0]["warning"]
    judges_calibrate(project_id=project.pk)
    (row,) = (
        api_as("engineer")
        .get(reverse("sampling_api:report-power", kwargs={"slug": "support-bot"}))
        .json()["judges"]
    )
    assert (row["judge"], row["primary"], row["weight"]) == ("rubric", True, 1.0)
    assert row["labels_with_judge"] < row["labels_uniform"]
    assert row["sentence"] == (
        f"With rubric, a ±3-point interval needs about {row['labels_with_judge']:,} labels "
        f"instead of {row['labels_uniform']:,}."
    )
    assert row["warning"] is None
    judge.weight = 0.0
    judge.save(update_fields=["weight"])
    (row,) = (
        api_as("engineer")
        .get(reverse("sampling_api:report-power", kwargs={"slug": "support-bot"}))
        .json()["judges"]
    )
    assert "weight 0" in row["warning"]


def test_the_power_report_without_judges_lists_none(project, api_as):
    power = (
        api_as("engineer")
        .get(reverse("sampling_api:report-power", kwargs={"slug": "support-bot"}))
        .json()
    )
    assert power["judges"] == []
