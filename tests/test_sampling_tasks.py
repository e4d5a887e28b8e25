"""Sampling tasks that repair lost work: pending runs whose message never arrived."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from labeling.models import Project
from sampling.models import Inclusion, SamplingRun, SamplingStrategy
from sampling.services.runs import sampling_run_create
from sampling.tasks.proxy import retrain
from sampling.tasks.runs import execute_run, resume_pending_runs
from tests.sampling_fixtures import seed_interactions


@pytest.fixture(autouse=True)
def _model_root(tmp_path: Path):
    with override_settings(MODEL_ROOT=tmp_path / "models"):
        yield


def test_a_pending_run_whose_message_was_lost_is_resumed(project: Project) -> None:
    seed_interactions(project, 30)
    strategy = SamplingStrategy.objects.create(
        project=project,
        name="s",
        weights={"uncertainty": 0.6, "coverage": 0.2, "random": 0.2},
        batch_size=5,
    )
    lost = sampling_run_create(project=project, strategy=strategy)
    fresh = sampling_run_create(project=project, strategy=strategy)
    SamplingRun.objects.filter(pk=lost.pk).update(created_at=timezone.now() - dt.timedelta(hours=1))
    assert resume_pending_runs() == 1
    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert lost.status == SamplingRun.Status.DONE
    assert Inclusion.objects.filter(run=lost).count() == 30
    assert fresh.status == SamplingRun.Status.PENDING  # within the grace period: maybe in flight
    # a second resume finds nothing old and pending; a rerun of the done run changes nothing
    assert resume_pending_runs() == 0
    execute_run(lost.pk)
    assert Inclusion.objects.filter(run=lost).count() == 30


def test_the_demo_opens_with_a_sampled_queue(db: None, django_capture_on_commit_callbacks) -> None:
    from labeling.demo import demo_load

    with django_capture_on_commit_callbacks(execute=True):
        result = demo_load(limit=150)
    project = result.project
    # The history: weekly runs of the default strategy over all but the last two days.
    runs = list(SamplingRun.objects.filter(project=project).order_by("id"))
    assert len(runs) == 5
    for run in runs:
        assert run.status == SamplingRun.Status.DONE
        assert run.strategy is not None
        assert run.strategy.name == "default"
        assert run.selected_count > 0
        assert project.queue_items.filter(sampling_run_id=run.pk).count() == run.selected_count
    assert 0 < sum(r.pool_size for r in runs) < project.interactions.count()
    # the primary judge is calibrated once labels arrive; until then scores come from the prior
    assert not project.interactions.filter(proxy_score__isnull=True).exists()


def test_retrain_rescores_the_pool_in_chunks(project: Project, settings) -> None:
    from labeling.models import Interaction
    from sampling.models import ProxyModel
    from tests.sampling_fixtures import label

    settings.FLYWHEEL = {**settings.FLYWHEEL, "SCORE_CHUNK_SIZE": 7}
    rows = seed_interactions(project, 60)
    label(project, rows[:20])
    version = retrain(project.pk)
    assert version == ProxyModel.objects.get(project=project).version
    assert set(
        Interaction.objects.filter(project=project).values_list("proxy_version", flat=True)
    ) == {version}


def test_a_run_whose_worker_died_is_claimed_again_once_stale(project: Project) -> None:
    seed_interactions(project, 20)
    strategy = SamplingStrategy.objects.create(
        project=project, name="s", weights={"random": 1.0}, batch_size=5
    )
    run = sampling_run_create(project=project, strategy=strategy)
    # a worker claimed it a minute ago and is (maybe) still working: a duplicate does nothing
    SamplingRun.objects.filter(pk=run.pk).update(
        status=SamplingRun.Status.RUNNING, started_at=timezone.now() - dt.timedelta(minutes=1)
    )
    assert resume_pending_runs() == 0
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == SamplingRun.Status.RUNNING
    assert not Inclusion.objects.filter(run=run).exists()
    # an hour later the claim is stale: its worker died (its transaction rolled back)
    SamplingRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - dt.timedelta(hours=1))
    assert resume_pending_runs() == 1
    run.refresh_from_db()
    assert run.status == SamplingRun.Status.DONE
    assert Inclusion.objects.filter(run=run).count() == 20


def test_pool_waves_cover_the_pool_in_contiguous_chunks(project: Project, settings) -> None:
    from sampling.services import scoring

    settings.FLYWHEEL = {**settings.FLYWHEEL, "SCORE_CHUNK_SIZE": 7}
    pool = sorted(r.pk for r in seed_interactions(project, 40))

    def ids(lower: int, upper: int) -> list[int]:
        return scoring.pool_chunk_ids(project=project, after_id=lower, upto_id=upper, limit=99)

    first = scoring.pool_wave(project=project, after_id=0, chunks=3)
    rest = scoring.pool_wave(project=project, after_id=first[-1][1], chunks=3)
    assert [len(ids(*r)) for r in first] == [7, 7, 7]
    assert [len(ids(*r)) for r in rest] == [7, 7, 5]  # the pool's end: a short chunk
    assert first[0] == (0, pool[6])
    assert first[1][0] == pool[6]  # consecutive ranges share their bound
    assert [i for r in first + rest for i in ids(*r)] == pool  # every pool id once, in order
    assert scoring.pool_wave(project=project, after_id=pool[-1], chunks=3) == []
