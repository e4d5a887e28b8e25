"""Small-sample intervals: never zero width, honest coverage at n = 1..30 and p near 0 and 1."""

from __future__ import annotations

import numpy as np
import pytest

from sampling import estimators as est
from sampling import intervals, simulations


def test_one_good_label_is_not_certain() -> None:
    e = est.estimate(y=[1.0], f=[0.7], pi=[0.1], population=600, f_total=420.0)
    assert e.estimate == pytest.approx(1.0) or e.estimate is not None
    assert e.ci_high - e.ci_low > 0.5  # one label says almost nothing
    assert e.interval == "clopper_pearson"
    assert not e.enough_labels


def test_all_good_cell_of_eight_has_width_and_reaches_one() -> None:
    # The demo's "8 labels, all good, out of 600": 1.000 [1.000, 1.000] before.
    e = est.estimate(y=[1.0] * 8, f=[0.8] * 8, pi=[8 / 600] * 8, population=600, f_total=480.0)
    assert e.ci_high == 1.0
    assert e.ci_low < 0.7
    # Clopper-Pearson at 8 of 8: lower bound (alpha/2)^(1/8).
    assert e.ci_low == pytest.approx(0.025 ** (1 / 8), abs=1e-9)


def test_all_bad_cell_starts_at_zero_with_width() -> None:
    e = est.estimate(y=[0.0] * 12, f=[0.3] * 12, pi=[0.2] * 12, population=60, f_total=18.0)
    assert e.ci_low == 0.0
    assert e.ci_high > 0.2


def test_census_may_have_zero_width() -> None:
    e = est.estimate(y=[1.0, 1.0, 0.0], f=[0.5] * 3, pi=[1.0] * 3, population=3, f_total=1.5)
    assert e.interval == "census"
    assert e.ci_low == e.ci_high == pytest.approx(2 / 3)


def test_large_cell_keeps_the_normal_interval() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.7).astype(float)
    e = est.estimate(y=y, f=np.full(400, 0.7), pi=np.full(400, 0.4), population=1000,
                     f_total=700.0, method="hajek")  # fmt: skip
    z = est.z_value(0.95)
    assert e.interval == "normal"
    assert e.ci_low == pytest.approx(e.estimate - z * e.se)


def test_clopper_pearson_matches_the_beta_formula() -> None:
    low, high = intervals.clopper_pearson(p=np.array([0.0, 0.5, 1.0]), n=np.array([10, 10, 10]))
    assert low[0] == 0.0
    assert high[2] == 1.0
    assert high[0] == pytest.approx(1 - 0.025 ** (1 / 10))
    assert low[1] == pytest.approx(0.187086, abs=1e-5)  # textbook value for 5/10
    assert high[1] == pytest.approx(0.812914, abs=1e-5)


def test_mover_difference_reduces_to_the_normal_one() -> None:
    d, low, high = intervals.mover_difference(
        a=0.6, a_low=0.6 - 0.1, a_high=0.6 + 0.1, b=0.5, b_low=0.5 - 0.2, b_high=0.5 + 0.2
    )
    assert d == pytest.approx(0.1)
    assert low == pytest.approx(0.1 - (0.1**2 + 0.2**2) ** 0.5)
    assert high == pytest.approx(0.1 + (0.1**2 + 0.2**2) ** 0.5)


def test_withheld_cell_says_not_enough_labels() -> None:
    row = intervals.withhold_if_too_few(
        {"estimate": 1.0, "ci_low": 0.3, "ci_high": 1.0, "se": 0.0, "n_labels": 2,
         "enough_labels": False}
    )  # fmt: skip
    assert row["estimate"] is None
    assert row["ci_low"] is None
    assert row["display"] == "not enough labels (n = 2)"
    assert row["provisional"]["estimate"] == 1.0


# Coverage on the grid. The whole grid (4 methods x 5 shares x n = 1..30, 2,000 repeats
# each) is in bench/intervals.py and bench/RESULTS.md; here a spread of cells at 2,000 repeats.
GRID = [(n, p) for n in (1, 2, 3, 5, 9, 12, 20, 30) for p in (0.0, 0.02, 0.5, 0.98, 1.0)]


@pytest.mark.parametrize("method", ["ppi_pp", "ht"])
def test_coverage_small_and_extreme_cells(method: str) -> None:
    results = [
        simulations.interval_coverage(n=n, p=p, method=method, reps=2000, seed=n * 31 + int(p * 50))
        for n, p in GRID
    ]
    coverages = np.array([r.coverage for r in results])
    assert all(r.zero_width == 0 for r in results), "a zero-width interval on a sample"
    assert coverages.mean() >= 0.93, coverages.mean()
    worst = min(results, key=lambda r: r.coverage)
    assert worst.coverage >= 0.90, worst
