"""Design-based estimators of a population mean from a Poisson sample with recorded ``pi``.

Pure functions on numpy arrays, no ORM (docs/estimates.md). Notation, for a domain ``D``:

- ``U∩D``: every item the (probabilistic) runs considered in ``D``; ``population`` = ``N_D`` its
  size and ``f_total`` = the sum of the proxy score ``f`` over it (the ``f`` recorded at sampling
  time, never a later model: that would leak labels into the estimate);
- ``S∩D``: the selected and labelled items, given as arrays ``y`` (target, e.g. 1.0 = good),
  ``f`` and ``pi`` (inclusion probability, after the non-response adjustment below).

Methods (``METHODS``):

- ``ht``: Horvitz-Thompson ``(1/N) sum_S y/pi``, ``Var = (1/N^2) sum_S (1-pi) y^2 / pi^2``;
- ``hajek``: ``sum_S(y/pi) / sum_S(1/pi)``, linearised variance
  ``(1/N̂^2) sum_S (1-pi)(y-R)^2 / pi^2`` with ``N̂ = sum_S 1/pi``;
- ``ppi`` (prediction-powered / active inference): ``(1/N)[f_total + sum_S (y-f)/pi]``,
  ``Var = (1/N^2) sum_S (1-pi)(y-f)^2 / pi^2``;
- ``ppi_pp`` (default; PPI++ power-tuned and ratio-adjusted, the survey "difference estimator"
  with a Hájek correction): ``lam f_total / N + sum_S((y - lam f)/pi) / sum_S(1/pi)``, with
  ``lam`` in ``[0, 1]`` minimising the estimated linearised variance
  ``(1/N̂^2) sum_S (1-pi)/pi^2 ((y - R_y) - lam (f - R_f))^2`` (closed form, then clipped).
  ``lam = 0`` is the Hájek weighted sample mean, so a weak proxy cannot make it worse.

Every function takes arrays whose last axis runs over the sample and an optional boolean
``mask`` of the same shape (False = not in the sample), so the simulation tests can evaluate
thousands of repetitions at once. Runs are disjoint Poisson samples, so their union is one
Poisson sample with the recorded ``pi``: estimates over several runs use the concatenated arrays
(:func:`estimate_combine` is the stratified alternative, per run then summed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm

from sampling import intervals

METHODS = ("ppi_pp", "ppi", "hajek", "ht")
DEFAULT_METHOD = "ppi_pp"
METHOD_ALIASES = {"ppi++": "ppi_pp", "ppipp": "ppi_pp", "ppi_plus_plus": "ppi_pp"}
# Below these the normal interval is not to be trusted (reported, not enforced).
MIN_LABELS = 30
MIN_PER_CLASS = 5
# A non-response adjustment cell finer than the run needs this many respondents (labelled items).
MIN_CELL_RESPONDENTS = 20

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Estimate:
    """One estimate with its normal interval. ``estimate`` is None when there are no labels."""

    method: str
    level: float
    estimate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    n_labels: int
    population: int
    ess: float | None  # labels a uniform sample would need for the same variance
    kish_ess: float | None  # (sum w)^2 / sum w^2: the cost of unequal weights alone
    lam: float | None  # PPI++ tuning parameter (1 for ppi, 0 for ht/hajek)
    warning: str | None  # e.g. "n too small: 12 labels (< 30)"
    note: str | None = None  # e.g. the estimate was clipped to [0, 1]
    # Which interval (sampling.intervals): "normal", "clopper_pearson" (effective n), "census".
    interval: str = "normal"
    enough_labels: bool = True  # Kish effective sample size >= intervals.MIN_EFFECTIVE_LABELS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def method_normalise(method: str | None) -> str:
    """The canonical method name; ValueError naming the known ones otherwise."""
    name = (method or DEFAULT_METHOD).strip().lower()
    name = METHOD_ALIASES.get(name, name)
    if name not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    return name


def z_value(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2.0))


def _prep(
    y: ArrayLike, f: ArrayLike | None, pi: ArrayLike, mask: ArrayLike | None
) -> tuple[Array, Array, Array, Array]:
    """Arrays broadcast together; masked-out entries get weight 0 and pi 1 (no contribution)."""
    y_a = np.asarray(y, dtype=float)
    pi_a = np.asarray(pi, dtype=float)
    f_a = np.zeros_like(y_a) if f is None else np.asarray(f, dtype=float)
    m = np.ones(np.broadcast_shapes(y_a.shape, pi_a.shape), dtype=bool)
    if mask is not None:
        m = m & np.asarray(mask, dtype=bool)
    y_a, f_a, pi_a, m = np.broadcast_arrays(y_a, f_a, pi_a, m)
    if np.any(m & ((pi_a <= 0) | (pi_a > 1) | ~np.isfinite(pi_a))):
        raise ValueError("every sampled pi must lie in (0, 1]")
    safe_pi = np.where(m, pi_a, 1.0)
    return y_a, f_a, safe_pi, m.astype(float)


def ht_mean(
    *, y: ArrayLike, pi: ArrayLike, population: ArrayLike, mask: ArrayLike | None = None
) -> tuple[Array, Array]:
    """Horvitz-Thompson mean and its Poisson-sampling variance."""
    y_a, _, p, m = _prep(y, None, pi, mask)
    n_pop = np.asarray(population, dtype=float)
    theta = (m * y_a / p).sum(-1) / n_pop
    var = (m * (1 - p) * y_a**2 / p**2).sum(-1) / n_pop**2
    return theta, var


def hajek_mean(
    *, y: ArrayLike, pi: ArrayLike, mask: ArrayLike | None = None
) -> tuple[Array, Array]:
    """Hájek ratio ``sum(y/pi)/sum(1/pi)`` and its linearised variance (NaN without labels)."""
    y_a, _, p, m = _prep(y, None, pi, mask)
    w = m / p
    n_hat = w.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (w * y_a).sum(-1) / n_hat
        resid = y_a - np.expand_dims(ratio, -1)
        var = (m * (1 - p) * resid**2 / p**2).sum(-1) / n_hat**2
    return ratio, var


def ppi_mean(
    *,
    y: ArrayLike,
    f: ArrayLike,
    pi: ArrayLike,
    population: ArrayLike,
    f_total: ArrayLike,
    mask: ArrayLike | None = None,
) -> tuple[Array, Array]:
    """Prediction-powered (active inference) mean and its Poisson-sampling variance."""
    y_a, f_a, p, m = _prep(y, f, pi, mask)
    n_pop = np.asarray(population, dtype=float)
    resid = y_a - f_a
    theta = (np.asarray(f_total, dtype=float) + (m * resid / p).sum(-1)) / n_pop
    var = (m * (1 - p) * resid**2 / p**2).sum(-1) / n_pop**2
    return theta, var


def ppi_pp_mean(
    *,
    y: ArrayLike,
    f: ArrayLike,
    pi: ArrayLike,
    population: ArrayLike,
    f_total: ArrayLike,
    mask: ArrayLike | None = None,
    lam: ArrayLike | None = None,
    lam_bounds: tuple[float, float] = (0.0, 1.0),
) -> tuple[Array, Array, Array]:
    """PPI++ ratio-adjusted mean, its linearised variance and the ``lam`` used.

    With ``lam=None`` it is tuned: ``lam* = sum a A B / sum a B^2`` with ``a = (1-pi)/pi^2``,
    ``A = y - R_y``, ``B = f - R_f`` (Hájek means), clipped to ``lam_bounds``; this minimises the
    estimated variance, so it is never above the Hájek variance (``lam = 0``) when 0 is allowed.
    """
    y_a, f_a, p, m = _prep(y, f, pi, mask)
    w = m / p
    n_hat = w.sum(-1)
    a = m * (1 - p) / p**2
    with np.errstate(invalid="ignore", divide="ignore"):
        r_y = (w * y_a).sum(-1) / n_hat
        r_f = (w * f_a).sum(-1) / n_hat
        big_a = y_a - np.expand_dims(r_y, -1)
        big_b = f_a - np.expand_dims(r_f, -1)
        if lam is None:
            den = (a * big_b**2).sum(-1)
            lam_v = np.where(den > 0, (a * big_a * big_b).sum(-1) / np.where(den > 0, den, 1), 0.0)
            lam_v = np.clip(lam_v, lam_bounds[0], lam_bounds[1])
        else:
            lam_v = np.broadcast_to(np.asarray(lam, dtype=float), r_y.shape).astype(float)
        lam_e = np.expand_dims(lam_v, -1)
        theta = lam_v * np.asarray(f_total, dtype=float) / np.asarray(population, dtype=float)
        theta = theta + r_y - lam_v * r_f
        var = (a * (big_a - lam_e * big_b) ** 2).sum(-1) / n_hat**2
    return theta, var, lam_v


def kish_ess(*, pi: ArrayLike, mask: ArrayLike | None = None) -> Array:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` with ``w = 1/pi``."""
    _, _, p, m = _prep(np.zeros(np.shape(pi)), None, pi, mask)
    w = m / p
    with np.errstate(invalid="ignore", divide="ignore"):
        return w.sum(-1) ** 2 / (w**2).sum(-1)


