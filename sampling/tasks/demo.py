"""Task: bootstrap a freshly loaded demo project (``sampling.services.demo``)."""

from __future__ import annotations

from celery import shared_task

from labeling.selectors.projects import project_by_id
from sampling.services.demo import demo_bootstrap as demo_bootstrap_service


@shared_task(name="sampling.demo_bootstrap", ignore_result=True)
def demo_bootstrap(project_id: int) -> int | None:
    """Give a freshly loaded demo project a proxy, scores, the default strategy and its history
    (weekly runs, simulated labels, an alert rule); returns the last run's id."""
    project = project_by_id(project_id)
    if project is None:
        return None
    run = demo_bootstrap_service(project=project)
    return run.pk if run else None
