"""Unit tests of the proxy model (training, metrics, prior, judge calibration, artefacts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sampling import proxy as proxy_lib
from sampling.features import featurize

WORDS = ["account", "billing", "refund", "password", "invoice", "shipping", "order", "login"]


def _population(size: int, seed: int, judge_noise: float = 0.3) -> tuple[list[tuple], np.ndarray]:
    """Good answers explain; bad ones refuse. A judge on a 1-10 scale sees the truth noisily."""
    rng = np.random.default_rng(seed)
    rows, ys = [], []
    for _ in range(size):
        good = rng.random() < 0.6
        topic = rng.choice(WORDS, 2)
        response = (
            f"Here is how to fix your {topic[0]}: open settings and follow the steps."
            if good
            else f"Sorry, I cannot help with {topic[0]} questions."
        )
        judge = float(np.clip((8 if good else 3) + rng.normal(0, judge_noise * 10), 1, 10))
        rows.append(
            (
                [{"role": "user", "content": f"my {topic[0]} and {topic[1]} problem"}],
                response,
                {"tier": rng.choice(["free", "pro"])},
                {"judge": judge},
                {},
                None,
            )
        )
        ys.append(1.0 if good else 0.0)
    return rows, np.asarray(ys)


def test_trained_proxy_separates_the_classes_and_reports_cv_metrics() -> None:
    rows, y = _population(400, 1)
    proxy, metrics = proxy_lib.train(featurize(rows[:300]), y[:300], seed=0)
    assert proxy.kind == "logistic"
    p = proxy.predict(featurize(rows[300:]))
    assert roc_auc_score(y[300:], p) > 0.95
    assert metrics["cv"]["auc"] > 0.9
    assert metrics["cv"]["log_loss"] < 0.5
    assert 0 <= metrics["cv"]["calibration"]["ece"] < 0.2
    assert sum(b["n"] for b in metrics["cv"]["calibration"]["bins"]) == 300
    assert metrics["n_labels"] == 300
    assert metrics["prior"]["auc"] is not None


def test_one_class_gives_the_prior() -> None:
    rows, _ = _population(30, 2)
    features = featurize(rows)
    proxy, metrics = proxy_lib.train(features, np.ones(30))
    assert proxy.kind == "prior"
    assert "prior" in metrics["note"]
    np.testing.assert_allclose(proxy.predict(features), 1 / (1 + np.exp(-features.prior_logit)))


def test_primary_judge_is_calibrated_and_helps() -> None:
    # Text says nothing here (same response for all); only the judge carries the signal.
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.5).astype(float)
    judge = np.where(y == 1, 7.0, 4.0) + rng.normal(0, 1.5, 300)
    rows = [
        ([{"role": "user", "content": "q"}], "same answer", {}, {"judge": float(j)}, {}, None)
        for j in judge
    ]
    features = featurize(rows, judge="judge")
    with_judge, metrics = proxy_lib.train(features, y, judge="judge")
    assert with_judge.calibrator is not None
    assert metrics["cv"]["auc"] > 0.85
    assert metrics["judge_coverage"] == 1.0
    # the calibrated judge is monotone in the raw score and a probability
    calibrated = with_judge.calibrator.predict(np.array([1.0, 5.5, 10.0]))
    assert list(calibrated) == sorted(calibrated)
    assert 0.0 <= calibrated.min() <= calibrated.max() <= 1.0


def test_clusters_and_artefact_roundtrip(tmp_path: Path) -> None:
    rows, y = _population(200, 4)
    features = featurize(rows)
    proxy, _ = proxy_lib.train(features, y, seed=0)
    clusters = proxy.clusters(features)
    assert clusters.min() >= 0
    assert clusters.max() < proxy_lib.N_CLUSTERS
    path = tmp_path / "p" / "proxy-v1.joblib"
    proxy_lib.save(proxy, path)
    loaded = proxy_lib.load(path)
    np.testing.assert_allclose(loaded.predict(features), proxy.predict(features))
    np.testing.assert_array_equal(loaded.clusters(features), clusters)


def test_calibration_report_by_hand() -> None:
    y = np.array([0, 1, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 0.95])
    report = proxy_lib.calibration_report(y, p, bins=2)
    # bin 1: predicted 0.05 observed 0.5; bin 2: predicted 0.95 observed 1.0
    assert report["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)


def test_cv_folds_keep_each_conversation_on_one_side() -> None:
    y = np.array([1, 0] * 30, dtype=float)
    groups = np.repeat(np.arange(30), 2)  # a chosen and a rejected answer per conversation
    for train_idx, test_idx in proxy_lib._folds(y, 0, groups):
        assert not set(groups[train_idx]) & set(groups[test_idx])