def nonresponse_adjust(
    *, pi: ArrayLike, responded: ArrayLike, cell: ArrayLike
) -> tuple[Array, dict[Any, float]]:
    """Inflate the ``pi`` of responding selected items by their cell's weighted response rate.

    Input: every *selected* item of the run(s) with its ``pi``, whether it got a usable label and
    its adjustment cell (the run, by default). Within a cell the response rate is
    ``r = sum_{responded} 1/pi / sum_{selected} 1/pi`` and a respondent's ``pi`` becomes
    ``pi * r``: the respondents then carry the weight of the whole selection of their cell
    (missing at random within the cell, the usual weighting-class adjustment). Returns the adjusted
    ``pi`` (meaningful for respondents) and the rate per cell; a cell without respondents keeps
    rate 0 and contributes nothing.
    """
    p = np.asarray(pi, dtype=float)
    r = np.asarray(responded, dtype=bool)
    c = np.asarray(cell)
    adjusted = p.copy()
    rates: dict[Any, float] = {}
    for value in np.unique(c):
        in_cell = c == value
        total = (1 / p[in_cell]).sum()
        got = (1 / p[in_cell & r]).sum()
        rate = float(got / total) if total > 0 else 0.0
        rates[value.item() if hasattr(value, "item") else value] = rate
        if rate > 0:
            adjusted[in_cell] = p[in_cell] * rate
    return adjusted, rates


