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
  ``SKIP LOCKED`` so concurrent annotators never wait for each other's item; only when every item
  left for the annotator is locked does a claim wait for one (``_claim_waiting``), rather than
  report an empty queue.
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
from django.db import OperationalError, connection, transaction
from django.db.models import F
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
from labeling.rows import RowReader, row_reader
from labeling.schema import item_texts, values_validate
from labeling.selectors.queues import MAIN, QueueScope, project_queues, queue_scope
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


# The claim's statements run on every queue/next, so they are SQL written here rather than ORM
# queries (building and compiling those cost more CPU than the database spends on them; see
# labeling.rows). Table and column names come from the models.
_ASSIGNMENT = Assignment._meta.db_table
# How long a claim that found every free item locked waits for them (PostgreSQL lock_timeout).
CLAIM_WAIT = "2s"
_ITEM = QueueItem._meta.db_table

# The caller's live lease in the project and any overdue lease (the caller's own first).
_LEASES_SQL = f"""
SELECT a.id, a.annotator_id = %s AND a.lease_expires_at > %s
FROM {_ASSIGNMENT} a JOIN {_ITEM} qi ON qi.id = a.queue_item_id
WHERE qi.project_id = %s AND a.status = 'leased'
  AND ((a.annotator_id = %s AND a.lease_expires_at > %s) OR a.lease_expires_at <= %s)
ORDER BY CASE WHEN a.annotator_id = %s THEN 0 ELSE 1 END, a.id
LIMIT 50"""


def _claim_sql(scope: QueueScope, *, wait: bool = False) -> tuple[str, list[int]]:
    """The next claimable item of one kind (gold or not) with its interaction and named queue:
    open, a free slot, never held by the annotator (except their own expired lease, flagged by
    ``renew``), in serving order (walks the partial index ``ix_queue_open``: project, is_gold,
    -priority, id). On PostgreSQL the row is locked, skipping rows other transactions hold, or,
    with ``wait``, waiting for them (PostgreSQL then checks the row again as the holder left it
    and moves on to the next one when it no longer qualifies)."""
    item, interaction, queue = _item_reader(), _interaction_reader(), _queue_reader()
    where, params = scope.sql("qi.queue_id")
    lock = ""
    if connection.features.has_select_for_update_skip_locked:
        lock = " FOR UPDATE OF qi" if wait else " FOR UPDATE OF qi SKIP LOCKED"
    sql = f"""
SELECT {item.columns}, {interaction.columns}, {queue.columns},
  EXISTS (SELECT 1 FROM {_ASSIGNMENT} r WHERE r.queue_item_id = qi.id
          AND r.annotator_id = %s AND r.status = 'expired')
FROM {item.table} qi
JOIN {interaction.table} i ON i.id = qi.interaction_id
LEFT JOIN {queue.table} q ON q.id = qi.queue_id
WHERE qi.project_id = %s AND qi.status = 'open' AND qi.is_gold = %s
  AND qi.leased_count + qi.done_count < qi.overlap{where}
  AND NOT EXISTS (SELECT 1 FROM {_ASSIGNMENT} m WHERE m.queue_item_id = qi.id
                  AND m.annotator_id = %s AND m.status <> 'expired')
ORDER BY qi.priority DESC, qi.id ASC
LIMIT 1{lock}"""
    return sql, params


def _item_reader() -> RowReader[QueueItem]:
    return row_reader(QueueItem, "qi")


def _interaction_reader() -> RowReader[Interaction]:
    return row_reader(Interaction, "i")


def _queue_reader() -> RowReader[Queue]:
    return row_reader(Queue, "q")


def _assignment_reader() -> RowReader[Assignment]:
    return row_reader(Assignment, "a")


def _claim_next(
    *, project: Project, annotator: User, gold_first: bool, scope: QueueScope, wait: bool = False
) -> tuple[QueueItem, bool] | None:
    """The item ``_claim_sql`` finds, gold items first when ``gold_first`` and otherwise regular
    ones first (each kind falls back to the other), with ``interaction`` and ``queue`` loaded, and
    whether the annotator's own expired lease on it exists (then that row is renewed)."""
    sql, scope_params = _claim_sql(scope, wait=wait)
    row = None
    with connection.cursor() as cursor:
        for gold in (gold_first, not gold_first):
            cursor.execute(sql, [annotator.pk, project.pk, gold, *scope_params, annotator.pk])
            row = cursor.fetchone()
            if row is not None:
                break
    if row is None:
        return None
    item_r, interaction_r, queue_r = _item_reader(), _interaction_reader(), _queue_reader()
    item = item_r.read(row)
    item.interaction = interaction_r.read(row, item_r.width)
    item.queue = queue_r.read_nullable(row, item_r.width + interaction_r.width)
    return item, bool(row[-1])


def _lease(
    *, item: QueueItem, annotator: User, renew: bool, now: datetime, expires: datetime
) -> Assignment:
    """Count the lease on the (locked) item and write the assignment: a new row, or the
    annotator's own expired row renewed."""
    adapt = connection.ops.adapt_datetimefield_value
    reader = _assignment_reader()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_ITEM} SET leased_count = leased_count + 1, updated_at = %s WHERE id = %s",
            [adapt(now), item.pk],
        )
        if renew:
            cursor.execute(
                f"UPDATE {reader.table} SET status = 'leased', leased_at = %s, "
                "lease_expires_at = %s, finished_at = NULL "
                "WHERE queue_item_id = %s AND annotator_id = %s AND status = 'expired' "
                f"RETURNING {reader.names}",
                [adapt(now), adapt(expires), item.pk, annotator.pk],
            )
        else:
            cursor.execute(
                f"INSERT INTO {reader.table} (queue_item_id, annotator_id, status, leased_at, "
                "lease_expires_at, finished_at, skip_reason) "
                "VALUES (%s, %s, 'leased', %s, %s, NULL, '') "
                f"RETURNING {reader.names}",
                [item.pk, annotator.pk, adapt(now), adapt(expires)],
            )
        assignment = reader.read(cursor.fetchone())
    item.leased_count += 1
    assignment.queue_item = item  # the caller gets the interaction without another query
    return assignment


