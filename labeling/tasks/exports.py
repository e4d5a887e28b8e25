"""Celery tasks: exports (thin: take an id, call the service; a rerun is harmless)."""

from __future__ import annotations

from celery import shared_task

from labeling.services.exports import export_run


@shared_task(name="labeling.run_export", acks_late=True)
def run_export(export_id: int) -> str:
    """Write one export. The service's conditional claim makes duplicates and redeliveries no-ops;
    a worker killed mid-export leaves the row running with a stale heartbeat, which the next
    delivery of this message claims again."""
    export = export_run(export_id=export_id)
    return export.status if export is not None else "missing"