def response_cells(
    *,
    responded: ArrayLike,
    keys: Sequence[Sequence[Any]],
    min_respondents: int = MIN_CELL_RESPONDENTS,
) -> list[tuple[Any, ...]]:
    """The non-response adjustment cell of each selected item, as fine as the data allow.

    ``keys`` are per-item values to split by, coarsest first (the run, then the model version,
    then each segment key). The first key always splits. A cell is split by the next key only when
    every resulting cell has at least ``min_respondents`` respondents: each value with that many
    becomes its own cell, the values with fewer are pooled into one remainder cell (``"*"``), and
    if that remainder is non-empty but below the minimum the cell stays whole. Cells are returned
    as paths of key values, e.g. ``(7, "model-b", "*")``; they partition the items, so the
    weighting-class adjustment (:func:`nonresponse_adjust`) keeps each cell's selected weight.
    """
    resp = np.asarray(responded, dtype=bool)
    columns = [list(k) for k in keys]
    out: list[tuple[Any, ...]] = [()] * resp.size

    def split(idx: list[int], depth: int, path: tuple[Any, ...]) -> None:
        if depth == len(columns):
            for i in idx:
                out[i] = path
            return
        groups: dict[Any, list[int]] = {}
        for i in idx:
            groups.setdefault(columns[depth][i], []).append(i)
        if depth == 0:  # the run: always its own cell
            for value, members in groups.items():
                split(members, 1, (value,))
            return
        own = {v: m for v, m in groups.items() if int(resp[m].sum()) >= min_respondents}
        rest = [i for v, m in groups.items() if v not in own for i in m]
        if not own or (rest and int(resp[rest].sum()) < min_respondents):
            for i in idx:  # too few labels to split here: the cell stays whole
                out[i] = path
            return
        for value, members in own.items():
            split(members, depth + 1, (*path, value))
        for i in rest:
            out[i] = (*path, "*")

    if resp.size:
        split(list(range(resp.size)), 0, ())
    return out


REMAINDER = -1  # the code of the pooled remainder cell ("*") in the paths of response_cells_coded


