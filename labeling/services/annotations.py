"""Annotation writes after submission: edits (new versions) and adjudication.

History is append-only: an edit or a second adjudication creates a new row with ``version + 1``,
``supersedes`` pointing at the old row, and moves ``is_current``; the old row is never changed
otherwise. Every edit and adjudication writes an AuditLog row. Gold answers live in
:mod:`labeling.services.gold`, label schema changes in :mod:`labeling.services.schemas`.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from labeling.errors import Conflict, Invalid, NotFound
from labeling.models import (
    Annotation,
    AuditLog,
    QueueItem,
    WebhookEvent,
)
from labeling.schema import item_texts, values_validate
from labeling.services.webhooks import webhook_emit


def _new_version(
    *,
    old: Annotation | None,
    queue_item: QueueItem,
    annotator: User,
    kind: str,
    values: dict[str, Any],
    schema_version: int,
    time_spent_ms: int | None,
) -> Annotation:
    """Append a version; the caller holds a lock on ``old`` (or on the queue item if none)."""
    if old is not None:
        old.is_current = False
        old.save(update_fields=["is_current"])
    return Annotation.objects.create(
        queue_item=queue_item,
        interaction_id=queue_item.interaction_id,
        assignment=old.assignment if old is not None else None,
        annotator=annotator,
        kind=kind,
        values=values,
        schema_version=schema_version,
        version=(old.version + 1) if old is not None else 1,
        supersedes=old,
        is_current=True,
        time_spent_ms=time_spent_ms,
        # A suggestion seen when the label was first made keeps its influence on the edits.
        saw_suggestion=old.saw_suggestion if old is not None else False,
    )


@transaction.atomic
def annotation_edit(
    *, annotation_id: int, actor: User, values: Any, time_spent_ms: int | None = None
) -> Annotation:
    """The author changes their current label: a new version under the current schema.

    Only the author's own current label annotation can be edited (anything else is a 404 for
    them, or a 409 when the version is no longer current or the item has been adjudicated).
    """
    try:
        old = (
            Annotation.objects.select_for_update(of=("self",))
            .select_related("queue_item__project", "interaction")
            .get(pk=annotation_id, annotator=actor, kind=Annotation.Kind.LABEL)
        )
    except Annotation.DoesNotExist:
        raise NotFound("No such annotation.") from None
    if not old.is_current:
        raise Conflict("This is an old version; edit the current one instead.", code="not_current")
    # Once a reviewer has settled the item, the annotator's label is part of a decision: it stays.
    if Annotation.objects.filter(
        queue_item_id=old.queue_item_id, kind=Annotation.Kind.ADJUDICATION, is_current=True
    ).exists():
        raise Conflict(
            "A reviewer has adjudicated this item; your label can no longer be changed.",
            code="adjudicated",
        )
    project = old.queue_item.project
    cleaned = values_validate(
        project.label_schema,
        values,
        has_alt_response=bool(old.interaction.alt_response),
        texts=item_texts(old.interaction),
    )
    new = _new_version(
        old=old,
        queue_item=old.queue_item,
        annotator=actor,
        kind=Annotation.Kind.LABEL,
        values=cleaned,
        schema_version=project.schema_version,
        time_spent_ms=time_spent_ms,
    )
    AuditLog.objects.create(
        project=project,
        actor=actor,
        action="annotation.edited",
        object_type="annotation",
        object_id=str(new.pk),
        data={"supersedes": old.pk, "before": old.values, "after": cleaned},
    )
    return new


@transaction.atomic
def annotation_adjudicate(
    *, queue_item: QueueItem, reviewer: User, values: Any, note: str = ""
) -> Annotation:
    """Record a reviewer's answer for a disputed item (kind ``adjudication``; it wins in
    ``labeling.selectors.labels.final_values``). Only the questions given are settled; a second
    adjudication supersedes the first."""
    item = (
        QueueItem.objects.select_for_update(of=("self",))
        .select_related("project", "interaction")
        .get(pk=queue_item.pk)
    )
    project = item.project
    cleaned = values_validate(
        project.label_schema,
        values,
        has_alt_response=bool(item.interaction.alt_response),
        partial=True,
        texts=item_texts(item.interaction),
    )
    if not cleaned:
        raise Invalid({"values": "answer at least one question"})
    old = (
        Annotation.objects.filter(
            queue_item=item, kind=Annotation.Kind.ADJUDICATION, is_current=True
        )
        .order_by("-version")
        .first()
    )
    # Whoever adjudicates next supersedes the earlier adjudication, whoever made it.
    new = _new_version(
        old=old,
        queue_item=item,
        annotator=reviewer,
        kind=Annotation.Kind.ADJUDICATION,
        values=cleaned,
        schema_version=project.schema_version,
        time_spent_ms=None,
    )
    AuditLog.objects.create(
        project=project,
        actor=reviewer,
        action="annotation.adjudicated",
        object_type="queue_item",
        object_id=str(item.pk),
        data={
            "annotation": new.pk,
            "supersedes": old.pk if old else None,
            "values": cleaned,
            "note": note[:1000],
        },
    )
    webhook_emit(
        project,
        WebhookEvent.ITEM_COMPLETED,
        {
            "queue_item_id": item.pk,
            "interaction_id": item.interaction_id,
            "external_id": item.interaction.external_id,
            "reason": "adjudicated",
            "done_count": item.done_count,
            "overlap": item.overlap,
            "values": cleaned,
            "adjudicated_by": reviewer.get_username(),
        },
    )
    return new
