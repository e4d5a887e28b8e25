"""Estimators against hand-computed values and against ppi-python in the uniform case."""

from __future__ import annotations

import numpy as np
import pytest
from ppi_py import ppi_mean_ci, ppi_mean_pointestimate

from sampling import estimators as est

# A three-item sample from a population of 10 (computed by hand in the comments).
Y = np.array([1.0, 0.0, 1.0])
F = np.array([0.8, 0.4, 0.6])
PI = np.array([0.5, 0.25, 1.0])
N, F_TOTAL = 10, 6.0


def test_ht_by_hand() -> None:
    # sum y/pi = 2 + 0 + 1 = 3; Var = (0.5 * 1 / 0.25) / 100
    theta, var = est.ht_mean(y=Y, pi=PI, population=N)
    assert theta == pytest.approx(0.3)
    assert var == pytest.approx(0.02)


def test_hajek_by_hand() -> None:
    # weights 2, 4, 1 -> R = 3/7; a = (1-pi)/pi^2 = 2, 12, 0; resid 4/7, -3/7
    theta, var = est.hajek_mean(y=Y, pi=PI)
    assert theta == pytest.approx(3 / 7)
    assert var == pytest.approx((2 * 16 / 49 + 12 * 9 / 49) / 49)


def test_ppi_by_hand() -> None:
    # resid .2, -.4, .4; sum resid/pi = -0.8; Var = (2*.04 + 12*.16) / 100
    theta, var = est.ppi_mean(y=Y, f=F, pi=PI, population=N, f_total=F_TOTAL)
    assert theta == pytest.approx(0.52)
    assert var == pytest.approx(0.02)


def test_ppi_pp_fixed_lam_by_hand_and_limits() -> None:
    theta, _, lam = est.ppi_pp_mean(y=Y, f=F, pi=PI, population=N, f_total=F_TOTAL, lam=1.0)
    assert theta == pytest.approx(0.6 - 0.8 / 7)
    assert lam == 1.0
    # lam = 0 is exactly the Hajek weighted mean, with the same variance.
    theta0, var0, _ = est.ppi_pp_mean(y=Y, f=F, pi=PI, population=N, f_total=F_TOTAL, lam=0.0)
    h_theta, h_var = est.hajek_mean(y=Y, pi=PI)
    assert theta0 == pytest.approx(h_theta)
    assert var0 == pytest.approx(h_var)


def test_ppi_pp_tuned_lam_minimises_variance() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(200) < 0.7).astype(float)
    f = np.clip(0.5 * y + 0.3 + rng.normal(0, 0.15, 200), 0, 1)
    pi = rng.uniform(0.05, 0.6, 200)
    _, var_opt, lam = est.ppi_pp_mean(y=y, f=f, pi=pi, population=2000, f_total=f.mean() * 2000)
    assert 0 < float(lam) <= 1
    for other in np.linspace(0, 1, 21):
        _, var_other, _ = est.ppi_pp_mean(
            y=y, f=f, pi=pi, population=2000, f_total=f.mean() * 2000, lam=other
        )
        assert var_opt <= var_other + 1e-15


def test_ppi_pp_ignores_useless_proxy() -> None:
    """A proxy anti-correlated with y is clipped to lam = 0: never worse than the Hajek mean."""
    rng = np.random.default_rng(4)
    y = (rng.random(300) < 0.6).astype(float)
    f = 1 - y
    pi = np.full(300, 0.1)
    _, var, lam = est.ppi_pp_mean(y=y, f=f, pi=pi, population=3000, f_total=1200.0)
    assert float(lam) == 0.0
    assert var == pytest.approx(est.hajek_mean(y=y, pi=pi)[1])


def test_mask_equals_subsetting() -> None:
    rng = np.random.default_rng(5)
    y, f, pi = rng.random(50).round(), rng.random(50), rng.uniform(0.1, 1, 50)
    mask = rng.random(50) < 0.5
    a = est.ppi_pp_mean(y=y, f=f, pi=pi, population=500, f_total=250.0, mask=mask)
    b = est.ppi_pp_mean(y=y[mask], f=f[mask], pi=pi[mask], population=500, f_total=250.0)
    np.testing.assert_allclose(a, b)


def test_rejects_bad_pi() -> None:
    with pytest.raises(ValueError, match="pi"):
        est.ht_mean(y=[1.0], pi=[0.0], population=5)


def _uniform_case(seed: int, n: int = 400, big_n: int = 40_000):
    rng = np.random.default_rng(seed)
    f_all = rng.beta(4, 2, big_n)
    y_all = (rng.random(big_n) < f_all).astype(float)  # a calibrated proxy
    idx = rng.choice(big_n, size=n, replace=False)
    return y_all, f_all, idx, np.full(n, n / big_n)


