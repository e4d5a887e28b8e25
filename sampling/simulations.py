"""Simulations that check the statistics keep their promises (used by tests and bench/).

Pure numpy, vectorised over repetitions through the estimators' ``mask`` argument:

- :func:`interval_coverage`: coverage of the interval each estimator method returns (the
  ``sampling.intervals`` rule: normal, or Clopper-Pearson on the effective n) for a cell of
  expected size ``n`` and true share ``p``, under Poisson sampling with the sampler's default
  non-uniform inclusion probabilities;
- :func:`monitoring_run`: daily looks over ``days`` at a new version against a baseline, with the
  confidence-sequence comparison (``sampling.sequential``) and, for comparison, the fixed-sample
  normal interval looked at in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from scipy.stats import t as student

from sampling import estimators as est
from sampling import intervals, sequential

METHODS = ("ppi_pp", "ppi", "hajek", "ht")


def design_pi(f: np.ndarray, n: float) -> np.ndarray:
    """The sampler's default: ``sqrt(f(1-f))`` uncertainty mixed with 20% random, sum = n."""
    size = f.size
    u = np.sqrt(f * (1 - f))
    q = 0.8 * u / u.sum() + 0.2 / size
    pi = np.minimum(1.0, n * q)
    for _ in range(20):  # re-normalise the uncapped ones so that sum(pi) = n
        free = pi < 1
        if not free.any():
            break
        pi[free] *= (n - (~free).sum()) / pi[free].sum()
        pi = np.minimum(pi, 1.0)
    return pi


