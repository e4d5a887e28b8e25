"""The selected-items table (issue 16): the labelled side of the estimates read from one narrow
table the sampling run writes, instead of the selected Inclusion rows joined to their
interactions, gives the same rows and the same numbers.

Projects built by real sampling runs (probabilistic with holdout and overlap, a filtered run, a
deterministic run without pi, a run with nothing new to consider): the table equals the selected
Inclusion rows with their interactions' version, segment and time, field by field; the rebuild
(``population_cells_rebuild``) and the migration's backfill give the same rows; the runs'
coverage counts read from it equal the ones over the selected Inclusion rows; the columns the
estimates read equal the earlier read through Inclusion; ``response_design`` and every grouping's
``domain_data`` equal the row-by-row reference (``_response_design_scan``,
``_domain_data_scan``). Edge cases: no runs, one item, a deleted run and a deleted interaction
(their rows go, and the answer changes with them), a run whose transaction rolls back.
"""

from __future__ import annotations

import datetime as dt
import types
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.db import connection, transaction
from django.db.models import Count, Q, TextField
from django.db.models.functions import Cast
from django.test.utils import override_settings

from labeling.models import Annotation, Interaction, Project, QueueItem
from sampling.models import (
    Inclusion,
    InteractionTopic,
    SamplingRun,
    SamplingStrategy,
    SelectedItem,
)
from sampling.selectors import labelled
from sampling.selectors.estimates import (
    _domain_data_scan,
    _response_design_scan,
    domain_data,
    estimates_compute,
    response_design,
)
from sampling.selectors.pool import coverage_counts, segment_group
from sampling.services.population import population_cells_rebuild
from sampling.services.runs import sampling_run_create, sampling_run_execute
from sampling.services.strategies import strategy_create
from tests.factories import ProjectFactory, UserFactory
from tests.test_estimates_arrays import assert_close, assert_same_design, assert_same_domains

STRATEGY = {
    "weights": {"uncertainty": 0.5, "coverage": 0.3, "random": 0.2},
    "batch_size": 40,
    # Coverage also on tier, whose values mix text, numbers, a boolean and null (on SQLite the
    # group key is the value as text: numbers and text in one key once failed to group there).
    "segment_minimums": {"locale": 10, "tier": 5},
    "holdout_fraction": 0.1,
    "overlap_fraction": 0.2,
    "overlap_k": 2,
}
BYS: list[list[str]] = [
    [],
    ["model_version"],
    ["week"],
    ["run"],
    ["segment.tier"],
    ["rated"],
    ["model_version", "segment.locale"],
]
TIERS: list[Any] = ["free", "pro", 3, True, None, 1.5]


@pytest.fixture(autouse=True)
def _model_root(tmp_path: Path):
    with override_settings(MODEL_ROOT=tmp_path / "models"):
        yield


def _seed(project: Project, count: int, seed: int, start: dt.datetime) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        segment: dict[str, Any] = {}
        if rng.random() < 0.9:
            segment["tier"] = TIERS[int(rng.integers(len(TIERS)))]
        if rng.random() < 0.6:
            segment["locale"] = ["en", "de"][int(rng.integers(2))]
        rows.append(
            Interaction(
                project=project,
                external_id=f"s{seed}-{i}",
                occurred_at=start + dt.timedelta(minutes=int(rng.integers(0, 20 * 24 * 60))),
                model_version=["a", "b", ""][int(rng.integers(3))],
                messages=[{"role": "user", "content": f"question {i}"}],
                response="answer",
                segment=segment,
                explicit_rating=[None, None, 1, -1][int(rng.integers(4))],
                proxy_score=None if rng.random() < 0.2 else float(rng.random()),
                proxy_version=1,
            )
        )
    Interaction.objects.bulk_create(rows)


def _execute(project: Project, strategy: SamplingStrategy) -> SamplingRun:
    run = sampling_run_create(project=project, strategy=strategy)
    done = sampling_run_execute(run_id=run.pk)
    assert done is not None
    assert done.status == SamplingRun.Status.DONE, done.error
    return done


