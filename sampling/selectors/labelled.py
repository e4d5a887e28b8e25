"""The labelled side of the estimates (issue 16): every selected item of the project's finished
runs with its final label, read once as columns and shared.

One narrow read of the selected Inclusion rows (through the partial index of selected rows, run
by run) with the three interaction columns the groupings and filters need (model version,
segment, ``occurred_at``), one read of the current labels of the target question, one of the
skipped queue items. The result (:class:`SelectedItems`) holds numpy columns sorted by interaction
id; ``sampling.selectors.estimates`` computes the response design and every group's sample from
it with array operations instead of a query and a Python loop per ``domain_data`` call.

The two expensive parts are cached (Django's cache, shared by the processes) under keys that
change whenever what they hold can change (:func:`selected_items`): the items with the finished
runs, their labels with every new annotation; skips are read fresh. Explicit ratings change after
a run and are not held here: a grouping by ``rated`` reads them fresh (:func:`rated_ids`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db import connection
from django.db.models import BigIntegerField, Func, Max, TextField
from django.db.models.functions import Cast
from numpy.typing import NDArray

from labeling.models import Annotation, Project, QueueItem
from labeling.selectors.labels import current_annotations, final_values, target_good
from sampling.models import Inclusion, SamplingRun

# The key changes with every change it covers, so an entry is never stale; the time only bounds
# how long an unused entry occupies the cache.
CACHE_SECONDS = 3600
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass
class SelectedItems:
    """Every selected item of the project's finished runs (deterministic ones included), as
    columns sorted by interaction id, with its usable final label (as of ``cutoff``)."""

    interaction_id: IntArray
    run_id: IntArray
    f: FloatArray
    pi: FloatArray  # NaN: the run recorded no pi (deterministic)
    version: IntArray  # index into ``versions``
    versions: list[str]  # model_version as stored ("" when missing)
    segment: IntArray  # index into ``segments``
    segments: list[dict[str, Any]]  # the segment objects ({} when not an object)
    occurred_us: IntArray  # occurred_at, microseconds since 1970-01-01 UTC
    labelled: BoolArray  # has a usable final label (its target is answered)
    y: FloatArray  # target_good of the final label (1 good, 0 not); 0 where not labelled
    has_rating: BoolArray  # the final target value is a number (a rating)
    rating: FloatArray  # that number; 0 where none
    tied: BoolArray  # not labelled: the annotators' answers to the target tie
    skipped: BoolArray  # skipped by an annotator at least once
    done_runs: list[int]  # finished probabilistic runs (with or without selected items)
    cutoff: int | None = None

    @property
    def size(self) -> int:
        return int(self.interaction_id.size)


def _done_runs(project: Project) -> list[tuple[int, bool]]:
    return sorted(
        SamplingRun.objects.filter(project=project, status=SamplingRun.Status.DONE).values_list(
            "id", "deterministic"
        )
    )


def _key(kind: str, *parts: Any) -> str:
    return f"{kind}:" + hashlib.sha256(repr(parts).encode()).hexdigest()


def selected_items(*, project: Project, cutoff: int | None = None) -> SelectedItems:
    """The selected items with their labels and skips, the two expensive parts from the cache.

    - The items (the selected Inclusion rows with their interactions' columns) change only when
      a run finishes (a finished run's inclusions never change): keyed by the finished runs.
    - Their labels change with every label: keyed by the items and the highest annotation id of
      the whole table (annotations are append-only: an edit or an adjudication is a new row and
      ``is_current`` moves only with one; another project's label causes a needless re-read of
      the labels only), the schema's questions and target, and ``cutoff``.
    - Skips (``skip_count`` changes in place) are read fresh: one short query.

    So a new label costs a read of the labels, not of the items.
    """
    runs = _done_runs(project)
    items_key = _key(
        "selected-items",
        project.pk,
        project.created_at.isoformat() if project.created_at else None,
        runs,
    )
    columns = cache.get(items_key)
    if not isinstance(columns, dict):
        columns = _read_items(project=project, runs=runs)
        cache.set(items_key, columns, CACHE_SECONDS)
    schema = project.label_schema or {}
    labels_key = _key(
        "selected-labels",
        items_key,
        json.dumps(schema.get("target"), sort_keys=True, default=str),
        json.dumps(schema.get("questions"), sort_keys=True, default=str),
        Annotation.objects.aggregate(last=Max("id"))["last"],
        cutoff,
    )
    labels = cache.get(labels_key)
    if not isinstance(labels, dict):
        labels = _labels(project=project, ids=columns["interaction_id"], cutoff=cutoff)
        cache.set(labels_key, labels, CACHE_SECONDS)
    return SelectedItems(
        **columns, **labels, skipped=_skipped(project, columns["interaction_id"]), cutoff=cutoff
    )


def _read_items(*, project: Project, runs: list[tuple[int, bool]]) -> dict[str, Any]:
    """The selected Inclusion rows of the finished ``runs`` with their interactions' version,
    segment and time, as columns (one query through the partial index of selected rows)."""
    rows = list(
        Inclusion.objects.filter(project=project, run_id__in=[r for r, _ in runs], selected=True)
        .order_by("interaction_id")
        .values_list(
            "interaction_id",
            "run_id",
            "f",
            "pi",
            "interaction__model_version",
            Cast("interaction__segment", output_field=TextField()),
            _occurred_column(),
        )
    )
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 7
    ids, run_ids, fs, pis, versions_raw, segments_raw, occurred = columns
    version_index: dict[str, int] = {}
    version = np.array(
        [version_index.setdefault(v or "", len(version_index)) for v in versions_raw],
        dtype=np.int64,
    )
    segment_index: dict[str | None, int] = {}
    segment = np.array(
        [segment_index.setdefault(s, len(segment_index)) for s in segments_raw], dtype=np.int64
    )
    return {
        "interaction_id": np.array(ids, dtype=np.int64),
        "run_id": np.array(run_ids, dtype=np.int64),
        "f": np.array(fs, dtype=float),
        "pi": np.array([np.nan if p is None else p for p in pis], dtype=float),
        "version": version,
        "versions": list(version_index),
        "segment": segment,
        "segments": [_segment_object(text) for text in segment_index],
        "occurred_us": np.array(
            occurred if connection.vendor == "postgresql" else _microseconds(occurred),
            dtype=np.int64,
        ),
        "done_runs": [r for r, deterministic in runs if not deterministic],
    }


def _skipped(project: Project, ids: IntArray) -> BoolArray:
    skipped = np.array(
        sorted(
            QueueItem.objects.filter(project=project, skip_count__gt=0).values_list(
                "interaction_id", flat=True
            )
        ),
        dtype=np.int64,
    )
    return np.isin(ids, skipped)


def _segment_object(text: str | None) -> dict[str, Any]:
    value = json.loads(text) if text else None
    return value if isinstance(value, dict) else {}


class EpochMicroseconds(Func):
    """``occurred_at`` as integer microseconds since the epoch, computed by PostgreSQL (exact:
    ``EXTRACT`` gives a numeric); saves parsing 50,000 datetimes in Python."""

    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"
    output_field = BigIntegerField()


def _occurred_column() -> str | Func:
    if connection.vendor == "postgresql":
        return EpochMicroseconds("interaction__occurred_at")
    return "interaction__occurred_at"


def _microseconds(values: tuple[Any, ...]) -> list[int]:
    """Aware datetimes as integer microseconds since the epoch (exact, unlike ``timestamp()``)."""
    return [(v - EPOCH) // dt.timedelta(microseconds=1) for v in values]


def microseconds(value: dt.datetime) -> int:
    """One aware datetime as :attr:`SelectedItems.occurred_us` holds it."""
    return (value - EPOCH) // dt.timedelta(microseconds=1)


def _labels(*, project: Project, ids: IntArray, cutoff: int | None) -> dict[str, Any]:
    """Usable final labels of the items ``ids`` (sorted), by the rules of
    ``labeling.selectors.labels`` (``final_values``, ``target_good``): ``y``, the rating when the
    final target value is a number, and the items whose target answers tie.

    Only the target question is combined, and an item with a single label and no adjudication
    (almost all of them) is looked up by the text of its values, decoded once per distinct text.
    """
    n = ids.size
    labelled = np.zeros(n, dtype=bool)
    y = np.zeros(n)
    has_rating = np.zeros(n, dtype=bool)
    rating = np.zeros(n)
    tied = np.zeros(n, dtype=bool)
    out = {"labelled": labelled, "y": y, "has_rating": has_rating, "rating": rating, "tied": tied}
    if not n:
        return out
    schema = project.label_schema or {}
    key = str((schema.get("target") or {}).get("question") or "")
    questions = [q for q in schema.get("questions", []) if q.get("key") == key]
    target_only = {**schema, "questions": questions}
    position = {int(i): p for p, i in enumerate(ids.tolist())}
    given: dict[int, list[str]] = defaultdict(list)
    adjudicated: dict[int, str] = {}
    rows = (
        current_annotations(project=project, cutoff=cutoff)
        .order_by("created_at", "id")
        .values_list("interaction_id", "kind", Cast("values", output_field=TextField()))
    )
    for interaction_id, kind, text in rows:
        if interaction_id not in position:
            continue
        if kind == Annotation.Kind.ADJUDICATION:
            adjudicated[interaction_id] = text
        else:
            given[interaction_id].append(text)

    def outcome(
        texts: list[str], adjudication: str | None
    ) -> tuple[float | None, float | None, bool]:
        final = final_values(
            schema=target_only,
            annotations=[json.loads(t) for t in texts],
            adjudication=None if adjudication is None else json.loads(adjudication),
        )
        raw = final.get(key)
        number = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        return target_good(schema=schema, values=final), number, key in final and raw is None

    single: dict[str, tuple[float | None, float | None, bool]] = {}
    for interaction_id in set(given) | set(adjudicated):
        texts = given.get(interaction_id, [])
        adjudication = adjudicated.get(interaction_id)
        if adjudication is None and len(texts) == 1:
            found = single.get(texts[0])
            if found is None:
                found = single[texts[0]] = outcome(texts, None)
        else:
            found = outcome(texts, adjudication)
        good, value, tie = found
        p = position[interaction_id]
        if good is None:
            tied[p] = tie
            continue
        labelled[p] = True
        y[p] = good
        if value is not None:
            has_rating[p] = True
            rating[p] = value
    return out


def rated_ids(*, project: Project, items: SelectedItems) -> BoolArray:
    """Which of ``items`` have an explicit rating now (read fresh: ratings change after a run)."""
    if not items.size:
        return np.zeros(0, dtype=bool)
    runs = sorted(set(items.run_id.tolist()))
    rated = np.array(
        sorted(
            Inclusion.objects.filter(
                project=project,
                run_id__in=runs,
                selected=True,
                interaction__explicit_rating__isnull=False,
            ).values_list("interaction_id", flat=True)
        ),
        dtype=np.int64,
    )
    return np.isin(items.interaction_id, rated)