def response_cells_coded(
    *,
    responded: ArrayLike,
    codes: Sequence[ArrayLike],
    min_respondents: int = MIN_CELL_RESPONDENTS,
) -> tuple[NDArray[np.int64], list[tuple[int, ...]]]:
    """:func:`response_cells` on integer-coded keys (non-negative codes, one array per key,
    coarsest first), vectorised: returns each item's cell index and each cell's path of codes,
    with :data:`REMAINDER` for the pooled remainder. The same partition and the same paths as
    :func:`response_cells` on the decoded values; the work per level is one ``np.unique`` over
    the items plus a loop over the (cell, value) pairs, not over the items.
    """
    resp = np.asarray(responded, dtype=bool)
    n = resp.size
    cell = np.zeros(n, dtype=np.int64)
    paths: list[tuple[int, ...]] = [()]
    is_open = [True]  # a cell that may still split at the next key
    for depth, column in enumerate(codes):
        col = np.asarray(column, dtype=np.int64)
        active = np.asarray(is_open, dtype=bool)[cell] if n else np.zeros(0, dtype=bool)
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        width = int(col[idx].max()) + 1
        pairs, inverse = np.unique(cell[idx] * width + col[idx], return_inverse=True)
        got = np.bincount(inverse, weights=resp[idx], minlength=pairs.size).astype(np.int64)
        pair_cell, pair_value = pairs // width, pairs % width
        target = np.empty(pairs.size, dtype=np.int64)
        starts = np.flatnonzero(np.r_[True, pair_cell[1:] != pair_cell[:-1]])
        for start, stop in zip(starts, [*starts[1:], pairs.size], strict=True):
            parent = int(pair_cell[start])
            members = range(int(start), int(stop))
            own = [j for j in members if depth == 0 or got[j] >= min_respondents]
            rest = [j for j in members if j not in own]
            if not own or (rest and int(got[rest].sum()) < min_respondents):
                target[list(members)] = parent  # too few labels to split here: stays whole
                is_open[parent] = False
                continue
            is_open[parent] = False  # replaced by its parts
            for j in own:
                target[j] = len(paths)
                paths.append((*paths[parent], int(pair_value[j])))
                is_open.append(True)
            if rest:
                target[rest] = len(paths)
                paths.append((*paths[parent], REMAINDER))
                is_open.append(False)
        cell[idx] = target[inverse]
    used, cell = np.unique(cell, return_inverse=True)
    return cell.astype(np.int64), [paths[int(c)] for c in used]


def cell_rates(
    *, pi: ArrayLike, responded: ArrayLike, cell: ArrayLike, cells: int
) -> NDArray[np.float64]:
    """The weighted response rate of each of ``cells`` cells (integer indices ``0 .. cells-1``):
    :func:`nonresponse_adjust`'s ``r = sum_{responded} 1/pi / sum_{selected} 1/pi``, 0 for a cell
    without weight. Each cell's sums are taken over its items in their given order, as
    :func:`nonresponse_adjust` takes them, so the rates are the same to the last bit."""
    w = 1 / np.asarray(pi, dtype=float)
    c = np.asarray(cell, dtype=np.int64)
    r = np.asarray(responded, dtype=bool)
    order = np.argsort(c, kind="stable")
    w, c, r = w[order], c[order], r[order]
    rates = np.zeros(cells)
    if not c.size:
        return rates
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    for start, stop in zip(starts.tolist(), [*starts[1:].tolist(), c.size], strict=True):
        part = w[start:stop]
        total = part.sum()
        got = part[r[start:stop]].sum()
        rates[c[start]] = float(got / total) if total > 0 else 0.0
    return rates


def small_sample_warning(*, y: ArrayLike, binary: bool) -> str | None:
    """Why the normal interval should not be trusted yet, or None."""
    y_a = np.asarray(y, dtype=float)
    n = int(y_a.size)
    if n < MIN_LABELS:
        return f"n too small: {n} labels (< {MIN_LABELS}); the interval is not reliable"
    if binary:
        good = int((y_a >= 0.5).sum())
        fewest = min(good, n - good)
        if fewest < MIN_PER_CLASS:
            return (
                f"n too small: only {fewest} labels of the rarer class (< {MIN_PER_CLASS}); "
                "the interval is not reliable"
            )
    return None


def clip_share(theta: float, low: float, high: float) -> tuple[float, float, float, str | None]:
    """A share's estimate and interval clipped to [0, 1] together, so the estimate stays inside.

    Clipping is monotone, so ``low <= theta <= high`` before implies it after. The note says when
    the estimate itself was moved (an HT estimate can exceed 1 when ``N̂`` differs from ``N``).
    """
    clipped = min(max(theta, 0.0), 1.0)
    note = None
    if clipped != theta:
        note = f"estimate {theta:.4f} lies outside [0, 1] and is reported clipped to {clipped:g}"
    return clipped, max(0.0, min(low, 1.0)), min(1.0, max(high, 0.0)), note


