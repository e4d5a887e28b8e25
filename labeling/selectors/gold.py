"""Gold items: the project's gold items with their answers, and the candidates a reviewer
chooses new ones from. (Annotators' accuracy on gold: ``labeling.selectors.queue.gold_scores``.)"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from labeling.models import Project, QueueItem


def gold_items(*, project: Project) -> QuerySet[QueueItem]:
    """The project's gold items, oldest first, with their interactions loaded."""
    return (
        QueueItem.objects.filter(project=project, is_gold=True)
        .select_related("interaction")
        .order_by("id")
    )


def gold_row(item: QueueItem) -> dict[str, Any]:
    """One gold item as the API shows it (``item.interaction`` should be loaded)."""
    return {
        "queue_item_id": item.pk,
        "external_id": item.interaction.external_id,
        "gold_answer": item.gold_answer,
        "overlap": item.overlap,
        "done_count": item.done_count,
        "status": item.status,
    }


def gold_candidates(*, project: Project, query: str = "") -> QuerySet[QueueItem]:
    """Queued items that are not gold yet, newest first, for a reviewer choosing gold items;
    ``query`` matches the external id or a piece of the response or the conversation."""
    items = (
        QueueItem.objects.filter(project=project, is_gold=False)
        .exclude(status=QueueItem.Status.FLAGGED)
        .select_related("interaction")
        .order_by("-id")
    )
    if query:
        items = items.filter(
            Q(interaction__external_id=query)
            | Q(interaction__response__icontains=query)
            | Q(interaction__messages__icontains=query)
        )
    return items
