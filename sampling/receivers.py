"""Receivers of labeling.hooks events: enqueue scoring, retraining, the demo's first run.

Each receiver only enqueues a task after commit (``robust=True``: a broker that is down is logged,
never raised into the committing request); the periodic sweeps (``sampling.score_sweep``,
``sampling.retrain_sweep``) catch up with what was not handed over.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction

from labeling import hooks
from sampling import tasks


def on_interactions_processed(*, project_id: int, interaction_ids: list[int], **_: object) -> None:
    from sampling.services.scoring import chunk_size

    ids = [int(i) for i in interaction_ids]
    step = chunk_size()
    for start in range(0, len(ids), step):
        chunk = ids[start : start + step]
        transaction.on_commit(
            partial(tasks.score_interactions.delay, project_id, chunk), robust=True
        )


def on_labels_submitted(*, project_id: int, count: int = 0, **_: object) -> None:
    transaction.on_commit(lambda: tasks.maybe_retrain.delay(project_id), robust=True)


def on_demo_loaded(*, project_id: int, **_: object) -> None:
    transaction.on_commit(lambda: tasks.demo_bootstrap.delay(project_id), robust=True)


hooks.connect("interactions_processed", on_interactions_processed)
hooks.connect("labels_submitted", on_labels_submitted)
hooks.connect("demo_loaded", on_demo_loaded)
