"""Task: evaluate the alert rules (hourly from beat, or one project on demand)."""

from __future__ import annotations

from celery import shared_task

from labeling.selectors.projects import project_by_id
from sampling.services import alerts as alert_services


@shared_task(name="sampling.evaluate_alerts", ignore_result=True)
def evaluate_alerts(project_id: int | None = None) -> int:
    """Run the alert rules (one project, or every project with an active rule); idempotent."""
    if project_id is None:
        return alert_services.alerts_evaluate_all()
    project = project_by_id(project_id)
    return 0 if project is None else len(alert_services.alerts_evaluate(project=project))
