"""The proxy model P(good | interaction): training, metrics and prediction on feature matrices.

Pure apart from joblib files: no ORM. ``sampling.services.proxy`` reads the labels, calls
:func:`train` and stores the artefact; ``sampling.services.scoring`` loads it and calls
:meth:`Proxy.predict`.

- With labels of both classes: ``LogisticRegression`` (liblinear) on the featurizer matrix.
  When the project names a primary judge, an isotonic calibration of the judge (fitted on the
  labels) becomes an extra column, ``logit(calibrated judge)``, so the model starts from the
  calibrated judge and the other features correct it. The column used for training is
  cross-fitted (out-of-fold calibration), so the model does not learn from a calibration that has
  seen the same label.
- Without labels of both classes: the signal prior of ``sampling.features`` (``kind="prior"``).
- Both kinds carry a MiniBatchKMeans of the topic vectors, fitted on a sample of the pool, that
  assigns each interaction its topic cluster for coverage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp
from sklearn.cluster import MiniBatchKMeans
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline

from sampling.features import Features, sigmoid

MIN_PER_CLASS = 2  # below this many labels of either class, f is the prior
CV_FOLDS = 5
CV_MAX_LABELS = 20_000  # cross-validated metrics on at most this many labels (a seeded sample)
N_CLUSTERS = 12
CLUSTER_SAMPLE = 20_000
CALIBRATION_BINS = 10


@dataclass
class Proxy:
    """A trained (or prior) proxy. ``predict`` maps Features to P(good)."""

    kind: str  # "logistic" or "prior"
    judge: str | None = None
    pipeline: Pipeline | None = None
    calibrator: IsotonicRegression | None = None
    kmeans: MiniBatchKMeans | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def design(self, features: Features) -> sp.csr_matrix:
        """The matrix the classifier sees: the features plus the calibrated-judge column."""
        if self.calibrator is None:
            return features.matrix
        column = judge_logit(self.calibrator, features.judge)
        return sp.hstack([features.matrix, sp.csr_matrix(column[:, None])], format="csr")

    def predict(self, features: Features) -> np.ndarray:
        if self.pipeline is None:
            return sigmoid(features.prior_logit)
        return self.pipeline.predict_proba(self.design(features))[:, 1]

    def clusters(self, features: Features) -> np.ndarray:
        """Topic cluster per row (-1 when the proxy has no clustering)."""
        if self.kmeans is None or features.topic.shape[0] == 0:
            return np.full(features.topic.shape[0], -1, dtype=np.int16)
        return self.kmeans.predict(features.topic).astype(np.int16)


def judge_logit(calibrator: IsotonicRegression, judge: np.ndarray) -> np.ndarray:
    """logit of the calibrated judge; 0 (no information) where the judge is missing."""
    out = np.zeros(len(judge))
    known = np.isfinite(judge)
    if known.any():
        p = np.clip(calibrator.predict(judge[known]), 0.01, 0.99)
        out[known] = np.log(p / (1 - p))
    return out


def _fit_calibrator(judge: np.ndarray, y: np.ndarray) -> IsotonicRegression | None:
    known = np.isfinite(judge)
    if known.sum() < 2 * MIN_PER_CLASS or len(np.unique(y[known])) < 2:
        return None
    return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
        judge[known], y[known]
    )


def _new_pipeline(seed: int) -> Pipeline:
    # No scaler: the featurizer already puts every block on about [0, 1] (l2-normalised text,
    # log-scaled counts and lengths). A MaxAbsScaler blew rare hashed tokens up to 1, which was
    # both slower to fit and worse on held-out data.
    return make_pipeline(
        LogisticRegression(C=1.0, max_iter=500, solver="liblinear", random_state=seed),
    )


def fit_clusters(topic: sp.csr_matrix, *, seed: int = 0) -> MiniBatchKMeans | None:
    """MiniBatchKMeans on (a sample of) the topic vectors; None when there are too few rows."""
    rows = topic.shape[0]
    if rows < 2 * N_CLUSTERS:
        return None
    if rows > CLUSTER_SAMPLE:
        idx = np.random.default_rng(seed).choice(rows, CLUSTER_SAMPLE, replace=False)
        topic = topic[np.sort(idx)]
    return MiniBatchKMeans(n_clusters=N_CLUSTERS, random_state=seed, n_init=3, batch_size=2048).fit(
        topic
    )


def calibration_report(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """Expected calibration error and reliability bins (mean predicted vs observed per bin)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table = []
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        mean_p, mean_y = float(p[mask].mean()), float(y[mask].mean())
        ece += mask.mean() * abs(mean_p - mean_y)
        table.append(
            {
                "bin": [float(edges[b]), float(edges[b + 1])],
                "n": int(mask.sum()),
                "predicted": mean_p,
                "observed": mean_y,
            }
        )
    return {"ece": float(ece), "bins": table}


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    out: dict[str, Any] = {"n": len(y), "positive_rate": float(y.mean())}
    out["auc"] = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None
    out["log_loss"] = float(log_loss(y, p, labels=[0, 1]))
    out["brier"] = float(np.mean((p - y) ** 2))
    out["calibration"] = calibration_report(y, p)
    return out