def population(
    rng: np.random.Generator, *, size: int, p: float, strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` items with exactly ``round(p * size)`` good ones and a proxy of ``strength``."""
    good = round(p * size)
    y = np.zeros(size)
    y[rng.choice(size, good, replace=False)] = 1.0
    latent = strength * (2 * y - 1) + rng.normal(0, 1, size)
    f = 1 / (1 + np.exp(-(latent + 1.0)))
    return y, f


@dataclass(frozen=True)
class Coverage:
    method: str
    n: int
    p: float
    strength: float
    reps: int  # repetitions with at least one label (an empty sample returns no interval)
    coverage: float
    zero_width: int  # intervals of zero width (must be 0: no cell here is a census)
    mean_width: float


def interval_coverage(
    *,
    n: int,
    p: float,
    method: str,
    strength: float = 1.0,
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Coverage:
    """Coverage of the API's interval for one cell (finite population, Poisson sampling)."""
    rng = np.random.default_rng(seed)
    size = max(100, 10 * n)
    y, f = population(rng, size=size, p=p, strength=strength)
    pi = design_pi(f, float(n))
    mask = rng.random((reps, size)) < pi
    labelled = mask.sum(-1)
    mask = mask[labelled > 0]
    labelled = labelled[labelled > 0]
    truth = float(y.mean())
    if method == "ht":
        theta, var = est.ht_mean(y=y, pi=pi, population=size, mask=mask)
    elif method == "hajek":
        theta, var = est.hajek_mean(y=y, pi=pi, mask=mask)
    elif method == "ppi":
        theta, var = est.ppi_mean(y=y, f=f, pi=pi, population=size, f_total=f.sum(), mask=mask)
    else:
        theta, var, _ = est.ppi_pp_mean(
            y=y, f=f, pi=pi, population=size, f_total=f.sum(), mask=mask
        )
    share, _ = est.hajek_mean(y=y, pi=pi, mask=mask)
    low, high, _ = intervals.share_interval(
        estimate=theta,
        share=share,
        var=var,
        n_labels=labelled,
        n_good=(mask * y).sum(-1),
        kish=est.kish_ess(pi=pi, mask=mask),
        level=level,
    )
    covered = (low <= truth + 1e-12) & (truth - 1e-12 <= high)
    return Coverage(
        method=method,
        n=n,
        p=p,
        strength=strength,
        reps=int(mask.shape[0]),
        coverage=float(covered.mean()),
        zero_width=int((high - low <= 0).sum()),
        mean_width=float((high - low).mean()),
    )


@dataclass(frozen=True)
class Monitoring:
    days: int
    labels_per_day: float  # per version
    delta: float  # true share of the new version minus the baseline's
    reps: int
    alarm_rate: float  # confidence sequence: share of repetitions ever flagged (wrong sign or any)
    fixed_alarm_rate: float  # fixed-sample normal interval looked at daily, same data
    detected: float  # share flagged in the true direction by the end
    median_days_to_detect: float | None
    fixed_median_days_to_detect: float | None


def monitoring_run(
    *,
    days: int = 90,
    labels_per_day: float = 20.0,
    traffic_per_day: int = 400,
    p_base: float = 0.8,
    delta: float = 0.0,
    strength: float = 1.0,
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Monitoring:
    """Daily looks at a new version against a baseline, each with its own daily Poisson run.

    Every day each version gets ``traffic_per_day`` interactions (superpopulation: share good
    ``p_base`` and ``p_base + delta``) and a sampling run of expected size ``labels_per_day``;
    after each day the PPI++ estimates of both versions over everything so far are compared.
    An alarm is the first day the comparison excludes 0 (the confidence sequence's running
    intersection stays excluded; a fixed-sample interval is counted the first time it excludes 0).
    """
    rng = np.random.default_rng(seed)
    arms = [sequential.RunningPPI(shape=(reps,)) for _ in range(2)]
    seq_alarm = np.full(reps, -1)
    fixed_alarm = np.full(reps, -1)
    seq_sign = np.zeros(reps)
    fixed_sign = np.zeros(reps)
    z = est.z_value(level)
    for d in range(days):
        parts = []
        for running, p in zip(arms, (p_base, p_base + delta), strict=True):
            y = (rng.random((reps, traffic_per_day)) < p).astype(float)
            latent = strength * (2 * y - 1) + rng.normal(0, 1, y.shape)
            f = 1 / (1 + np.exp(-(latent + 1.0)))
            u = np.sqrt(f * (1 - f))
            q = 0.8 * u / u.sum(-1, keepdims=True) + 0.2 / traffic_per_day
            pi = np.minimum(1.0, labels_per_day * q)
            sel = rng.random(y.shape) < pi
            running.add(y=y, f=f, pi=pi, population=traffic_per_day, f_total=f.sum(-1), mask=sel)
            parts.append(sequential.look(running))
        diff, var, half = sequential.comparison(new=parts[1], base=parts[0], alpha=1 - level)
        # The fixed-sample interval on the same (floored) variance: only the boundary differs.
        fixed = z * np.sqrt(var)
        for alarm, sign, width in ((seq_alarm, seq_sign, half), (fixed_alarm, fixed_sign, fixed)):
            hit = (alarm < 0) & np.isfinite(width) & ((diff - width > 0) | (diff + width < 0))
            alarm[hit] = d + 1
            sign[hit] = np.sign(diff[hit])
    truth_sign = np.sign(delta)

    def summary(alarm: np.ndarray, sign: np.ndarray) -> tuple[float, float, float | None]:
        if delta == 0:
            return float((alarm > 0).mean()), 0.0, None
        right = (alarm > 0) & (sign == truth_sign)
        days_hit = np.where(right, alarm, np.inf)
        med = float(np.median(days_hit))
        wrong = float(((alarm > 0) & (sign != truth_sign)).mean())
        return wrong, float(right.mean()), (med if np.isfinite(med) else None)

    seq = summary(seq_alarm, seq_sign)
    fixed_summary = summary(fixed_alarm, fixed_sign)
    return Monitoring(
        days=days,
        labels_per_day=labels_per_day,
        delta=delta,
        reps=reps,
        alarm_rate=seq[0],
        fixed_alarm_rate=fixed_summary[0],
        detected=seq[1],
        median_days_to_detect=seq[2],
        fixed_median_days_to_detect=fixed_summary[2],
    )


# Issue 17: the grid the coverage table in bench/RESULTS.md covers.
GRID_P = (0.5, 0.78, 0.95, 0.99)
GRID_N = (15, 30, 150, 1000)
GRID_STRENGTHS = (0.0, 1.5)  # a useless and a good proxy


def coverage_by_method(
    *, n: int, p: float, strength: float, reps: int, lam_df: bool = False
) -> dict[str, float]:
    """Coverage of every method's API interval on the same samples (issue 17 grid cell).

    Population of ``10 n`` items, ``round(p * 10 n)`` good; samples with fewer than 3 labels are
    dropped. ``lam_df`` adds ``ppi_pp_df``: PPI++ with variance x n/(n-2) and a t quantile on
    n - 2 degrees of freedom (a correction for tuning ``lam`` on the same sample).
    """
    rng = np.random.default_rng(n * 1009 + int(p * 1000) + int(strength * 10))
    size = 10 * n
    y, f = population(rng, size=size, p=p, strength=strength)
    pi = design_pi(f, float(n))
    mask = rng.random((reps, size)) < pi
    labelled = mask.sum(-1)
    mask, labelled = mask[labelled > 2], labelled[labelled > 2]
    truth = float(y.mean())
    share, _ = est.hajek_mean(y=y, pi=pi, mask=mask)
    kish = est.kish_ess(pi=pi, mask=mask)
    n_good = (mask * y).sum(-1)
    out: dict[str, float] = {}
    runs: list[tuple[str, np.ndarray, np.ndarray]] = []
    for method in METHODS:
        if method == "ht":
            theta, var = est.ht_mean(y=y, pi=pi, population=size, mask=mask)
        elif method == "hajek":
            theta, var = est.hajek_mean(y=y, pi=pi, mask=mask)
        elif method == "ppi":
            theta, var = est.ppi_mean(y=y, f=f, pi=pi, population=size, f_total=f.sum(), mask=mask)
        else:
            theta, var, _ = est.ppi_pp_mean(
                y=y, f=f, pi=pi, population=size, f_total=f.sum(), mask=mask
            )
            if lam_df:
                factor = (
                    labelled
                    / (labelled - 2)
                    * (student.ppf(0.975, labelled - 2) / norm.ppf(0.975)) ** 2
                )
                runs.append(("ppi_pp_df", theta, var * factor))
        runs.append((method, theta, var))
    for name, theta, var in runs:
        low, high, _ = intervals.share_interval(
            estimate=theta, share=share, var=var, n_labels=labelled, n_good=n_good, kish=kish
        )
        out[name] = float(((low <= truth + 1e-12) & (truth - 1e-12 <= high)).mean())
    return out
