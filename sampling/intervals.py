"""Small-sample-safe intervals for a share and for a difference of shares (pure numpy).

The normal interval ``estimate ± z·se`` collapses to zero width when a cell's labels are all good
or all bad (the estimated variance is then 0) and undercovers at a few labels. This module gives
every cell an interval with honest coverage (docs/estimates.md, "Small samples"):

- **large cells** (at least ``MIN_LABELS`` labels and ``MIN_PER_CLASS`` of each class, variance
  above 0): the design-based normal interval, clipped to [0, 1];
- **small or extreme cells**: the Clopper-Pearson (beta) interval at the weighted share of good
  labels with the *effective* sample size ``n_eff = min(p(1-p)/Var, kish_ess)`` (Korn &
  Graubard 1998, "Confidence intervals for proportions with small expected number of positive
  counts estimated from survey data"; ``kish_ess`` alone when the variance is 0 or the share is 0
  or 1). Taking the smaller of the two never credits a small cell with savings from the proxy it
  cannot yet show. A Wilson interval on the same effective n fell to 88% at p = 0.02, n = 9
  under unequal weights; Clopper-Pearson stays above 94% on the whole n = 1..30 grid;
- **a census** (every item of the domain labelled with ``pi = 1``): the estimate is exact and a
  zero-width interval is correct.

Below ``MIN_EFFECTIVE_LABELS`` (Kish effective sample size, which depends on the weights only, not
on the labels, so which cells are shown never depends on their outcome) a cell reads "not enough
labels (n = k)" everywhere instead of a number.

A difference of two independent shares uses the MOVER interval (Newcombe 1998; Zou & Donner
2008) built from each side's own interval, so a difference of two small cells is as honest as
the cells themselves and reduces to ``d ± z sqrt(se_a^2 + se_b^2)`` for two normal intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import beta, norm

# Normal interval only from here on (same thresholds as the "n too small" warning).
MIN_LABELS = 30
MIN_PER_CLASS = 5
# Below this Kish effective sample size a cell shows "not enough labels (n = k)".
MIN_EFFECTIVE_LABELS = 10.0

Array = NDArray[np.float64]


def not_enough_text(n_labels: int) -> str:
    """The one wording used by the API, the dashboard and the export manifests."""
    return f"not enough labels (n = {n_labels})"


def z_for(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2.0))


def clopper_pearson(*, p: ArrayLike, n: ArrayLike, level: float = 0.95) -> tuple[Array, Array]:
    """Clopper-Pearson (beta) interval at ``x = p n`` successes of ``n`` (fractional allowed).

    Korn & Graubard (1998) apply it to complex samples with ``n`` the effective sample size.
    Vectorised; ``n <= 0`` gives [0, 1].
    """
    alpha = 1 - level
    p_a = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    n_a = np.asarray(n, dtype=float)
    safe_n = np.where(n_a > 0, n_a, 1.0)
    x = p_a * safe_n
    with np.errstate(invalid="ignore"):
        low = np.where(x > 0, beta.ppf(alpha / 2, np.maximum(x, 1e-12), safe_n - x + 1), 0.0)
        high = np.where(
            x < safe_n, beta.ppf(1 - alpha / 2, x + 1, np.maximum(safe_n - x, 1e-12)), 1.0
        )
    low = np.where(n_a > 0, np.nan_to_num(low, nan=0.0), 0.0)
    high = np.where(n_a > 0, np.nan_to_num(high, nan=1.0), 1.0)
    return low, high


def effective_n(*, p: ArrayLike, var: ArrayLike, kish: ArrayLike) -> Array:
    """``min(p(1-p)/var, kish)``; ``kish`` where the variance is 0 or ``p`` is 0 or 1."""
    p_a = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    v = np.asarray(var, dtype=float)
    k = np.asarray(kish, dtype=float)
    spread = p_a * (1 - p_a)
    with np.errstate(divide="ignore", invalid="ignore"):
        by_var = np.where((v > 0) & (spread > 0), spread / np.where(v > 0, v, 1.0), np.inf)
    return np.minimum(by_var, k)


def is_small(*, n_labels: ArrayLike, n_good: ArrayLike) -> NDArray[np.bool_]:
    """Fewer than ``MIN_LABELS`` labels or fewer than ``MIN_PER_CLASS`` of the rarer class."""
    n = np.asarray(n_labels, dtype=float)
    good = np.asarray(n_good, dtype=float)
    return (n < MIN_LABELS) | (np.minimum(good, n - good) < MIN_PER_CLASS)


def share_interval(
    *,
    estimate: ArrayLike,
    var: ArrayLike,
    n_labels: ArrayLike,
    n_good: ArrayLike,
    kish: ArrayLike,
    level: float = 0.95,
    share: ArrayLike | None = None,
    census: ArrayLike = False,
) -> tuple[Array, Array, NDArray[np.bool_]]:
    """Lower and upper bounds for a share, and whether the small-cell (Clopper-Pearson) form was
    used.

    ``share`` is the weighted share good among the labels (Hájek, always in [0, 1]); the small-cell
    interval is centred on it, since on a few labels the HT and PPI points carry noise from the
    sample size and the proxy that says nothing about the labels (all good labels must reach 1).
    Vectorised over cells (e.g. simulation repeats). See the module docstring for the rule.
    """
    z = z_for(level)
    theta = np.asarray(estimate, dtype=float)
    v = np.maximum(np.asarray(var, dtype=float), 0.0)
    sd = np.sqrt(v)
    normal_low = np.clip(theta - z * sd, 0.0, 1.0)
    normal_high = np.clip(theta + z * sd, 0.0, 1.0)
    p = np.clip(theta, 0.0, 1.0)
    centre = p if share is None else np.clip(np.asarray(share, dtype=float), 0.0, 1.0)
    n_eff = effective_n(p=centre, var=v, kish=kish)
    w_low, w_high = clopper_pearson(p=centre, n=n_eff, level=level)
    census_a = np.asarray(census, dtype=bool)
    use_small = (is_small(n_labels=n_labels, n_good=n_good) | (v <= 0)) & ~census_a
    low = np.where(use_small, w_low, normal_low)
    high = np.where(use_small, w_high, normal_high)
    # The point estimate is clipped for the interval; keep the interval around the clipped value.
    low = np.minimum(low, p)
    high = np.maximum(high, p)
    return low, high, use_small


@dataclass(frozen=True)
class CellInterval:
    """One cell's interval, the form used and whether there are enough labels to show it."""

    low: float
    high: float
    form: str  # "normal", "clopper_pearson" (on the effective n) or "census"
    enough_labels: bool
    effective_labels: float


