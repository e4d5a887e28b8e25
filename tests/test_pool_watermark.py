"""The pool watermark (issue 16): runs that read only the ids above the project's floor draw, record
and aggregate exactly what runs reading every interaction against every inclusion do.

Each scenario is played twice from the same interactions and seeds: once with the watermark, once
with it switched off (every run reads the whole project, the path before the watermark), and the
runs' pools, pi, draws, Inclusion rows, population cells and queue items are compared. Scenarios:
several projects whose ids interleave, runs with nothing new, strategy filters (which keep the
floor where it is), unscored items (the prior), ties in f, topic clusters, a deterministic run.
On PostgreSQL, an interaction committed late below ids a run already read (a transaction open
across runs) is still considered, and the floor waits for that transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import override_settings
from django.utils import timezone

from labeling.models import Interaction, Project, QueueItem
from sampling.models import (
    Inclusion,
    InteractionTopic,
    PoolWatermark,
    PopulationCell,
    SamplingRun,
    SamplingStrategy,
)
from sampling.selectors.pool import pool_floor, pool_read
from sampling.selectors.strategies import strategy_preview
from sampling.services.population import population_cells_rebuild
from sampling.services.runs import sampling_run_create, sampling_run_execute
from sampling.services.strategies import strategy_create
from tests.factories import ProjectFactory
from tests.sampling_fixtures import seed_interactions

BASE = {
    "weights": {"uncertainty": 0.5, "coverage": 0.3, "random": 0.2},
    "batch_size": 25,
    "segment_minimums": {"tier": 10},
    "holdout_fraction": 0.1,
    "overlap_fraction": 0.2,
    "overlap_k": 2,
}


@pytest.fixture(autouse=True)
def _model_root(tmp_path: Path):
    with override_settings(MODEL_ROOT=tmp_path / "models"):
        yield


def _strategy(project: Project, name: str, **data: Any) -> SamplingStrategy:
    return strategy_create(project=project, data={**BASE, "name": name, **data})


def _seed(project: Project, count: int, seed: int, *, ties: bool = False) -> list[int]:
    rows = seed_interactions(project, count, seed=seed, model_versions=("a", "b", "c"))
    ids = [r.pk for r in rows]
    rng = np.random.default_rng(seed)
    # Two in three scored (a third keep the prior); ties: a handful of distinct scores.
    for pk in ids:
        if rng.random() < 2 / 3:
            score = float(rng.choice([0.2, 0.5, 0.8])) if ties else float(rng.random())
            Interaction.objects.filter(pk=pk).update(proxy_score=score, proxy_version=1)
        if rng.random() < 0.5:
            InteractionTopic.objects.create(
                interaction_id=pk, cluster=int(rng.integers(0, 4)), proxy_version=1
            )
    return ids


def _run(project: Project, strategy: SamplingStrategy, seed: int) -> dict[str, Any]:
    """Execute a run with a fixed seed; what it did, without its (pass-dependent) ids."""
    # The two readings agree before the run (the watermark's own check, run by run).
    full = pool_read(project=project, filters=strategy.filters, after_id=0)
    above = pool_read(project=project, filters=strategy.filters)
    assert np.array_equal(full.ids, above.ids)
    assert np.array_equal(full.f, above.f)
    assert np.array_equal(full.clusters, above.clusters)
    run = sampling_run_create(project=project, strategy=strategy)
    SamplingRun.objects.filter(pk=run.pk).update(seed=seed)
    done = sampling_run_execute(run_id=run.pk)
    assert done is not None
    assert done.status == SamplingRun.Status.DONE, done.error
    # Interactions seeded inside a scenario get new ids in each pass (a rolled-back sequence
    # does not go back): name them by external id; their order by id is the same in both passes.
    name = dict(Interaction.objects.filter(project=project).values_list("pk", "external_id"))
    return {
        "pool_size": done.pool_size,
        "expected_size": done.expected_size,
        "selected": done.selected_count,
        "holdout": done.holdout_count,
        "min_pi": done.timings.get("min_pi"),
        "inclusions": [
            (name[i], *rest)
            for i, *rest in Inclusion.objects.filter(run=done)
            .order_by("interaction_id")
            .values_list("interaction_id", "f", "pi", "selected", "holdout")
        ],
        "cells": sorted(
            PopulationCell.objects.filter(run=done).values_list(
                "model_version", "day", "n", "f_total", "excluded", "segment"
            ),
            key=lambda c: repr((c[0], c[1], c[5])),
        ),
        "queue": sorted(
            (name[i], *rest)
            for i, *rest in QueueItem.objects.filter(sampling_run_id=done.pk).values_list(
                "interaction_id", "overlap", "priority", "holdout"
            )
        ),
        "floor": pool_floor(project=project),
    }


def _play(scenario: Callable[[], list[dict[str, Any]]], *, watermark: bool, monkeypatch) -> list:
    """The scenario's runs, rolled back afterwards so the other pass starts from the same rows."""
    with monkeypatch.context() as patch:
        if not watermark:
            patch.setattr("sampling.services.runs._watermark_advance", lambda **_: None)
        with transaction.atomic():
            out = scenario()
            transaction.set_rollback(True)
    return out