def test_ppi_matches_ppi_python_uniform() -> None:
    """Uniform sampling: point estimates agree exactly, intervals to within the fpc and the
    imputed-term variance ppi-python adds (it treats the unlabelled set as random too)."""
    y_all, f_all, idx, pi = _uniform_case(7)
    big_n = y_all.size
    y, f = y_all[idx], f_all[idx]
    ours = est.estimate(
        y=y, f=f, pi=pi, population=big_n, f_total=f_all.sum(), method="ppi", level=0.9
    )
    ref = ppi_mean_pointestimate(y, f, f_all, lam=1)
    assert ours.estimate == pytest.approx(float(np.ravel(ref)[0]), abs=1e-12)
    # Plain PPI's Poisson variance is uncentred; with lam=1 the ratio form is centred.
    theta, var, _ = est.ppi_pp_mean(y=y, f=f, pi=pi, population=big_n, f_total=f_all.sum(), lam=1.0)
    low, high = est.normal_interval(theta=theta, var=var, level=0.9)
    ref_low, ref_high = (float(np.ravel(v)[0]) for v in ppi_mean_ci(y, f, f_all, alpha=0.1, lam=1))
    assert theta == pytest.approx(float(np.ravel(ref)[0]), abs=1e-12)
    assert (high - low) == pytest.approx(ref_high - ref_low, rel=0.02)
    assert ours.ci_high - ours.ci_low == pytest.approx(ref_high - ref_low, rel=0.05)


def test_ppi_pp_matches_ppi_python_tuned_uniform() -> None:
    y_all, f_all, idx, pi = _uniform_case(8)
    y, f = y_all[idx], f_all[idx]
    ours = est.estimate(y=y, f=f, pi=pi, population=y_all.size, f_total=f_all.sum(), level=0.95)
    ref_low, ref_high = (float(np.ravel(v)[0]) for v in ppi_mean_ci(y, f, f_all, alpha=0.05))
    assert ours.method == "ppi_pp"
    assert ours.estimate == pytest.approx((ref_low + ref_high) / 2, abs=0.003)
    assert ours.ci_high - ours.ci_low == pytest.approx(ref_high - ref_low, rel=0.03)


def test_estimate_fields_and_clipping() -> None:
    y = np.ones(40)
    y[:6] = 0
    e = est.estimate(y=y, f=np.full(40, 0.9), pi=np.full(40, 0.04), population=1000,
                     f_total=900.0, method="hajek")  # fmt: skip
    assert e.estimate == pytest.approx(34 / 40)
    assert 0.0 <= e.ci_low < e.estimate < e.ci_high <= 1.0
    assert e.n_labels == 40
    assert e.population == 1000
    assert e.warning is None
    # Equal weights: Kish ESS is n; a uniform Hajek has ess = n / (1 - pi) (the fpc).
    assert e.kish_ess == pytest.approx(40)
    assert e.ess == pytest.approx(40 / 0.96)


def test_small_sample_warnings() -> None:
    assert "12 labels" in est.small_sample_warning(y=np.ones(12), binary=True)
    y = np.ones(100)
    y[:3] = 0
    assert "rarer class" in est.small_sample_warning(y=y, binary=True)
    assert est.small_sample_warning(y=y, binary=False) is None
    empty = est.estimate(y=[], f=[], pi=[], population=100, f_total=50.0)
    assert empty.estimate is None
    assert empty.n_labels == 0


def test_method_names() -> None:
    assert est.method_normalise(None) == "ppi_pp"
    assert est.method_normalise("PPI++") == "ppi_pp"
    with pytest.raises(ValueError, match="unknown method"):
        est.method_normalise("mean")


def test_nonresponse_adjust_restores_cell_weight() -> None:
    pi = np.array([0.5, 0.5, 0.25, 0.2, 0.2])
    responded = np.array([True, False, True, True, False])
    cell = np.array([1, 1, 1, 2, 2])
    adjusted, rates = est.nonresponse_adjust(pi=pi, responded=responded, cell=cell)
    # cell 1: selected weight 2+2+4 = 8, responded 2+4 = 6 -> rate 0.75
    assert rates == {1: pytest.approx(0.75), 2: pytest.approx(0.5)}
    assert adjusted[0] == pytest.approx(0.375)
    for c in (1, 2):
        sel = cell == c
        assert (1 / adjusted[sel & responded]).sum() == pytest.approx((1 / pi[sel]).sum())


def test_combine_disjoint_runs_by_hand() -> None:
    a = est.estimate(y=np.r_[np.ones(30), np.zeros(10)], f=np.zeros(40), pi=np.full(40, 0.1),
                     population=400, f_total=0.0, method="hajek")  # fmt: skip
    b = est.estimate(y=np.r_[np.ones(20), np.zeros(20)], f=np.zeros(40), pi=np.full(40, 0.2),
                     population=200, f_total=0.0, method="hajek")  # fmt: skip
    c = est.estimate_combine([a, b])
    assert c.estimate == pytest.approx((400 * 0.75 + 200 * 0.5) / 600)
    assert c.se == pytest.approx(((4 / 6) ** 2 * a.se**2 + (2 / 6) ** 2 * b.se**2) ** 0.5)
    assert c.n_labels == 80
    assert c.population == 600
    # The pooled union (one Poisson sample) agrees closely with the stratified combination.
    pooled = est.estimate(
        y=np.r_[np.ones(30), np.zeros(10), np.ones(20), np.zeros(20)],
        f=np.zeros(80), pi=np.r_[np.full(40, 0.1), np.full(40, 0.2)],
        population=600, f_total=0.0, method="hajek",
    )  # fmt: skip
    assert pooled.estimate == pytest.approx(c.estimate)
