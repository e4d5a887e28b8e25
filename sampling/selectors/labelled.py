"""The labelled side of the estimates (issue 16): every selected item of the project's finished
runs with its final label, read once as columns and shared.

One index range of the selected-items table (``sampling.models.SelectedItem``: each run's
selected items with the three interaction columns the groupings and filters need, model version,
segment and ``occurred_at``, written by the run beside its Inclusion rows), one read of the
current labels of the target question, one of the skipped queue items. The result
(:class:`SelectedItems`) holds numpy columns sorted by interaction id;
``sampling.selectors.estimates`` computes the response design and every group's sample from it
with array operations instead of a query and a Python loop per ``domain_data`` call.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, Max, Q, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast
from numpy.typing import NDArray

from labeling.models import Annotation, Project, QueueItem
from labeling.selectors.labels import current_annotations, final_values, target_good
from sampling.models import SamplingRun, SelectedItem

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

    - The items (the selected-items rows: selected Inclusion rows with their interactions'
      columns) change only when a run finishes (a finished run's inclusions never change) or an
      interaction is deleted (which touches the project's ``updated_at``): keyed by both.
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
        # touched when an interaction is deleted (sampling.receivers), and by settings edits
        project.updated_at.isoformat() if project.updated_at else None,
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
    """The selected items of the finished ``runs`` with their interactions' version, segment and
    time, as columns: one index range of the narrow selected-items table (``SelectedItem``,
    written by each run beside its Inclusion rows), not the scattered selected Inclusion rows
    joined to their interactions. On PostgreSQL the rows come as arrays, one row per model version
    and segment (:func:`_grouped_rows`); elsewhere row by row."""
    run_ids = [r for r, _ in runs]
    if connection.vendor == "postgresql":
        columns = _grouped_rows(project_id=project.pk, run_ids=run_ids)
    else:
        columns = _plain_rows(project=project, run_ids=run_ids)
    return {**columns, "done_runs": [r for r, deterministic in runs if not deterministic]}


def _plain_rows(*, project: Project, run_ids: list[int]) -> dict[str, Any]:
    rows = list(
        SelectedItem.objects.filter(project=project, run_id__in=run_ids)
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
    )
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 7
    ids, run_column, fs, pis, versions_raw, segments_raw, occurred = columns
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
        "run_id": np.array(run_column, dtype=np.int64),
        "f": np.array(fs, dtype=float),
        "pi": np.array([np.nan if p is None else p for p in pis], dtype=float),
        "version": version,
        "versions": list(version_index),
        "segment": segment,
        "segments": [_segment_object(text) for text in segment_index],
        "occurred_us": np.array(_microseconds(occurred), dtype=np.int64),
    }


def _grouped_rows(*, project_id: int, run_ids: list[int]) -> dict[str, Any]:
    """The columns of :func:`_plain_rows` from one PostgreSQL query that returns one row per
    model version and segment text with the items' columns as arrays (``occurred_at`` as integer
    microseconds, a missing ``pi`` as NaN): a few dozen rows instead of one per item. Versions
    and segments are numbered in the order of their first item, as row by row."""
    sql = (
        "SELECT model_version, segment::text, array_agg(interaction_id), array_agg(run_id), "
        "array_agg(f), array_agg(COALESCE(pi, 'NaN'::float8)), "
        "array_agg((EXTRACT(EPOCH FROM occurred_at) * 1000000)::bigint) "
        f"FROM {SelectedItem._meta.db_table} "
        "WHERE project_id = %s AND run_id = ANY(%s::bigint[]) GROUP BY 1, 2"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [project_id, run_ids])
        groups = cursor.fetchall()
    empty_int, empty_float = np.zeros(0, dtype=np.int64), np.zeros(0)
    parts: list[list[NDArray[Any]]] = [[empty_int], [empty_int], [empty_float], [empty_float]]
    occurred_parts, version_parts, segment_parts = [empty_int], [empty_int], [empty_int]
    version_index: dict[str, int] = {}
    segment_index: dict[str | None, int] = {}
    for version, segment, *arrays in groups:
        for column, values, dtype in zip(
            parts, arrays[:4], (np.int64, np.int64, float, float), strict=True
        ):
            column.append(np.array(values, dtype=dtype))
        occurred_parts.append(np.array(arrays[4], dtype=np.int64))
        size = len(arrays[0])
        version_parts.append(
            np.full(size, version_index.setdefault(version or "", len(version_index)))
        )
        segment_parts.append(np.full(size, segment_index.setdefault(segment, len(segment_index))))
    ids = np.concatenate(parts[0])
    order = np.argsort(ids, kind="stable")
    version = np.concatenate(version_parts)[order]
    segment = np.concatenate(segment_parts)[order]
    version_order, version_code = _first_seen(version, len(version_index))
    segment_order, segment_code = _first_seen(segment, len(segment_index))
    versions, segments = list(version_index), list(segment_index)
    return {
        "interaction_id": ids[order],
        "run_id": np.concatenate(parts[1])[order],
        "f": np.concatenate(parts[2])[order],
        "pi": np.concatenate(parts[3])[order],
        "version": version_code,
        "versions": [versions[v] for v in version_order],
        "segment": segment_code,
        "segments": [_segment_object(segments[s]) for s in segment_order],
        "occurred_us": np.concatenate(occurred_parts)[order],
    }


def _first_seen(codes: IntArray, size: int) -> tuple[list[int], IntArray]:
    """Renumber ``codes`` (values below ``size``) in the order of their first occurrence: the
    old codes in their new order, and the new code of each element."""
    if not codes.size:
        return [], codes
    values, first = np.unique(codes, return_index=True)
    old = values[np.argsort(first, kind="stable")]
    new = np.zeros(max(size, 1), dtype=np.int64)
    new[old] = np.arange(old.size)
    return [int(v) for v in old], new[codes]


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

    Only the target question is combined (on PostgreSQL only its answer is read). An item with a
    single label and no adjudication (almost all of them) takes the outcome of its text, decoded
    once per distinct text, by array operations; the others are combined one by one.
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
    parts = _label_parts(project=project, cutoff=cutoff, key=key, ids=ids)
    decode, words = parts.decode, parts.words

    def outcome(
        texts: list[str | None], adjudication: tuple[str | None] | None
    ) -> tuple[float | None, float | None, bool]:
        final = final_values(
            schema=target_only,
            annotations=[decode(t) for t in texts],
            adjudication=None if adjudication is None else decode(adjudication[0]),
        )
        raw = final.get(key)
        number = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        return target_good(schema=schema, values=final), number, key in final and raw is None

    def put(p: Any, found: tuple[float | None, float | None, bool]) -> None:
        good, value, tie = found
        if good is None:
            tied[p] = tie
            return
        labelled[p] = True
        y[p] = good
        if value is not None:
            has_rating[p] = True
            rating[p] = value

    # Single labels: one outcome per distinct text, spread by array indexing.
    p, c = parts.single_at, parts.single_code
    good_of = np.full(len(words), np.nan)
    value_of = np.full(len(words), np.nan)
    tie_of = np.zeros(len(words), dtype=bool)
    for code in np.unique(c).tolist():
        good, value, tie = outcome([words[code]], None)
        good_of[code] = np.nan if good is None else good
        value_of[code] = np.nan if value is None else value
        tie_of[code] = tie
    has = ~np.isnan(good_of[c])
    labelled[p[has]] = True
    y[p[has]] = good_of[c[has]]
    numbered = has & ~np.isnan(value_of[c])
    has_rating[p[numbered]] = True
    rating[p[numbered]] = value_of[c[numbered]]
    tied[p[~has]] = tie_of[c[~has]]
    # Several labels or an adjudication: combined item by item, oldest first.
    given: dict[int, list[str | None]] = defaultdict(list)
    adjudicated: dict[int, tuple[str | None]] = {}
    for interaction_id, adj, text in parts.rest:
        at = int(np.searchsorted(ids, interaction_id))
        if adj:
            adjudicated[at] = (text,)
        else:
            given[at].append(text)
    for at in set(given) | set(adjudicated):
        put(at, outcome(given.get(at, []), adjudicated.get(at)))
    return out


@dataclass
class _LabelParts:
    """The current labels of the selected items, split for :func:`_labels`."""

    decode: Callable[[str | None], dict[str, Any]]  # a text -> the annotation's values
    words: list[str | None]  # the distinct texts of the single labels
    single_at: IntArray  # items with one plain label (no adjudication): their positions in ids
    single_code: IntArray  # and their label's text, an index into ``words``
    rest: list[tuple[int, bool, str | None]]  # the other items' rows, oldest first


def _label_parts(*, project: Project, cutoff: int | None, key: str, ids: IntArray) -> _LabelParts:
    """The labels of the items ``ids`` (sorted). On PostgreSQL one query groups the items with a
    single plain label by their answer's text (a few rows of id arrays: no Python object per
    label), and the items with several labels or an adjudication are read again, oldest first;
    elsewhere every row is read, oldest first, and split here."""
    n = ids.size
    if connection.vendor == "postgresql":
        return _label_parts_grouped(project=project, cutoff=cutoff, key=key, ids=ids)
    rows, decode, _ = _label_rows(project=project, cutoff=cutoff, key=key)
    none = np.zeros(0, dtype=np.int64)
    if not rows:
        return _LabelParts(decode, [], none, none, [])
    iid_raw, adjudication_raw, texts = zip(*rows, strict=True)
    iid = np.array(iid_raw, dtype=np.int64)
    at = np.minimum(np.searchsorted(ids, iid), n - 1)
    keep = ids[at] == iid  # labels of the selected items only
    text_index: dict[str | None, int] = {}
    code = np.array([text_index.setdefault(t, len(text_index)) for t in texts], dtype=np.int64)
    adjudication = np.array(adjudication_raw, dtype=bool)
    at, code, adjudication = at[keep], code[keep], adjudication[keep]
    rows_of = np.bincount(at, minlength=n)
    single = (rows_of[at] == 1) & ~adjudication  # the item's only row, a plain label
    rest = [row for row, k in zip(rows, keep.tolist(), strict=True) if k]
    rest = [r for r, s in zip(rest, ~single, strict=True) if s]
    return _LabelParts(decode, list(text_index), at[single], code[single], rest)


def _label_parts_grouped(
    *, project: Project, cutoff: int | None, key: str, ids: IntArray
) -> _LabelParts:
    n = ids.size
    adjudication = ExpressionWrapper(
        Q(kind=Annotation.Kind.ADJUDICATION), output_field=BooleanField()
    )
    answer = RawSQL("(labeling_annotation.values -> %s)::text", [key], output_field=TextField())
    inner, params = (
        current_annotations(project=project, cutoff=cutoff)
        .order_by()
        .values_list("interaction_id", adjudication, answer)
        .query.sql_with_params()
    )
    sql = (
        "WITH cur (interaction_id, adj, t) AS (" + inner + "), "
        "per AS (SELECT interaction_id, count(*) = 1 AND NOT bool_or(adj) AS single, min(t) AS t "
        "FROM cur GROUP BY interaction_id) "
        "SELECT single, CASE WHEN single THEN t END, array_agg(interaction_id) "
        "FROM per GROUP BY 1, 2"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        groups = cursor.fetchall()
    words: list[str | None] = []
    single_at, single_code, rest_ids = [], [], []
    for single, text, members in groups:
        found = np.array(members, dtype=np.int64)
        at = np.minimum(np.searchsorted(ids, found), max(n - 1, 0))
        keep = ids[at] == found if n else np.zeros(found.size, dtype=bool)
        if single:
            single_at.append(at[keep])
            single_code.append(np.full(int(keep.sum()), len(words), dtype=np.int64))
            words.append(text)
        else:
            rest_ids.extend(found[keep].tolist())
    rest: list[tuple[int, bool, str | None]] = []
    if rest_ids:
        rest, _, _ = _label_rows(project=project, cutoff=cutoff, key=key, only=sorted(rest_ids))

    def decode(text: str | None) -> dict[str, Any]:
        return {} if text is None else {key: json.loads(text)}

    none = np.zeros(0, dtype=np.int64)
    return _LabelParts(
        decode,
        words,
        np.concatenate([none, *single_at]),
        np.concatenate([none, *single_code]),
        rest,
    )


def _label_rows(
    *, project: Project, cutoff: int | None, key: str, only: list[int] | None = None
) -> tuple[list[tuple[int, bool, str | None]], Callable[[str | None], dict[str, Any]], bool]:
    """(interaction id, is an adjudication, text) of the project's current annotations (of the
    interactions ``only`` when given), how to decode a text into the annotation's values, and
    whether the rows are oldest first.

    On PostgreSQL the text is the target question's answer only (``values -> key``; None when
    the annotation has no such key), and the rows come in no order unless ``only`` is given (a
    sort of every label in the database costs more than the few items with several labels
    read again); elsewhere the text holds every value and the rows are oldest first.
    """
    query = current_annotations(project=project, cutoff=cutoff)
    if only is not None:
        query = query.filter(interaction_id__in=only)
    adjudication = ExpressionWrapper(
        Q(kind=Annotation.Kind.ADJUDICATION), output_field=BooleanField()
    )
    postgresql = connection.vendor == "postgresql"
    if postgresql:
        text: Any = RawSQL(
            "(labeling_annotation.values -> %s)::text", [key], output_field=TextField()
        )
    else:
        text = Cast("values", output_field=TextField())
    ordered = not postgresql or only is not None
    query = query.order_by("created_at", "id") if ordered else query.order_by()
    sql, params = query.values_list("interaction_id", adjudication, text).query.sql_with_params()
    with connection.cursor() as cursor:  # plain rows: no per-row converters
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not postgresql:
        return rows, _decode_values, ordered

    def decode(text: str | None) -> dict[str, Any]:
        return {} if text is None else {key: json.loads(text)}

    return rows, decode, ordered


def _decode_values(text: str | None) -> dict[str, Any]:
    value = json.loads(text) if text else None
    return value if isinstance(value, dict) else {}


def rated_ids(*, project: Project, items: SelectedItems) -> BoolArray:
    """Which of ``items`` have an explicit rating now (read fresh: ratings change after a run)."""
    if not items.size:
        return np.zeros(0, dtype=bool)
    runs = sorted(set(items.run_id.tolist()))
    rated = np.array(
        sorted(
            SelectedItem.objects.filter(
                project=project, run_id__in=runs, interaction__explicit_rating__isnull=False
            ).values_list("interaction_id", flat=True)
        ),
        dtype=np.int64,
    )
    return np.isin(items.interaction_id, rated)
