"""Reads for reviewing labels: labels sent back to an annotator, comments on items, the items a
reviewer should look at (open flags first, then comments, then labels nobody reviewed), and the
suggestion shown to annotators."""

from __future__ import annotations

from typing import Any, Literal

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from labeling.models import (
    Annotation,
    Interaction,
    ItemComment,
    Project,
    QueueItem,
    ReviewStatus,
)

ReviewFilter = Literal["flags", "comments", "unreviewed", "rejected", "all"]
REVIEW_FILTERS: tuple[ReviewFilter, ...] = ("flags", "comments", "unreviewed", "rejected", "all")


def returned_labels(*, project: Project, user: Any) -> QuerySet[Annotation]:
    """The user's current labels a reviewer rejected: they go back to the annotator."""
    return Annotation.objects.filter(
        queue_item__project=project,
        annotator=user,
        kind=Annotation.Kind.LABEL,
        is_current=True,
        review_status=ReviewStatus.REJECTED,
    )


def item_comments(*, queue_item: QueueItem, author: Any | None = None) -> QuerySet[ItemComment]:
    """An item's comments, oldest first (only one author's if given)."""
    qs = ItemComment.objects.filter(queue_item=queue_item).select_related("author", "resolved_by")
    if author is not None:
        qs = qs.filter(author=author)
    return qs


def items_to_review(*, project: Project, which: ReviewFilter = "flags") -> QuerySet[QueueItem]:
    """Queued items for the review page: ``flags`` (an open flag), ``comments`` (any comment),
    ``unreviewed`` (a current label without a decision), ``rejected`` (a label sent back), ``all``
    (any label or comment). Each carries ``open_flags`` and ``comment_count``; newest activity
    first."""
    open_flag = ItemComment.objects.filter(
        queue_item=OuterRef("pk"), is_flag=True, resolved_at__isnull=True
    )
    current = Annotation.objects.filter(
        queue_item=OuterRef("pk"), kind=Annotation.Kind.LABEL, is_current=True
    )
    items = QueueItem.objects.filter(project=project).select_related("interaction")
    if which == "flags":
        items = items.filter(Exists(open_flag))
    elif which == "comments":
        items = items.filter(Exists(ItemComment.objects.filter(queue_item=OuterRef("pk"))))
    elif which == "unreviewed":
        items = items.filter(Exists(current.filter(review_status="")))
    elif which == "rejected":
        items = items.filter(Exists(current.filter(review_status=ReviewStatus.REJECTED)))
    else:
        items = items.filter(
            Exists(current) | Exists(ItemComment.objects.filter(queue_item=OuterRef("pk")))
        )
    return items.annotate(
        open_flags=Count("comments", filter=Q(comments__is_flag=True, comments__resolved_at=None)),
        comment_count=Count("comments", distinct=True),
    ).order_by("-open_flags", "-updated_at", "-id")


def review_counts(*, project: Project) -> dict[str, int]:
    """How many items each filter of the review page would show (for its tabs)."""
    return {
        which: items_to_review(project=project, which=which).count() for which in REVIEW_FILTERS
    }


def suggestion_for(*, project: Project, interaction: Interaction) -> dict[str, Any] | None:
    """What annotators are shown as a suggestion, or None: the primary judge's score of the
    interaction when the project shows suggestions (``Project.show_suggestions``, off by default)
    and the interaction has that score."""
    if not project.show_suggestions or not project.primary_judge:
        return None
    score = (interaction.scores or {}).get(project.primary_judge)
    if not isinstance(score, int | float) or isinstance(score, bool):
        return None
    return {"source": "judge", "name": project.primary_judge, "score": float(score)}
