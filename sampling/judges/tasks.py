"""Celery tasks of the judges, all on the ``judges`` queue: thin, named, idempotent.

``judges.run`` judges one batch and re-enqueues itself while work is left; ``judges.sweep``
(Celery beat) lifts budget pauses on a new day, queues the unconsidered pool of pool-scope judges
and re-enqueues judges with pending work (a lost message, a killed worker's expired lease).
``judges.calibrate`` recomputes a project's trust reports (and judge weights) after labels arrive
(debounced) and from ``judges.calibrate_sweep`` (beat) for what a lost message left out.
"""

from __future__ import annotations

import logging

from celery import current_app, shared_task

from labeling import dispatch
from sampling.judges import calibration_report, execution
from sampling.judges.models import Judge, JudgeResult

logger = logging.getLogger(__name__)

QUEUE = "judges"
POOL_CHUNK = 5000
MAX_EAGER_BATCHES = 10_000


def _rescore(project_id: int, interaction_ids: list[int]) -> None:
    """Re-score judged interactions with the proxy when the judge feeds it (primary)."""
    dispatch.enqueue("sampling.score_interactions", project_id, interaction_ids)


@shared_task(name="judges.run", ignore_result=True)
def run_judge(judge_id: int) -> int:
    """Judge the judge's pending work, one batch per task (eagerly: loop while progress is made)."""
    eager = bool(current_app.conf.task_always_eager)
    judged = 0
    for _ in range(MAX_EAGER_BATCHES if eager else 1):
        outcome = execution.judge_run_batch(judge_id=judge_id)
        judged += outcome.done
        if outcome.judged_ids:
            judge = Judge.objects.select_related("project").get(pk=judge_id)
            if judge.project.primary_judge == judge.score_key:
                _rescore(judge.project_id, outcome.judged_ids)
        if not outcome.more or outcome.paused:
            break
        if not eager:
            run_judge.apply_async((judge_id,), countdown=outcome.retry_in, queue=QUEUE)
            break
        if outcome.progress == 0:
            break  # eagerly, an open circuit or a held lock: the sweep comes back later
    return judged


@shared_task(name="judges.schedule", ignore_result=True)
def schedule_arrivals(project_id: int, interaction_ids: list[int]) -> int:
    """Queue new arrivals for every active judge whose scope takes them, then run those judges."""
    queued = 0
    for judge in execution.judges_for_arrivals(project_id=project_id):
        added = execution.judge_schedule(judge=judge, interaction_ids=interaction_ids)
        queued += added
        if added:
            run_judge.delay(judge.pk)
    return queued


@shared_task(name="judges.sweep", ignore_result=True)
def sweep() -> int:
    execution.budget_pauses_lift()
    started = 0
    for judge in Judge.objects.filter(status=Judge.Status.ACTIVE):
        if judge.scope == Judge.Scope.POOL:
            ids = execution.pool_unjudged_ids(judge=judge, limit=POOL_CHUNK)
        else:
            ids = execution.arrivals_unjudged_ids(judge=judge, limit=POOL_CHUNK)
        execution.judge_schedule(judge=judge, interaction_ids=ids)
    pending = (
        JudgeResult.objects.filter(
            status=JudgeResult.Status.PENDING, judge__status=Judge.Status.ACTIVE
        )
        .values_list("judge_id", flat=True)
        .distinct()
    )
    for judge_id in sorted(set(pending)):
        run_judge.delay(judge_id)
        started += 1
    return started


CALIBRATE_DEBOUNCE_S = 60


def calibrate_soon(project_id: int) -> bool:
    """Enqueue one ``judges.calibrate`` per project per ``CALIBRATE_DEBOUNCE_S`` (labels arrive one
    at a time; the report is recomputed once for the burst). Returns whether one was enqueued."""
    from django.core.cache import cache

    if not cache.add(f"judges:calibrate-soon:{project_id}", 1, timeout=CALIBRATE_DEBOUNCE_S):
        return False
    if not Judge.objects.filter(project_id=project_id).exists():
        return False  # no judge to calibrate (a judge added meanwhile: judges.calibrate_sweep)
    calibrate.apply_async((project_id,), countdown=CALIBRATE_DEBOUNCE_S, queue=QUEUE)
    return True


@shared_task(name="judges.calibrate", ignore_result=True)
def calibrate(project_id: int, force: bool = False) -> dict[str, float | None]:
    """Trust reports of the project's judges whose labels changed; sets weights (R^2 <= 0: 0).
    When that changes what the proxy reads (the primary judge lost or regained its weight), the
    proxy is retrained and the pool rescored with it."""
    from labeling.models import Project

    before = Project.objects.filter(pk=project_id).values_list("primary_judge", flat=True).first()
    done = calibration_report.judges_calibrate(project_id=project_id, force=force)
    after = Project.objects.filter(pk=project_id).values_list("primary_judge", flat=True).first()
    if before != after:
        dispatch.enqueue("sampling.retrain", project_id)
    return done


@shared_task(name="judges.calibrate_sweep", ignore_result=True)
def calibrate_sweep() -> int:
    """Calibrate every project with a judge whose calibration is due."""
    started = 0
    for project_id in sorted(set(Judge.objects.values_list("project_id", flat=True))):
        calibrate.delay(project_id)
        started += 1
    return started
