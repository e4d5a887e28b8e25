"""Celery tasks of the sampling app: thin, idempotent, named; each takes ids and calls a service.

Re-running any of them is harmless: scoring writes the same values, a run that is no longer
pending is left alone, a training that finds a claim skips.
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import partial

from celery import current_app, shared_task
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labeling import dispatch
from labeling.models import Project
from sampling.models import ProxyModel, SamplingRun, SamplingStrategy
from sampling.selectors.pool import proxy_current
from sampling.services import alerts as alert_services
from sampling.services import proxy as proxy_services
from sampling.services import scoring
from sampling.services.demo import demo_history
from sampling.services.runs import run_stale_after, sampling_run_create, sampling_run_execute
from sampling.services.strategies import crontab_parse, strategy_ensure_default

logger = logging.getLogger(__name__)

SWEEP_CHUNKS_PER_PROJECT = 20
PENDING_GRACE_S = 300
RESCORE_WAVE = 16  # chunks enqueued per rescore_pool call


def _project(project_id: int) -> Project | None:
    return Project.objects.filter(pk=project_id).first()


@shared_task(name="sampling.score_interactions", ignore_result=True)
def score_interactions(project_id: int, interaction_ids: list[int]) -> int:
    """Score (or re-score) the given interactions with the project's current proxy."""
    project = _project(project_id)
    if project is None:
        return 0
    return scoring.interactions_score(project=project, interaction_ids=interaction_ids)


@shared_task(name="sampling.score_sweep", ignore_result=True)
def score_sweep() -> int:
    """Hand every unscored interaction (a lost message, Redis down at ingest) to scoring tasks."""
    queued = 0
    step = scoring.chunk_size()
    for project in Project.objects.all():
        ids = scoring.unscored_ids(project=project, limit=step * SWEEP_CHUNKS_PER_PROJECT)
        for start in range(0, len(ids), step):
            score_interactions.delay(project.pk, ids[start : start + step])
            queued += len(ids[start : start + step])
    return queued


@shared_task(name="sampling.retrain", ignore_result=True)
def retrain(project_id: int) -> int | None:
    """Train a new proxy (skipped if one is training) and re-score the unconsidered pool."""
    project = _project(project_id)
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
    project = _project(project_id)
    if project is None or not proxy_services.retrain_due(project=project):
        return None
    return retrain(project_id)


@shared_task(name="sampling.retrain_sweep", ignore_result=True)
def retrain_sweep() -> None:
    """The scheduled retrain: every project whose labels outgrew its model."""
    for project_id in Project.objects.values_list("pk", flat=True):
        maybe_retrain.delay(project_id)


@shared_task(name="sampling.rescore_pool", ignore_result=True)
def rescore_pool(project_id: int, version: int, after_id: int) -> None:
    """Re-score the unconsidered pool after ``after_id`` with model ``version``, fanned out.

    Enqueues one ``sampling.rescore_chunk`` per chunk of ``SCORE_CHUNK_SIZE`` ids, a wave of
    ``RESCORE_WAVE`` chunks at a time, then itself for the next wave: every worker takes chunks,
    so re-scoring scales with workers, and a worker restart loses at most one chunk. Stops when a
    newer model exists (its own re-score takes over).
    """
    project = _project(project_id)
    current = proxy_current(project=project) if project else None
    if project is None or current is None or current.version != version:
        return
    eager = bool(current_app.conf.task_always_eager)
    while ranges := scoring.pool_wave(project=project, after_id=after_id, chunks=RESCORE_WAVE):
        for lower, upper in ranges:
            rescore_chunk.delay(project_id, version, lower, upper)
        after_id = ranges[-1][1]
        if len(ranges) < RESCORE_WAVE:
            return  # the pool's end
        if not eager:
            rescore_pool.delay(project_id, version, after_id)
            return
        # Eagerly (no broker) the chain would recurse once per wave: loop instead.


@shared_task(name="sampling.rescore_chunk", ignore_result=True)
def rescore_chunk(project_id: int, version: int, after_id: int, upto_id: int) -> int:
    """Re-score the pool ids ``after_id < id <= upto_id`` with model ``version`` (if current)."""
    project = _project(project_id)
    current = proxy_current(project=project) if project else None
    if project is None or current is None or current.version != version:
        return 0
    ids = scoring.pool_chunk_ids(
        project=project, after_id=after_id, upto_id=upto_id, limit=upto_id - after_id
    )
    return scoring.interactions_score(project=project, interaction_ids=ids, model=current)


