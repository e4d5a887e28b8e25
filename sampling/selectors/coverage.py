"""Coverage and latency reads the dashboard needs beyond the estimates API.

Both read the same rows as the estimates selector (``filtered_inclusions``: considered items of
finished runs under the strategy-format filters), so their populations agree with
``GET /estimates``' ``population``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db.models import Count, Exists, Min, OuterRef, Q

from labeling.models import Annotation, Project
from sampling.selectors.estimates import filtered_inclusions, response_design, selected_mask
from sampling.selectors.labelled import microseconds
from sampling.selectors.monitoring import first_labelled_dates


def cluster_coverage(
    *, project: Project, filters: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Per topic cluster: considered items (traffic), selected items and labelled items.

    ``cluster`` is -1 for items the proxy had not clustered. Sorted by traffic, largest first.
    """
    base = filtered_inclusions(project=project, filters=filters)
    key = "interaction__topic__cluster"
    labelled = Annotation.objects.filter(
        interaction=OuterRef("interaction_id"), is_current=True, kind=Annotation.Kind.LABEL
    )
    # One pass over the domain's rows (the label check runs for selected rows only).
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
