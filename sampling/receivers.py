"""Receivers of labeling.hooks events: enqueue scoring, retraining, the demo's first run; of the
deletion of a sampling run (it resets the project's pool watermark); and of the deletion of an
interaction (it leaves its runs' population and topic cells).

Two receivers work inside labeling's processing transaction (``labeling.hooks.call``): the run
lock taken before processing locks its rows, and the population cells' rating counts moved with the
ratings it writes (``sampling.services.ratings``). Every other receiver only enqueues a task by name
after commit
(:func:`labeling.dispatch.enqueue_on_commit`: a broker that is down is logged, never raised into
the committing request); the periodic sweeps (``sampling.score_sweep``,
``sampling.retrain_sweep``) catch up with what was not handed over.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.db.models.signals import post_delete, pre_delete
from django.utils import timezone

from flywheel_site.app_settings import setting
from labeling import dispatch, hooks


def on_interactions_processed(*, project_id: int, interaction_ids: list[int], **_: object) -> None:
    from sampling.services.scoring import chunk_size

    ids = [int(i) for i in interaction_ids]
    step = chunk_size()
    for start in range(0, len(ids), step):
        chunk = ids[start : start + step]
        dispatch.enqueue_on_commit("sampling.score_interactions", project_id, chunk)


def on_labels_submitted(*, project_id: int, count: int = 0, **_: object) -> None:
    """One retrain check per project per ``RETRAIN_CHECK_S``, run at the end of the window: it
    counts every label submitted meanwhile, so coalescing them loses nothing (it only delays a due
    retraining by at most the window)."""
    dispatch.enqueue_coalesced(
        "sampling.maybe_retrain", project_id, window_s=float(setting("RETRAIN_CHECK_S"))
    )


def on_demo_loaded(*, project_id: int, **_: object) -> None:
    dispatch.enqueue_on_commit("sampling.demo_bootstrap", project_id)


def on_run_deleted(*, instance: object, **_: object) -> None:
    """A deleted run takes its inclusions with it: its interactions are unconsidered again and
    may lie below the project's pool watermark, so the watermark goes (the next run reads the
    whole project and sets it again)."""
    from sampling.models import PoolWatermark

    project_id = getattr(instance, "project_id", None)
    if project_id is not None:
        PoolWatermark.objects.filter(project_id=int(project_id)).delete()


def on_interaction_deleting(*, instance: Any, origin: Any = None, **_: object) -> None:
    """Before an interaction is deleted (a retention script, the shell; the admin refuses once a
    run considered it, since it may not delete an inclusion), in the deleting transaction and
    before its Inclusion row goes: take it out of its runs' population and topic cells (they count
    every considered interaction, and nothing else would take it out), and touch the project's
    ``updated_at``, which the estimates' and the dashboard's cache keys hold (the selected items
    changed though no run finished). Not when the project itself is being deleted: its cells go
    with it."""
    from labeling.models import Project
    from sampling.services.population import population_cells_forget
    from sampling.services.topic_cells import run_lock_shared, topic_cells_forget

    if isinstance(origin, Project) or (isinstance(origin, QuerySet) and origin.model is Project):
        return
    ids = [int(instance.pk)]
    run_lock_shared(project_ids=[int(instance.project_id)])
    population_cells_forget(interaction_ids=ids)
    topic_cells_forget(interaction_ids=ids)
    Project.objects.filter(pk=instance.project_id).update(updated_at=timezone.now())


def on_interactions_processing(*, interaction_ids: list[int], **_: object) -> None:
    """In processing's transaction, before its row locks: the projects' run lock, shared."""
    from sampling.services.ratings import ratings_lock

    ratings_lock(interaction_ids=interaction_ids)


def on_ratings_changed(*, changes: list[tuple[int, int | None, int | None]], **_: object) -> None:
    """In processing's transaction: move the changed ratings in the population cells."""
    from sampling.services.ratings import population_ratings_move

    population_ratings_move(changes=changes)


hooks.connect("interactions_processed", on_interactions_processed)
hooks.connect("interactions_processing", on_interactions_processing)
hooks.connect("ratings_changed", on_ratings_changed)
hooks.connect("labels_submitted", on_labels_submitted)
hooks.connect("demo_loaded", on_demo_loaded)
post_delete.connect(on_run_deleted, sender="sampling.SamplingRun")
pre_delete.connect(on_interaction_deleting, sender="labeling.Interaction")
