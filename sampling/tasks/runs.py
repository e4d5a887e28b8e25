"""Tasks: execute a sampling run, start the runs whose schedule is due, resume lost runs."""

from __future__ import annotations

from celery import shared_task

from sampling.services.runs import (
    PENDING_GRACE_S,
    runs_to_resume,
    sampling_run_execute,
    scheduled_runs_start,
)


@shared_task(name="sampling.execute_run", ignore_result=True)
def execute_run(run_id: int) -> str | None:
    run = sampling_run_execute(run_id=run_id)
    return run.status if run else None


@shared_task(name="sampling.dispatch_scheduled_runs", ignore_result=True)
def dispatch_scheduled_runs() -> int:
    """Start a run for every active strategy whose crontab ``schedule`` is due
    (``sampling.services.runs.scheduled_runs_start``), then hand runs whose message was lost to
    ``sampling.resume_pending_runs``."""
    started = scheduled_runs_start()
    resume_pending_runs.delay()
    return started


@shared_task(name="sampling.resume_pending_runs", ignore_result=True)
def resume_pending_runs(older_than_s: int = PENDING_GRACE_S) -> int:
    """Re-enqueue runs still pending after ``older_than_s`` (their message was lost: Redis down
    when the run was started) and runs whose worker died mid-run (running and stale). Harmless for
    a run that is executing: the claim fails and the task does nothing."""
    ids = runs_to_resume(older_than_s=older_than_s)
    for run_id in ids:
        execute_run.delay(run_id)
    return len(ids)