def _claim_waiting(
    *, project: Project, annotator: User, gold_first: bool, scope: QueueScope
) -> tuple[QueueItem, bool] | None:
    """The last try of a claim that skipped locked rows and found nothing: the same search, but
    waiting (at most ``CLAIM_WAIT``) for the rows other transactions hold.

    Without it an annotator could be told the queue is empty while the only items left for them
    were locked for a moment by another annotator's claim or submit (an item with overlap 3 is
    locked while a first annotator takes it, yet has two slots left). Holding only the caller's
    membership row, the wait cannot deadlock (lock order: membership -> assignment -> item, and no
    holder of an item waits for another annotator's membership). On an empty queue the search
    finds no row and returns at once; SQLite runs claims one at a time, so it has nothing to wait
    for. A wait that times out is rolled back to a savepoint and counts as nothing found."""
    if not connection.features.has_select_for_update_skip_locked:
        return None
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
                [CLAIM_WAIT],
            )
            before = cursor.fetchone()[0]
            found = _claim_next(
                project=project, annotator=annotator, gold_first=gold_first, scope=scope, wait=True
            )
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])
            return found
    except OperationalError:  # lock_timeout: treat as nothing free right now
        return None


def _named_queues(project: Project) -> list[Queue]:
    reader = _queue_reader()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {reader.columns} FROM {reader.table} q WHERE q.project_id = %s "
            "ORDER BY q.position, q.id",
            [project.pk],
        )
        return [reader.read(row) for row in cursor.fetchall()]


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
    adapt = connection.ops.adapt_datetimefield_value
    with transaction.atomic():
        skills = _member_locked(project=project, annotator=annotator)
        scope = queue_scope(
            project=project,
            skills=skills,
            queue=queue,
            named=None if queue == MAIN else _named_queues(project),
        )
        # One query finds both the caller's live lease and any overdue lease in the project.
        with connection.cursor() as cursor:
            cursor.execute(
                _LEASES_SQL,
                [
                    annotator.pk,
                    adapt(now),
                    project.pk,
                    annotator.pk,
                    adapt(now),
                    adapt(now),
                    annotator.pk,
                ],
            )
            leases = [(a, bool(live_mine)) for a, live_mine in cursor.fetchall()]
        mine = [a for a, live_mine in leases if live_mine]
        if mine:
            return Assignment.objects.select_related(
                "queue_item__interaction", "queue_item__queue"
            ).get(pk=mine[0])
        if leases:  # every row that is not the caller's live lease is overdue
            _expire_locked(project=project, now=now, limit=200)
        gold_first = project.gold_rate > 0 and draw() < project.gold_rate
        found = _claim_next(
            project=project, annotator=annotator, gold_first=gold_first, scope=scope
        )
        if found is None:
            found = _claim_waiting(
                project=project, annotator=annotator, gold_first=gold_first, scope=scope
            )
        if found is None:
            return None
        item, renew = found
        expires = now + timedelta(seconds=project.lease_seconds)
        return _lease(item=item, annotator=annotator, renew=renew, now=now, expires=expires)


def _assignment_locked(*, assignment_id: int, annotator: User) -> tuple[Assignment, QueueItem]:
    """The caller's own assignment and its queue item (with project and interaction), both
    row-locked by one statement; someone else's assignment (or a missing one) is a 404.

    ``FOR UPDATE OF`` the assignment and the item locks them in that order (PostgreSQL locks a
    joined row's tables in FROM order), the lock order every function here keeps."""
    a_r, item_r = _assignment_reader(), _item_reader()
    project_r, interaction_r = row_reader(Project, "p"), _interaction_reader()
    lock = " FOR UPDATE OF a, qi" if connection.features.has_select_for_update_of else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {a_r.columns}, {item_r.columns}, {project_r.columns}, {interaction_r.columns} "
            f"FROM {a_r.table} a JOIN {item_r.table} qi ON qi.id = a.queue_item_id "
            f"JOIN {project_r.table} p ON p.id = qi.project_id "
            f"JOIN {interaction_r.table} i ON i.id = qi.interaction_id "
            f"WHERE a.id = %s AND a.annotator_id = %s{lock}",
            [assignment_id, annotator.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such assignment.")
    assignment = a_r.read(row)
    item = item_r.read(row, a_r.width)
    item.project = project_r.read(row, a_r.width + item_r.width)
    item.interaction = interaction_r.read(row, a_r.width + item_r.width + project_r.width)
    assignment.queue_item = item
    return assignment, item


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
    item.done_count += 1
    if was_leased:
        item.leased_count -= 1
    if item.done_count >= item.overlap and item.status == QueueItem.Status.OPEN:
        item.status = QueueItem.Status.DONE
    item.updated_at = timezone.now()  # as auto_now would
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:  # both rows are locked (SQL: see labeling.rows)
        cursor.execute(
            f"UPDATE {_ASSIGNMENT} SET status = %s, finished_at = %s WHERE id = %s",
            [assignment.status, adapt(now), assignment.pk],
        )
        cursor.execute(
            f"UPDATE {_ITEM} SET done_count = %s, leased_count = %s, status = %s, "
            "updated_at = %s WHERE id = %s",
            [item.done_count, item.leased_count, item.status, adapt(item.updated_at), item.pk],
        )
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