def _compare(scenario: Callable[[], list[dict[str, Any]]], monkeypatch) -> list[dict[str, Any]]:
    without = _play(scenario, watermark=False, monkeypatch=monkeypatch)
    with_mark = _play(scenario, watermark=True, monkeypatch=monkeypatch)
    assert len(with_mark) == len(without)
    for i, (a, b) in enumerate(zip(with_mark, without, strict=True)):
        assert b["floor"] == 0
        for key in a:
            if key == "cells":  # PostgreSQL sums f in the order it meets the rows: 1 ulp apart
                assert [c[:3] + c[4:] for c in a[key]] == [c[:3] + c[4:] for c in b[key]], i
                assert [c[3] for c in a[key]] == pytest.approx([c[3] for c in b[key]], rel=1e-12)
            elif key != "floor":
                assert a[key] == b[key], (i, key)
    return with_mark


@pytest.mark.django_db
@pytest.mark.parametrize("ties", [False, True])
def test_runs_with_the_watermark_equal_runs_over_every_interaction(monkeypatch, ties) -> None:
    p1 = ProjectFactory(slug="wm-one", segment_keys=["tier", "locale"])
    p2 = ProjectFactory(slug="wm-two", segment_keys=["tier"])
    s1 = _strategy(p1, "all")
    s1_only_a = _strategy(p1, "only-a", filters={"model_versions": ["a"]})
    s1_pro = _strategy(p1, "pro", filters={"segment": {"tier": ["pro"]}})
    s2 = _strategy(p2, "all", batch_size=15)
    for p, n, seed in [(p1, 120, 1), (p2, 80, 2), (p1, 60, 3), (p2, 50, 4), (p1, 90, 5)]:
        _seed(p, n, seed, ties=ties)  # ids of the two projects interleave
    _seed(p2, 40, 6, ties=ties)

    def scenario() -> list[dict[str, Any]]:
        out = [_run(p1, s1, 11), _run(p2, s2, 12), _run(p1, s1, 13)]  # the last: nothing new
        _seed(p1, 70, 21, ties=ties)
        _seed(p2, 30, 22, ties=ties)
        out += [_run(p1, s1_only_a, 14), _run(p2, s2, 15), _run(p1, s1, 16)]
        _seed(p1, 50, 23, ties=ties)
        out += [_run(p1, s1_pro, 17), _run(p1, s1, 18), _run(p1, s1, 19), _run(p2, s2, 20)]
        _seed(p2, 25, 24, ties=ties)
        _seed(p1, 40, 25, ties=ties)
        out += [_run(p1, s1_only_a, 26), _run(p2, s2, 27), _run(p1, s1, 28), _run(p2, s2, 29)]
        return out

    runs = _compare(scenario, monkeypatch)
    # The interleaved waves give each pass fresh ids: compare those runs on everything but ids.
    assert [r["pool_size"] for r in runs] == [
        270,
        170,
        0,
        runs[3]["pool_size"],  # the model "a" share of the new wave and earlier leftovers
        30,
        runs[5]["pool_size"],
        runs[6]["pool_size"],
        runs[7]["pool_size"],
        0,
        0,
        runs[10]["pool_size"],
        25,
        runs[12]["pool_size"],
        0,
    ]
    assert runs[3]["pool_size"] > 0
    assert runs[6]["pool_size"] > 0
    # The floor moved (the comparison is not vacuous), and stayed under every unconsidered id.
    assert runs[-1]["floor"] > 0
    assert runs[-2]["floor"] > 0
    for project in (p1, p2):
        floor = pool_floor(project=project)
        unconsidered = Interaction.objects.filter(project=project, inclusion__isnull=True)
        assert not unconsidered.filter(pk__lte=floor).exists()


