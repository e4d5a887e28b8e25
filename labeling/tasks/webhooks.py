"""Celery tasks: webhook deliveries (thin: take an id, call the service; a rerun is harmless)."""

from __future__ import annotations

from celery import current_app, shared_task

from labeling.services.webhooks import webhook_attempt, webhook_deliveries_due

# A retry message arrives this long after the row is due, so its claim finds the row due.
RETRY_MARGIN_S = 0.5


@shared_task(name="labeling.deliver_webhook", acks_late=True, ignore_result=True)
def deliver_webhook(delivery_id: int) -> str:
    """POST one delivery once. On failure the service has set ``next_attempt_at`` (backoff with
    jitter); with a broker this task schedules itself for then, and the sweep is the safety net.
    Without a broker (tests, ``make run``) the retry waits for the sweep."""
    outcome = webhook_attempt(delivery_id=delivery_id)
    if outcome is None:
        return "skipped"
    if outcome.retry_in is not None and not current_app.conf.task_always_eager:
        deliver_webhook.apply_async(args=[delivery_id], countdown=outcome.retry_in + RETRY_MARGIN_S)
    return "delivered" if outcome.ok else f"failed attempt {outcome.attempt}"


@shared_task(name="labeling.sweep_webhooks", ignore_result=True)
def sweep_webhooks() -> int:
    """Send the due deliveries a lost message, a Redis outage or a dead worker left behind."""
    ids = webhook_deliveries_due(limit=1000)
    for delivery_id in ids:
        deliver_webhook.delay(delivery_id)
    return len(ids)
