"""Reads a sampling run needs: the pool as arrays, coverage counts, the current proxy model.

The pool of a project is every interaction no run has considered yet (no Inclusion row), after
the strategy's filters. It is read as arrays straight from a cursor (one query, no model
instances): a 1,000,000-item pool must be read in about two seconds.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.db.models.fields.json import KT, KeyTextTransform
from django.utils.dateparse import parse_datetime

from labeling.models import Interaction, Project
from sampling.features import prior_probability
from sampling.models import Inclusion, ProxyModel
from sampling.strategies import CoverageCounts, Pool

PRIOR_CHUNK = 5000


def proxy_current(*, project: Project | int) -> ProxyModel | None:
    """The newest ready proxy model of the project (None before the first training)."""
    return (
        ProxyModel.objects.filter(project=project, status=ProxyModel.Status.READY)
        .order_by("-version")
        .first()
    )


def pool_queryset(*, project: Project, filters: dict[str, Any] | None = None) -> QuerySet:
    """Interactions of the project that no run has considered, after the strategy filters."""
    filters = filters or {}
    qs = Interaction.objects.filter(project=project, inclusion__isnull=True)
    if filters.get("model_versions"):
        qs = qs.filter(model_version__in=filters["model_versions"])
    for key, values in (filters.get("segment") or {}).items():
        # A JSON key lookup: matches the stored value with its JSON type ("pro", 3, true).
        qs = qs.filter(**{f"segment__{key}__in": list(values)})
    if filters.get("since"):
        qs = qs.filter(occurred_at__gte=parse_datetime(filters["since"]))
    if filters.get("until"):
        qs = qs.filter(occurred_at__lt=parse_datetime(filters["until"]))
    return qs


def pool_read(
    *, project: Project, filters: dict[str, Any] | None = None, segment_keys: list[str] = ()
) -> Pool:
    """The pool as arrays: ids (ascending), stored f, the given segment keys' values, clusters.

    ``f`` is the stored proxy score; an unscored item gets the signal prior computed on the spot
    (it is what the proxy would have stored before any training).
    """
    qs = pool_queryset(project=project, filters=filters)
    annotations = {f"_k{i}": KT(f"segment__{key}") for i, key in enumerate(segment_keys)}
    columns = ["id", "proxy_score", "topic__cluster", *annotations]
    sql, params = (
        qs.annotate(**annotations).order_by("id").values_list(*columns).query.sql_with_params()
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    size = len(rows)
    if size == 0:
        return Pool(
            ids=np.zeros(0, dtype=np.int64),
            f=np.zeros(0),
            segments={k: np.zeros(0, dtype=object) for k in segment_keys},
            clusters=np.zeros(0, dtype=np.int16),
        )
    cols = list(zip(*rows, strict=True))
    ids = np.fromiter(cols[0], dtype=np.int64, count=size)
    f = (
        np.array([np.nan if v is None else v for v in cols[1]], dtype=float)
        if None in cols[1]
        else np.fromiter(cols[1], dtype=float, count=size)
    )
    clusters = np.fromiter((-1 if c is None else c for c in cols[2]), dtype=np.int16, count=size)
    segments = {key: np.array(cols[3 + i], dtype=object) for i, key in enumerate(segment_keys)}
    missing = np.flatnonzero(np.isnan(f))
    if len(missing):
        f[missing] = _priors(project, ids[missing])
    return Pool(ids=ids, f=f, segments=segments, clusters=clusters, n_prior=len(missing))


def _priors(project: Project, ids: np.ndarray) -> np.ndarray:
    """The cold-start prior for unscored interactions, in id order."""
    judge = project.primary_judge or None
    out: dict[int, float] = {}
    for start in range(0, len(ids), PRIOR_CHUNK):
        chunk = [int(i) for i in ids[start : start + PRIOR_CHUNK]]
        for pk, signals, rating, scores in Interaction.objects.filter(id__in=chunk).values_list(
            "id", "signals", "explicit_rating", "scores"
        ):
            value = scores.get(judge) if judge and isinstance(scores, dict) else None
            judge_value = (
                float(value)
                if isinstance(value, int | float) and not isinstance(value, bool)
                else None
            )
            out[pk] = prior_probability(signals, rating, judge_value)
    return np.array([out[int(i)] for i in ids])


def coverage_counts(*, project: Project, segment_minimums: dict[str, int]) -> CoverageCounts:
    """Labels already asked for: items selected by earlier runs, per segment value and cluster.

    Selected items count whether or not they are labelled yet (their labels are on the way), so a
    backlog does not make coverage ask for the same segment again and again.
    """
    selected = Inclusion.objects.filter(project=project, selected=True)
    segment_labels: dict[str, dict[object, int]] = {}
    for key in segment_minimums:
        counts: dict[object, int] = defaultdict(int)
        for value, n in (
            selected.annotate(_v=KeyTextTransform(key, "interaction__segment"))
            .values_list("_v")
            .annotate(n=Count("id"))
            .values_list("_v", "n")
        ):
            counts[str(value)] += n
        segment_labels[key] = dict(counts)
    cluster_labels = {
        int(c): n
        for c, n in selected.filter(~Q(interaction__topic__cluster=None))
        .values_list("interaction__topic__cluster")
        .annotate(n=Count("id"))
        .values_list("interaction__topic__cluster", "n")
    }
    return CoverageCounts(
        segment_minimums={k: int(v) for k, v in segment_minimums.items()},
        segment_labels=segment_labels,
        cluster_labels=cluster_labels,
        total_labels=selected.count(),
    )
