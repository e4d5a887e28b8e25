"""The sampling design: which items a strategy selects, as pure functions on arrays
(docs/sampling.md). No ORM here.

A ``SamplingStrategy`` row (``sampling.models``; validated by ``sampling.services.strategies``,
read by ``sampling.selectors.strategies``, served by ``sampling.api.strategies``) holds the
weights; this module turns them and the pool into inclusion probabilities ``pi`` and a draw.

A *component* maps the pool to non-negative scores that sum to 1 over the pool:

- ``uncertainty`` — ``sqrt(f (1 - f))`` by default (it minimises the variance of the
  prediction-powered estimator), or modAL's least confidence / margin / entropy on the proxy;
- ``coverage`` — the label deficit of the item's segment (against ``segment_minimums``) and of its
  topic cluster, spread over the pool items of that group;
- ``random`` — ``1 / N``.

``mixture`` combines them with the strategy's weights, ``inclusion_probabilities`` turns the mixture
into ``pi = min(1, n q)`` re-normalised so that ``sum(pi) = n``, and ``poisson_draw`` selects each
item independently with probability ``pi``. Everything takes a seeded ``numpy`` Generator where it
draws, so a run is reproducible from the seed stored on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from modAL.uncertainty import classifier_entropy, classifier_margin, classifier_uncertainty

MIN_RANDOM_WEIGHT = 0.05
COMPONENTS: tuple[str, ...] = ("uncertainty", "coverage", "random")
UNCERTAINTY_MEASURES: tuple[str, ...] = ("sqrt", "least_confidence", "margin", "entropy")
# Deterministic mode ranks at most this many top-uncertain candidates (modAL ranked batch is
# O(candidates x batch)).
DETERMINISTIC_CANDIDATES = 2000


@dataclass(frozen=True)
class Pool:
    """The pool of a run as arrays: row i is one eligible interaction.

    ``segments`` maps a segment key to each item's group key (its value, or a code standing for
    it; never None); ``clusters`` holds the topic cluster (-1: unknown).
    """

    ids: np.ndarray
    f: np.ndarray
    segments: Mapping[str, np.ndarray] = field(default_factory=dict)
    clusters: np.ndarray | None = None
    n_prior: int = 0  # items whose f is the cold-start prior (no stored score yet)
    # Each item's population-cell key (model version, segment and UTC day codes), when read for a
    # run on PostgreSQL (sampling.services.runs aggregates the run's cells from it).
    cells: np.ndarray | None = None
    # Each item's explicit rating (1, -1; 0: none), read with ``cells`` (the cells count ratings).
    ratings: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class CoverageCounts:
    """Labels already collected (or selected and waiting) per group, from earlier runs."""

    segment_minimums: Mapping[str, int] = field(default_factory=dict)
    segment_labels: Mapping[str, Mapping[object, int]] = field(default_factory=dict)
    cluster_labels: Mapping[int, int] = field(default_factory=dict)
    total_labels: int = 0


ComponentFn = Callable[..., np.ndarray]
REGISTRY: dict[str, ComponentFn] = {}


def register(name: str) -> Callable[[ComponentFn], ComponentFn]:
    def decorate(fn: ComponentFn) -> ComponentFn:
        REGISTRY[name] = fn
        return fn

    return decorate


def normalise(scores: np.ndarray) -> np.ndarray:
    """Scale non-negative scores to sum to 1; all-zero (or empty) scores become uniform."""
    scores = np.clip(np.asarray(scores, dtype=float), 0.0, None)
    total = scores.sum()
    if len(scores) == 0:
        return scores
    if not np.isfinite(total) or total <= 0:
        return np.full(len(scores), 1.0 / len(scores))
    return scores / total


class StoredScores:
    """A fitted-classifier stand-in whose ``predict_proba`` returns the stored ``f`` of each item.

    It lets modAL's uncertainty measures run on the scores a run reads from the database, without
    featurising the pool again. ``X`` is the array of ``f`` itself.
    """

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        f = np.clip(np.asarray(X, dtype=float).reshape(-1), 0.0, 1.0)
        return np.column_stack([1.0 - f, f])


def uncertainty_scores(f: np.ndarray, measure: str = "sqrt") -> np.ndarray:
    """Raw (unnormalised) uncertainty of P(good) = f under one of UNCERTAINTY_MEASURES."""
    f = np.clip(np.asarray(f, dtype=float), 0.0, 1.0)
    if measure == "sqrt":
        return np.sqrt(f * (1.0 - f))
    if measure == "least_confidence":
        return classifier_uncertainty(StoredScores(), f)
    if measure == "margin":
        # modAL's margin is small where the proxy is unsure: 1 - margin is the uncertainty.
        return 1.0 - classifier_margin(StoredScores(), f)
    if measure == "entropy":
        return classifier_entropy(StoredScores(), f)
    raise ValueError(
        f"unknown uncertainty measure {measure!r}; choose one of {UNCERTAINTY_MEASURES}"
    )


@register("uncertainty")
def uncertainty_component(pool: Pool, *, measure: str = "sqrt", **_: object) -> np.ndarray:
    return normalise(uncertainty_scores(pool.f, measure))


def _deficit(value: object, *, minimum: float, labelled: Mapping[object, int]) -> float:
    return max(0.0, minimum - labelled.get(value, 0))


def _deficit_share(values: np.ndarray, deficit_of: Callable[[object], float]) -> np.ndarray:
    """Per item: its group's deficit divided by the group's pool size (so a group's total is its
    deficit)."""
    uniques, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    per_group = np.array([deficit_of(u) for u in uniques], dtype=float) / counts
    return per_group[inverse]


@register("coverage")
def coverage_component(
    pool: Pool, *, counts: CoverageCounts | None = None, n: float = 0.0, **_: object
) -> np.ndarray:
    """Label deficit of the item's segment(s) and of its topic cluster, normalised.

    Segment part: for each key with a minimum ``m``, a value with ``L`` labels so far has deficit
    ``max(0, m - L)``. Cluster part: every cluster should end up with an equal share of
    ``total_labels + n``. The two parts are normalised and averaged (either alone when the other
    has no deficit); with no deficit anywhere coverage is uniform.
    """
    counts = counts or CoverageCounts()
    size = pool.size
    parts: list[np.ndarray] = []
    seg = np.zeros(size)
    for key, minimum in counts.segment_minimums.items():
        values = pool.segments.get(key)
        if values is None or size == 0:
            continue
        labelled = counts.segment_labels.get(key, {})
        seg += _deficit_share(values, partial(_deficit, minimum=minimum, labelled=labelled))
    if seg.sum() > 0:
        parts.append(normalise(seg))
    if pool.clusters is not None and size:
        known = pool.clusters >= 0
        n_clusters = len(np.unique(pool.clusters[known]))
        if n_clusters > 1:
            target = (counts.total_labels + n) / n_clusters
            clus = np.zeros(size)
            clus[known] = _deficit_share(
                pool.clusters[known],
                lambda c: max(0.0, target - counts.cluster_labels.get(int(c), 0)),  # type: ignore[call-overload]
            )
            if clus.sum() > 0:
                parts.append(normalise(clus))
    if not parts:
        return normalise(np.ones(size))
    return normalise(np.mean(parts, axis=0))


@register("random")
def random_component(pool: Pool, **_: object) -> np.ndarray:
    return normalise(np.ones(pool.size))


def components(
    pool: Pool,
    *,
    measure: str = "sqrt",
    counts: CoverageCounts | None = None,
    n: float = 0.0,
) -> dict[str, np.ndarray]:
    """Every registered component on the pool, each summing to 1."""
    return {name: fn(pool, measure=measure, counts=counts, n=n) for name, fn in REGISTRY.items()}


def mixture(weights: Mapping[str, float], parts: Mapping[str, np.ndarray]) -> np.ndarray:
    """``q = sum_k w_k c_k``; sums to 1 when the weights do."""
    size = len(next(iter(parts.values())))
    q = np.zeros(size)
    for name, weight in weights.items():
        if weight:
            q += float(weight) * parts[name]
    return q


def inclusion_probabilities(q: np.ndarray, n: float) -> np.ndarray:
    """``pi_i = min(1, c q_i)`` with ``c >= n`` chosen so that ``sum(pi) = min(n, N)``.

    Items that hit the cap are fixed at 1 and the rest re-scaled to carry the remaining expected
    size, until no new item hits the cap. Since ``c >= n``, every ``pi_i >= n q_i`` (so the random
    share guarantees the floor ``w_r n / N``).
    """
    q = np.asarray(q, dtype=float)
    size = len(q)
    if size == 0:
        return q.copy()
    if n >= size:
        return np.ones(size)
    pi = np.zeros(size)
    capped = np.zeros(size, dtype=bool)
    while True:
        free = ~capped
        remaining = n - capped.sum()
        mass = q[free].sum()
        if mass <= 0 or remaining <= 0:
            pi[free] = 0.0 if remaining <= 0 else remaining / free.sum()
            break
        pi[free] = q[free] * (remaining / mass)
        newly = free & (pi >= 1.0)
        if not newly.any():
            break
        capped |= newly
    pi[capped] = 1.0
    return np.minimum(pi, 1.0)


@dataclass(frozen=True)
class Draw:
    selected: np.ndarray  # bool per pool item
    holdout: np.ndarray  # bool per pool item (a subset of selected)
    overlap: np.ndarray  # bool per pool item: gets overlap_k annotators (a subset of selected)


def poisson_draw(
    pi: np.ndarray,
    rng: np.random.Generator,
    *,
    holdout_fraction: float = 0.0,
    overlap_fraction: float = 0.0,
) -> Draw:
    """Select each item independently with probability ``pi_i``; then mark a random
    ``holdout_fraction`` of the selected as eval-only holdout and a random ``overlap_fraction`` as
    multi-annotator items (both rounded to whole items)."""
    selected = rng.random(len(pi)) < pi
    return Draw(
        selected=selected,
        holdout=_random_subset(selected, holdout_fraction, rng),
        overlap=_random_subset(selected, overlap_fraction, rng),
    )


def _random_subset(mask: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(len(mask), dtype=bool)
    chosen = np.flatnonzero(mask)
    k = round(fraction * len(chosen))
    if k > 0:
        out[rng.choice(chosen, size=k, replace=False)] = True
    return out


@dataclass(frozen=True)
class Plan:
    """What a probabilistic run would do on a pool: components, q, pi and the expected sizes."""

    parts: dict[str, np.ndarray]
    q: np.ndarray
    pi: np.ndarray

    @property
    def expected_size(self) -> float:
        return float(self.pi.sum())


# Below this many cross-validated labels the proxy's R^2 is too noisy to act on.
USELESS_PROXY_MIN_LABELS = 30


def proxy_r2(metrics: Mapping[str, object] | None) -> tuple[float | None, int]:
    """(cross-validated R^2, labels) of a proxy from its stored metrics: ``1 - Brier / p(1-p)``
    on out-of-fold predictions; (None, n) when it has none (the cold-start prior)."""
    cv = (metrics or {}).get("cv")
    if not isinstance(cv, Mapping):
        return None, 0
    n = int(cv.get("n") or 0)
    brier, rate = cv.get("brier"), cv.get("positive_rate")
    if not isinstance(brier, int | float) or not isinstance(rate, int | float):
        return None, n
    variance = float(rate) * (1 - float(rate))
    if variance <= 0:
        return None, n
    return 1.0 - float(brier) / variance, n


def weights_for_proxy(
    weights: Mapping[str, float], metrics: Mapping[str, object] | None
) -> tuple[dict[str, float], str]:
    """The strategy's weights, with the uncertainty share moved to random when the proxy is
    useless (cross-validated R^2 <= 0 on at least ``USELESS_PROXY_MIN_LABELS`` labels): spreading
    ``pi`` by a proxy that explains nothing only widens the interval. Returns (weights, reason);
    the reason is empty when the weights are unchanged."""
    out = {k: float(v) for k, v in weights.items()}
    r2, n = proxy_r2(metrics)
    if r2 is None or n < USELESS_PROXY_MIN_LABELS or r2 > 0 or not out.get("uncertainty"):
        return out, ""
    out["random"] = out.get("random", 0.0) + out["uncertainty"]
    out["uncertainty"] = 0.0
    return out, (
        f"the proxy explains nothing (cross-validated R\u00b2 {r2:.3f} on {n} labels): its "
        "uncertainty weight went to random"
    )


def plan(
    pool: Pool,
    *,
    weights: Mapping[str, float],
    n: float,
    measure: str = "sqrt",
    counts: CoverageCounts | None = None,
) -> Plan:
    parts = components(pool, measure=measure, counts=counts, n=n)
    q = mixture(weights, parts)
    return Plan(parts=parts, q=q, pi=inclusion_probabilities(q, n))


def top_uncertain(f: np.ndarray, k: int, measure: str = "sqrt") -> np.ndarray:
    """Indices of the ``k`` most uncertain items (deterministic mode's candidate set)."""
    scores = uncertainty_scores(f, measure)
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=int)
    idx = np.argpartition(-scores, k - 1)[:k]
    return idx[np.argsort(-scores[idx], kind="stable")]