def cell_interval(
    *,
    estimate: float,
    var: float,
    y: ArrayLike,
    pi: ArrayLike,
    population: int,
    kish: float,
    level: float = 0.95,
) -> CellInterval:
    """The interval of one binary cell (``y`` and ``pi`` of its labelled sample)."""
    y_a = np.asarray(y, dtype=float)
    pi_a = np.asarray(pi, dtype=float)
    n = int(y_a.size)
    census = bool(n > 0 and n >= population and np.all(pi_a >= 1.0))
    w = 1 / pi_a
    share = float((w * y_a).sum() / w.sum()) if n else estimate
    low, high, small = share_interval(
        share=share,
        estimate=estimate,
        var=var,
        n_labels=n,
        n_good=float((y_a >= 0.5).sum()),
        kish=kish,
        level=level,
        census=census,
    )
    form = "census" if census else ("clopper_pearson" if bool(small) else "normal")
    return CellInterval(
        low=float(low),
        high=float(high),
        form=form,
        enough_labels=census or kish >= MIN_EFFECTIVE_LABELS,
        effective_labels=float(kish),
    )


def mover_difference(
    *,
    a: float,
    a_low: float,
    a_high: float,
    b: float,
    b_low: float,
    b_high: float,
) -> tuple[float, float, float]:
    """``a - b`` and Newcombe's MOVER interval from each share's own interval (independent).

    ``low = d - sqrt((a - a_low)^2 + (b_high - b)^2)``,
    ``high = d + sqrt((a_high - a)^2 + (b - b_low)^2)``. With normal intervals on both sides this
    is the usual ``d ± z sqrt(se_a^2 + se_b^2)``; with small-cell intervals it keeps their coverage.
    """
    d = a - b
    low = d - math.sqrt((a - a_low) ** 2 + (b_high - b) ** 2)
    high = d + math.sqrt((a_high - a) ** 2 + (b - b_low) ** 2)
    return d, max(low, -1.0), min(high, 1.0)


WITHHELD = ("estimate", "ci_low", "ci_high", "se")


def withhold_if_too_few(row: dict[str, Any]) -> dict[str, Any]:
    """A cell in the API shape, with ``status`` and ``display``; below the minimum effective
    sample size its numbers move to ``provisional`` and ``estimate``/``ci_*``/``se`` are None.

    ``status``: ``ok``, ``not_enough_labels`` (``display`` "not enough labels (n = k)") or
    ``no_labels``. Nobody reading ``estimate`` can then take one label for a certain 1.000.
    """
    out = dict(row)
    n = int(out.get("n_labels") or 0)
    if n == 0 or out.get("estimate") is None:
        out.update(status="no_labels", display=not_enough_text(n), provisional=None)
    elif not out.get("enough_labels", True):
        out["provisional"] = {k: out.get(k) for k in WITHHELD}
        out.update(dict.fromkeys(WITHHELD))
        out.update(status="not_enough_labels", display=not_enough_text(n))
    else:
        out.update(status="ok", display=None, provisional=None)
    return out
