"""How far a judge can be trusted, against human labels: pure functions on arrays, no ORM.

The judge's raw score ``s`` is calibrated to P(good) by isotonic regression, cross-fitted (each
label's calibrated value comes from a fit that did not see it, as the proxy does), so the reported
R^2 is honest out of sample. Reported: AUC, calibrated R^2 (1 - Brier / variance of y) with a
bootstrap interval, Cohen's kappa at the best threshold, a reliability table, the judge's share of
good, and what the judge saves in labels for a given interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from sampling.proxy import calibration_report

MIN_LABELS = 30  # below this a number is shown with a "too few labels" warning
FOLDS = 5
BOOTSTRAP = 200


def _isotonic(s: np.ndarray, y: np.ndarray) -> IsotonicRegression:
    return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, y)


def cross_fitted(s: np.ndarray, y: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Out-of-fold isotonic P(good | s); the plain mean of y where a class is too rare to fold."""
    p = np.full(len(y), float(y.mean()) if len(y) else 0.5)
    minority = int(min((y == 0).sum(), (y == 1).sum()))
    if minority < 2:
        return p
    k = min(FOLDS, minority)
    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(s, y):
        p[test] = _isotonic(s[train], y[train]).predict(s[test])
    return p


def r_squared(y: np.ndarray, p: np.ndarray) -> float | None:
    """1 - sum (y - p)^2 / sum (y - mean y)^2: the share of the label's variance p explains."""
    if len(y) < 2:
        return None
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return None
    return 1.0 - float(((y - p) ** 2).sum()) / total


def auc(s: np.ndarray, y: np.ndarray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, s))


def kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's kappa of two binary vectors."""
    if len(a) == 0:
        return None
    po = float((a == b).mean())
    pa, pb = float(a.mean()), float(b.mean())
    pe = pa * pb + (1 - pa) * (1 - pb)
    if pe >= 1:
        return None
    return (po - pe) / (1 - pe)


def best_kappa(s: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    """(kappa, threshold): good when s >= threshold, at the threshold that maximises kappa."""
    best: tuple[float | None, float | None] = (None, None)
    for t in np.unique(s):
        k = kappa((s >= t).astype(float), y)
        if k is not None and (best[0] is None or k > best[0]):
            best = (k, float(t))
    return best


def _bootstrap(
    y: np.ndarray, p: np.ndarray, s: np.ndarray, *, seed: int = 0
) -> dict[str, tuple[float, float] | None]:
    rng = np.random.default_rng(seed)
    r2s, aucs = [], []
    n = len(y)
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, n, n)
        r = r_squared(y[idx], p[idx])
        a = auc(s[idx], y[idx])
        if r is not None:
            r2s.append(r)
        if a is not None:
            aucs.append(a)

    def ci(values: list[float]) -> tuple[float, float] | None:
        if len(values) < BOOTSTRAP // 2:
            return None
        return (float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975)))

    return {"r2": ci(r2s), "auc": ci(aucs)}


def agreement(
    s: np.ndarray, y: np.ndarray, p: np.ndarray, *, with_intervals: bool = True
) -> dict[str, Any]:
    """Metrics of one set of labelled items: raw judge ``s``, labels ``y``, cross-fitted ``p``."""
    n = len(y)
    out: dict[str, Any] = {"n_labels": n, "warning": ""}
    if n < MIN_LABELS:
        out["warning"] = f"rests on {n} labels (fewer than {MIN_LABELS}): read it as a rough hint"
    out["human_good"] = float(y.mean()) if n else None
    out["auc"] = auc(s, y)
    out["r2"] = r_squared(y, p)
    k, t = best_kappa(s, y) if n else (None, None)
    out["kappa"], out["threshold"] = k, t
    out["judge_good"] = float((s >= t).mean()) if t is not None and n else None
    if with_intervals and n >= 5:
        cis = _bootstrap(y, p, s)
        out["r2_ci"], out["auc_ci"] = cis["r2"], cis["auc"]
    else:
        out["r2_ci"] = out["auc_ci"] = None
    return out


def labels_for_interval(
    *, p_good: float, half_width: float, r2: float | None, level: float = 0.95
) -> dict[str, int]:
    """Labels a uniform sample needs for +-half_width, and with this judge as the proxy.

    With prediction-powered estimation the variance shrinks by about the share of the label's
    variance the calibrated judge explains (R^2); a judge with R^2 <= 0 saves nothing (weight 0).
    """
    z = float(norm.ppf(0.5 + level / 2))
    p = min(max(p_good, 0.01), 0.99)
    uniform = math.ceil(z**2 * p * (1 - p) / half_width**2)
    gain = max(0.0, r2 or 0.0)
    return {"uniform": uniform, "with_judge": math.ceil(uniform * (1 - gain))}


def trust_report(
    s: np.ndarray,
    y: np.ndarray,
    *,
    groups: dict[str, np.ndarray] | None = None,
    scale: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
) -> dict[str, Any]:
    """The whole report: overall metrics, a reliability table of the judge's own score (mapped to
    [0, 1] by its scale) and of the calibrated score, and the metrics per group (segment, model
    version, week) on the same cross-fitted values."""
    s = np.asarray(s, dtype=float)
    y = np.asarray(y, dtype=float)
    p = cross_fitted(s, y, seed=seed)
    overall = agreement(s, y, p)
    lo, hi = scale
    raw01 = np.clip((s - lo) / (hi - lo), 0, 1) if len(s) else s
    report: dict[str, Any] = {
        **overall,
        "weight": 0.0 if overall["r2"] is not None and overall["r2"] <= 0 else 1.0,
        "reliability_raw": calibration_report(y, raw01) if len(y) else {"ece": None, "bins": []},
        "reliability_calibrated": calibration_report(y, p) if len(y) else {"ece": None, "bins": []},
        "groups": {},
    }
    for name, labels in (groups or {}).items():
        rows = []
        for value in sorted({str(v) for v in labels}):
            mask = np.array([str(v) == value for v in labels])
            rows.append(
                {"group": value, **agreement(s[mask], y[mask], p[mask], with_intervals=False)}
            )
        report["groups"][name] = rows
    return report
