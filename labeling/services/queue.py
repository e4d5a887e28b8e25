"""Queue writes: enqueue selected interactions, lease (claim), submit, skip, expire, reopen.

``queue_items_enqueue`` is the entry point the sampler uses.

Invariants (every function here keeps them; nothing else writes these fields):
- ``QueueItem.leased_count`` = its assignments with status ``leased``; ``done_count`` = those with
  status ``submitted``; ``leased_count + done_count <= overlap`` (so an item is never leased to more
  annotators than its overlap). Counters change only while the item's row is locked
  (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite every write transaction starts with
  ``BEGIN IMMEDIATE`` and so runs alone).
- An annotator has at most one assignment per item (unique constraint): nobody labels an item
  twice. An annotator's own *expired* lease may be re-leased to them (same row).
- Lock order: membership (claim only) -> assignment -> queue item. Claims take queue items with
  ``SKIP LOCKED`` so concurrent annotators never wait for each other's item.
- Named queues (labeling.services.queues) only narrow which items a claim may take (the main
  queue plus the queues whose skill the annotator has, or one queue asked for); the counters, the
  locks and the one-assignment-per-annotator rule are the same for every queue.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When
from django.utils import timezone

from labeling import hooks
from labeling.errors import Conflict, NotFound
from labeling.models import (
    Annotation,
    Assignment,
    AuditLog,
    Interaction,
    Membership,
    Project,
    Queue,
    QueueItem,
    WebhookEvent,
)
from labeling.schema import item_texts, values_validate
from labeling.selectors.queues import project_queues, queue_filter
from labeling.selectors.review import suggestion_for
from labeling.services.queues import queue_route
from labeling.services.webhooks import webhook_emit, webhook_listeners


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
    strategy_id: int | None = None,
    queue: Queue | None = None,
) -> int:
    """Put interactions in the project's queue; an interaction already queued is left as it is.

    Each new item goes to ``queue`` when given, otherwise to the named queue the routing rules
    pick (``labeling.services.queues.queue_route``: by the selecting strategy and the
    interaction's segment), or to the main queue. Returns the number of new queue items.
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
    named = [] if queue is not None else list(project_queues(project=project))
    segments: dict[int, Any] = {}
    if named:
        segments = dict(
            Interaction.objects.filter(pk__in=[i for i in ids if i not in existing]).values_list(
                "id", "segment"
            )
        )
    rows = [
        QueueItem(
            project=project,
            interaction_id=i,
            queue=queue
            if queue is not None
            else queue_route(queues=named, segment=segments.get(i), strategy_id=strategy_id),
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


def _expire_locked(*, project: Project | None, now: datetime, limit: int) -> int:
    """Expire overdue leases; must run inside a transaction. Rows another transaction holds are
    skipped (it is submitting or expiring them). Items are updated in id order: no deadlocks."""
    qs = Assignment.objects.filter(status=Assignment.Status.LEASED, lease_expires_at__lte=now)
    if project is not None:
        qs = qs.filter(queue_item__project=project)
    rows = list(
        qs.select_for_update(skip_locked=True, of=("self",))
        .order_by("id")
        .values_list("id", "queue_item_id")[:limit]
    )
    if not rows:
        return 0
    Assignment.objects.filter(id__in=[a for a, _ in rows]).update(
        status=Assignment.Status.EXPIRED, finished_at=now
    )
    for item_id, count in sorted(Counter(q for _, q in rows).items()):
        QueueItem.objects.filter(pk=item_id).update(
            leased_count=F("leased_count") - count, updated_at=now
        )
    return len(rows)


@transaction.atomic
def assignments_expire(
    *, project: Project | None = None, now: datetime | None = None, limit: int = 1000
) -> int:
    """Return overdue leases to the queue (all projects when ``project`` is None).

    Idempotent: an expired lease is not touched again. Returns how many leases expired.
    """
    return _expire_locked(project=project, now=now or timezone.now(), limit=limit)


def _claimable(*, project: Project, annotator: User, gold: bool, where: Q) -> Any:
    """Open items with a free slot the annotator never held (except their own expired lease), in
    serving order, among the queues ``where`` allows. Walks the partial index ``ix_queue_open``
    (project, is_gold, -priority, id)."""
    mine = Assignment.objects.filter(queue_item=OuterRef("pk"), annotator=annotator).exclude(
        status=Assignment.Status.EXPIRED
    )
    return (
        QueueItem.objects.filter(project=project, status=QueueItem.Status.OPEN, is_gold=gold)
        .filter(where)
        .alias(used=F("leased_count") + F("done_count"))
        .filter(used__lt=F("overlap"))
        .exclude(Exists(mine))
        .order_by("-priority", "id")
    )


def _member_locked(*, project: Project, annotator: User) -> list[str]:
    """Lock the annotator's membership row (it serialises one annotator's own claims in a project:
    a double click must not take two items) and return their skill tags; inside a transaction.

    On PostgreSQL the same statement switches the transaction to asynchronous commit: a lease
    lost in a server crash costs nothing (the item returns to the queue and the client is told to
    load the next one), so the claim need not wait for the WAL flush. Submits keep synchronous
    commits: annotations are durable before the 201."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('synchronous_commit', 'off', true), "
                f"(SELECT skills FROM {Membership._meta.db_table} "
                "WHERE project_id = %s AND user_id = %s FOR UPDATE)",
                [project.pk, annotator.pk],
            )
            raw = cursor.fetchone()[1]
        skills = json.loads(raw) if isinstance(raw, str | bytes) else raw
        return [str(s) for s in skills or []]
    rows = list(
        Membership.objects.select_for_update()
        .filter(project=project, user=annotator)
        .values_list("skills", flat=True)
    )
    return list(rows[0] or []) if rows else []


def assignment_claim(
    *,
    project: Project,
    annotator: User,
    now: datetime | None = None,
    rng: random.Random | None = None,
    queue: str | None = None,
) -> Assignment | None:
    """Lease the next item to ``annotator``; None when nothing is left for them.

    Items come from the main queue and the named queues open to the annotator's skills, or only
    from ``queue`` (a named queue's slug, or ``"main"``) when given: an unknown slug is
    ``NotFound``, a queue needing a skill they lack is ``Forbidden``.

    A still-valid lease the annotator holds in this project is returned again (a reload does not
    burn items). Overdue leases are expired first (lazily; the periodic task does the same). Gold
    items come first with probability ``project.gold_rate``, otherwise regular items first; either
    kind falls back to the other. Within a kind: highest priority, then oldest.
    """
    now = now or timezone.now()
    draw = rng.random if rng is not None else random.random
    with transaction.atomic():
        skills = _member_locked(project=project, annotator=annotator)
        where = queue_filter(project=project, skills=skills, queue=queue)
        # One query finds both the caller's live lease and any overdue lease in the project.
        leases = list(
            Assignment.objects.filter(queue_item__project=project, status=Assignment.Status.LEASED)
            .filter(Q(annotator=annotator, lease_expires_at__gt=now) | Q(lease_expires_at__lte=now))
            # the caller's own lease first, whatever the number of overdue ones
            .order_by(Case(When(annotator=annotator, then=Value(0)), default=Value(1)), "id")
            .values_list("id", "annotator_id", "lease_expires_at")[:50]
        )
        mine = [a for a, user_id, ends in leases if user_id == annotator.pk and ends > now]
        if mine:
            return Assignment.objects.select_related(
                "queue_item__interaction", "queue_item__queue"
            ).get(pk=mine[0])
        if any(ends <= now for _, _, ends in leases):
            _expire_locked(project=project, now=now, limit=200)
        gold_first = project.gold_rate > 0 and draw() < project.gold_rate
        # Whether the annotator's own expired lease on the chosen item exists (evaluated for the
        # one row returned only): then that row is renewed instead of inserting a second one.
        own_expired = Assignment.objects.filter(
            queue_item=OuterRef("pk"), annotator=annotator, status=Assignment.Status.EXPIRED
        )
        item = None
        for gold in (gold_first, not gold_first):
            item = (
                _claimable(project=project, annotator=annotator, gold=gold, where=where)
                .annotate(renew=Exists(own_expired))
                .select_related("interaction", "queue")
                .select_for_update(skip_locked=True, of=("self",))
                .first()
            )
            if item is not None:
                break
        if item is None:
            return None
        expires = now + timedelta(seconds=project.lease_seconds)
        QueueItem.objects.filter(pk=item.pk).update(
            leased_count=F("leased_count") + 1, updated_at=now
        )
        if item.renew:
            Assignment.objects.filter(
                queue_item=item, annotator=annotator, status=Assignment.Status.EXPIRED
            ).update(
                status=Assignment.Status.LEASED,
                leased_at=now,
                lease_expires_at=expires,
                finished_at=None,
            )
            assignment = Assignment.objects.get(queue_item=item, annotator=annotator)
        else:
            assignment = Assignment.objects.create(
                queue_item=item, annotator=annotator, leased_at=now, lease_expires_at=expires
            )
        item.leased_count += 1
        assignment.queue_item = item  # the caller gets the interaction without another query
        return assignment


def _assignment_locked(*, assignment_id: int, annotator: User) -> tuple[Assignment, QueueItem]:
    """The caller's own assignment and its queue item (with project and interaction), both
    row-locked by one statement; someone else's assignment (or a missing one) is a 404.

    ``FOR UPDATE OF`` the assignment and the item locks them in that order (PostgreSQL locks a
    joined row's tables in FROM order), the lock order every function here keeps."""
    try:
        assignment = (
            Assignment.objects.select_for_update(of=("self", "queue_item"))
            .select_related("queue_item__project", "queue_item__interaction")
            .get(pk=assignment_id, annotator=annotator)
        )
    except Assignment.DoesNotExist:
        raise NotFound("No such assignment.") from None
    return assignment, assignment.queue_item


def _closed(assignment: Assignment) -> Conflict:
    if assignment.status == Assignment.Status.SUBMITTED:
        return Conflict(
            "You already submitted this item; edit your annotation to change it.",
            code="already_submitted",
        )
    return Conflict("You skipped this item.", code="already_skipped")


@transaction.atomic
def assignment_submit(
    *,
    assignment_id: int,
    annotator: User,
    values: Any,
    time_spent_ms: int | None = None,
    now: datetime | None = None,
) -> Annotation:
    """Validate ``values`` against the project's current schema and record the annotation.

    A lease past its expiry that nobody has taken over yet is still accepted (the slot is free);
    if the slot went to someone else the submit fails with 409 ``lease_expired`` and nothing is
    written. Fires ``labels_submitted`` after commit.
    """
    now = now or timezone.now()
    assignment, item = _assignment_locked(assignment_id=assignment_id, annotator=annotator)
    if assignment.status in (Assignment.Status.SUBMITTED, Assignment.Status.SKIPPED):
        raise _closed(assignment)
    project, interaction = item.project, item.interaction
    was_leased = assignment.status == Assignment.Status.LEASED
    if not was_leased and (
        item.status == QueueItem.Status.DONE or item.leased_count + item.done_count >= item.overlap
    ):
        raise Conflict(
            "Your lease on this item expired and it went to another annotator. "
            "Your answers were not saved; load the next item.",
            code="lease_expired",
        )
    cleaned = values_validate(
        project.label_schema,
        values,
        has_alt_response=bool(interaction.alt_response),
        texts=item_texts(interaction),
    )
    annotation = Annotation.objects.create(
        queue_item=item,
        interaction=interaction,
        assignment=assignment,
        annotator=annotator,
        kind=Annotation.Kind.LABEL,
        values=cleaned,
        schema_version=project.schema_version,
        time_spent_ms=time_spent_ms,
        # queue/next showed the same suggestion (labeling.selectors.review.suggestion_for)
        saw_suggestion=suggestion_for(project=project, interaction=interaction) is not None,
    )
    assignment.status = Assignment.Status.SUBMITTED
    assignment.finished_at = now
    assignment.save(update_fields=["status", "finished_at"])
    item.done_count += 1
    if was_leased:
        item.leased_count -= 1
    fields = ["done_count", "leased_count", "updated_at"]
    if item.done_count >= item.overlap and item.status == QueueItem.Status.OPEN:
        item.status = QueueItem.Status.DONE
        fields.append("status")
    item.save(update_fields=fields)
    _emit_submitted(annotation=annotation, item=item, annotator=annotator)
    project_id = project.pk
    transaction.on_commit(lambda: hooks.fire("labels_submitted", project_id=project_id, count=1))
    return annotation


def _emit_submitted(*, annotation: Annotation, item: QueueItem, annotator: User) -> None:
    """``label.submitted`` and, when this label completes the item, ``item.completed`` (in the
    submit's transaction: the outbox rows commit with the label)."""
    project, interaction = item.project, item.interaction
    listeners = webhook_listeners(project)
    if not listeners:
        return  # nobody listens (the usual case): one query, no payload built
    common = {
        "queue_item_id": item.pk,
        "interaction_id": interaction.pk,
        "external_id": interaction.external_id,
        "done_count": item.done_count,
        "overlap": item.overlap,
    }
    webhook_emit(
        project,
        WebhookEvent.LABEL_SUBMITTED,
        {
            "annotation_id": annotation.pk,
            "annotator": annotator.get_username(),
            "values": annotation.values,
            "schema_version": annotation.schema_version,
            **common,
        },
        listeners=listeners,
    )
    if item.status == QueueItem.Status.DONE and item.done_count == item.overlap:
        webhook_emit(
            project,
            WebhookEvent.ITEM_COMPLETED,
            {"reason": "overlap_done", **common},
            listeners=listeners,
        )


@transaction.atomic
def assignment_skip(
    *, assignment_id: int, annotator: User, reason: str = "", now: datetime | None = None
) -> Assignment:
    """Give the item back so someone else gets it; the skipper never sees it again.

    After ``project.max_skips`` skips (0: never) an open item is flagged for an admin and leaves
    the queue (an audit row says so).
    """
    now = now or timezone.now()
    assignment, item = _assignment_locked(assignment_id=assignment_id, annotator=annotator)
    if assignment.status in (Assignment.Status.SUBMITTED, Assignment.Status.SKIPPED):
        raise _closed(assignment)
    if assignment.status == Assignment.Status.LEASED:
        item.leased_count -= 1
    assignment.status = Assignment.Status.SKIPPED
    assignment.finished_at = now
    assignment.skip_reason = (reason or "")[:500]
    assignment.save(update_fields=["status", "finished_at", "skip_reason"])
    item.skip_count += 1
    fields = ["leased_count", "skip_count", "updated_at"]
    max_skips = item.project.max_skips
    if max_skips and item.skip_count >= max_skips and item.status == QueueItem.Status.OPEN:
        item.status = QueueItem.Status.FLAGGED
        fields.append("status")
        AuditLog.objects.create(
            project=item.project,
            actor=annotator,
            action="queue_item.flagged",
            object_type="queue_item",
            object_id=str(item.pk),
            data={"skip_count": item.skip_count, "last_reason": assignment.skip_reason},
        )
    item.save(update_fields=fields)
    return assignment


@transaction.atomic
def queue_item_reopen(*, queue_item_id: int, project: Project, actor: User) -> QueueItem:
    """Put a flagged item back in the queue (an admin looked at it). Skip count starts again."""
    try:
        item = QueueItem.objects.select_for_update().get(pk=queue_item_id, project=project)
    except QueueItem.DoesNotExist:
        raise NotFound("No such queue item.") from None
    if item.status != QueueItem.Status.FLAGGED:
        raise Conflict("Only a flagged item can be reopened.", code="not_flagged")
    item.status = (
        QueueItem.Status.DONE if item.done_count >= item.overlap else QueueItem.Status.OPEN
    )
    item.skip_count = 0
    item.save(update_fields=["status", "skip_count", "updated_at"])
    AuditLog.objects.create(
        project=project,
        actor=actor,
        action="queue_item.reopened",
        object_type="queue_item",
        object_id=str(item.pk),
    )
    return item
