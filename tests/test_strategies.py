"""Unit tests of the pure sampling maths: components, mixture, capped pi, Poisson draw."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from scipy import stats

from sampling import design


def _pool(n: int = 1000, seed: int = 0, **kwargs: object) -> design.Pool:
    rng = np.random.default_rng(seed)
    return design.Pool(ids=np.arange(n), f=rng.beta(2, 1, n), **kwargs)  # type: ignore[arg-type]


def test_registry_holds_the_three_pure_components() -> None:
    assert set(design.REGISTRY) == {"uncertainty", "coverage", "random"}
    pool = _pool()
    before = pool.f.copy()
    for name, fn in design.REGISTRY.items():
        first = fn(pool, n=10.0)
        second = fn(pool, n=10.0)
        np.testing.assert_array_equal(first, second, err_msg=name)
        assert "django" not in inspect.getsource(inspect.getmodule(fn))  # type: ignore[arg-type]
    np.testing.assert_array_equal(pool.f, before)  # inputs untouched


@pytest.mark.parametrize("measure", design.UNCERTAINTY_MEASURES)
def test_components_are_normalised(measure: str) -> None:
    pool = _pool(
        segments={"tier": np.array(["free"] * 900 + ["pro"] * 100, dtype=object)},
        clusters=np.arange(1000) % 5,
    )
    counts = design.CoverageCounts(
        segment_minimums={"tier": 30}, segment_labels={"tier": {"free": 40}}
    )
    parts = design.components(pool, measure=measure, counts=counts, n=50)
    for name, part in parts.items():
        assert part.min() >= 0, name
        assert part.sum() == pytest.approx(1.0), name


def test_default_uncertainty_is_sqrt_f_one_minus_f() -> None:
    f = np.array([0.5, 0.9, 0.1, 0.0])
    raw = design.uncertainty_scores(f, "sqrt")
    np.testing.assert_allclose(raw, [0.5, 0.3, 0.3, 0.0])
    # modAL measures agree on the ordering: 0.5 is the most uncertain, 0.0 the least.
    for measure in ("least_confidence", "margin", "entropy"):
        u = design.uncertainty_scores(f, measure)
        assert u[0] == u.max(), measure
        assert u[3] == u.min(), measure
    np.testing.assert_allclose(
        design.uncertainty_scores(f, "least_confidence"), [0.5, 0.1, 0.1, 0.0]
    )


def test_coverage_follows_the_segment_deficit() -> None:
    tiers = np.array(["free"] * 90 + ["pro"] * 10, dtype=object)
    pool = design.Pool(ids=np.arange(100), f=np.full(100, 0.5), segments={"tier": tiers})
    counts = design.CoverageCounts(
        segment_minimums={"tier": 30}, segment_labels={"tier": {"free": 30, "pro": 10}}
    )
    c = design.coverage_component(pool, counts=counts, n=10)
    # free has met its minimum: all coverage mass goes to pro's deficit of 20.
    assert c[:90].sum() == pytest.approx(0.0)
    assert c[90:].sum() == pytest.approx(1.0)
    # no minimums and no clusters: uniform
    np.testing.assert_allclose(
        design.coverage_component(pool, counts=None, n=10), np.full(100, 0.01)
    )


def test_coverage_favours_underlabelled_clusters() -> None:
    clusters = np.array([0] * 50 + [1] * 50)
    pool = design.Pool(ids=np.arange(100), f=np.full(100, 0.5), clusters=clusters)
    counts = design.CoverageCounts(cluster_labels={0: 20, 1: 0}, total_labels=20)
    c = design.coverage_component(pool, counts=counts, n=20)
    # target per cluster (20 + 20) / 2 = 20: cluster 0 has it, cluster 1 lacks 20.
    assert c[50:].sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("n", "size"), [(10, 1000), (200, 1000), (500, 600), (5, 5), (50, 10)])
def test_pi_sums_to_n_is_capped_and_floored(n: int, size: int) -> None:
    rng = np.random.default_rng(n)
    pool = design.Pool(ids=np.arange(size), f=rng.beta(0.3, 0.3, size))
    weights = {"uncertainty": 0.7, "coverage": 0.1, "random": 0.2}
    plan = design.plan(pool, weights=weights, n=n)
    assert plan.q.sum() == pytest.approx(1.0)
    assert plan.pi.sum() == pytest.approx(min(n, size))
    assert plan.pi.max() <= 1.0
    assert plan.pi.min() >= min(1.0, weights["random"] * n / size) - 1e-12


def test_pi_caps_and_renormalises_the_rest() -> None:
    q = np.array([0.5, 0.3, 0.1, 0.05, 0.05])
    pi = design.inclusion_probabilities(q, 3)
    # 3 * 0.5 = 1.5 and then 0.3 * 2 / 0.5 = 1.2 hit the cap; the remaining 1 is split 2:1:1.
    np.testing.assert_allclose(pi, [1.0, 1.0, 0.5, 0.25, 0.25])
    np.testing.assert_allclose(design.inclusion_probabilities(q, 10), np.ones(5))
    assert len(design.inclusion_probabilities(np.zeros(0), 3)) == 0


def test_poisson_draw_hits_each_pi_at_its_frequency() -> None:
    pi = np.array([0.02, 0.1, 0.3, 0.5, 0.9, 1.0])
    rng = np.random.default_rng(12345)
    reps = 20_000
    hits = np.zeros(len(pi))
    for _ in range(reps):
        hits += design.poisson_draw(pi, rng).selected
    # Each count is Binomial(reps, pi): a two-sided test per item at a Bonferroni 1% level.
    for count, p in zip(hits, pi, strict=True):
        if p == 1.0:
            assert count == reps
            continue
        pvalue = stats.binomtest(int(count), reps, p).pvalue
        assert pvalue > 0.01 / len(pi), (count, p)


def test_holdout_and_overlap_are_random_fractions_of_the_selected() -> None:
    rng = np.random.default_rng(7)
    pi = np.full(10_000, 0.1)
    draw = design.poisson_draw(pi, rng, holdout_fraction=0.1, overlap_fraction=0.2)
    k = draw.selected.sum()
    assert not (draw.holdout & ~draw.selected).any()
    assert not (draw.overlap & ~draw.selected).any()
    assert draw.holdout.sum() == round(0.1 * k)
    assert draw.overlap.sum() == round(0.2 * k)


def test_same_seed_same_draw() -> None:
    pi = np.linspace(0.01, 0.99, 500)
    a = design.poisson_draw(pi, np.random.default_rng(99), holdout_fraction=0.1)
    b = design.poisson_draw(pi, np.random.default_rng(99), holdout_fraction=0.1)
    np.testing.assert_array_equal(a.selected, b.selected)
    np.testing.assert_array_equal(a.holdout, b.holdout)


def test_horvitz_thompson_on_the_sampler_is_unbiased() -> None:
    """Sample a simulated population with the mixture's pi many times: HT averages to the mean."""
    rng = np.random.default_rng(2026)
    size = 3000
    f = rng.beta(0.4, 0.4, size)  # proxy scores, many near 0 or 1
    y = (rng.random(size) < f).astype(float)  # the truth follows the proxy (a calibrated proxy)
    pool = design.Pool(ids=np.arange(size), f=f)
    plan = design.plan(pool, weights={"uncertainty": 0.7, "coverage": 0.1, "random": 0.2}, n=150)
    estimates = []
    for _ in range(4000):
        selected = design.poisson_draw(plan.pi, rng).selected
        estimates.append(np.sum(y[selected] / plan.pi[selected]) / size)
    estimates = np.asarray(estimates)
    standard_error = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - y.mean()) < 4 * standard_error
    # and the design really is unequal-probability (otherwise the test proves little)
    assert plan.pi.max() / plan.pi.min() > 2


def test_top_uncertain_picks_the_middle() -> None:
    f = np.array([0.01, 0.5, 0.99, 0.45, 0.7])
    np.testing.assert_array_equal(design.top_uncertain(f, 2), [1, 3])
