"""Agreement: alpha and kappa against hand-computed values, per question through the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.urls import reverse
from sklearn.metrics import cohen_kappa_score

from labeling.models import Project, QueueItem, Role
from labeling.selectors.agreement import (
    cohen_kappa,
    disagreements,
    krippendorff_alpha,
    mean_pairwise_kappa,
    project_agreement,
)
from labeling.services.queue import assignment_claim, assignment_submit
from tests.conftest import client_for
from tests.factories import QueueItemFactory

NAN = np.nan


def test_alpha_nominal_hand_computed() -> None:
    # Coincidences o11=2, o12=o21=1, o22=4: Do = 2/8, De = 2*3*5/(8*7); alpha = 1 - Do/De = 8/15.
    alpha = krippendorff_alpha(np.array([[1, 1, 2, 2], [1, 2, 2, 2]]), level="nominal")
    assert alpha == pytest.approx(8 / 15)


def test_alpha_interval_hand_computed_with_missing() -> None:
    # Units (1,2), (3,3), (3,-) : the third is not pairable. Values 1,2,3,3 (n=4).
    # Do = 2*(1-2)^2 / 4 = 0.5; De = sum over ordered pairs of (c-k)^2 / (n(n-1))
    #    = 2*[(1-2)^2 + 2*(1-3)^2 + 2*(2-3)^2] / 12 = 2*11/12; alpha = 1 - 0.5/(22/12) = 8/11.
    data = np.array([[1, 3, 3], [2, 3, NAN]])
    assert krippendorff_alpha(data, level="interval") == pytest.approx(8 / 11)


def test_alpha_undefined_without_variation_or_pairs() -> None:
    assert krippendorff_alpha(np.array([[1, 1], [1, 1]]), level="nominal") is None
    assert krippendorff_alpha(np.array([[1, NAN], [NAN, 2]]), level="nominal") is None


def test_kappa_hand_computed_and_against_sklearn() -> None:
    a, b = [1, 1, 2, 2], [1, 2, 2, 2]
    # po = 3/4; pe = .5*.25 + .5*.75 = .5; kappa = (.75 - .5) / .5
    assert cohen_kappa(a, b) == pytest.approx(0.5)
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 4, 50).tolist(), rng.integers(0, 4, 50).tolist()
    assert cohen_kappa(x, y) == pytest.approx(cohen_kappa_score(x, y))
    assert cohen_kappa([1, 1], [1, 1]) is None
    with pytest.raises(ValueError, match="equally long"):
        cohen_kappa([1], [1, 2])


def test_mean_pairwise_kappa_weights_by_shared_units() -> None:
    units = {
        1: {"a": 1, "b": 1, "c": 1},
        2: {"a": 1, "b": 2, "c": 2},
        3: {"a": 2, "b": 2},
        4: {"a": 2, "b": 2},
    }
    ab = cohen_kappa([1, 1, 2, 2], [1, 2, 2, 2])  # 4 shared units: 0.5
    ac = cohen_kappa([1, 1], [1, 2])  # 2 shared: 0.0
    bc = cohen_kappa([1, 2], [1, 2])  # 2 shared: 1.0
    expected = (4 * ab + 2 * ac + 2 * bc) / 8
    assert mean_pairwise_kappa(units) == pytest.approx(expected)
    assert mean_pairwise_kappa({1: {"a": 1, "b": 2}}) is None  # fewer than two shared units


SCHEMA: dict[str, Any] = {
    "questions": [
        {"key": "safe", "type": "binary", "required": True},
        {"key": "quality", "type": "rating",
         "scale": [{"value": v, "label": str(v)} for v in (1, 2, 3, 4, 5)]},
        {"key": "failures", "type": "multi_choice", "options": ["x", "y"]},
        {"key": "note", "type": "text"},
    ],
    "target": {"question": "safe", "good": [True]},
}  # fmt: skip


def label_all(project: Project, users: list[Any], answers: dict[Any, list[dict[str, Any]]]) -> None:
    """Each user claims and labels the items in queue order with their list of answers."""
    for user in users:
        for values in answers[user.username]:
            lease = assignment_claim(project=project, annotator=user)
            assert lease is not None
            assignment_submit(assignment_id=lease.pk, annotator=user, values=values)


@pytest.mark.django_db
def test_project_agreement_per_question(project: Project, member: Callable[..., Any]) -> None:
    project.label_schema = SCHEMA
    project.save()
    for p in (4, 3, 2, 1):
        QueueItemFactory(interaction__project=project, overlap=2, priority=p)
    QueueItemFactory(interaction__project=project, overlap=1, priority=0)  # single: not counted
    a, b = member(username="ann"), member(username="bob")
    answers = {
        "ann": [
            {"safe": True, "quality": 5, "failures": []},
            {"safe": True, "quality": 4, "failures": ["x"]},
            {"safe": False, "quality": 2, "failures": ["x", "y"]},
            {"safe": False, "quality": 1, "failures": ["y"]},
            {"safe": True},
        ],
        "bob": [
            {"safe": True, "quality": 5, "failures": []},
            {"safe": False, "quality": 2, "failures": ["x"]},
            {"safe": False, "quality": 2, "failures": ["x"]},
            {"safe": False, "quality": 1, "failures": ["y"]},
        ],
    }
    label_all(project, [a, b], answers)
    result = {q["key"]: q for q in project_agreement(project=project)["questions"]}
    assert set(result) == {"safe", "quality", "failures"}  # text is not scored
    assert result["safe"]["items"] == 4
    assert result["safe"]["alpha"] == pytest.approx(8 / 15, abs=1e-4)
    assert result["safe"]["kappa"] == pytest.approx(0.5, abs=1e-4)
    # Ordinal alpha against the reference package on the same matrix.
    import krippendorff

    expected = krippendorff.alpha(
        reliability_data=[[5, 4, 2, 1], [5, 2, 2, 1]], level_of_measurement="ordinal"
    )
    assert result["quality"]["alpha"] == pytest.approx(expected, abs=1e-4)
    # Multi-choice: 8 yes/no units (4 items x 2 options); they differ only on item 3, option y.
    flat_a = [False, False, True, False, True, True, False, True]
    flat_b = [False, False, True, False, True, False, False, True]
    assert result["failures"]["items"] == 4
    assert result["failures"]["kappa"] == pytest.approx(cohen_kappa(flat_a, flat_b), abs=1e-4)
    # Through the API (reviewers and engineers read it).
    reviewer = client_for(member(Role.REVIEWER))
    body = reviewer.get(reverse("labeling_api:agreement", kwargs={"slug": "support-bot"})).json()
    assert {q["key"]: q["items"] for q in body["questions"]} == {
        "safe": 4,
        "quality": 4,
        "failures": 4,
    }
    assert set(body["questions"][0]) >= {"key", "alpha", "kappa", "items"}


@pytest.mark.django_db
def test_disagreements_and_adjudication(project: Project, member: Callable[..., Any]) -> None:
    project.label_schema = SCHEMA
    project.save()
    items = [
        QueueItemFactory(interaction__project=project, overlap=2, priority=p) for p in (3, 2, 1)
    ]
    a, b = member(username="ann"), member(username="bob")
    answers = {
        "ann": [{"safe": True, "quality": q} for q in (5, 4, 5)],
        "bob": [{"safe": s, "quality": q} for s, q in ((True, 4), (False, 4), (True, 2))],
    }
    label_all(project, [a, b], answers)
    rows = disagreements(project=project)
    assert [(r["queue_item_id"], r["questions"]) for r in rows] == [
        (items[1].pk, ["safe"]),
        (items[2].pk, ["quality"]),  # a spread of 3 scale points
    ]
    reviewer = client_for(member(Role.REVIEWER))
    listing = reviewer.get(
        reverse("labeling_api:disagreements", kwargs={"slug": "support-bot"})
    ).json()
    assert listing["count"] == 2
    assert listing["results"][0]["external_id"] == items[1].interaction.external_id
    url = reverse("labeling_api:adjudicate", kwargs={"slug": "support-bot", "item_id": items[1].pk})
    bad = reviewer.post(url, {"values": {"safe": "maybe"}}, format="json")
    assert bad.status_code == 400
    assert "true or false" in bad.json()["errors"]["values"]["safe"]
    ok = reviewer.post(url, {"values": {"safe": False}, "note": "B is right"}, format="json")
    assert ok.status_code == 201
    from labeling.selectors.labels import final_labels

    final = final_labels(project=project)
    assert final[items[1].interaction_id]["safe"] is False  # the adjudication wins
    assert final[items[1].interaction_id]["quality"] == 4.0
    remaining = reviewer.get(
        reverse("labeling_api:disagreements", kwargs={"slug": "support-bot"})
    ).json()
    assert [r["queue_item_id"] for r in remaining["results"]] == [items[2].pk]
    assert QueueItem.objects.filter(project=project, status="done").count() == 3
