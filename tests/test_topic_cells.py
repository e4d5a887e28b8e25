"""Topic cells (issue 16): the dashboard's per-topic coverage read from per run x model version x
segment x day x cluster counts equals the one counted over every considered interaction, on random
projects (tiny and larger, deterministic and unlabelled runs, a run not finished, items never
clustered) under every kind of filter, before and after considered interactions are re-scored into
other clusters (late feedback, a retrain). A sampling run writes its cells, scoring moves them,
and the migration's backfill fills them for older runs."""

from __future__ import annotations

import datetime as dt
from importlib import import_module
from typing import Any

import numpy as np
import pytest
from django.db import connection

from labeling.models import Interaction, Project
from sampling.models import Inclusion, InteractionTopic, SamplingRun, TopicCell
from sampling.selectors.coverage import _cluster_coverage_scan, cluster_coverage
from sampling.selectors.estimates import shared_design
from sampling.selectors.scans import shared_scans
from sampling.services import runs as runs_service
from sampling.services import topic_cells
from sampling.services.scoring import scores_write
from sampling.services.topic_cells import topic_cells_rebuild
from tests.factories import ProjectFactory
from tests.test_population_cells import BASE, _filters, _run_strategy, build


def _cluster_some(project: Project, rng: np.random.Generator, share: float = 0.8) -> None:
    ids = Interaction.objects.filter(project=project).values_list("id", flat=True)
    InteractionTopic.objects.bulk_create(
        [
            InteractionTopic(interaction_id=i, cluster=int(rng.integers(0, 4)))
            for i in ids
            if rng.random() < share
        ]
    )


def _rescore(project: Project, rng: np.random.Generator) -> int:
    """Score a random part of the project's interactions again into random clusters (-1: the
    proxy gives none, the stored cluster stays), through the service scoring uses."""
    ids = [
        i
        for i in Interaction.objects.filter(project=project).values_list("id", flat=True)
        if rng.random() < 0.4
    ]
    if not ids:
        return 0
    clusters = rng.integers(-1, 5, size=len(ids)).astype(np.int16)
    scores_write(
        ids=ids, scores=rng.random(len(ids)), clusters=clusters, version=2, project_id=project.pk
    )
    return len(ids)


def _runs(project: Project) -> list[int]:
    return sorted(
        SamplingRun.objects.filter(project=project, deterministic=False).values_list(
            "id", flat=True
        )
    )


def _assert_same(project: Project, context: Any) -> int:
    compared = 0
    for filters in _filters(_runs(project)):
        expected = _cluster_coverage_scan(project=project, filters=filters)
        assert cluster_coverage(project=project, filters=filters) == expected, (context, filters)
        with shared_design(), shared_scans():
            assert cluster_coverage(project=project, filters=filters) == expected
        compared += bool(expected)
    return compared


def _cell_rows(project: Project) -> list[tuple[Any, ...]]:
    return sorted(
        (c.run_id, c.model_version, repr(c.segment), c.day, c.cluster, c.n)
        for c in TopicCell.objects.filter(project=project)
        if c.n
    )


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
@pytest.mark.parametrize("seed", range(50, 58))
def test_topic_cells_give_the_coverage_of_the_scan_before_and_after_rescoring(seed: int) -> None:
    project = build(seed)
    rng = np.random.default_rng(seed)
    _cluster_some(project, rng, share=float(rng.choice([0.0, 0.5, 1.0])))
    topic_cells_rebuild(project=project)  # as the migration's backfill
    compared = _assert_same(project, (seed, "built"))
    for round_ in range(2):  # late feedback processed, a retrain: clusters move
        _rescore(project, rng)
        compared += _assert_same(project, (seed, "rescored", round_))
        cells = _cell_rows(project)
        topic_cells_rebuild(project=project)
        assert _cell_rows(project) == cells, (seed, round_)  # moved counts = a rebuild
    assert compared


@pytest.mark.django_db
def test_an_empty_project_has_no_topic_coverage() -> None:
    project = ProjectFactory(slug="topics-empty")
    assert cluster_coverage(project=project) == [] == _cluster_coverage_scan(project=project)
    SamplingRun.objects.create(project=project, status=SamplingRun.Status.DONE)
    assert cluster_coverage(project=project, filters={"since": BASE.isoformat()}) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
def test_a_sampling_run_writes_its_topic_cells_and_scoring_moves_them() -> None:
    project = ProjectFactory(slug="topics-run")
    Interaction.objects.bulk_create(
        [
            Interaction(
                project=project,
                external_id=f"t{i}",
                occurred_at=BASE + dt.timedelta(hours=7 * i),
                model_version=["a", "b"][i % 2],
                messages=[{"role": "user", "content": "q"}],
                response="r",
                segment={"tier": ["free", "pro", "enterprise"][i % 3]},
            )
            for i in range(60)
        ]
    )
    rng = np.random.default_rng(7)
    _cluster_some(project, rng, share=0.7)
    run = _run_strategy(project)
    written = _cell_rows(project)
    assert {r[0] for r in written} == {run.pk}  # the run wrote them, in its own transaction
    assert sum(r[-1] for r in written) == Inclusion.objects.filter(run=run).count()
    topic_cells_rebuild(project=project)
    assert _cell_rows(project) == written
    assert _rescore(project, rng)
    moved = _cell_rows(project)
    topic_cells_rebuild(project=project)
    assert _cell_rows(project) == moved
    assert _assert_same(project, "run")


def test_scoring_takes_the_runs_lock() -> None:
    assert topic_cells.RUN_LOCK_NAMESPACE == runs_service._ADVISORY_NAMESPACE


@pytest.mark.django_db
def test_the_migration_backfills_the_topic_cells_of_older_runs() -> None:
    project = build(5)
    _cluster_some(project, np.random.default_rng(5))
    topic_cells_rebuild(project=project)
    expected = _cell_rows(project)
    TopicCell.objects.all().delete()  # as before the migration
    migration = import_module("sampling.migrations.0005_topic_cells")

    class Editor:  # what RunPython hands the function: the connection and execute()
        def __init__(self) -> None:
            self.connection = connection

        def execute(self, sql: str) -> None:
            with connection.cursor() as cursor:
                cursor.execute(sql)

    migration.backfill(None, Editor())
    assert _cell_rows(project) == expected
    assert expected
