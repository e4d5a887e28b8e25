"""Celery tasks: follow-up work after ingestion (thin: take ids, call the service; idempotent)."""

from __future__ import annotations

from celery import shared_task

from labeling.services.processing import interactions_process, unprocessed_sweep


@shared_task(name="labeling.process_interactions", acks_late=True, ignore_result=False)
def process_interactions(interaction_ids: list[int]) -> int:
    """Attach late events, recompute aggregates, mark processed. Rerunning is harmless."""
    return len(interactions_process(interaction_ids=interaction_ids))


@shared_task(name="labeling.sweep_unprocessed", acks_late=True, ignore_result=True)
def sweep_unprocessed() -> int:
    """Process whatever a lost message or a Redis outage left with ``processed_at`` null."""
    return unprocessed_sweep()
