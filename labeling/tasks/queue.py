"""Celery tasks: queue upkeep."""

from __future__ import annotations

from celery import shared_task

from labeling.services.queue import assignments_expire


@shared_task(name="labeling.expire_leases", ignore_result=True)
def expire_leases() -> int:
    """Return overdue leases to the queue in every project (beat runs it every minute; a rerun
    finds nothing to do). Claims also expire leases lazily, so a missed run delays nothing."""
    total = 0
    while True:
        expired = assignments_expire(limit=1000)
        total += expired
        if expired < 1000:
            return total
