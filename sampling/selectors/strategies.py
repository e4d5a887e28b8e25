"""Strategy reads: lists and the preview of a (possibly unsaved) strategy on the current pool."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db.models import QuerySet

from labeling.models import Project
from sampling import design
from sampling.models import SamplingStrategy
from sampling.selectors.pool import (
    coverage_counts,
    pool_read,
    proxy_current,
    segment_group_values,
)
from sampling.services.strategies import strategy_validate


def strategy_list(*, project: Project) -> QuerySet[SamplingStrategy]:
    return SamplingStrategy.objects.filter(project=project).order_by("name", "id")


def strategy_get(*, project: Project, strategy_id: int) -> SamplingStrategy | None:
    return SamplingStrategy.objects.filter(project=project, pk=strategy_id).first()


def strategy_preview(
    *,
    strategy_data: dict[str, Any],
    project: Project,
    instance: SamplingStrategy | None = None,
) -> dict[str, Any]:
    """What a run of this strategy would do on the current pool, computed without writing.

    Returns the pool size, the expected batch size (sum of pi), the smallest and largest pi, the
    guaranteed floor ``w_r n / N``, the expected labels per component (each item's pi split in
    proportion to what each component contributed to its q) and per segment value (with the
    minimum wanted and the labels already asked for). Raises Invalid like the services;
    a missing or clashing name does not matter for a preview.
    """
    cleaned = strategy_validate(
        data=dict(strategy_data), project=project, instance=instance, check_name=False
    )
    minimums = cleaned["segment_minimums"]
    keys = sorted(set(project.segment_keys or []) | set(minimums))
    pool = pool_read(project=project, filters=cleaned["filters"], segment_keys=keys)
    counts = coverage_counts(
        project=project, segment_minimums={k: minimums.get(k, 0) for k in keys}
    )
    n = float(cleaned["batch_size"])
    model = proxy_current(project=project)
    result: dict[str, Any] = {
        "pool_size": pool.size,
        "unscored": pool.n_prior,
        "proxy_model": model.version if model else None,
        "deterministic": cleaned["mode"] == SamplingStrategy.Mode.DETERMINISTIC,
        "batch_size": int(n),
    }
    if pool.size == 0:
        result.update(
            expected_size=0.0, min_pi=None, max_pi=None, floor=None, components={}, segments={}
        )
        return result
    plan = design.plan(
        pool,
        weights=cleaned["weights"],
        n=n,
        measure=cleaned["uncertainty_measure"],
        counts=counts,
    )
    q = np.where(plan.q > 0, plan.q, 1.0)
    components = {
        name: float(np.sum(plan.pi * cleaned["weights"].get(name, 0.0) * part / q))
        for name, part in plan.parts.items()
    }
    segments: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        names = segment_group_values(project=project, key=key)
        uniques, inverse = np.unique(pool.segments[key], return_inverse=True)
        expected = np.bincount(inverse, weights=plan.pi, minlength=len(uniques))
        sizes = np.bincount(inverse, minlength=len(uniques))
        already = counts.segment_labels.get(key, {})
        segments[key] = [
            {
                "value": names.get(group),
                "pool": int(sizes[i]),
                "expected": float(expected[i]),
                "already": int(already.get(group, 0)),
                "minimum": int(minimums.get(key, 0)),
            }
            for i, group in enumerate(uniques.tolist())
        ]
    result.update(
        expected_size=plan.expected_size,
        min_pi=float(plan.pi.min()),
        max_pi=float(plan.pi.max()),
        floor=float(cleaned["weights"]["random"] * n / pool.size) if n < pool.size else 1.0,
        components=components,
        segments=segments,
    )
    return result