def _label(project: Project, seed: int, share: float = 0.7) -> None:
    rng = np.random.default_rng(seed)
    user = UserFactory()
    Annotation.objects.bulk_create(
        [
            Annotation(
                queue_item=q,
                interaction_id=q.interaction_id,
                annotator=user,
                values={"quality": int(rng.integers(1, 6))},
                schema_version=1,
            )
            for q in QueueItem.objects.filter(project=project).order_by("id")
            if rng.random() < share
        ]
    )


def build(seed: int) -> Project:
    """A project whose runs were executed by the sampling service."""
    project = ProjectFactory(slug=f"sel-{seed}", segment_keys=["tier", "locale"])
    start = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    plain = strategy_create(project=project, data={**STRATEGY, "name": "plain"})
    _seed(project, 150, seed, start)
    _execute(project, plain)
    _seed(project, 120, seed + 100, start)
    filtered = strategy_create(
        project=project,
        data={**STRATEGY, "name": "only-a", "filters": {"model_versions": ["a"]}},
    )
    _execute(project, filtered)
    _execute(project, plain)
    _seed(project, 80, seed + 200, start)
    deterministic = strategy_create(
        project=project,
        data={
            **STRATEGY,
            "name": "det",
            "mode": "deterministic",
            "batch_size": 8,
            "holdout_fraction": 0.0,
        },
    )
    _execute(project, deterministic)
    _execute(project, plain)  # what the deterministic run left
    _execute(project, plain)  # nothing new: an empty run
    _label(project, seed)
    return project


def _table_rows(project: Project) -> list[tuple[Any, ...]]:
    return [
        (i, r, f, pi, mv, seg, at)
        for i, r, f, pi, mv, seg, at in SelectedItem.objects.filter(project=project)
        .order_by("interaction_id")
        .values_list(
            "interaction_id",
            "run_id",
            "f",
            "pi",
            "model_version",
            Cast("segment", output_field=TextField()),
            "occurred_at",
        )
    ]


def _reference_rows(project: Project, run_ids: list[int] | None = None) -> list[tuple[Any, ...]]:
    """The selected Inclusion rows (of ``run_ids``, or of every run) with their interactions'
    columns (what the table mirrors)."""
    inclusions = Inclusion.objects.filter(project=project, selected=True)
    if run_ids is not None:
        inclusions = inclusions.filter(run_id__in=run_ids)
    return list(
        inclusions.order_by("interaction_id").values_list(
            "interaction_id",
            "run_id",
            "f",
            "pi",
            "interaction__model_version",
            Cast("interaction__segment", output_field=TextField()),
            "interaction__occurred_at",
        )
    )


def _reference_columns(project: Project) -> dict[str, Any]:
    """``labelled._read_items`` as it read before the table: the selected Inclusion rows of the
    finished runs joined to their interactions."""
    runs = labelled._done_runs(project)
    rows = _reference_rows(project, [r for r, _ in runs])
    return {
        "interaction_id": np.array([r[0] for r in rows], dtype=np.int64),
        "run_id": np.array([r[1] for r in rows], dtype=np.int64),
        "f": np.array([r[2] for r in rows], dtype=float),
        "pi": np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=float),
        "versions": [r[4] or "" for r in rows],
        "segments": [labelled._segment_object(r[5]) for r in rows],
        "occurred_us": np.array([labelled.microseconds(r[6]) for r in rows], dtype=np.int64),
        "done_runs": [r for r, deterministic in runs if not deterministic],
    }