def estimate(
    *,
    y: ArrayLike,
    f: ArrayLike,
    pi: ArrayLike,
    population: int,
    f_total: float,
    method: str = DEFAULT_METHOD,
    level: float = 0.95,
    binary: bool = True,
    lam_bounds: tuple[float, float] = (0.0, 1.0),
) -> Estimate:
    """One domain's estimate with a normal interval at ``level`` (arrays: the labelled sample).

    For a binary target the estimate and the interval are clipped to [0, 1] together
    (:func:`clip_share`), so the estimate always lies inside its interval. ``ess`` is the size of a
    uniform sample with the same variance: ``s_y^2 / Var`` (``s_y^2`` the weighted variance of
    ``y``).
    """
    method = method_normalise(method)
    z = z_value(level)
    y_a = np.asarray(y, dtype=float)
    f_a = np.asarray(f, dtype=float)
    pi_a = np.asarray(pi, dtype=float)
    n = int(y_a.size)
    warning = small_sample_warning(y=y_a, binary=binary)
    if n == 0 or population <= 0:
        return Estimate(method, level, None, None, None, None, n, int(population), None, None,
                        None, warning or "no labels", enough_labels=False)  # fmt: skip
    lam: float
    if method == "ht":
        theta, var = ht_mean(y=y_a, pi=pi_a, population=population)
        lam = 0.0
    elif method == "hajek":
        theta, var = hajek_mean(y=y_a, pi=pi_a)
        lam = 0.0
    elif method == "ppi":
        theta, var = ppi_mean(y=y_a, f=f_a, pi=pi_a, population=population, f_total=f_total)
        lam = 1.0
    else:
        theta, var, lam_a = ppi_pp_mean(
            y=y_a, f=f_a, pi=pi_a, population=population, f_total=f_total, lam_bounds=lam_bounds
        )
        lam = float(lam_a)
    theta_f, var_f = float(theta), max(float(var), 0.0)
    se = var_f**0.5
    low, high = theta_f - z * se, theta_f + z * se
    kish = float(kish_ess(pi=pi_a))
    form, enough = "normal", True
    note = None
    if binary:  # never a zero-width or undercovering interval on a small or extreme cell
        cell = intervals.cell_interval(
            estimate=theta_f, var=var_f, y=y_a, pi=pi_a, population=population, kish=kish,
            level=level,
        )  # fmt: skip
        low, high, form, enough = cell.low, cell.high, cell.form, cell.enough_labels
        # The interval holds the clipped estimate; report that estimate, not the raw one.
        theta_f, low, high, note = clip_share(theta_f, low, high)
    s2_y, _ = hajek_mean(y=y_a, pi=pi_a)
    w = 1 / pi_a
    spread = float((w * (y_a - float(s2_y)) ** 2).sum() / w.sum())
    ess = spread / var_f if var_f > 0 else float(n)
    return Estimate(
        method=method,
        level=level,
        estimate=theta_f,
        se=se,
        ci_low=low,
        ci_high=high,
        n_labels=n,
        population=int(population),
        ess=float(ess),
        kish_ess=kish,
        lam=lam,
        warning=warning,
        note=note,
        interval=form,
        enough_labels=enough,
    )


def estimate_combine(parts: Sequence[Estimate], *, binary: bool = True) -> Estimate:
    """Stratified combination of estimates of disjoint populations (e.g. per run, then summed).

    ``theta = sum N_r theta_r / sum N_r``, ``Var = sum (N_r / N)^2 Var_r``. Parts without an
    estimate are dropped from the weights (their population is then not covered: say so).
    """
    if not parts:
        raise ValueError("nothing to combine")
    level, method = parts[0].level, parts[0].method
    usable = [p for p in parts if p.estimate is not None and p.se is not None]
    n_labels = sum(p.n_labels for p in parts)
    population = sum(p.population for p in parts)
    if not usable:
        return Estimate(method, level, None, None, None, None, n_labels, population, None, None,
                        None, "no labels")  # fmt: skip
    covered = sum(p.population for p in usable)
    theta = sum(p.population * float(p.estimate or 0.0) for p in usable) / covered
    var = sum((p.population / covered) ** 2 * float(p.se or 0.0) ** 2 for p in usable)
    z = z_value(level)
    se = var**0.5
    low, high = theta - z * se, theta + z * se
    note = None
    if binary:
        theta, low, high, note = clip_share(theta, low, high)
    ess = sum(float(p.ess or 0.0) for p in usable)
    warning = None
    if covered < population:
        warning = f"{population - covered} of {population} items are in parts without labels"
    elif n_labels < MIN_LABELS:
        warning = f"n too small: {n_labels} labels (< {MIN_LABELS}); the interval is not reliable"
    return Estimate(method, level, theta, se, low, high, n_labels, population, ess, None, None,
                    warning, note)  # fmt: skip


def normal_interval(
    *, theta: ArrayLike, var: ArrayLike, level: float = 0.95
) -> tuple[Array, Array]:
    """Lower and upper bounds ``theta ± z sqrt(var)`` (vectorised, unclipped)."""
    z = z_value(level)
    sd = np.sqrt(np.maximum(np.asarray(var, dtype=float), 0.0))
    t = np.asarray(theta, dtype=float)
    return t - z * sd, t + z * sd
