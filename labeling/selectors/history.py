"""Label history: an annotator's own submitted labels (today, this week, all), newest first (the
history page and the labelling page's undo read them here), every version of one item's
annotations, and the caller's own annotation that they may edit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from labeling.access import RequestUser, has_capability, project_access, role_in
from labeling.errors import NotFound
from labeling.models import Annotation, Project, QueueItem, ReviewStatus

Period = Literal["today", "week", "all"]
PERIODS: tuple[Period, ...] = ("today", "week", "all")


def period_start(period: Period, now: datetime | None = None) -> datetime | None:
    """Local midnight today, local midnight six days ago (the last 7 days), or None for all."""
    if period == "all":
        return None
    midnight = timezone.localtime(now or timezone.now()).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return midnight if period == "today" else midnight - timedelta(days=6)


def my_labels(
    *,
    project: Project,
    user: Any,
    period: Period = "all",
    before: int | None = None,
    only: int | None = None,
    returned: bool = False,
    now: datetime | None = None,
) -> QuerySet[Annotation]:
    """The user's current label versions in the project, newest submission first.

    Ordered by when the item was submitted (its assignment's ``finished_at``), so editing a label
    does not move it to the top and undo walks back one submitted item at a time. Each row
    carries ``adjudicated`` (a reviewer settled the item: no more edits). ``before``: only labels
    submitted before the item of that annotation (the next step back); ``only``: just the
    label whose current version is that annotation (a history page's Edit link); ``returned``:
    only labels a reviewer rejected (sent back to the annotator), oldest submission first.
    """
    adjudicated = Annotation.objects.filter(
        queue_item=OuterRef("queue_item"), kind=Annotation.Kind.ADJUDICATION, is_current=True
    )
    labels = (
        Annotation.objects.filter(
            queue_item__project=project,
            annotator=user,
            kind=Annotation.Kind.LABEL,
            is_current=True,
        )
        .select_related("interaction", "assignment", "reviewed_by")
        .annotate(adjudicated=Exists(adjudicated))
        .order_by("-assignment__finished_at", "-id")
    )
    if returned:
        labels = labels.filter(review_status=ReviewStatus.REJECTED).order_by(
            "assignment__finished_at", "id"
        )
    if only is not None:
        labels = labels.filter(pk=only)
    start = period_start(period, now)
    if start is not None:
        labels = labels.filter(assignment__finished_at__gte=start)
    if before is not None:
        anchor = (
            Annotation.objects.filter(pk=before, annotator=user)
            .values_list("assignment__finished_at", flat=True)
            .first()
        )
        if anchor is not None:
            labels = labels.filter(assignment__finished_at__lt=anchor)
    return labels


def annotation_history(
    *, queue_item: QueueItem, annotator: Any | None = None
) -> QuerySet[Annotation]:
    """Every version of an item's annotations, oldest first (only one annotator's if given)."""
    qs = Annotation.objects.filter(queue_item=queue_item).select_related("annotator")
    if annotator is not None:
        qs = qs.filter(annotator=annotator)
    return qs.order_by("annotator_id", "kind", "version", "id")


def annotation_history_for(
    *, project: Project, queue_item: QueueItem, user: RequestUser
) -> QuerySet[Annotation]:
    """The item's history as ``user`` may see it: everyone's with the ``read`` capability, their
    own otherwise (NotFound when they have none: the item is not theirs to know)."""
    sees_all = has_capability(role=role_in(user=user, project=project), need="read")
    qs = annotation_history(queue_item=queue_item, annotator=None if sees_all else user)
    if not sees_all and not qs.exists():
        raise NotFound("No such queue item.")
    return qs


def own_annotation(*, user: RequestUser, annotation_id: int) -> Annotation:
    """The caller's annotation in a project where they may label (NotFound for someone else's,
    Forbidden when their role can no longer label), with its queue item and project loaded."""
    own = (
        Annotation.objects.select_related("queue_item__project")
        .filter(pk=annotation_id, annotator_id=user.pk)
        .first()
    )
    if own is None:
        raise NotFound("No such annotation.")
    project_access(user=user, slug=own.queue_item.project.slug, need="label")
    return own
