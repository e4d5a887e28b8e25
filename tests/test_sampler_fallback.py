"""A useless proxy (cross-validated R^2 <= 0, e.g. once the judge lost its weight and the text
explains nothing) makes the sampler fall back to random: its uncertainty weight goes to the
random share, so ``pi`` is not spread by noise (no width penalty)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from django.test.utils import override_settings

from labeling.models import Interaction, Project
from sampling import design
from sampling.models import Inclusion, ProxyModel
from sampling.services.runs import sampling_run_create, sampling_run_execute
from sampling.services.strategies import strategy_create
from tests.sampling_fixtures import seed_interactions

MIX = {"uncertainty": 0.6, "coverage": 0.0, "random": 0.4}


@pytest.fixture(autouse=True)
def _model_root(tmp_path: Path) -> Iterator[None]:
    with override_settings(MODEL_ROOT=tmp_path / "models"):
        yield


def _cv(brier: float, n: int = 120, rate: float = 0.5) -> dict:
    return {"cv": {"n": n, "brier": brier, "positive_rate": rate}}


@pytest.mark.parametrize(
    ("metrics", "falls_back"),
    [
        (_cv(0.26), True),  # worse than the base rate: R^2 < 0
        (_cv(0.25), True),  # exactly the base rate: R^2 = 0
        (_cv(0.20), False),  # R^2 = 0.2: the proxy helps
        (_cv(0.30, n=20), False),  # too few labels to judge
        ({}, False),  # the cold-start prior has no CV metrics
    ],
)
def test_weights_move_to_random_only_for_a_useless_proxy(metrics: dict, falls_back: bool):
    weights, reason = design.weights_for_proxy(MIX, metrics)
    if falls_back:
        assert weights == {"uncertainty": 0.0, "coverage": 0.0, "random": 1.0}
        assert "explains nothing" in reason
    else:
        assert weights == MIX
        assert reason == ""


def _run_with_proxy(project: Project, metrics: dict):  # type: ignore[no-untyped-def]
    seed_interactions(project, 300)
    rng = np.random.default_rng(3)
    for interaction in Interaction.objects.filter(project=project):
        interaction.proxy_score = float(rng.uniform(0.05, 0.95))
        interaction.save(update_fields=["proxy_score"])
    ProxyModel.objects.create(
        project=project, version=1, status=ProxyModel.Status.READY, kind="logistic",
        metrics=metrics, n_labels=120,
    )  # fmt: skip
    strategy = strategy_create(
        project=project, data={"name": "s", "weights": MIX, "batch_size": 40}
    )
    run = sampling_run_execute(run_id=sampling_run_create(project=project, strategy=strategy).pk)
    assert run is not None
    pi = np.array(Inclusion.objects.filter(run=run).values_list("pi", flat=True), dtype=float)
    return run, pi


def test_a_run_with_a_useless_proxy_samples_uniformly_and_says_why(project: Project) -> None:
    run, pi = _run_with_proxy(project, _cv(0.27))
    assert pi == pytest.approx(np.full(300, 40 / 300))
    assert run.strategy_snapshot["effective_weights"]["random"] == 1.0
    assert "explains nothing" in run.strategy_snapshot["fallback"]


def test_a_run_with_a_useful_proxy_keeps_its_weights(project: Project) -> None:
    run, pi = _run_with_proxy(project, _cv(0.15))
    assert pi.std() > 0.01  # spread by the proxy's uncertainty
    assert "fallback" not in run.strategy_snapshot
