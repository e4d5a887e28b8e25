"""Coverage and latency reads the dashboard needs beyond the estimates API.

Both count the same rows as the estimates selector (``filtered_inclusions``: considered items of
finished runs under the strategy-format filters), so their populations agree with
``GET /estimates``' ``population``; they read them from aggregates and the selected items, and
their ``*_scan`` references read them row by row.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Count, Exists, Min, OuterRef, Q, Sum

from labeling.models import Annotation, Project
from labeling.rows import rows_by_ids
from sampling.models import InteractionTopic, SamplingRun, TopicCell
from sampling.selectors.estimates import (
    _filter_cells,
    day_split,
    filtered_inclusions,
    response_design,
    selected_mask,
)
from sampling.selectors.labelled import microseconds
from sampling.selectors.monitoring import first_labelled_dates


def cluster_coverage(
    *, project: Project, filters: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Per topic cluster: considered items (traffic), selected items and labelled items.

    ``cluster`` is -1 for items the proxy had not clustered. Sorted by traffic, largest first.

    Traffic comes from the runs' topic cells (``sampling.models.TopicCell``, kept current when
    clusters change) for the whole days of the range and from the Inclusion rows of a partial day
    at either end (a ``since``/``until`` that is not a UTC midnight); selected and labelled items
    from the selected items the estimates hold (``response_design(...).items``), their current
    clusters (one read of those items' topics) and the first-label dates of the page. The same
    numbers as :func:`_cluster_coverage_scan`, without reading every considered interaction
    (issue 16)."""
    filters = dict(filters or {})
    split = day_split(filters)
    traffic: Counter[int] = Counter()
    if split.no_whole_day:
        traffic.update(_traffic_scan(project=project, filters=filters))  # within two days
    else:
        for part in split.edges:
            traffic.update(_traffic_scan(project=project, filters=part))
        cells = _filter_cells(
            TopicCell.objects.filter(project=project, run__status=SamplingRun.Status.DONE),
            split.whole,
            through="",
        )
        if split.first is not None:
            cells = cells.filter(day__gte=split.first)
        if split.end is not None:
            cells = cells.filter(day__lt=split.end)
        for cluster, n in cells.values("cluster").annotate(n=Sum("n")).values_list("cluster", "n"):
            traffic[int(cluster)] += int(n or 0)
    items = response_design(project=project).items
    at = np.flatnonzero(selected_mask(project=project, items=items, filters=filters))
    ids = items.interaction_id[at].tolist()
    topics = _clusters_of(ids)
    labelled = first_labelled_dates(project=project)
    selected: Counter[int] = Counter()
    labels: Counter[int] = Counter()
    for interaction_id in ids:
        cluster = topics.get(interaction_id, -1)
        selected[cluster] += 1
        labels[cluster] += interaction_id in labelled
    out = [
        {"cluster": c, "traffic": n, "selected": selected[c], "labels": labels[c]}
        for c, n in traffic.items()
        if n
    ]
    return sorted(out, key=lambda r: (-r["traffic"], r["cluster"]))


def _traffic_scan(*, project: Project, filters: dict[str, Any]) -> Counter[int]:
    """Considered items per cluster, counted over the Inclusion rows under ``filters``."""
    key = "interaction__topic__cluster"
    rows = (
        filtered_inclusions(project=project, filters=filters)
        .values(key)
        .annotate(n=Count("id"))
        .values_list(key, "n")
        .order_by()
    )
    return Counter({(-1 if c is None else int(c)): int(n) for c, n in rows})


def _clusters_of(ids: list[int]) -> dict[int, int]:
    """The current cluster of each of ``ids`` that has one (by primary key)."""
    if not ids:
        return {}
    with connection.cursor() as cursor:
        rows = rows_by_ids(
            cursor,
            f"SELECT interaction_id, cluster FROM {InteractionTopic._meta.db_table} ",
            "interaction_id",
            ids,
        )
    return {int(i): int(c) for i, c in rows}


def _cluster_coverage_scan(
    *, project: Project, filters: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """:func:`cluster_coverage` counted in one pass over the filtered inclusions joined to their
    interactions and topics (the reference)."""
    base = filtered_inclusions(project=project, filters=filters)
    key = "interaction__topic__cluster"
    labelled = Annotation.objects.filter(
        interaction=OuterRef("interaction_id"), is_current=True, kind=Annotation.Kind.LABEL
    )
    rows = (
        base.values(key)
        .annotate(
            traffic=Count("id"),
            n_selected=Count("id", filter=Q(selected=True)),
            n_labels=Count("id", filter=Q(selected=True) & Q(Exists(labelled))),
        )
        .order_by()
    )
    out = [
        {
            "cluster": -1 if r[key] is None else r[key],
            "traffic": r["traffic"],
            "selected": r["n_selected"],
            "labels": r["n_labels"],
        }
        for r in rows
    ]
    return sorted(out, key=lambda r: (-r["traffic"], r["cluster"]))


def label_latency_hours(
    *, project: Project, filters: dict[str, Any] | None = None, limit: int = 50_000
) -> list[float]:
    """Hours from each labelled interaction's ``occurred_at`` to its first current label (the
    selected items of the finished runs under ``filters`` with a current ``label`` annotation;
    at most ``limit``, in interaction id order).

    Read from the selected items the estimates already hold (``response_design(...).items``:
    ``occurred_at`` as microseconds) and the first-label dates the page reads once
    (``monitoring.first_labelled_dates``), instead of joining the selected inclusions to their
    interactions and annotations again (issue 16). :func:`_label_latency_hours_scan` is the plain
    read it equals."""
    items = response_design(project=project).items
    at = np.flatnonzero(selected_mask(project=project, items=items, filters=filters))
    labelled = first_labelled_dates(project=project)
    out: list[float] = []
    for interaction_id, occurred in zip(
        items.interaction_id[at].tolist(), items.occurred_us[at].tolist(), strict=True
    ):
        label = labelled.get(interaction_id)
        if label is None:
            continue
        # the arithmetic of timedelta.total_seconds() / 3600 on the same integers
        out.append(max(0.0, (microseconds(label) - occurred) / 10**6 / 3600))
        if len(out) >= limit:
            break
    return out


def _label_latency_hours_scan(
    *, project: Project, filters: dict[str, Any] | None = None, limit: int = 50_000
) -> list[float]:
    """:func:`label_latency_hours` read row by row from the database (the reference)."""
    rows = (
        filtered_inclusions(project=project, filters=filters)
        .filter(selected=True)
        .annotate(
            first_label=Min(
                "interaction__annotations__created_at",
                filter=Q(
                    interaction__annotations__is_current=True,
                    interaction__annotations__kind=Annotation.Kind.LABEL,
                ),
            )
        )
        .filter(first_label__isnull=False)
        .order_by("interaction_id")
        .values_list("interaction__occurred_at", "first_label")[:limit]
    )
    return [max(0.0, (label - occurred).total_seconds() / 3600) for occurred, label in rows]
