"""Queue writes: enqueue selected interactions, lease, submit, skip, expire.

Owned by the queue work (issue 4). ``queue_items_enqueue`` is the entry point the sampler uses.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from labeling.models import Project, QueueItem


@transaction.atomic
def queue_items_enqueue(
    *,
    project: Project,
    interaction_ids: Iterable[int],
    overlap_by_id: dict[int, int] | None = None,
    priority_by_id: dict[int, float] | None = None,
    holdout_ids: Iterable[int] = (),
    sampling_run_id: int | None = None,
    default_overlap: int = 1,
) -> int:
    """Put interactions in the project's queue; an interaction already queued is left as it is.

    Returns the number of new queue items.
    """
    overlap_by_id = overlap_by_id or {}
    priority_by_id = priority_by_id or {}
    holdout = set(holdout_ids)
    ids = list(interaction_ids)
    existing = set(
        QueueItem.objects.filter(project=project, interaction_id__in=ids).values_list(
            "interaction_id", flat=True
        )
    )
    rows = [
        QueueItem(
            project=project,
            interaction_id=i,
            sampling_run_id=sampling_run_id,
            overlap=max(1, int(overlap_by_id.get(i, default_overlap))),
            priority=float(priority_by_id.get(i, 0.0)),
            holdout=i in holdout,
        )
        for i in ids
        if i not in existing
    ]
    QueueItem.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return len(rows)