def _fit_one(
    features: Features, y: np.ndarray, judge: str | None, seed: int, groups: np.ndarray | None
) -> Proxy:
    calibrator = _fit_calibrator(features.judge, y) if judge else None
    proxy = Proxy(kind="logistic", judge=judge, calibrator=calibrator)
    if calibrator is not None:
        # Cross-fitted judge column for training: each label's column comes from a calibration
        # that did not see it.
        column = np.zeros(len(y))
        for train_idx, test_idx in _folds(y, seed, groups):
            fold_cal = _fit_calibrator(features.judge[train_idx], y[train_idx])
            if fold_cal is not None:
                column[test_idx] = judge_logit(fold_cal, features.judge[test_idx])
        matrix = sp.hstack([features.matrix, sp.csr_matrix(column[:, None])], format="csr")
    else:
        matrix = features.matrix
    proxy.pipeline = _new_pipeline(seed).fit(matrix, y)
    return proxy


def _folds(
    y: np.ndarray, seed: int, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds; with ``groups`` (conversations) a group never spans two folds, so a
    conversation's other turns cannot leak its label into the held-out fold."""
    minority = int(min((y == 0).sum(), (y == 1).sum()))
    k = max(2, min(CV_FOLDS, minority))
    if groups is not None:
        k = max(2, min(k, len(np.unique(groups))))
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y, groups))
    return list(
        StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    )


def has_both_classes(y: np.ndarray) -> bool:
    return int((y == 1).sum()) >= MIN_PER_CLASS and int((y == 0).sum()) >= MIN_PER_CLASS


def train(
    features: Features,
    y: np.ndarray,
    *,
    judge: str | None = None,
    pool_topic: sp.csr_matrix | None = None,
    seed: int = 0,
    with_metrics: bool = True,
    groups: np.ndarray | None = None,
    clusters: bool = True,
) -> tuple[Proxy, dict[str, Any]]:
    """Train a proxy on labelled ``features`` / ``y`` (1 good, 0 not) and report its metrics.

    Metrics are out-of-fold (stratified k-fold, k <= 5, grouped by ``groups`` (conversation) when
    given, on at most CV_MAX_LABELS labels): AUC, log
    loss, Brier score and calibration (ECE and reliability bins), plus the prior's metrics on the
    same labels for comparison. Without labels of both classes the proxy is the prior.
    """
    y = np.asarray(y, dtype=float)
    topic = pool_topic if pool_topic is not None else features.topic
    kmeans = fit_clusters(topic, seed=seed) if clusters else None
    metrics: dict[str, Any] = {"n_labels": len(y), "positive": int((y == 1).sum())}
    if len(y) and with_metrics:
        metrics["prior"] = _metrics(y, sigmoid(features.prior_logit))
    if not has_both_classes(y):
        metrics["note"] = f"prior from signals: fewer than {MIN_PER_CLASS} labels of each class"
        return Proxy(kind="prior", judge=judge, kmeans=kmeans), metrics
    if with_metrics:
        idx = np.arange(len(y))
        if len(y) > CV_MAX_LABELS:
            idx = np.sort(np.random.default_rng(seed).choice(len(y), CV_MAX_LABELS, replace=False))
        sub = _subset(features, idx)
        ys = y[idx]
        gs = groups[idx] if groups is not None else None
        oof = np.zeros(len(idx))
        folds = _folds(ys, seed, gs)
        for train_idx, test_idx in folds:
            fold = _fit_one(
                _subset(sub, train_idx),
                ys[train_idx],
                judge,
                seed,
                gs[train_idx] if gs is not None else None,
            )
            oof[test_idx] = fold.predict(_subset(sub, test_idx))
        metrics["cv"] = _metrics(ys, oof)
        metrics["cv_folds"] = len(folds)
        metrics["cv_grouped"] = gs is not None
        if judge:
            judged = np.isfinite(features.judge)
            metrics["judge_coverage"] = float(judged.mean())
    proxy = _fit_one(features, y, judge, seed, groups)
    proxy.kmeans = kmeans
    return proxy, metrics


def _subset(features: Features, idx: np.ndarray) -> Features:
    return Features(
        matrix=features.matrix[idx],
        judge=features.judge[idx],
        prior_logit=features.prior_logit[idx],
        topic=features.topic[idx],
    )


def save(proxy: Proxy, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    joblib.dump(proxy, tmp, compress=3)
    tmp.replace(path)  # atomic: a reader never sees half a file


def load(path: Path | str) -> Proxy:
    proxy = joblib.load(path)
    if not isinstance(proxy, Proxy):
        raise TypeError(f"{path} is not a Proxy artefact")
    return proxy


def safe_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
