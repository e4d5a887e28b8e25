"""Many annotators claiming at once on PostgreSQL: never beyond overlap, never twice per
annotator, every item eventually done. Real threads, real connections, real row locks."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.db.models import Count

from labeling.models import Annotation, Assignment, QueueItem, Role
from labeling.services.queue import assignment_claim, assignment_skip, assignment_submit
from tests.factories import (
    InteractionFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WORKERS = 16
PATIENCE_S = 5.0


def _claim_or_none_when_done(project: Any, user: Any) -> Any:
    """Claim as an annotator does: told that nothing is free right now, they come back a moment
    later while open items remain, and stop after ``PATIENCE_S`` without a lease (or when every
    item is done). An item whose last slot another annotator holds is free again when that
    annotator skips it, so one empty claim does not mean the queue is finished."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        lease = assignment_claim(project=project, annotator=user)
        if lease is not None:
            return lease
        still_open = QueueItem.objects.filter(project=project, status="open").exists()
        if not still_open or time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def test_sixteen_concurrent_claimers_respect_overlap_and_finish_everything() -> None:
    project = ProjectFactory(slug="race")
    users = [UserFactory(username=f"racer{i}") for i in range(WORKERS)]
    for user in users:
        MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
    overlaps = [1, 2, 3] * 20  # 60 items wanting 120 annotations
    for overlap in overlaps:
        QueueItem.objects.create(
            project=project,
            interaction=InteractionFactory(project=project),
            overlap=overlap,
        )
    barrier = threading.Barrier(WORKERS)
    errors: list[BaseException] = []
    max_seen: list[int] = []

    def work(index: int, user: Any) -> None:
        try:
            barrier.wait(timeout=30)
            while True:
                lease = _claim_or_none_when_done(project, user)
                if lease is None:
                    return
                # Snapshot while holding the lease: slots in use never exceed the overlap.
                item = QueueItem.objects.get(pk=lease.queue_item_id)
                max_seen.append(item.leased_count + item.done_count - item.overlap)
                if (lease.pk + index) % 11 == 0:  # some annotators skip some items
                    assignment_skip(assignment_id=lease.pk, annotator=user, reason="unsure")
                else:
                    assignment_submit(assignment_id=lease.pk, annotator=user, values={"quality": 3})
        except BaseException as exc:  # reported below; a thread must not die silently
            errors.append(exc)
        finally:
            connections.close_all()

    project.max_skips = 0  # never flag here: every item must end done
    project.save()
    threads = [threading.Thread(target=work, args=(i, u)) for i, u in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert connection.vendor == "postgresql"
    assert max(max_seen) <= 0
    # No annotator holds an item twice (the constraint would have raised, but check the rows).
    dupes = (
        Assignment.objects.values("queue_item", "annotator").annotate(n=Count("id")).filter(n__gt=1)
    )
    assert not dupes.exists()
    # Every item is done with exactly `overlap` annotations from distinct annotators.
    items = list(QueueItem.objects.filter(project=project))
    assert {i.status for i in items} == {"done"}
    per_item = Counter(
        Annotation.objects.filter(queue_item__project=project).values_list(
            "queue_item_id", flat=True
        )
    )
    for item in items:
        assert item.done_count == item.overlap == per_item[item.pk]
        assert item.leased_count == 0
        annotators = Annotation.objects.filter(queue_item=item).values_list(
            "annotator_id", flat=True
        )
        assert len(set(annotators)) == item.overlap
    assert not Assignment.objects.filter(status="leased").exists()


def test_one_annotator_claiming_in_parallel_gets_one_lease() -> None:
    """A double click (or two tabs) must not take two items: the membership row lock orders
    the claims and the second one returns the first one's lease."""
    project = ProjectFactory(slug="double")
    user = UserFactory(username="clicker")
    MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
    for _ in range(10):
        QueueItem.objects.create(project=project, interaction=InteractionFactory(project=project))
    barrier = threading.Barrier(8)
    leases: list[int] = []
    errors: list[BaseException] = []

    def click() -> None:
        try:
            barrier.wait(timeout=30)
            lease = assignment_claim(project=project, annotator=user)
            assert lease is not None
            leases.append(lease.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(set(leases)) == 1
    assert Assignment.objects.filter(annotator=user).count() == 1
    assert QueueItem.objects.filter(project=project, leased_count=1).count() == 1


def test_sixteen_claimers_across_named_queues_respect_skills_overlap_and_finish() -> None:
    """Named queues narrow what a claim may take, nothing else: with a skill queue, half of the
    annotators skilled, every item still ends done, never beyond overlap or twice per annotator,
    and no unskilled annotator ever holds an item of the skill queue."""
    from labeling.services.queue import queue_items_enqueue
    from labeling.services.queues import member_skills_set, queue_create

    project = ProjectFactory(slug="race-queues")
    project.max_skips = 0
    project.save()
    queue_create(
        project=project,
        actor=None,
        data={"name": "German", "segment": {"locale": ["de"]}, "skill": "de"},
    )
    users = [UserFactory(username=f"qracer{i}") for i in range(WORKERS)]
    for i, user in enumerate(users):
        MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
        if i % 2 == 0:
            member_skills_set(project=project, user=user, skills=["de"], actor=None)
    skilled = {u.pk for i, u in enumerate(users) if i % 2 == 0}
    ids = [
        InteractionFactory(project=project, segment={"locale": "de" if n % 2 else "en"}).pk
        for n in range(60)
    ]
    queue_items_enqueue(
        project=project, interaction_ids=ids, overlap_by_id={i: 1 + (i % 3) for i in ids}
    )
    assert QueueItem.objects.filter(project=project, queue__isnull=False).count() == 30
    barrier = threading.Barrier(WORKERS)
    errors: list[BaseException] = []

    def work(user: Any) -> None:
        try:
            barrier.wait(timeout=30)
            while True:
                lease = _claim_or_none_when_done(project, user)
                if lease is None:
                    return
                assignment_submit(assignment_id=lease.pk, annotator=user, values={"quality": 3})
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    dupes = (
        Assignment.objects.values("queue_item", "annotator").annotate(n=Count("id")).filter(n__gt=1)
    )
    assert not dupes.exists()
    items = list(QueueItem.objects.filter(project=project))
    assert {i.status for i in items} == {"done"}
    for item in items:
        assert item.done_count == item.overlap
        assert item.leased_count == 0
    german_annotators = set(
        Assignment.objects.filter(queue_item__queue__isnull=False).values_list(
            "annotator_id", flat=True
        )
    )
    assert german_annotators <= skilled


def _hold_item_lock(item_id: int, locked: threading.Event, release: threading.Event) -> None:
    """Another transaction holding the item's row lock, as a claim or a submit does for a
    moment, until ``release`` is set."""
    try:
        with transaction.atomic():
            QueueItem.objects.select_for_update().get(pk=item_id)
            locked.set()
            release.wait(timeout=30)
    finally:
        connections.close_all()


def test_a_claim_waits_for_the_only_free_item_rather_than_report_an_empty_queue() -> None:
    """The one item left has a free slot but another transaction holds its row for a moment:
    the claim skips it, finds nothing, then waits for it and takes it when the lock goes."""
    project = ProjectFactory(slug="wait")
    user = UserFactory(username="waiter")
    MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
    item = QueueItem.objects.create(
        project=project, interaction=InteractionFactory(project=project), overlap=2
    )
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_item_lock, args=(item.pk, locked, release))
    holder.start()
    assert locked.wait(timeout=30)
    threading.Timer(0.3, release.set).start()
    lease = assignment_claim(project=project, annotator=user)
    holder.join(timeout=30)
    assert lease is not None
    assert lease.queue_item_id == item.pk
    item.refresh_from_db()
    assert item.leased_count == 1


def test_a_claim_that_waits_too_long_reports_nothing_and_leaves_no_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lock held past the wait: the claim answers None (no error), writes nothing, and the
    caller's transaction is usable afterwards (the wait was rolled back to its savepoint)."""
    from labeling.services import queue as queue_service

    monkeypatch.setattr(queue_service, "CLAIM_WAIT", "200ms")
    project = ProjectFactory(slug="wait-long")
    user = UserFactory(username="impatient")
    MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
    item = QueueItem.objects.create(
        project=project, interaction=InteractionFactory(project=project)
    )
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_item_lock, args=(item.pk, locked, release))
    holder.start()
    assert locked.wait(timeout=30)
    try:
        assert assignment_claim(project=project, annotator=user) is None
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('lock_timeout')")
            assert cursor.fetchone()[0] == "0"
    finally:
        release.set()
        holder.join(timeout=30)
    assert not Assignment.objects.filter(annotator=user).exists()
    lease = assignment_claim(project=project, annotator=user)
    assert lease is not None
    assert lease.queue_item_id == item.pk