def _ids_of(rows: list[Interaction]) -> list[int]:
    return [r.pk for r in rows]


@pytest.mark.django_db
def test_same_ids_same_selection_with_a_deterministic_run(monkeypatch) -> None:
    project = ProjectFactory(slug="wm-det", segment_keys=["tier"])
    _seed(project, 150, 31)
    probabilistic = _strategy(project, "p")
    deterministic = _strategy(project, "d", mode="deterministic", batch_size=10)

    def scenario() -> list[dict[str, Any]]:
        out = [_run(project, probabilistic, 1), _run(project, probabilistic, 2)]
        out.append(_run(project, deterministic, 3))
        out.append(_run(project, probabilistic, 4))
        return out

    runs = _compare(scenario, monkeypatch)
    assert runs[0]["pool_size"] == 150
    assert runs[1]["pool_size"] == 0


@pytest.mark.django_db
def test_floor_follows_the_runs_and_the_preview_reads_above_it() -> None:
    project = ProjectFactory(slug="wm-floor", segment_keys=["tier"])
    strategy = _strategy(project, "all")
    first = _ids_of(seed_interactions(project, 40, seed=1))
    _run(project, strategy, 1)
    mark = PoolWatermark.objects.get(project=project)
    assert (mark.floor, mark.candidate) == (0, max(first))  # a candidate: not settled yet
    second = _ids_of(seed_interactions(project, 30, seed=2))
    run = _run(project, strategy, 2)
    assert run["pool_size"] == 30
    mark.refresh_from_db()
    assert (mark.floor, mark.candidate) == (max(first), max(second))
    _run(project, strategy, 3)  # nothing new: the candidate settles
    assert pool_floor(project=project) == max(second)
    third = _ids_of(seed_interactions(project, 20, seed=3))
    preview = strategy_preview(strategy_data={**BASE, "name": "p"}, project=project)
    assert preview["pool_size"] == 20
    assert _run(project, strategy, 4)["pool_size"] == 20
    assert pool_floor(project=project) == max(second)  # the floor lags one run
    assert PoolWatermark.objects.get(project=project).candidate == max(third)


@pytest.mark.django_db
def test_a_filtered_run_leaves_the_watermark_alone() -> None:
    project = ProjectFactory(slug="wm-filter", segment_keys=["tier"])
    everything = _strategy(project, "all")
    only_a = _strategy(project, "a", filters={"model_versions": ["a"]})
    seed_interactions(project, 30, seed=1, model_versions=("a", "b"))
    _run(project, only_a, 1)
    assert not PoolWatermark.objects.filter(project=project).exists()
    assert _run(project, everything, 2)["pool_size"] == 15
    _run(project, everything, 3)
    before = PoolWatermark.objects.get(project=project)
    seed_interactions(project, 10, seed=2, model_versions=("a", "b"))
    _run(project, only_a, 4)
    after = PoolWatermark.objects.get(project=project)
    assert (after.floor, after.candidate) == (before.floor, before.candidate)
    assert _run(project, everything, 5)["pool_size"] == 5


