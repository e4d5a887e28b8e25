"""The dashboard's own reads (issue 16) give the numbers of the plain reads they replace: per-topic
coverage in one pass, and the first-label dates shared within a page, on random projects (tiny and
larger, deterministic and unlabelled runs, a run not finished) under every kind of filter."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from labeling.models import Annotation
from sampling.models import Inclusion, InteractionTopic, SamplingRun
from sampling.selectors.coverage import (
    _label_latency_hours_scan,
    cluster_coverage,
    label_latency_hours,
)
from sampling.selectors.estimates import filtered_inclusions, shared_design
from sampling.selectors.monitoring import _first_label_dates, first_label_dates
from sampling.selectors.scans import shared_scans
from sampling.services.topic_cells import topic_cells_rebuild
from tests.test_population_cells import _filters, build


def _expected_clusters(project: Any, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Per cluster, counted row by row: considered, selected, selected with a current label."""
    topics = dict(InteractionTopic.objects.values_list("interaction_id", "cluster"))
    labelled = set(
        Annotation.objects.filter(
            queue_item__project=project, is_current=True, kind=Annotation.Kind.LABEL
        ).values_list("interaction_id", flat=True)
    )
    traffic: Counter[int] = Counter()
    selected: Counter[int] = Counter()
    labels: Counter[int] = Counter()
    for interaction_id, is_selected in filtered_inclusions(
        project=project, filters=filters
    ).values_list("interaction_id", "selected"):
        cluster = topics.get(interaction_id, -1)
        traffic[cluster] += 1
        selected[cluster] += is_selected
        labels[cluster] += is_selected and interaction_id in labelled
    rows = [
        {"cluster": c, "traffic": traffic[c], "selected": selected[c], "labels": labels[c]}
        for c in traffic
    ]
    return sorted(rows, key=lambda r: (-r["traffic"], r["cluster"]))


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
@pytest.mark.parametrize("seed", range(20, 24))
def test_cluster_coverage_counts_every_row(seed: int) -> None:
    project = build(seed)
    rng = np.random.default_rng(seed)
    ids = list(Inclusion.objects.filter(project=project).values_list("interaction_id", flat=True))
    InteractionTopic.objects.bulk_create(  # some items never clustered (cluster -1)
        [
            InteractionTopic(interaction_id=i, cluster=int(rng.integers(0, 4)))
            for i in ids
            if rng.random() < 0.8
        ]
    )
    topic_cells_rebuild(project=project)  # as the migration's backfill
    runs = sorted(
        SamplingRun.objects.filter(project=project, deterministic=False).values_list(
            "id", flat=True
        )
    )
    for filters in _filters(runs):
        assert cluster_coverage(project=project, filters=filters) == _expected_clusters(
            project, filters
        ), (seed, filters)


@pytest.mark.django_db
def test_first_label_dates_are_read_once_per_page() -> None:
    project = next(  # a random project with labels
        p
        for seed in range(25, 40)
        if Annotation.objects.filter(queue_item__project=(p := build(seed))).exists()
    )
    expected = _first_label_dates(project)
    assert expected
    assert first_label_dates(project=project) == expected
    with shared_scans():
        first = first_label_dates(project=project)
        assert first == expected
        assert first_label_dates(project=project) is first  # the same answer, not a second read


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
@pytest.mark.parametrize("seed", range(40, 46))
def test_label_latency_from_the_selected_items_equals_the_plain_read(seed: int) -> None:
    """Label latency from the selected items' columns and the shared first-label dates: the same
    hours, in the same order, as joining the selected inclusions to their annotations, under
    every kind of filter (and within one page, with the reads shared)."""
    project = build(seed)
    runs = sorted(
        SamplingRun.objects.filter(project=project, deterministic=False).values_list(
            "id", flat=True
        )
    )
    seen = 0
    for filters in _filters(runs):
        expected = _label_latency_hours_scan(project=project, filters=filters)
        seen += len(expected)
        assert label_latency_hours(project=project, filters=filters) == expected, (seed, filters)
        assert label_latency_hours(project=project, filters=filters, limit=3) == expected[:3]
        with shared_design(), shared_scans():
            assert label_latency_hours(project=project, filters=filters) == expected
