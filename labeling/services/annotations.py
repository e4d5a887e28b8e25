"""Annotation writes after submission: edits (new versions), adjudication, gold answers, schema
changes.

History is append-only: an edit or a second adjudication creates a new row with ``version + 1``,
``supersedes`` pointing at the old row, and moves ``is_current``; the old row is never changed
otherwise. Every edit, adjudication, gold change and schema change writes an AuditLog row.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import Http404
from rest_framework.exceptions import ValidationError

from labeling.models import (
    Annotation,
    AuditLog,
    LabelSchemaVersion,
    Project,
    QueueItem,
)
from labeling.schema import schema_validate, values_validate
from labeling.services.queue import QueueConflict


def _new_version(
    *,
    old: Annotation | None,
    queue_item: QueueItem,
    annotator: Any,
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
    )


@transaction.atomic
def annotation_edit(
    *, annotation_id: int, actor: Any, values: Any, time_spent_ms: int | None = None
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
        raise Http404("No such annotation.") from None
    if not old.is_current:
        raise QueueConflict("This is an old version; edit the current one instead.", "not_current")
    # Once a reviewer has settled the item, the annotator's label is part of a decision: it stays.
    if Annotation.objects.filter(
        queue_item_id=old.queue_item_id, kind=Annotation.Kind.ADJUDICATION, is_current=True
    ).exists():
        raise QueueConflict(
            "A reviewer has adjudicated this item; your label can no longer be changed.",
            "adjudicated",
        )
    project = old.queue_item.project
    cleaned = values_validate(
        project.label_schema, values, has_alt_response=bool(old.interaction.alt_response)
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
    *, queue_item: QueueItem, reviewer: Any, values: Any, note: str = ""
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
    )
    if not cleaned:
        raise ValidationError({"values": "answer at least one question"})
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
    return new


@transaction.atomic
def gold_set(
    *, queue_item: QueueItem, actor: Any, answer: Any, overlap: int | None = None
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
    )
    if not cleaned:
        raise ValidationError({"answer": "give the expected answer of at least one question"})
    before = {"is_gold": item.is_gold, "gold_answer": item.gold_answer, "overlap": item.overlap}
    item.is_gold = True
    item.gold_answer = cleaned
    if overlap is not None:
        if overlap < 1 or overlap > 1000:
            raise ValidationError({"overlap": "must be between 1 and 1000"})
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
def gold_clear(*, queue_item: QueueItem, actor: Any) -> QueueItem:
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


@transaction.atomic
def schema_change(*, project: Project, schema: Any, actor: Any) -> Project:
    """Validate and store a new label schema.

    Once annotations exist under the current version, a change bumps ``Project.schema_version``
    (annotations keep the version they were made under) and records a LabelSchemaVersion; before
    that the current version is replaced in place. An identical schema is a no-op. A
    LabelSchemaVersion row for the current version always exists afterwards.
    """
    normalised = schema_validate(schema)
    project = Project.objects.select_for_update().get(pk=project.pk)
    current = LabelSchemaVersion.objects.filter(
        project=project, version=project.schema_version
    ).first()
    if normalised == project.label_schema:
        if current is None:
            LabelSchemaVersion.objects.create(
                project=project,
                version=project.schema_version,
                schema=normalised,
                created_by=_user_or_none(actor),
            )
        return project
    labelled = Annotation.objects.filter(
        queue_item__project=project, schema_version=project.schema_version
    ).exists()
    before = project.schema_version
    if labelled:
        if current is None:  # keep the old schema that the annotations were made under
            LabelSchemaVersion.objects.create(
                project=project, version=before, schema=project.label_schema
            )
        project.schema_version = before + 1
        LabelSchemaVersion.objects.create(
            project=project,
            version=project.schema_version,
            schema=normalised,
            created_by=_user_or_none(actor),
        )
    else:
        LabelSchemaVersion.objects.update_or_create(
            project=project,
            version=project.schema_version,
            defaults={"schema": normalised, "created_by": _user_or_none(actor)},
        )
    project.label_schema = normalised
    project.save(update_fields=["label_schema", "schema_version", "updated_at"])
    AuditLog.objects.create(
        project=project,
        actor=_user_or_none(actor),
        action="schema.changed",
        object_type="project",
        object_id=str(project.pk),
        data={"from_version": before, "to_version": project.schema_version},
    )
    return project


def _user_or_none(actor: Any) -> Any:
    return actor if getattr(actor, "pk", None) is not None else None
