"""Reviewer decisions and item comments.

- ``comment_add``: an annotator who holds (or held) an item, or a reviewer, leaves a note on it;
  ``flag=True`` asks a reviewer to look (the review page lists open flags first).
- ``comment_resolve``: a reviewer closes a flag.
- ``annotation_review``: a reviewer accepts a label, or rejects it with a note. A rejected label
  goes back to its annotator (``labeling.selectors.review.returned_labels``: the labelling page
  offers it with the note) until they save a new version, which carries no decision.

Decisions are recorded on the annotation version they are about (``review_*`` fields) and in the
audit log; the label's values never change here, so exports and estimates are not affected.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from labeling.errors import Conflict, Invalid, NotFound
from labeling.models import (
    Annotation,
    Assignment,
    AuditLog,
    ItemComment,
    Project,
    QueueItem,
    ReviewStatus,
)

COMMENT_MAX = 4000
DECISIONS = {"accept": ReviewStatus.ACCEPTED, "reject": ReviewStatus.REJECTED}


def comment_add(
    *, queue_item: QueueItem, author: User, body: str, flag: bool = False, reviewer: bool
) -> ItemComment:
    """Add a comment (or a flag) to an item. Annotators may comment only on items assigned to
    them (any state); ``reviewer`` callers on any item of the project."""
    text = (body or "").strip()
    if len(text) > COMMENT_MAX:
        raise Invalid({"body": f"at most {COMMENT_MAX} characters"})
    if not text and not flag:
        raise Invalid({"body": "write a comment (or flag the item)"})
    if (
        not reviewer
        and not Assignment.objects.filter(queue_item=queue_item, annotator=author).exists()
    ):
        raise NotFound("No such queue item.")
    comment = ItemComment.objects.create(
        queue_item=queue_item, author=author, body=text, is_flag=bool(flag)
    )
    AuditLog.objects.create(
        project_id=queue_item.project_id,
        actor=author,
        action="item.flagged" if flag else "item.commented",
        object_type="queue_item",
        object_id=str(queue_item.pk),
        data={"comment": comment.pk},
    )
    return comment


@transaction.atomic
def comment_resolve(
    *, comment_id: int, project: Project, actor: User, now: datetime | None = None
) -> ItemComment:
    """A reviewer closes a flag (or a comment): it stays, marked resolved."""
    comment = (
        ItemComment.objects.select_for_update()
        .filter(pk=comment_id, queue_item__project=project)
        .first()
    )
    if comment is None:
        raise NotFound("No such comment.")
    if comment.resolved_at is None:
        comment.resolved_at = now or timezone.now()
        comment.resolved_by = actor
        comment.save(update_fields=["resolved_at", "resolved_by"])
    return comment


@transaction.atomic
def annotation_review(
    *,
    annotation_id: int,
    project: Project,
    reviewer: User,
    decision: str,
    note: str = "",
    now: datetime | None = None,
) -> Annotation:
    """Accept or reject the current version of a label. A rejection needs a note (the annotator
    reads it); a decision can be changed until the annotator saves a new version."""
    if decision not in DECISIONS:
        raise Invalid({"decision": "must be 'accept' or 'reject'"})
    note = (note or "").strip()
    if decision == "reject" and not note:
        raise Invalid({"note": "say what is wrong: the annotator reads this note"})
    if len(note) > COMMENT_MAX:
        raise Invalid({"note": f"at most {COMMENT_MAX} characters"})
    annotation = (
        Annotation.objects.select_for_update(of=("self",))
        .filter(pk=annotation_id, queue_item__project=project, kind=Annotation.Kind.LABEL)
        .first()
    )
    if annotation is None:
        raise NotFound("No such annotation.")
    if not annotation.is_current:
        raise Conflict(
            "The annotator changed this label since; review the current version.",
            code="not_current",
        )
    if (
        decision == "reject"
        and Annotation.objects.filter(
            queue_item_id=annotation.queue_item_id,
            kind=Annotation.Kind.ADJUDICATION,
            is_current=True,
        ).exists()
    ):
        raise Conflict(
            "This item is adjudicated: its labels can no longer be changed, so a rejection could "
            "not be acted on. Adjudicate again instead.",
            code="adjudicated",
        )
    annotation.review_status = DECISIONS[decision]
    annotation.review_note = note
    annotation.reviewed_by = reviewer
    annotation.reviewed_at = now or timezone.now()
    annotation.save(update_fields=["review_status", "review_note", "reviewed_by", "reviewed_at"])
    AuditLog.objects.create(
        project=project,
        actor=reviewer,
        action=f"annotation.{annotation.review_status}",
        object_type="annotation",
        object_id=str(annotation.pk),
        data={"note": note},
    )
    return annotation
