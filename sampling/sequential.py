"""Always-valid monitoring: asymptotic confidence sequences for PPI++ estimates (pure numpy).

A fixed-sample 95% interval looked at every day is wrong far more often than 5% of the time (about
30% over 90 daily looks: ``sampling.simulations.monitoring_run``). A *confidence sequence* holds
its level simultaneously at every look. We use the asymptotic confidence sequence of
Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit theory and asymptotic
confidence sequences", Annals of Statistics 2024 (arXiv:2103.06476, 2021): Robbins' two-sided
normal-mixture boundary applied to an estimator that is asymptotically a sum of independent
terms, with its variance estimated as the data arrive. Written in *information time*
``I = 1/Var`` (the estimator's estimated variance at that look), the boundary
``|S_I| < sqrt((I + m) log((I + m) / (m alpha^2)))`` for ``S_I = (theta_hat - theta) I`` gives
the half-width

    h(v) = sqrt( v (1 + m v) log( (1 + m v) / (m v alpha^2) ) ),   v = Var(theta_hat),

which is the paper's Theorem 2.2 with ``t sigma^2`` replaced by the information (their eq. for
``rho`` with ``m = 1/rho^2``). ``m`` is fixed in advance so that the sequence is tightest near a
planned information ``I*``: ``m = I* / (-2 log alpha + log(1 - 2 log alpha))`` (their
recommended ``rho``).

The estimator is the PPI++ ratio form of ``sampling.estimators`` with inclusion-probability
weights: under Poisson sampling each considered interaction contributes an independent term, so
the time-uniform central limit theorem applies to the linearised estimator as it does to the
paper's inverse-probability-weighted means. A comparison of two versions uses the difference of
their (independent) estimates with ``v = v_a + v_b``. The sequence may be intersected over looks
(the running intersection is still valid), so once a regression is confirmed it stays confirmed.
Validity under daily looks is checked by simulation (``tests/test_sequential.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm

from sampling import intervals

Array = NDArray[np.float64]

DEFAULT_ALPHA = 0.05
# The sequence is tuned to be tightest when the compared estimate has the variance of about this
# many labels per version at share-good variance 0.2 (a few hundred labels: a 5-point change).
PLANNED_LABELS = 400
PLANNED_SPREAD = 0.2


def planned_information(*, labels: float = PLANNED_LABELS, arms: int = 1) -> float:
    """Information ``1/Var`` of an estimate (``arms=2``: a difference) at ``labels`` per arm."""
    return labels / (arms * PLANNED_SPREAD)


def mixture_m(*, alpha: float = DEFAULT_ALPHA, information: float) -> float:
    """The mixing precision ``m`` making the boundary tightest near ``information``."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    c = -2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))
    return information / c


