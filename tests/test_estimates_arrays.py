"""The labelled side read once as columns (issue 16) gives the numbers of the row-by-row path.

``response_design`` and ``domain_data`` now work on the selected items as numpy columns
(``sampling.selectors.labelled``), cached per data version. The reference is the earlier path,
kept beside it: ``_response_design_scan`` (every selected row, ``final_labels``, the recursive
cells) and ``_domain_data_scan`` (every inclusion for the population, every selected row for the
sample). Random projects from ``tests.test_population_cells.build`` (tiny and larger, runs
without pi, runs without labels, an unfinished run, segment values that are strings, numbers,
booleans and null, ratings given after the run), plus overlapping labels, adjudications (one
with a null answer), superseded versions, skips, and a binary target with ties; every grouping
under every kind of filter, and an export snapshot's ``cutoff``. Then: the cache is used, and a
new label, skip, finished run or rating changes the answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.models import Annotation, Interaction, Project, QueueItem
from sampling import estimators
from sampling.models import Inclusion, SamplingRun
from sampling.selectors.estimates import (
    DomainData,
    _domain_data_scan,
    _response_design_scan,
    domain_data,
    estimates_compute,
    response_design,
)
from sampling.services.population import population_cells_rebuild
from tests.factories import UserFactory
from tests.test_population_cells import BASE, BYS, _filters, build

BINARY_SCHEMA = {
    "questions": [{"key": "ok", "type": "binary", "prompt": "Is it right?"}],
    "target": {"question": "ok", "good": [True]},
}


def build_labelled(seed: int) -> Project:
    project = build(seed)
    rng = np.random.default_rng(1000 + seed)
    binary = seed % 2 == 1
    key = "ok" if binary else "quality"

    def answer() -> Any:
        return bool(rng.random() < 0.6) if binary else int(rng.integers(1, 6))

    if binary:
        project.label_schema = BINARY_SCHEMA
        project.save()
        for a in Annotation.objects.filter(queue_item__project=project):
            a.values = {key: answer()} if rng.random() < 0.95 else {}
            a.save(update_fields=["values"])
    second, judge, earlier = UserFactory(), UserFactory(), UserFactory()
    extra = []
    for q in QueueItem.objects.filter(project=project):
        r = rng.random()
        if r < 0.3:  # a second annotator (a tie on a binary target when they disagree)
            extra.append(
                Annotation(
                    queue_item=q,
                    interaction_id=q.interaction_id,
                    annotator=second,
                    values={key: answer()},
                    schema_version=1,
                )
            )
        if 0.2 < r < 0.35:  # an adjudication, sometimes without an answer to the target
            extra.append(
                Annotation(
                    queue_item=q,
                    interaction_id=q.interaction_id,
                    annotator=judge,
                    kind=Annotation.Kind.ADJUDICATION,
                    values={key: None if rng.random() < 0.2 else answer()},
                    schema_version=1,
                )
            )
        if rng.random() < 0.15:  # a superseded version: never counts
            extra.append(
                Annotation(
                    queue_item=q,
                    interaction_id=q.interaction_id,
                    annotator=earlier,
                    values={key: answer()},
                    schema_version=1,
                    is_current=False,
                )
            )
        if rng.random() < 0.2:
            q.skip_count = int(rng.integers(1, 3))
            q.save(update_fields=["skip_count", "updated_at"])
    Annotation.objects.bulk_create(extra)
    return project


def assert_close(a: Any, b: Any, where: Any) -> None:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert a is not None, where
        assert b is not None, where
        assert a.shape == b.shape, where
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=str(where))
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12), where
    elif isinstance(a, dict):
        assert isinstance(b, dict), where
        assert sorted(a) == sorted(b), where
        for k in a:
            assert_close(a[k], b[k], (where, k))
    elif isinstance(a, list | tuple):
        assert type(a) is type(b), where
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, (where, i))
    else:
        assert a == b, where


def assert_same_domains(new: list[DomainData], old: list[DomainData], context: Any) -> None:
    assert [d.group for d in new] == [d.group for d in old], context
    for a, b in zip(new, old, strict=True):
        for f in fields(DomainData):
            if f.name == "sample":  # rows of the array path's items: the scan has none
                continue
            assert_close(getattr(a, f.name), getattr(b, f.name), (context, a.group, f.name))


def assert_same_design(project: Project, cutoff: int | None) -> None:
    new = response_design(project=project, cutoff=cutoff)
    old = _response_design_scan(project=project, cutoff=cutoff)
    assert_close(new.run_rate, old.run_rate, "run_rate")
    assert new.unlabelled_runs == old.unlabelled_runs
    assert new.run_counts == old.run_counts
    assert_close(new.item_rate, old.item_rate, "item_rate")
    assert new.item_cell == old.item_cell
    assert new.cutoff == old.cutoff
    selected = set(new.items.interaction_id.tolist())
    assert_close(new.labels, {i: v for i, v in old.labels.items() if i in selected}, "labels")
    assert new.tied == old.tied & selected
    assert new.skipped == old.skipped & selected


def extra_filters(runs: list[int]) -> list[dict[str, Any]]:
    return [
        {"segment": {"tier": ["3"]}},  # a string never matches the number 3
        {"segment": {"tier": ["true", "null", "pro"]}},
        {"segment": {"tier": [3]}},  # not a string: the database decides
        {"segment": {"absent": ["x"]}},
        {"segment": {"tier": []}},
        {"model_versions": "b"},
        {"model_versions": ["a", ""]},
        {"runs": [str(r) for r in runs[-1:]]},
    ]


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
@pytest.mark.parametrize("seed", range(8))
def test_the_array_path_gives_the_numbers_of_the_row_path(seed: int) -> None:
    project = build_labelled(seed)
    runs = sorted(
        SamplingRun.objects.filter(project=project, deterministic=False).values_list(
            "id", flat=True
        )
    )
    assert_same_design(project, None)
    new_design = response_design(project=project)
    old_design = _response_design_scan(project=project)
    compared = 0
    for filters in [*_filters(runs), *extra_filters(runs)]:
        for by in BYS:
            new = domain_data(project=project, by=by, filters=filters, design=new_design)
            old = _domain_data_scan(project=project, by=by, filters=filters, design=old_design)
            assert_same_domains(new, old, (seed, by, filters))
            compared += sum(d.y.size for d in old)
    assert compared  # not every comparison was of empty samples
    # An export snapshot: the labels as of a cutoff in the middle.
    ids = sorted(
        Annotation.objects.filter(queue_item__project=project).values_list("id", flat=True)
    )
    if ids:
        cutoff = ids[len(ids) // 2]
        assert_same_design(project, cutoff)
        new = domain_data(
            project=project, by=["run"], design=response_design(project=project, cutoff=cutoff)
        )
        old = _domain_data_scan(
            project=project,
            by=["run"],
            design=_response_design_scan(project=project, cutoff=cutoff),
        )
        assert_same_domains(new, old, (seed, "cutoff"))


def _selected_reads(queries: CaptureQueriesContext) -> int:
    return sum(
        "sampling_inclusion" in q["sql"] and "selected" in q["sql"] and "COUNT" not in q["sql"]
        for q in queries.captured_queries
    )


def _group(answer: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in answer["groups"] if g["group"] == name)


@pytest.mark.django_db
def test_the_labelled_side_is_cached_until_a_label_skip_run_or_rating_changes() -> None:
    for seed in range(2, 40, 2):  # a rating target with unlabelled items left to label
        project = build_labelled(seed)
        design = response_design(project=project)
        items = design.items
        covered = np.isin(items.run_id, sorted(design.run_rate)) & ~np.isnan(items.pi)
        open_ids = items.interaction_id[covered & ~items.labelled & ~items.tied].tolist()
        if len(open_ids) >= 2:
            break
    first = estimates_compute(project=project, by="run")
    with CaptureQueriesContext(connection) as queries:
        again = estimates_compute(project=project, by="run")
    assert again == first
    assert _selected_reads(queries) == 0  # from the cache

    # A new label: an unlabelled selected item of a covered run gets one.
    assert len(open_ids) >= 2
    item = QueueItem.objects.get(project=project, interaction_id=open_ids[0])
    Annotation.objects.create(
        queue_item=item,
        interaction_id=item.interaction_id,
        annotator=UserFactory(),
        values={"quality": 5},
        schema_version=1,
    )
    run_name = str(Inclusion.objects.get(interaction_id=item.interaction_id).run_id)
    with CaptureQueriesContext(connection) as queries:
        after = estimates_compute(project=project, by="run")
    assert _selected_reads(queries) == 0  # a label re-reads the labels, not the items
    assert _group(after, run_name)["n_labels"] == _group(first, run_name)["n_labels"] + 1

    # A skip: an unlabelled item moves from the backlog to the skipped.
    rest = [i for i in open_ids[1:] if not QueueItem.objects.get(interaction_id=i).skip_count]
    if rest:
        before = estimates_compute(project=project, by="run")
        skipped = QueueItem.objects.get(project=project, interaction_id=rest[0])
        skipped.skip_count = 1
        skipped.save(update_fields=["skip_count", "updated_at"])
        name = str(Inclusion.objects.get(interaction_id=rest[0]).run_id)
        now = estimates_compute(project=project, by="run")
        assert (
            _group(now, name)["response"]["skipped"]
            == _group(before, name)["response"]["skipped"] + 1
        )

    # A run finishes: its items enter the answer.
    run = SamplingRun.objects.create(project=project, status="running")
    inter = Interaction.objects.create(
        project=project,
        external_id="late-1",
        occurred_at=BASE + dt.timedelta(days=1),
        model_version="a",
        messages=[],
        response="r",
        segment={"tier": "pro"},
    )
    Inclusion.objects.create(
        run=run, project=project, interaction=inter, f=0.5, pi=1.0, selected=True
    )
    late = QueueItem.objects.create(project=project, interaction=inter, sampling_run_id=run.id)
    Annotation.objects.create(
        queue_item=late,
        interaction=inter,
        annotator=UserFactory(),
        values={"quality": 4},
        schema_version=1,
    )
    population_cells_rebuild(project=project)
    assert str(run.id) not in {
        g["group"] for g in estimates_compute(project=project, by="run")["groups"]
    }
    run.status = SamplingRun.Status.DONE
    run.save(update_fields=["status"])
    done = estimates_compute(project=project, by="run")
    assert _group(done, str(run.id))["n_labels"] == 1

    # A rating given after the run moves a labelled item between the rated groups.
    rated = estimates_compute(project=project, by="rated")
    inter.explicit_rating = None if inter.explicit_rating is not None else 1
    inter.save(update_fields=["explicit_rating"])
    moved = estimates_compute(project=project, by="rated")
    counts = {g["group"]: g["n_labels"] for g in rated["groups"]}
    counts_after = {g["group"]: g["n_labels"] for g in moved["groups"]}
    assert counts_after.get("yes", 0) == counts.get("yes", 0) + 1
    assert counts_after.get("no", 0) == counts.get("no", 0) - 1


@pytest.mark.parametrize("seed", range(200))
def test_coded_cells_and_rates_match_the_recursive_ones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 300))
    codes = [rng.integers(0, int(rng.integers(1, 6)), n) for _ in range(int(rng.integers(1, 5)))]
    responded = rng.random(n) < rng.random()
    least = int(rng.choice([1, 3, 20]))
    expected = estimators.response_cells(
        responded=responded, keys=[c.tolist() for c in codes], min_respondents=least
    )
    cell, paths = estimators.response_cells_coded(
        responded=responded, codes=codes, min_respondents=least
    )
    got = [tuple("*" if v == estimators.REMAINDER else v for v in paths[c]) for c in cell]
    assert got == expected
    pi = rng.uniform(0.05, 1.0, n)
    rates = estimators.cell_rates(pi=pi, responded=responded, cell=cell, cells=len(paths))
    _, found = estimators.nonresponse_adjust(pi=pi, responded=responded, cell=cell)
    assert rates.tolist() == [found[i] for i in range(len(paths))]  # to the last bit
