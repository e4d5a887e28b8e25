"""Coverage by simulation: bias ~ 0 and 95% intervals covering 93-97% under non-uniform pi.

Finite-population, design-based: one fixed population (N = 3,000, about 78% good, a proxy of
known strength), Poisson samples of expected size 150 drawn 4,000 times with the sampler's
default inclusion probabilities (sqrt(f(1-f)) uncertainty mixed with 20% random). All
repetitions are evaluated at once through the ``mask`` argument.
"""

from __future__ import annotations

import numpy as np
import pytest

from sampling import estimators as est

N, N_SAMPLE, REPS = 3000, 150, 4000


def _population(rng: np.random.Generator, strength: float) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random(N) < 0.78).astype(float)
    latent = strength * (2 * y - 1) + rng.normal(0, 1, N)
    f = 1 / (1 + np.exp(-(latent + 1.0)))
    return y, f


def _design_pi(f: np.ndarray) -> np.ndarray:
    u = np.sqrt(f * (1 - f))
    q = 0.8 * u / u.sum() + 0.2 / N
    pi = np.minimum(1.0, N_SAMPLE * q)
    for _ in range(20):  # re-normalise the uncapped ones so that sum(pi) = n
        free = pi < 1
        pi[free] *= (N_SAMPLE - (~free).sum()) / pi[free].sum()
        pi = np.minimum(pi, 1.0)
    return pi


@pytest.mark.parametrize("strength", [0.0, 1.5])
@pytest.mark.parametrize("method", ["ht", "hajek", "ppi", "ppi_pp"])
def test_unbiased_and_covers(method: str, strength: float) -> None:
    rng = np.random.default_rng(20261127 + int(strength * 10))
    y, f = _population(rng, strength)
    pi = _design_pi(f)
    assert pi.max() / pi.min() > 2  # genuinely non-uniform
    mask = rng.random((REPS, N)) < pi
    truth = y.mean()
    if method == "ht":
        theta, var = est.ht_mean(y=y, pi=pi, population=N, mask=mask)
    elif method == "hajek":
        theta, var = est.hajek_mean(y=y, pi=pi, mask=mask)
    elif method == "ppi":
        theta, var = est.ppi_mean(y=y, f=f, pi=pi, population=N, f_total=f.sum(), mask=mask)
    else:
        theta, var, _ = est.ppi_pp_mean(y=y, f=f, pi=pi, population=N, f_total=f.sum(), mask=mask)
    low, high = est.normal_interval(theta=theta, var=var, level=0.95)
    coverage = float(((low <= truth) & (truth <= high)).mean())
    bias = float(theta.mean() - truth)
    sd = float(theta.std())
    assert 0.93 <= coverage <= 0.97, (method, strength, coverage)
    # Bias within 4 Monte-Carlo standard errors, and small against the sampling error itself.
    assert abs(bias) < 4 * sd / np.sqrt(REPS) + 0.05 * sd, (method, bias, sd)


def test_ppi_pp_no_wider_than_weighted_mean_and_saves_with_a_judge() -> None:
    rng = np.random.default_rng(99)
    for strength, max_ratio in ((0.0, 1.01), (1.5, 0.8)):
        y, f = _population(rng, strength)
        pi = _design_pi(f)
        mask = rng.random((REPS, N)) < pi
        _, var_pp, _ = est.ppi_pp_mean(y=y, f=f, pi=pi, population=N, f_total=f.sum(), mask=mask)
        _, var_h = est.hajek_mean(y=y, pi=pi, mask=mask)
        ratio = float(np.sqrt(var_pp).mean() / np.sqrt(var_h).mean())
        assert ratio <= max_ratio, (strength, ratio)


# Issue 17: the extended grid, p in {0.5, 0.78, 0.95, 0.99} x n in {15, 30, 150, 1000} x a useless
# and a good proxy, with the interval the API returns. Fixed seeds; the full table at more
# repetitions is in bench/RESULTS.md (bench/coverage_grid.py).
@pytest.mark.slow
@pytest.mark.parametrize("strength", [0.0, 1.5])
@pytest.mark.parametrize("n", [15, 30, 150, 1000])
def test_coverage_on_the_extended_grid(n: int, strength: float) -> None:
    from sampling.simulations import GRID_P, coverage_by_method

    reps = 400 if n >= 1000 else 1000
    found = [coverage_by_method(n=n, p=p, strength=strength, reps=reps) for p in GRID_P]
    for p, coverages in zip(GRID_P, found, strict=True):
        for method, coverage in coverages.items():
            # Two Monte-Carlo standard errors below 93% (0.016 at 1,000 repetitions); the
            # bench table at 3,000 repetitions has every cell at 0.934 or above.
            slack = 2 * (0.93 * 0.07 / reps) ** 0.5
            assert coverage >= 0.93 - slack, (method, n, p, strength, coverage)
    mean = float(np.mean([c for cov in found for c in cov.values()]))
    assert mean >= 0.94, mean