def cs_half_width(
    *, var: ArrayLike, alpha: float = DEFAULT_ALPHA, m: float | None = None, arms: int = 2
) -> Array:
    """Half-width of the asymptotic confidence sequence at estimated variance ``var``.

    ``m`` defaults to the tuning for ``PLANNED_LABELS`` per arm (``arms=2`` for a difference).
    A variance of 0 or below (no information) gives an infinite half-width.
    """
    if m is None:
        m = mixture_m(alpha=alpha, information=planned_information(arms=arms))
    v = np.asarray(var, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mv = m * v
        half = np.sqrt(v * (1 + mv) * np.log((1 + mv) / (mv * alpha**2)))
    return np.where((v > 0) & np.isfinite(v), half, np.inf)


def safe_variance(
    *, var: ArrayLike, n_labels: ArrayLike, n_good: ArrayLike, kish: ArrayLike
) -> Array:
    """The estimate's variance, floored on small cells so that an all-good or all-bad start is
    never certain.

    On a small cell (``sampling.intervals.is_small``: under 30 labels or under 5 of a class) the
    floor is the binomial variance at the Agresti-Coull-adjusted share ``(x + 2)/(n + 4)`` on the
    Kish effective sample size ``n`` (``x`` the good labels scaled to ``n``); larger cells keep
    their design-based variance (and the proxy's savings). Infinite when nothing is labelled.
    """
    k = np.asarray(kish, dtype=float)
    labels = np.asarray(n_labels, dtype=float)
    good = np.asarray(n_good, dtype=float)
    n = np.maximum(k, 1.0)
    x = np.clip(good * n / np.maximum(labels, 1.0), 0.0, n)
    p = (x + 2) / (n + 4)
    v = np.nan_to_num(np.asarray(var, dtype=float))
    small = intervals.is_small(n_labels=labels, n_good=good)
    floored = np.where(small, np.maximum(v, p * (1 - p) / (n + 4)), v)
    return np.where(k > 0, floored, np.inf)


@dataclass(frozen=True)
class Look:
    """One look at one estimate (or difference): the value and its confidence-sequence bounds."""

    estimate: float | None
    var: float | None
    low: float | None  # running intersection over the looks so far
    high: float | None


def running_sequence(
    *,
    estimates: list[float | None],
    variances: list[float | None],
    alpha: float = DEFAULT_ALPHA,
    arms: int = 1,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> list[Look]:
    """Confidence-sequence bounds at each look, intersected with the earlier looks' bounds."""
    low, high = bounds
    out: list[Look] = []
    for theta, var in zip(estimates, variances, strict=True):
        if theta is None or var is None:
            out.append(Look(theta, var, None if low == bounds[0] else low, None))
            continue
        half = float(cs_half_width(var=var, alpha=alpha, arms=arms))
        low = max(low, theta - half)
        high = min(high, theta + half)
        if low > high:  # the running intersection is empty: the model drifted; restart the tube
            low, high = max(bounds[0], theta - half), min(bounds[1], theta + half)
        out.append(Look(theta, var, low, high))
    return out


def days_to_detect(
    *,
    p: float,
    delta: float,
    labels_per_day: float,
    design_effect: float = 1.0,
    alpha: float = DEFAULT_ALPHA,
    power: float = 0.5,
    traffic_per_day: float | None = None,
    max_days: int = 3650,
) -> int | None:
    """Days until the comparison confirms a change of ``delta`` (two versions, labels split evenly).

    ``v(d) = design_effect * spread / (labels per arm by day d)`` (+ ``spread / traffic`` when the
    traffic per version and day is given: the superpopulation term), confirmed when
    ``delta - z_power sqrt(v) >= h(v)``. ``power=0.5`` is the day the expected difference crosses
    the boundary; the simulated median first crossing comes earlier (the path crosses before its
    mean does), so this is a slightly conservative plan. None when nothing is labelled or it takes
    longer than ``max_days``.
    """
    if labels_per_day <= 0 or not 0 < delta < 1:
        return None
    p1 = min(max(p, 0.0), 1.0)
    p2 = min(max(p1 - delta, 0.0), 1.0)
    if p2 == p1:
        p2 = min(p1 + delta, 1.0)
    spread = max(p1 * (1 - p1) + p2 * (1 - p2), 1e-6)
    per_arm = labels_per_day / 2
    z = float(norm.ppf(power))
    days = np.arange(1, max_days + 1, dtype=float)
    v = design_effect * spread / (per_arm * days)
    if traffic_per_day:
        v = v + spread / (traffic_per_day * days)
    ok = delta - z * np.sqrt(v) >= cs_half_width(var=v, alpha=alpha, arms=2)
    if not ok.any():
        return None
    return int(days[np.argmax(ok)])


def look(running: RunningPPI) -> tuple[Array, Array]:
    """One look at a running PPI++ estimate: the estimate and the variance the confidence
    sequence uses (superpopulation variance, floored on small cells by :func:`safe_variance`).

    The same function serves the monitoring selector (``sampling.selectors.monitoring``) and the
    simulation that checks it (``sampling.simulations.monitoring_run``).
    """
    theta, var, _ = running.value(superpopulation=True)
    floored = safe_variance(
        var=var, n_labels=running.n_labels, n_good=running.n_good, kish=running.kish()
    )
    return theta, floored


def comparison(
    *,
    new: tuple[ArrayLike, ArrayLike],
    base: tuple[ArrayLike, ArrayLike],
    alpha: float = DEFAULT_ALPHA,
) -> tuple[Array, Array, Array]:
    """Difference ``new - base`` of two independent looks, its variance, and the confidence
    sequence's half-width at that look (``inf`` while either side has no label)."""
    diff = np.nan_to_num(np.asarray(new[0], dtype=float)) - np.nan_to_num(
        np.asarray(base[0], dtype=float)
    )
    var = np.asarray(new[1], dtype=float) + np.asarray(base[1], dtype=float)
    return diff, var, cs_half_width(var=var, alpha=alpha, arms=2)


@dataclass
class RunningPPI:
    """Sufficient statistics of the PPI++ ratio estimator, so looks over time are cumulative sums.

    Add one day's labelled items (``y``, ``f``, ``pi``) and that day's population (count and sum
    of ``f``); :meth:`value` gives the PPI++ estimate and its linearised variance over everything
    added so far, equal to ``sampling.estimators.ppi_pp_mean`` on the concatenated arrays. Works on
    leading batch axes (simulation repetitions) too.
    """

    shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        names = ("w", "wy", "wf", "a", "ay", "af", "ayy", "ayf", "aff", "good", "n", "pop", "ftot")
        self.s = {k: np.zeros(self.shape) for k in names}

    def add(
        self,
        *,
        y: ArrayLike,
        f: ArrayLike,
        pi: ArrayLike,
        population: ArrayLike,
        f_total: ArrayLike,
        mask: ArrayLike | None = None,
    ) -> None:
        y_a, f_a, p_a = (np.asarray(v, dtype=float) for v in (y, f, pi))
        m = np.ones(np.broadcast_shapes(y_a.shape, p_a.shape), dtype=float)
        if mask is not None:
            m = m * np.asarray(mask, dtype=float)
        p_safe = np.where(m > 0, p_a, 1.0)
        w = m / p_safe
        a = m * (1 - p_safe) / p_safe**2
        s = self.s
        s["w"] += w.sum(-1)
        s["wy"] += (w * y_a).sum(-1)
        s["wf"] += (w * f_a).sum(-1)
        s["a"] += a.sum(-1)
        s["ay"] += (a * y_a).sum(-1)
        s["af"] += (a * f_a).sum(-1)
        s["ayy"] += (a * y_a * y_a).sum(-1)
        s["ayf"] += (a * y_a * f_a).sum(-1)
        s["aff"] += (a * f_a * f_a).sum(-1)
        s["good"] += (m * (y_a >= 0.5)).sum(-1)
        s["n"] += m.sum(-1)
        s["pop"] += np.asarray(population, dtype=float)
        s["ftot"] += np.asarray(f_total, dtype=float)

    def value(self, *, superpopulation: bool = False) -> tuple[Array, Array, Array]:
        """PPI++ estimate, variance and ``lam`` (NaN estimate where nothing is labelled).

        The variance is the design (Poisson sampling) variance around the mean of the traffic seen
        so far. With ``superpopulation=True`` it adds ``R(1-R)/N`` (``R`` the weighted share good,
        ``N`` the traffic): the variance around the version's underlying share, the quantity a
        monitor compares (each interaction is then one independent term
        ``lam f + S (y - lam f) / pi`` of the time-uniform CLT).
        """
        s = self.s
        with np.errstate(divide="ignore", invalid="ignore"):
            r_y = s["wy"] / s["w"]
            r_f = s["wf"] / s["w"]
            sab = s["ayf"] - r_f * s["ay"] - r_y * s["af"] + r_y * r_f * s["a"]
            sbb = s["aff"] - 2 * r_f * s["af"] + r_f**2 * s["a"]
            lam = np.clip(np.where(sbb > 0, sab / np.where(sbb > 0, sbb, 1), 0.0), 0.0, 1.0)
            theta = lam * s["ftot"] / s["pop"] + r_y - lam * r_f
            c = r_y - lam * r_f
            # sum a ((y - lam f) - c)^2, expanded into the running sums
            sq = s["ayy"] - 2 * lam * s["ayf"] + lam**2 * s["aff"]
            lin = s["ay"] - lam * s["af"]
            var = np.maximum((sq - 2 * c * lin + c**2 * s["a"]) / s["w"] ** 2, 0.0)
            if superpopulation:
                share = np.clip(r_y, 0.0, 1.0)
                var = var + share * (1 - share) / s["pop"]
        return theta, var, lam

    @property
    def n_labels(self) -> Array:
        return self.s["n"]

    @property
    def n_good(self) -> Array:
        return self.s["good"]

    def kish(self) -> Array:
        """Kish effective sample size ``(sum w)^2 / sum w^2``; ``sum w^2 = sum a + sum w`` exactly
        (``a = (1-pi)/pi^2 = w^2 - w``)."""
        s = self.s
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(s["w"] > 0, s["w"] ** 2 / (s["a"] + s["w"]), 0.0)


_MOMENTS = ("", "y", "f", "yy", "yf", "ff")  # the products of y and f the sums weight


@dataclass
class CellRunningPPI:
    """:class:`RunningPPI` for labelled items whose non-response adjustment moves between looks.

    An item of adjustment cell ``c`` carries ``pi_i r_c`` with ``r_c`` the cell's response rate
    *at the look*: on a past day fewer of the cell's selected items had their label, so each label
    known then stood for more of the selection than it does today. Since ``1/(pi r) = (1/r)(1/pi)``
    and ``(1 - pi r)/(pi r)^2 = (1/r^2)(1/pi^2) - (1/r)(1/pi)``, every running sum of
    :class:`RunningPPI` is a per-cell combination of sums of ``g/pi`` and ``g/pi^2`` over the raw
    ``pi`` (``g`` one of 1, y, f, y², yf, f²), so a look costs O(cells), not O(labels).
    :meth:`at` gives the :class:`RunningPPI` of everything added so far under one look's rates,
    equal to a :class:`RunningPPI` fed the same items with ``pi_i r_c`` (tests/test_sequential.py).
    """

    cells: int

    def __post_init__(self) -> None:
        self.inv = np.zeros((len(_MOMENTS), self.cells))  # sum g / pi, per cell
        self.inv2 = np.zeros((len(_MOMENTS), self.cells))  # sum g / pi^2, per cell
        self.good = 0.0
        self.n = 0.0
        self.pop = 0.0
        self.ftot = 0.0

    def add(
        self,
        *,
        y: ArrayLike,
        f: ArrayLike,
        pi: ArrayLike,
        cell: ArrayLike,
        population: float,
        f_total: float,
    ) -> None:
        """One look's new labelled items (raw ``pi``, their adjustment ``cell``) and traffic."""
        y_a, f_a, p_a = (np.asarray(v, dtype=float) for v in (y, f, pi))
        c = np.asarray(cell, dtype=np.int64)
        products = (np.ones_like(y_a), y_a, f_a, y_a * y_a, y_a * f_a, f_a * f_a)
        for k, g in enumerate(products):
            self.inv[k] += np.bincount(c, weights=g / p_a, minlength=self.cells)
            self.inv2[k] += np.bincount(c, weights=g / p_a**2, minlength=self.cells)
        self.good += float((y_a >= 0.5).sum())
        self.n += float(y_a.size)
        self.pop += float(population)
        self.ftot += float(f_total)

    def at(self, rates: ArrayLike) -> RunningPPI:
        """The running sums under ``rates`` (each cell's response rate at this look; a cell at
        rate 0 has no labelled item and adds nothing)."""
        r = np.asarray(rates, dtype=float)
        inv_r = np.divide(1.0, r, out=np.zeros_like(r), where=r > 0)
        w = self.inv @ inv_r
        a = self.inv2 @ inv_r**2 - w
        out = RunningPPI()
        out.s = {
            "w": w[0],
            "wy": w[1],
            "wf": w[2],
            "a": a[0],
            "ay": a[1],
            "af": a[2],
            "ayy": a[3],
            "ayf": a[4],
            "aff": a[5],
            "good": np.asarray(self.good),
            "n": np.asarray(self.n),
            "pop": np.asarray(self.pop),
            "ftot": np.asarray(self.ftot),
        }
        return out
