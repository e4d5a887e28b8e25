"""Deliberate batches: interactions a person chose (in the data browser) put in the queue without
a sampling run. They have no inclusion probability, so their labels are training data and review
material only: estimates leave them out, exactly like every item no run selected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from django.db import transaction

from labeling.models import AuditLog, Interaction, Project, QueueItem
from labeling.services.queue import queue_items_enqueue

MAX_BATCH = 5000


@dataclass(frozen=True)
class Enqueued:
    added: int
    already: int


@transaction.atomic
def deliberate_batch_enqueue(
    *,
    project: Project,
    interaction_ids: list[int],
    actor: Any,
    overlap: int = 1,
    purpose: Literal["batch", "gold"] = "batch",
) -> Enqueued:
    """Queue the project's interactions among ``interaction_ids`` (others are ignored) with
    ``overlap`` annotators each; an interaction already queued is left as it is."""
    if not 1 <= overlap <= 50:
        raise ValueError("overlap: between 1 and 50 annotators per item")
    if len(interaction_ids) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} interactions at a time")
    ids = list(
        Interaction.objects.filter(project=project, pk__in=interaction_ids).values_list(
            "pk", flat=True
        )
    )
    already = QueueItem.objects.filter(project=project, interaction_id__in=ids).count()
    added = queue_items_enqueue(project=project, interaction_ids=ids, default_overlap=overlap)
    AuditLog.objects.create(
        project=project,
        actor=actor if getattr(actor, "pk", None) else None,
        action="queue.deliberate_batch",
        object_type="project",
        object_id=str(project.pk),
        data={"purpose": purpose, "interactions": ids[:MAX_BATCH], "added": added},
    )
    return Enqueued(added=added, already=already)
