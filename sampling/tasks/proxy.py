"""Tasks: train a new proxy model (on demand, when labels outgrew it, and the periodic sweep)."""

from __future__ import annotations

from celery import shared_task

from labeling import dispatch
from labeling.selectors.projects import project_by_id, project_ids
from sampling.services import proxy as proxy_services
from sampling.tasks.scoring import rescore_pool


@shared_task(name="sampling.retrain", ignore_result=True)
def retrain(project_id: int) -> int | None:
    """Train a new proxy (skipped if one is training) and re-score the unconsidered pool."""
    project = project_by_id(project_id)
    if project is None:
        return None
    model = proxy_services.proxy_train(project=project)
    if model is None:
        return None
    rescore_pool.delay(project_id, model.version, 0)
    return model.version


@shared_task(name="sampling.maybe_retrain", ignore_result=True)
def maybe_retrain(project_id: int) -> int | None:
    """Retrain when ``Project.retrain_every`` labels arrived since the current model.

    Enqueued coalesced after submits (``labeling.dispatch.enqueue_coalesced``): labels submitted
    from now on enqueue the next check."""
    dispatch.coalesced_started("sampling.maybe_retrain", project_id)
    project = project_by_id(project_id)
    if project is None or not proxy_services.retrain_due(project=project):
        return None
    return retrain(project_id)


@shared_task(name="sampling.retrain_sweep", ignore_result=True)
def retrain_sweep() -> None:
    """The scheduled retrain: every project whose labels outgrew its model."""
    for project_id in project_ids():
        maybe_retrain.delay(project_id)
