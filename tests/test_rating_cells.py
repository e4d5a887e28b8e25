"""Explicit ratings in the population cells (issue 16): processing rating events moves each
considered interaction's rating in its run's cell in the same transaction, so the cells' counts
equal a rebuild from the inclusions and the estimates' population side (rated counts, thumbs-down,
the split by ``rated``) equals the plain read of every inclusion, on random projects, after
ratings are given, changed and withdrawn; a sampling run counts the ratings it read."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from labeling.models import Event, EventType, Interaction, Project
from labeling.services.processing import interactions_process
from sampling.models import SamplingRun
from sampling.selectors import labelled
from sampling.selectors.estimates import (
    _domain_data_scan,
    domain_data,
    rated_now,
    response_design,
)
from sampling.selectors.scans import shared_scans
from sampling.services.population import population_cells_rebuild
from tests.factories import ProjectFactory
from tests.test_population_cells import (
    BASE,
    _cell_rows,
    _filters,
    _run_strategy,
    assert_same,
    build,
)

BYS: list[list[str]] = [[], ["rated"], ["segment.tier"], ["week", "rated"], ["model_version"]]


def _thumbs(project: Project, rng: np.random.Generator, share: float) -> list[int]:
    """Thumbs events for a random part of the project's interactions (some twice: the latest
    counts); returns every interaction id (all are processed: those without events lose any
    rating they had)."""
    ids = list(Interaction.objects.filter(project=project).values_list("id", "external_id"))
    events = []
    for n, (pk, external) in enumerate(ids):
        for k in range(int(rng.random() < share) + int(rng.random() < share / 3)):
            events.append(
                Event(
                    project=project,
                    interaction_id=pk,
                    external_id=external,
                    type=[EventType.THUMBS_UP, EventType.THUMBS_DOWN][int(rng.integers(2))],
                    occurred_at=BASE + dt.timedelta(days=20, seconds=n, minutes=k),
                )
            )
    Event.objects.bulk_create(events)
    return [pk for pk, _ in ids]


def _assert_cells_current(project: Project, context: Any) -> None:
    moved = _cell_rows(project)
    population_cells_rebuild(project=project)
    rebuilt = _cell_rows(project)
    assert [r[:7] + r[7:9] + r[10:] for r in moved] == [r[:7] + r[7:9] + r[10:] for r in rebuilt], (
        context
    )
    for a, b in zip(moved, rebuilt, strict=True):  # sums of f in another order
        assert a[9] == pytest.approx(b[9], rel=1e-12, abs=1e-9), context


def _assert_estimates(project: Project, context: Any) -> int:
    runs = sorted(
        SamplingRun.objects.filter(project=project, deterministic=False).values_list(
            "id", flat=True
        )
    )
    design = response_design(project=project)
    compared = 0
    for filters in _filters(runs):
        for by in BYS:
            scan = _domain_data_scan(project=project, by=by, filters=filters, design=design)
            assert_same(
                domain_data(project=project, by=by, filters=filters, design=design),
                scan,
                (context, by, filters),
            )
            with shared_scans():
                assert_same(
                    domain_data(project=project, by=by, filters=filters, design=design),
                    scan,
                    (context, by, filters, "shared"),
                )
            compared += any(d.rated for d in scan)
    return compared


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
@pytest.mark.parametrize("seed", range(60, 66))
def test_processed_ratings_move_in_the_cells(seed: int) -> None:
    project = build(seed)  # late ratings already moved as processing moves them
    rng = np.random.default_rng(seed)
    compared = _assert_estimates(project, (seed, "built"))
    for round_ in range(2):  # given, changed, withdrawn: through the real processing
        interactions_process(interaction_ids=_thumbs(project, rng, share=0.4))
        _assert_cells_current(project, (seed, round_))
        compared += _assert_estimates(project, (seed, round_))
        items = response_design(project=project).items  # the selected items rated now
        np.testing.assert_array_equal(
            rated_now(items=items), labelled.rated_ids(project=project, items=items)
        )
    assert compared or Interaction.objects.filter(project=project).count() < 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
def test_a_sampling_run_counts_the_ratings_it_read_and_processing_moves_them() -> None:
    project = ProjectFactory(slug="ratings-run")
    Interaction.objects.bulk_create(
        [
            Interaction(
                project=project,
                external_id=f"q{i}",
                occurred_at=BASE + dt.timedelta(hours=5 * i),
                model_version=["a", "b"][i % 2],
                messages=[{"role": "user", "content": "q"}],
                response="r",
                segment={"tier": ["free", "pro"][i % 2]},
                explicit_rating=[None, 1, -1, None][i % 4],
            )
            for i in range(80)
        ]
    )
    run = _run_strategy(project)
    written = _cell_rows(project)
    assert {r[0] for r in written} == {run.pk}
    assert sum(r[7] for r in written) == 40  # rated as the run read them
    assert sum(r[8] for r in written) == 20
    _assert_cells_current(project, "run")
    interactions_process(interaction_ids=_thumbs(project, np.random.default_rng(3), share=0.5))
    _assert_cells_current(project, "processed")
    _assert_estimates(project, "processed")  # (no labels: the population is empty on both sides)
