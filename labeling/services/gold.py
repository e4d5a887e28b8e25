"""Gold items: queue items with a known answer that annotators are scored against.

Setting or clearing gold writes an AuditLog row (``gold.set`` / ``gold.cleared``) with what was
there before; earlier answers to the item are kept either way.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from labeling.errors import Invalid
from labeling.models import AuditLog, QueueItem
from labeling.schema import item_texts, values_validate


@transaction.atomic
def gold_set(
    *, queue_item: QueueItem, actor: User, answer: Any, overlap: int | None = None
) -> QueueItem:
    """Make an item a gold item with a known ``answer`` (the questions it names are scored).

    ``overlap`` (optional) is how many annotators should see it; it never drops below the number
    already done. An item that now has free slots is reopened.
    """
    item = (
        QueueItem.objects.select_for_update(of=("self",))
        .select_related("project", "interaction")
        .get(pk=queue_item.pk)
    )
    cleaned = values_validate(
        item.project.label_schema,
        answer,
        has_alt_response=bool(item.interaction.alt_response),
        partial=True,
        texts=item_texts(item.interaction),
    )
    if not cleaned:
        raise Invalid({"answer": "give the expected answer of at least one question"})
    before = {"is_gold": item.is_gold, "gold_answer": item.gold_answer, "overlap": item.overlap}
    item.is_gold = True
    item.gold_answer = cleaned
    if overlap is not None:
        if overlap < 1 or overlap > 1000:
            raise Invalid({"overlap": "must be between 1 and 1000"})
        item.overlap = max(overlap, item.done_count + item.leased_count)
    if item.status == QueueItem.Status.DONE and item.done_count < item.overlap:
        item.status = QueueItem.Status.OPEN
    item.save(update_fields=["is_gold", "gold_answer", "overlap", "status", "updated_at"])
    AuditLog.objects.create(
        project=item.project,
        actor=actor,
        action="gold.set",
        object_type="queue_item",
        object_id=str(item.pk),
        data={"before": before, "answer": cleaned, "overlap": item.overlap},
    )
    return item


@transaction.atomic
def gold_clear(*, queue_item: QueueItem, actor: User) -> QueueItem:
    """Stop treating an item as gold (its earlier answers stay; they are no longer scored)."""
    item = QueueItem.objects.select_for_update().get(pk=queue_item.pk)
    if not item.is_gold:
        return item
    AuditLog.objects.create(
        project_id=item.project_id,
        actor=actor,
        action="gold.cleared",
        object_type="queue_item",
        object_id=str(item.pk),
        data={"gold_answer": item.gold_answer},
    )
    item.is_gold = False
    item.gold_answer = None
    item.save(update_fields=["is_gold", "gold_answer", "updated_at"])
    return item
