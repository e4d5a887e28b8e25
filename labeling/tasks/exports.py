"""Celery tasks: exports (thin: take an id, call the service; a rerun is harmless)."""

from __future__ import annotations

from celery import shared_task

from labeling.services.exports import export_run, exports_needing_work


@shared_task(name="labeling.run_export", acks_late=True)
def run_export(export_id: int) -> str:
    """Write one export. The service's conditional claim makes duplicates and redeliveries no-ops;
    a worker killed mid-export leaves the row running with a stale heartbeat, which the sweep
    (or the next delivery of this message) claims again."""
    export = export_run(export_id=export_id)
    return export.status if export is not None else "missing"


@shared_task(name="labeling.sweep_exports")
def sweep_exports() -> int:
    """Re-enqueue exports whose message was lost (Redis down at creation) or whose worker died."""
    ids = exports_needing_work()
    for export_id in ids:
        run_export.delay(export_id)
    return len(ids)
