"""Tasks: score interactions with the current proxy, sweep up unscored ones, re-score the pool."""

from __future__ import annotations

from celery import current_app, shared_task

from labeling.selectors.projects import project_by_id
from sampling.services import scoring

RESCORE_WAVE = 16  # chunks enqueued per rescore_pool call


@shared_task(name="sampling.score_interactions", ignore_result=True)
def score_interactions(project_id: int, interaction_ids: list[int]) -> int:
    """Score (or re-score) the given interactions with the project's current proxy."""
    project = project_by_id(project_id)
    if project is None:
        return 0
    return scoring.interactions_score(project=project, interaction_ids=interaction_ids)


@shared_task(name="sampling.score_sweep", ignore_result=True)
def score_sweep() -> int:
    """Hand every unscored interaction (a lost message, Redis down at ingest) to scoring tasks."""
    queued = 0
    for project_id, ids in scoring.unscored_batches():
        score_interactions.delay(project_id, ids)
        queued += len(ids)
    return queued


@shared_task(name="sampling.rescore_pool", ignore_result=True)
def rescore_pool(project_id: int, version: int, after_id: int) -> None:
    """Re-score the unconsidered pool after ``after_id`` with model ``version``, fanned out.

    Enqueues one ``sampling.rescore_chunk`` per chunk of ``SCORE_CHUNK_SIZE`` ids, a wave of
    ``RESCORE_WAVE`` chunks at a time, then itself for the next wave: every worker takes chunks,
    so re-scoring scales with workers, and a worker restart loses at most one chunk. Stops when a
    newer model exists (its own re-score takes over).
    """
    eager = bool(current_app.conf.task_always_eager)
    while ranges := scoring.pool_rescore_wave(
        project_id=project_id, version=version, after_id=after_id, chunks=RESCORE_WAVE
    ):
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
    return scoring.pool_rescore_range(
        project_id=project_id, version=version, after_id=after_id, upto_id=upto_id
    )
