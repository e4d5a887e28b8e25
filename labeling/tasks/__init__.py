"""Celery tasks of the labeling app (thin: take ids, call a service). One module per area."""

from labeling.tasks import exports, ingest, queue, webhooks  # noqa: F401