def assert_table_matches(project: Project) -> None:
    rows = _table_rows(project)
    assert rows == _reference_rows(project)
    columns = labelled._read_items(project=project, runs=labelled._done_runs(project))
    expected = _reference_columns(project)
    for name in ("interaction_id", "run_id", "occurred_us"):
        np.testing.assert_array_equal(columns[name], expected[name], err_msg=name)
    np.testing.assert_array_equal(columns["f"], expected["f"])  # copied, not recomputed
    np.testing.assert_array_equal(columns["pi"], expected["pi"])
    assert [columns["versions"][v] for v in columns["version"]] == expected["versions"]
    assert [columns["segments"][s] for s in columns["segment"]] == expected["segments"]
    assert columns["done_runs"] == expected["done_runs"]


def assert_same_numbers(project: Project) -> None:
    assert_same_design(project, None)
    new_design = response_design(project=project)
    old_design = _response_design_scan(project=project)
    runs = sorted(new_design.run_rate)
    for filters in [
        {},
        {"model_versions": ["a"]},
        {"segment": {"tier": ["pro"]}},
        {"runs": runs[:1]},
    ]:
        for by in BYS:
            new = domain_data(project=project, by=by, filters=filters, design=new_design)
            old = _domain_data_scan(project=project, by=by, filters=filters, design=old_design)
            assert_same_domains(new, old, (by, filters))


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(3))
def test_runs_write_the_selected_items_the_estimates_read(seed: int) -> None:
    project = build(seed)
    runs = SamplingRun.objects.filter(project=project)
    assert runs.filter(deterministic=True, selected_count__gt=0).exists()
    assert runs.filter(selected_count=0).exists()  # the empty run
    assert SelectedItem.objects.filter(project=project, pi__isnull=True).exists()
    assert SelectedItem.objects.filter(project=project).count() == sum(
        runs.values_list("selected_count", flat=True)
    )
    assert_table_matches(project)
    written = _table_rows(project)
    population_cells_rebuild(project=project)
    assert _table_rows(project) == written
    assert_same_numbers(project)
    # The API's answer is the answer of the reference design, too.
    for by in ("model_version", "week"):
        assert_close(
            estimates_compute(project=project, by=by),
            estimates_compute(project=project, by=by, design=response_design(project=project)),
            by,
        )


@pytest.mark.django_db
def test_the_migration_backfill_writes_what_the_runs_wrote() -> None:
    """A deployment with runs from before the table: the migration's backfill fills it with the
    rows the runs would have written (every project at once)."""
    first, second = build(7), build(8)
    written = {p.pk: _table_rows(p) for p in (first, second)}
    SelectedItem.objects.all().delete()
    migration = import_module("sampling.migrations.0007_selected_items")
    with connection.cursor() as cursor:
        editor = types.SimpleNamespace(connection=connection, execute=cursor.execute)
        migration.backfill(None, editor)
    for p in (first, second):
        assert _table_rows(p) == written[p.pk]
        assert_table_matches(p)


