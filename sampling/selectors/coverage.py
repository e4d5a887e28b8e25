"""Coverage and latency reads the dashboard needs beyond the estimates API.

Both read the same rows as the estimates selector (``filtered_inclusions``: considered items of
finished runs under the strategy-format filters), so their populations agree with
``GET /estimates``' ``population``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Exists, Min, OuterRef, Q

from labeling.models import Annotation, Project
from sampling.selectors.estimates import filtered_inclusions


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
    """Hours from each labelled interaction's ``occurred_at`` to its first current label."""
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
        .values_list("interaction__occurred_at", "first_label")[:limit]
    )
    return [max(0.0, (label - occurred).total_seconds() / 3600) for occurred, label in rows]