@pytest.mark.django_db
def test_deleting_a_run_resets_the_watermark() -> None:
    project = ProjectFactory(slug="wm-delete", segment_keys=["tier"])
    strategy = _strategy(project, "all")
    seed_interactions(project, 30, seed=1)
    _run(project, strategy, 1)
    seed_interactions(project, 10, seed=2)
    _run(project, strategy, 2)
    _run(project, strategy, 3)
    assert pool_floor(project=project) > 0
    SamplingRun.objects.filter(project=project, pool_size=30).delete()
    assert pool_floor(project=project) == 0
    assert _run(project, strategy, 4)["pool_size"] == 30


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_interaction_committed_late_below_read_ids_is_still_considered() -> None:
    """A transaction that took an id before a run read a larger one, and commits after it: the
    floor does not pass that id while the transaction is open, and a later run considers it."""
    project = ProjectFactory(slug="wm-late", segment_keys=["tier"])
    strategy = _strategy(project, "all")
    seed_interactions(project, 20, seed=1)
    _run(project, strategy, 1)
    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
    )
    try:
        now = timezone.now()
        with other.cursor() as cur:  # takes its id now, commits at the end
            cur.execute(
                "INSERT INTO labeling_interaction (project_id, external_id, conversation_id, "
                "occurred_at, model_version, messages, response, alt_response, "
                "alt_model_version, segment, metadata, scores, signals, created_at) "
                "VALUES (%s, 'late', '', %s, 'a', '[]', 'x', '', '', '{\"tier\": \"pro\"}', "
                "'{}', '{}', '{}', %s) RETURNING id",
                [project.pk, now - dt.timedelta(hours=1), now],
            )
            late_id = cur.fetchone()[0]
        newer = _ids_of(seed_interactions(project, 10, seed=2))
        assert min(newer) > late_id
        assert _run(project, strategy, 2)["pool_size"] == 10  # the late row is not visible
        assert _run(project, strategy, 3)["pool_size"] == 0
        # Still open: the candidate (the newest ids) may not become the floor.
        assert pool_floor(project=project) < late_id
        other.commit()
        assert _run(project, strategy, 4)["pool_size"] == 1
        assert Inclusion.objects.filter(interaction_id=late_id).exists()
        _run(project, strategy, 5)
        assert pool_floor(project=project) >= max(newer)
    finally:
        other.close()
    assert not Interaction.objects.filter(project=project, inclusion__isnull=True).exists()


@pytest.mark.django_db
def test_cells_from_the_run_arrays_equal_the_aggregate_of_its_inclusions() -> None:
    """On PostgreSQL a run aggregates its cells from the arrays it read; they equal the cells
    ``population_cells_rebuild`` computes from the Inclusion rows (SQL GROUP BY): segments with
    numbers, booleans, nulls, missing keys and 1 vs 1.0 (equal as jsonb), times around UTC
    midnight, unscored items (prior f), a deterministic run (no pi)."""
    project = ProjectFactory(slug="wm-cells", segment_keys=["tier"])
    midnight = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    segments: list[dict[str, Any]] = [
        {"tier": "pro"},
        {"tier": "free", "locale": "de"},
        {"locale": "de", "tier": "free"},
        {"tier": 3},
        {"tier": 1},
        {"tier": 1.0},
        {"tier": True},
        {"tier": None},
        {},
    ]
    rng = np.random.default_rng(5)
    rows = []
    for i in range(400):
        offset = dt.timedelta(microseconds=int(rng.integers(-3, 3)))
        rows.append(
            Interaction(
                project=project,
                external_id=f"c-{i}",
                occurred_at=midnight + dt.timedelta(days=int(i % 4)) + offset,
                model_version=["a", "b", "", "a "][i % 4],
                response="x",
                segment=segments[i % len(segments)],
                proxy_score=None if i % 5 == 0 else float(rng.random()),
            )
        )
    Interaction.objects.bulk_create(rows)
    # No coverage: on SQLite coverage groups by the raw values, and these mix numbers and text.
    weights = {"uncertainty": 0.8, "coverage": 0.0, "random": 0.2}
    _run(project, _strategy(project, "p", weights=weights, segment_minimums={}), 1)
    seed_interactions(project, 60, seed=9)
    deterministic = _strategy(
        project, "d", mode="deterministic", batch_size=5, weights=weights, segment_minimums={}
    )
    _run(project, deterministic, 2)

    def cells() -> list[tuple]:
        out = [
            (run_id, mv, day, n, excluded, json_key(segment), f_total)
            for run_id, mv, day, n, excluded, segment, f_total in PopulationCell.objects.filter(
                project=project
            ).values_list("run_id", "model_version", "day", "n", "excluded", "segment", "f_total")
        ]
        return sorted(out, key=lambda c: repr(c[:6]))

    def json_key(segment: dict[str, Any]) -> str:
        return repr(
            sorted((k, float(v) if type(v) in (int, float) else v) for k, v in segment.items())
        )

    written = cells()
    population_cells_rebuild(project=project)
    rebuilt = cells()
    assert [c[:6] for c in written] == [c[:6] for c in rebuilt]
    assert [c[6] for c in written] == pytest.approx([c[6] for c in rebuilt], rel=1e-12)
    assert sum(c[3] + c[4] for c in written) == 460
    assert any(c[4] for c in written)  # the deterministic run's items: excluded