@pytest.mark.django_db
def test_no_runs_and_one_item() -> None:
    project = ProjectFactory(slug="sel-tiny", segment_keys=["tier", "locale"])
    assert_table_matches(project)
    assert response_design(project=project).items.size == 0
    assert estimates_compute(project=project, by="week")["groups"] == []
    strategy = strategy_create(
        project=project,
        data={**STRATEGY, "name": "one", "batch_size": 1, "holdout_fraction": 0.0},
    )
    _execute(project, strategy)  # a run over an empty pool
    assert not SelectedItem.objects.filter(project=project).exists()
    _seed(project, 1, 1, dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
    run = _execute(project, strategy)
    assert run.selected_count == 1  # pi = min(1, n q) = 1 for the only item
    _label(project, 1, share=1.0)
    assert_table_matches(project)
    assert_same_numbers(project)
    assert estimates_compute(project=project, by="model_version")["groups"][0]["n_labels"] == 1


@pytest.mark.django_db
def test_deleted_runs_and_interactions_take_their_selected_items() -> None:
    project = build(3)
    before = estimates_compute(project=project, by="run")
    run = (
        SamplingRun.objects.filter(project=project, deterministic=False, selected_count__gt=0)
        .order_by("id")
        .first()
    )
    assert run is not None
    assert str(run.pk) in {g["group"] for g in before["groups"]}
    run.delete()  # its inclusions go with it (ORM cascade), and so do its selected items
    assert not SelectedItem.objects.filter(run_id=run.pk).exists()
    assert_table_matches(project)
    after = estimates_compute(project=project, by="run")  # a new finished-runs key: re-read
    assert str(run.pk) not in {g["group"] for g in after["groups"]}
    assert_same_numbers(project)
    gone = SelectedItem.objects.filter(project=project).order_by("interaction_id").first()
    assert gone is not None
    Interaction.objects.filter(pk=gone.interaction_id).delete()
    assert not SelectedItem.objects.filter(pk=gone.interaction_id).exists()
    assert_table_matches(project)
    # Another project's items are untouched by all of it.
    other = build(4)
    kept = _table_rows(other)
    SamplingRun.objects.filter(project=project).delete()
    assert not SelectedItem.objects.filter(project=project).exists()
    assert _table_rows(other) == kept


@pytest.mark.django_db
def test_a_run_rolled_back_leaves_no_selected_items() -> None:
    project = ProjectFactory(slug="sel-rollback", segment_keys=["tier", "locale"])
    _seed(project, 60, 5, dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
    strategy = strategy_create(project=project, data={**STRATEGY, "name": "r"})
    with transaction.atomic():
        run = _execute(project, strategy)
        assert SelectedItem.objects.filter(run_id=run.pk).count() == run.selected_count > 0
        transaction.set_rollback(True)
    assert not SelectedItem.objects.filter(project=project).exists()
    assert not Inclusion.objects.filter(project=project).exists()


def _coverage_reference(project: Project, keys: list[str]) -> tuple[dict, dict, int]:
    """``coverage_counts`` as it read before the table: selected Inclusion rows joined to their
    interactions (and their topics)."""
    selected = Inclusion.objects.filter(project=project, selected=True)
    segments = {}
    for key in keys:
        counts: dict[object, int] = {}
        for group, n in (
            selected.annotate(_g=segment_group(key, through="interaction__segment"))
            .values_list("_g")
            .annotate(n=Count("id"))
            .values_list("_g", "n")
        ):
            counts[group] = counts.get(group, 0) + n
        segments[key] = counts
    clusters = {
        int(c): n
        for c, n in selected.filter(~Q(interaction__topic__cluster=None))
        .values_list("interaction__topic__cluster")
        .annotate(n=Count("id"))
        .values_list("interaction__topic__cluster", "n")
    }
    return segments, clusters, selected.count()


@pytest.mark.django_db
def test_coverage_counts_read_from_the_selected_items() -> None:
    """The runs' coverage counts (labels already asked for, per segment value and topic) read
    from the table equal the counts over the selected Inclusion rows."""
    project = build(5)
    rng = np.random.default_rng(5)
    InteractionTopic.objects.bulk_create(
        [
            InteractionTopic(interaction_id=i, cluster=int(rng.integers(0, 4)), proxy_version=1)
            for i in Interaction.objects.filter(project=project).values_list("id", flat=True)
            if rng.random() < 0.7
        ]
    )
    keys = ["tier", "locale", "absent"]
    found = coverage_counts(project=project, segment_minimums=dict.fromkeys(keys, 5))
    segments, clusters, total = _coverage_reference(project, keys)
    assert found.segment_labels == segments
    assert found.cluster_labels == clusters
    assert found.total_labels == total > 0


@pytest.mark.django_db
def test_inclusion_indexes_after_the_migrations() -> None:
    """Migration 0008: no b-tree on (project, run) left to write; on PostgreSQL a BRIN index."""
    with connection.cursor() as cursor:
        names = {
            c
            for c, info in connection.introspection.get_constraints(
                cursor, Inclusion._meta.db_table
            ).items()
            if info["index"]
        }
    assert "ix_inclusion_project" not in names
    assert "ix_inclusion_selected" in names
    if connection.vendor == "postgresql":
        assert "ix_inclusion_project_brin" in names
