"""Population cells (issue 16): the estimates' population side read from per run x model version x
segment x day aggregates equals the one aggregated from every inclusion, field by field.

Random projects: tiny and larger, runs without pi (deterministic), runs without labels, a run not
finished, segment keys missing or holding numbers and booleans, times on and around UTC
midnights, explicit ratings changed after the cells were written (late feedback). Every grouping
(and crossings) under every kind of filter, including ``since``/``until`` inside a day. Plus: a
sampling run writes its cells, and the migration's backfill fills them for older runs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from importlib import import_module
from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.db.models import Max, Min
from django.test.utils import CaptureQueriesContext

from labeling.models import Annotation, Interaction, Project, QueueItem
from sampling.models import Inclusion, PopulationCell, SamplingRun
from sampling.selectors.estimates import (
    DomainData,
    _domain_data_scan,
    _population_scan,
    domain_data,
    filtered_inclusions,
    occurred_span,
    population_rows,
    response_design,
)
from sampling.selectors.scans import shared_scans
from sampling.services.population import population_cells_rebuild
from sampling.services.ratings import population_ratings_move
from tests.factories import ProjectFactory, UserFactory

BASE = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)  # a Monday, midnight UTC
TIERS: list[Any] = ["free", "pro", 3, True, None]

BYS: list[list[str]] = [
    [],
    ["model_version"],
    ["segment.tier"],
    ["segment.locale"],
    ["segment.absent"],
    ["week"],
    ["run"],
    ["rated"],
    ["model_version", "segment.tier"],
    ["rated", "week"],
    ["segment.tier", "rated", "run"],
    ["week", "model_version", "segment.locale"],
]


def _filters(runs: list[int]) -> list[dict[str, Any]]:
    day = dt.timedelta(days=1)
    iso = dt.datetime.isoformat
    return [
        {},
        {"model_versions": ["a"]},
        {"model_version": ""},
        {"segment": {"tier": ["pro", "free"]}},
        {"segment": {"tier": "pro", "locale": ["de"]}},
        {"runs": runs[:1]},
        {"since": iso(BASE + 3 * day)},
        {"since": iso(BASE + 3 * day + dt.timedelta(hours=5, minutes=7))},
        {"until": iso(BASE + 9 * day)},
        {"until": iso(BASE + 9 * day + dt.timedelta(hours=13))},
        {"since": iso(BASE + 2 * day), "until": iso(BASE + 8 * day)},
        {
            "since": iso(BASE + 2 * day + dt.timedelta(hours=1)),
            "until": iso(BASE + 8 * day + dt.timedelta(hours=23, minutes=59)),
        },
        {  # within one day
            "since": iso(BASE + 4 * day + dt.timedelta(hours=2)),
            "until": iso(BASE + 4 * day + dt.timedelta(hours=20)),
        },
        {  # two partial days, no whole one
            "since": iso(BASE + 4 * day + dt.timedelta(hours=2)),
            "until": iso(BASE + 5 * day + dt.timedelta(hours=20)),
        },
        {"since": iso(BASE + 6 * day), "until": iso(BASE + 5 * day)},  # empty
        {"since": "2026-11-05T05:00:00"},  # naive: UTC
        {"since": "2026-11-05T02:00:00+02:00", "until": "2026-11-09T00:30:00+01:00"},
        {
            "model_versions": ["a", "b"],
            "segment": {"tier": ["pro"]},
            "runs": runs,
            "since": iso(BASE + day + dt.timedelta(minutes=1)),
        },
    ]


def build(seed: int) -> Project:
    """A random project (its inclusions written directly, cells rebuilt from them)."""
    rng = np.random.default_rng(seed)
    project = ProjectFactory(slug=f"cells-{seed}")
    user = UserFactory()
    n_runs = int(rng.integers(1, 5))
    runs = [
        SamplingRun.objects.create(project=project, status=SamplingRun.Status.DONE)
        for _ in range(n_runs)
    ]
    deterministic = rng.random() < 0.5
    if deterministic:
        runs.append(
            SamplingRun.objects.create(
                project=project, status=SamplingRun.Status.DONE, deterministic=True
            )
        )
    unlabelled = runs[0] if n_runs > 1 and rng.random() < 0.5 else None
    if rng.random() < 0.3:
        runs.append(SamplingRun.objects.create(project=project, status="running"))
    size = int(rng.choice([1, 3, 12, 60, 240]))
    rows = []
    for i in range(size):
        seconds = int(rng.integers(0, 12 * 86400))
        if rng.random() < 0.2:
            seconds -= seconds % 86400  # exactly a UTC midnight
        elif rng.random() < 0.1:
            seconds += 86399 - seconds % 86400  # the last second of a day
        segment: dict[str, Any] = {}
        if rng.random() < 0.85:
            segment["tier"] = TIERS[int(rng.integers(len(TIERS)))]
        if rng.random() < 0.6:
            segment["locale"] = ["en", "de"][int(rng.integers(2))]
        rows.append(
            Interaction(
                project=project,
                external_id=f"c{seed}-{i}",
                occurred_at=BASE + dt.timedelta(seconds=seconds, microseconds=int(rng.integers(3))),
                model_version=["a", "b", ""][int(rng.integers(3))],
                messages=[{"role": "user", "content": "q"}],
                response="r",
                segment=segment,
                explicit_rating=[None, None, None, 1, -1][int(rng.integers(5))],
            )
        )
    interactions = Interaction.objects.bulk_create(rows)
    inclusions, queue = [], []
    for inter in interactions:
        run = runs[int(rng.integers(len(runs)))]
        pi = None if run.deterministic else float(rng.choice([1.0, rng.uniform(0.02, 1.0)]))
        selected = bool(rng.random() < (pi or 0.5))
        inclusions.append(
            Inclusion(
                run=run,
                project=project,
                interaction=inter,
                f=float(rng.uniform(0, 1)),
                pi=pi,
                selected=selected,
            )
        )
        if selected:
            queue.append(QueueItem(project=project, interaction=inter, sampling_run_id=run.id))
    Inclusion.objects.bulk_create(inclusions)
    population_cells_rebuild(project=project)
    items = QueueItem.objects.bulk_create(queue)
    Annotation.objects.bulk_create(
        [
            Annotation(
                queue_item=q,
                interaction_id=q.interaction_id,
                annotator=user,
                values={"quality": int(rng.integers(1, 6))},
                schema_version=1,
            )
            for q in items
            if q.sampling_run_id != (unlabelled.id if unlabelled else None) and rng.random() < 0.8
        ]
    )
    # Late feedback: ratings given, changed and withdrawn after the run wrote its cells, moved in
    # the cells as processing moves them (tests/test_rating_cells.py goes through processing).
    changes = []
    for inter in interactions:
        if rng.random() < 0.3:
            old = inter.explicit_rating
            inter.explicit_rating = [None, 1, -1][int(rng.integers(3))]
            inter.save(update_fields=["explicit_rating"])
            changes.append((inter.pk, old, inter.explicit_rating))
    population_ratings_move(changes=changes)
    return project


def assert_same(cells: list[DomainData], scan: list[DomainData], context: Any) -> None:
    assert [d.group for d in cells] == [d.group for d in scan], context
    for a, b in zip(cells, scan, strict=True):
        for f in fields(DomainData):
            if f.name == "sample":  # rows of the array path's items: the scan has none
                continue
            x, y = getattr(a, f.name), getattr(b, f.name)
            where = (context, a.group, f.name)
            if f.name == "f_total":  # sums of floats in another order
                assert x == pytest.approx(y, rel=1e-12, abs=1e-9), where
            elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
                assert x is not None, where
                assert y is not None, where
                np.testing.assert_array_equal(x, y, err_msg=str(where))
            else:
                assert x == y, where


def assert_same_days(project: Project, filters: dict[str, Any], context: Any) -> None:
    """The daily population monitoring reads (and the power report's time span) equals the
    one aggregated from every inclusion."""
    base = filtered_inclusions(project=project, filters=filters)
    for by in (["day"], ["model_version", "day"], ["segment.tier", "day"]):
        rows = population_rows(project=project, by=by, filters=filters)
        expected = _population_scan(base, by)
        assert sorted(rows) == sorted(expected), (context, by)
        for key, p in rows.items():
            q = expected[key]
            assert (p.n, p.excluded, p.rated, p.down) == (q.n, q.excluded, q.rated, q.down)
            assert p.f_total == pytest.approx(q.f_total, rel=1e-12, abs=1e-9)


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
@pytest.mark.parametrize("seed", range(8))
def test_cells_give_the_same_domain_data_as_the_scan(seed: int) -> None:
    project = build(seed)
    runs = sorted(
        SamplingRun.objects.filter(project=project, deterministic=False).values_list(
            "id", flat=True
        )
    )
    design = response_design(project=project)  # the sample side is shared: compute it once
    compared = 0
    for filters in _filters(runs):
        for by in BYS:
            cells = domain_data(project=project, by=by, filters=filters, design=design)
            scan = _domain_data_scan(project=project, by=by, filters=filters, design=design)
            assert_same(cells, scan, (seed, by, filters))
            compared += bool(scan)
            without = domain_data(
                project=project, by=by, filters=filters, design=design, explicit=False
            )
            for d in scan if "rated" not in by else []:  # but the rating counts, left at 0
                d.rated = d.thumbs_down = 0
            assert_same(without, scan, (seed, by, filters, "explicit=False"))
        # The daily population monitoring reads, and the time span the power report reads.
        base = filtered_inclusions(project=project, filters=filters)
        assert_same_days(project, filters, (seed, filters))
        span = base.aggregate(
            first=Min("interaction__occurred_at"), last=Max("interaction__occurred_at")
        )
        assert occurred_span(project=project, filters=filters) == (span["first"], span["last"])
    assert compared  # not every comparison was of two empty answers


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
@pytest.mark.parametrize("seed", range(8, 14))
def test_shared_scans_give_the_same_domain_data_as_the_scan(seed: int) -> None:
    """Inside ``shared_scans()`` (the dashboard) the partial-day and rated reads are made once
    per filters at the finest grain and regrouped for every grouping: the same numbers, field by
    field, as aggregating every inclusion for each grouping; a grouping by a segment key the
    project does not declare (``segment.absent``) reads directly."""
    project = build(seed)
    runs = sorted(
        SamplingRun.objects.filter(project=project, deterministic=False).values_list(
            "id", flat=True
        )
    )
    design = response_design(project=project)
    compared = 0
    for filters in _filters(runs):
        with shared_scans(), CaptureQueriesContext(connection) as queries:
            for by in BYS:
                for explicit in (True, False):
                    shared = domain_data(
                        project=project, by=by, filters=filters, design=design, explicit=explicit
                    )
                    scan = _domain_data_scan(project=project, by=by, filters=filters, design=design)
                    if not explicit and "rated" not in by:
                        for d in scan:
                            d.rated = d.thumbs_down = 0
                    assert_same(shared, scan, (seed, by, filters, explicit))
                    compared += bool(scan)
            assert_same_days(project, filters, (seed, filters, "shared"))
        # Fine reads: at most one per kind (two partial days, or the whole interval when it
        # holds no whole day; the ratings come from the cells), besides the direct reads of
        # segment.absent.
        fine = [q for q in queries.captured_queries if '"s1"' in q["sql"]]
        assert len(fine) <= 2, (seed, filters, len(fine))
    assert compared


@pytest.mark.django_db
def test_the_cells_hold_the_runs_inclusions() -> None:
    project = build(11)
    cells = PopulationCell.objects.filter(project=project)
    inclusions = Inclusion.objects.filter(project=project)
    assert sum(c.n for c in cells) == inclusions.filter(pi__isnull=False).count()
    assert sum(c.excluded for c in cells) == inclusions.filter(pi__isnull=True).count()
    assert sum(c.f_total for c in cells) == pytest.approx(
        sum(i.f for i in inclusions if i.pi is not None)
    )
    keys = [(c.run_id, c.model_version, repr(c.segment), c.day) for c in cells]
    assert len(keys) == len(set(keys))  # one row per run x version x segment x day
    for cell in cells:
        assert cell.n + cell.excluded > 0


def _run_strategy(project: Project) -> SamplingRun:
    from sampling.services.runs import sampling_run_create, sampling_run_execute
    from sampling.services.strategies import strategy_create

    strategy = strategy_create(
        project=project,
        data={"name": "s", "weights": {"uncertainty": 0.8, "random": 0.2}, "batch_size": 10},
    )
    run = sampling_run_create(project=project, strategy=strategy)
    done = sampling_run_execute(run_id=run.pk)
    assert done is not None
    assert done.status == SamplingRun.Status.DONE
    return done


def _cell_rows(project: Project) -> list[tuple[Any, ...]]:
    return sorted(
        (
            c.run_id,
            c.model_version,
            repr(c.segment),
            c.day,
            c.n,
            round(c.f_total, 9),
            c.excluded,
            c.rated,
            c.down,
            round(c.rated_f, 9),
            c.rated_excluded,
        )
        for c in PopulationCell.objects.filter(project=project)
    )


@pytest.mark.django_db(transaction=True)
def test_a_sampling_run_writes_its_cells_and_the_backfill_gives_the_same() -> None:
    project = ProjectFactory(slug="cells-run")
    Interaction.objects.bulk_create(
        [
            Interaction(
                project=project,
                external_id=f"r{i}",
                occurred_at=BASE + dt.timedelta(hours=7 * i),
                model_version=["a", "b"][i % 2],
                messages=[{"role": "user", "content": "q"}],
                response="r",
                segment={"tier": ["free", "pro", "enterprise"][i % 3]},
            )
            for i in range(50)
        ]
    )
    run = _run_strategy(project)
    written = _cell_rows(project)
    assert written  # the run wrote them, in its own transaction
    assert {r[0] for r in written} == {run.pk}
    assert sum(r[4] for r in written) == 50
    assert len({r[3] for r in written}) == 15  # 50 items 7 h apart span 15 UTC days
    assert "cells_s" in run.timings
    population_cells_rebuild(project=project)
    assert _cell_rows(project) == written


@pytest.mark.django_db
def test_the_migration_backfills_the_cells_of_older_runs() -> None:
    project = build(5)
    expected = _cell_rows(project)
    PopulationCell.objects.all().delete()  # as before the migration
    migration = import_module("sampling.migrations.0003_population_cells")
    ratings = import_module("sampling.migrations.0006_population_cell_ratings")

    class Editor:  # what RunPython hands the function: the connection and execute()
        def __init__(self) -> None:
            self.connection = connection

        def execute(self, sql: str) -> None:
            with connection.cursor() as cursor:
                cursor.execute(sql)

    migration.backfill(None, Editor())
    ratings.backfill(None, Editor())  # the rating counts, added later
    assert _cell_rows(project) == expected
    assert expected
    assert any(row[7] for row in expected)  # some cells count ratings