@shared_task(name="sampling.execute_run", ignore_result=True)
def execute_run(run_id: int) -> str | None:
    run = sampling_run_execute(run_id=run_id)
    return run.status if run else None


@shared_task(name="sampling.dispatch_scheduled_runs", ignore_result=True)
def dispatch_scheduled_runs() -> int:
    """Start a run for every active strategy whose crontab ``schedule`` is due.

    The last run of the strategy is the schedule's memory; the strategy row is locked while
    deciding, so two overlapping dispatchers start one run, not two. It also hands runs whose
    message was lost to ``sampling.resume_pending_runs``.
    """
    started = 0
    due_ids = (
        SamplingStrategy.objects.filter(active=True, schedule__isnull=False)
        .exclude(schedule="")
        .values_list("pk", flat=True)
    )
    for strategy_id in due_ids:
        with transaction.atomic():
            strategy = (
                SamplingStrategy.objects.select_for_update()
                .select_related("project")
                .filter(pk=strategy_id)
                .first()
            )
            if strategy is None or not strategy.schedule:
                continue
            last = (
                SamplingRun.objects.filter(strategy=strategy)
                .order_by("-created_at")
                .values_list("created_at", flat=True)
                .first()
            ) or strategy.created_at
            try:
                schedule = crontab_parse(strategy.schedule)
            except ValueError:
                logger.error(
                    "strategy %s has an invalid schedule %r", strategy.pk, strategy.schedule
                )
                continue
            if schedule.remaining_estimate(last).total_seconds() > 0:
                continue
            run = sampling_run_create(project=strategy.project, strategy=strategy)
            transaction.on_commit(partial(execute_run.delay, run.pk), robust=True)
            started += 1
    resume_pending_runs.delay()
    return started


@shared_task(name="sampling.resume_pending_runs", ignore_result=True)
def resume_pending_runs(older_than_s: int = PENDING_GRACE_S) -> int:
    """Re-enqueue runs still pending after ``older_than_s`` (their message was lost: Redis down
    when the run was started) and runs whose worker died mid-run (running and stale). Harmless for
    a run that is executing: the claim fails and the task does nothing."""
    now = timezone.now()
    cutoff = now - dt.timedelta(seconds=older_than_s)
    ids = list(
        SamplingRun.objects.filter(
            Q(status=SamplingRun.Status.PENDING, created_at__lt=cutoff)
            | Q(status=SamplingRun.Status.RUNNING, started_at__lt=now - run_stale_after())
        ).values_list("pk", flat=True)[:100]
    )
    for run_id in ids:
        execute_run.delay(run_id)
    return len(ids)


@shared_task(name="sampling.demo_bootstrap", ignore_result=True)
def demo_bootstrap(project_id: int) -> int | None:
    """Give a freshly loaded demo project a proxy, scores, the default strategy and its history
    (weekly runs, simulated labels, an alert rule: ``sampling.services.demo``)."""
    project = _project(project_id)
    if project is None:
        return None
    strategy_ensure_default(project=project)
    if not ProxyModel.objects.filter(project=project, status=ProxyModel.Status.READY).exists():
        proxy_services.proxy_train(project=project)
    step = scoring.chunk_size()
    while ids := scoring.unscored_ids(project=project, limit=step):
        scoring.interactions_score(project=project, interaction_ids=ids)
    runs = demo_history(project=project)
    if not runs:
        return None
    logger.info(
        "demo project %s: %s weekly sampling runs with simulated labels at %s",
        project.slug,
        len(runs),
        timezone.now(),
    )
    return runs[-1].pk


@shared_task(name="sampling.evaluate_alerts", ignore_result=True)
def evaluate_alerts(project_id: int | None = None) -> int:
    """Run the alert rules (one project, or every project with an active rule); idempotent."""
    if project_id is None:
        return alert_services.alerts_evaluate_all()
    project = _project(project_id)
    return 0 if project is None else len(alert_services.alerts_evaluate(project=project))
