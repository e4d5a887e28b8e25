"""Reads a sampling run needs: the pool as arrays, coverage counts, the current proxy model.

The pool of a project is every interaction no run has considered yet (no Inclusion row), after
the strategy's filters. It is read as arrays straight from a cursor (one query, no model
instances): a 1,000,000-item pool must be read in about two seconds. Only ids above the project's
:class:`~sampling.models.PoolWatermark` floor are looked at (every interaction at or below it has
been considered), so in a project of 10M interactions a run reads the new arrivals, not 10M rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from django.db import connection
from django.db.models import (
    CharField,
    Count,
    Exists,
    FilteredRelation,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.utils.dateparse import parse_datetime

from labeling.models import Interaction, Project
from sampling.design import CoverageCounts, Pool
from sampling.features import prior_probability
from sampling.models import (
    Inclusion,
    InteractionTopic,
    PoolWatermark,
    ProxyModel,
    SelectedItem,
)

PRIOR_CHUNK = 5000


def proxy_current(*, project: Project | int) -> ProxyModel | None:
    """The newest ready proxy model of the project (None before the first training)."""
    return (
        ProxyModel.objects.filter(project=project, status=ProxyModel.Status.READY)
        .order_by("-version")
        .first()
    )


def pool_floor(*, project: Project | int) -> int:
    """Every interaction of the project with an id at or below this was considered by a run
    (0: no watermark yet, the pool is looked for among all the project's interactions)."""
    project_id = project if isinstance(project, int) else project.pk
    floor = (
        PoolWatermark.objects.filter(project_id=project_id).values_list("floor", flat=True).first()
    )
    return int(floor or 0)


def filters_narrow(filters: dict[str, Any] | None) -> bool:
    """Whether the strategy filters leave part of the pool out (a run with them does not consider
    every unconsidered interaction, so it cannot move the watermark)."""
    filters = filters or {}
    return any(filters.get(k) for k in ("model_versions", "segment", "since", "until"))


def pool_queryset(
    *, project: Project, filters: dict[str, Any] | None = None, after_id: int | None = None
) -> QuerySet:
    """Interactions of the project that no run has considered, after the strategy filters.

    ``after_id``: only ids above it (the caller knows everything at or below it was considered;
    None reads the project's :func:`pool_floor`). The same condition on the Inclusion side keeps
    the anti-join to the ids above the floor.
    """
    filters = filters or {}
    if after_id is None:
        after_id = pool_floor(project=project)
    considered = Inclusion.objects.filter(interaction_id=OuterRef("pk"))
    qs = Interaction.objects.filter(project=project)
    if after_id > 0:
        qs = qs.filter(pk__gt=after_id)
        considered = considered.filter(interaction_id__gt=after_id)
    qs = qs.filter(~Exists(considered))
    if filters.get("model_versions"):
        qs = qs.filter(model_version__in=filters["model_versions"])
    for key, values in (filters.get("segment") or {}).items():
        # A JSON key lookup: matches the stored value with its JSON type ("pro", 3, true).
        qs = qs.filter(**{f"segment__{key}__in": list(values)})
    if filters.get("since"):
        qs = qs.filter(occurred_at__gte=parse_datetime(filters["since"]))
    if filters.get("until"):
        qs = qs.filter(occurred_at__lt=parse_datetime(filters["until"]))
    return qs


def segment_group(key: str, *, through: str = "segment") -> Func | Coalesce:
    """A per-row group key for segment value ``key`` (what coverage counts by).

    PostgreSQL: ``hashtext`` of the text value as a fixed-width int (0 when missing), so the pool
    can be read as fixed-width binary; elsewhere the value as text ("" when missing): SQLite's
    ``json_extract`` gives numbers as numbers, and one key with both numbers and text in it (a
    tier of ``3`` beside ``"free"``) could not be grouped (``np.unique`` cannot order them).
    :func:`segment_group_values` maps keys back to values for display.
    """
    text = KeyTextTransform(key, through)
    if connection.vendor == "postgresql":
        return Coalesce(Func(text, function="hashtext", output_field=IntegerField()), Value(0))
    return Coalesce(Cast(text, CharField()), Value(""), output_field=CharField())


def segment_group_values(*, project: Project, key: str) -> dict[object, str | None]:
    """group key -> the segment value it stands for (None: the key is missing)."""
    rows = (
        Interaction.objects.filter(project=project)
        .annotate(_g=segment_group(key), _v=KeyTextTransform(key, "segment"))
        .values_list("_g", "_v")
        .distinct()
    )
    return dict(rows)


# The population-cell key of an interaction as fixed-width codes: 64-bit hashes of the model
# version and of the segment (jsonb_hash_extended: equal as jsonb, equal hash, the equality
# GROUP BY uses) and the UTC day. Two values sharing a 64-bit hash would share a cell: with a
# thousand distinct values the chance is about 3e-14.
_CELL_KEYS = {
    "_mv": RawSQL('hashtextextended("labeling_interaction"."model_version", 0)', []),
    "_sg": RawSQL('jsonb_hash_extended("labeling_interaction"."segment", 0)', []),
    "_day": RawSQL(
        """(("labeling_interaction"."occurred_at" AT TIME ZONE 'UTC')::date - DATE '2000-01-01')""",
        [],
    ),
    # The explicit rating (0: none): the cells count rated items and thumbs-down.
    "_r": RawSQL('COALESCE("labeling_interaction"."explicit_rating", 0)::int', []),
}


def pool_read(
    *,
    project: Project,
    filters: dict[str, Any] | None = None,
    segment_keys: Sequence[str] = (),
    after_id: int | None = None,
    cell_keys: bool = False,
) -> Pool:
    """The pool as arrays sorted by id: stored f, segment group keys (see :func:`segment_group`),
    topic clusters (-1: none).

    ``f`` is the stored proxy score; an unscored item gets the signal prior computed on the spot
    (what the proxy would have stored before any training). On PostgreSQL the rows come as one
    row whose columns are the items' values as bytea (``string_agg`` of their binary send format,
    see ``_read_binary``), parsed by numpy: no Python object per row. ``after_id`` as in
    :func:`pool_queryset`. ``cell_keys`` (PostgreSQL only): also each item's population-cell
    key, ``Pool.cells`` (see ``_CELL_KEYS``).
    """
    cell_keys = cell_keys and connection.vendor == "postgresql"
    if after_id is None:
        after_id = pool_floor(project=project)
    topic = "topic"
    qs = pool_queryset(project=project, filters=filters, after_id=after_id)
    if after_id > 0:  # the topic join, too, only looks above the floor
        topic = "_topic"
        qs = qs.annotate(
            _topic=FilteredRelation("topic", condition=Q(topic__interaction_id__gt=after_id))
        )
    qs = qs.annotate(
        _f=Coalesce("proxy_score", Value(float("nan")), output_field=FloatField()),
        _c=Cast(Coalesce(f"{topic}__cluster", Value(-1)), IntegerField()),
        **{f"_s{i}": segment_group(key) for i, key in enumerate(segment_keys)},
    )
    columns = ["id", "_f", "_c", *(f"_s{i}" for i in range(len(segment_keys)))]
    if cell_keys:
        qs = qs.annotate(**_CELL_KEYS)
        columns += list(_CELL_KEYS)
    sql, params = qs.order_by().values_list(*columns).query.sql_with_params()
    cells = None
    if connection.vendor == "postgresql":
        ids, f, clusters, groups, cells, ratings = _read_binary(
            sql, params, len(segment_keys), cell_keys
        )
    else:
        ids, f, clusters, groups = _read_rows(sql, params, len(segment_keys))
        ratings = None
    order = np.argsort(ids, kind="stable")
    ids, f, clusters = ids[order], f[order], clusters[order]
    segments = {key: groups[i][order] for i, key in enumerate(segment_keys)}
    missing = np.flatnonzero(np.isnan(f))
    if len(missing):
        f[missing] = _priors(project, ids[missing])
    return Pool(
        ids=ids,
        f=f,
        segments=segments,
        clusters=clusters,
        n_prior=len(missing),
        cells=None if cells is None else cells[order],
        ratings=None if ratings is None else ratings[order],
    )


# The PostgreSQL pool read returns each column as one bytea: the values in PostgreSQL's binary
# send format (big-endian), concatenated in the scan's order (the aggregates of one row see the
# rows in the same order, so the columns stay aligned). One row of a few megabytes per column
# instead of one COPY message per item; numpy reads it without a Python object per item. No
# column is NULL (the query coalesces them), so ``string_agg`` skips no value.
_SEND = {">i8": "int8send", ">i4": "int4send", ">f8": "float8send"}


def _pool_columns(n_keys: int, cell_keys: bool) -> list[tuple[str, str]]:
    """(query column, big-endian dtype) of the pool read, in order."""
    columns = [("id", ">i8"), ("_f", ">f8"), ("_c", ">i4")]
    columns += [(f"_s{i}", ">i4") for i in range(n_keys)]
    if cell_keys:
        columns += [("_mv", ">i8"), ("_sg", ">i8"), ("_day", ">i4"), ("_r", ">i4")]
    return columns


def _read_binary(sql: str, params: Any, n_keys: int, cell_keys: bool) -> tuple:
    columns = _pool_columns(n_keys, cell_keys)
    aggregates = ", ".join(
        f"string_agg({_SEND[dtype]}(q.{name}), ''::bytea)" for name, dtype in columns
    )
    connection.ensure_connection()
    # A server-side-binding psycopg cursor on Django's connection (Django's own cursors bind on
    # the client, which cannot return binary results): the bytea arrive as bytes, not hex text.
    with psycopg.Cursor(connection.connection) as raw:
        raw.execute(f"SELECT {aggregates} FROM ({sql}) AS q", params, binary=True)
        row = raw.fetchone() or [None] * len(columns)
    values = {
        name: np.frombuffer(data or b"", dtype=dtype)
        for (name, dtype), data in zip(columns, row, strict=True)
    }
    groups = [values[f"_s{i}"].astype(np.int64) for i in range(n_keys)]
    cells = ratings = None
    if cell_keys:
        cells = np.empty((len(values["id"]), 3), dtype=np.int64)
        cells[:, 0], cells[:, 1], cells[:, 2] = values["_mv"], values["_sg"], values["_day"]
        ratings = values["_r"].astype(np.int8)
    return (
        values["id"].astype(np.int64),
        values["_f"].astype(float),
        values["_c"].astype(np.int16),
        groups,
        cells,
        ratings,
    )


def _read_rows(sql: str, params: Any, n_keys: int) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    size = len(rows)
    if size == 0:
        empty = [np.zeros(0, dtype=object) for _ in range(n_keys)]
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int16), empty
    cols = list(zip(*rows, strict=True))
    f = np.array([np.nan if v is None else v for v in cols[1]], dtype=float)
    return (
        np.fromiter(cols[0], dtype=np.int64, count=size),
        f,
        np.fromiter(cols[2], dtype=np.int16, count=size),
        [np.array(cols[3 + i], dtype=object) for i in range(n_keys)],
    )


def _priors(project: Project, ids: np.ndarray) -> np.ndarray:
    """The cold-start prior for unscored interactions, in id order."""
    judge = project.primary_judge or None
    out: dict[int, float] = {}
    for start in range(0, len(ids), PRIOR_CHUNK):
        chunk = [int(i) for i in ids[start : start + PRIOR_CHUNK]]
        for pk, signals, rating, scores in Interaction.objects.filter(id__in=chunk).values_list(
            "id", "signals", "explicit_rating", "scores"
        ):
            value = scores.get(judge) if judge and isinstance(scores, dict) else None
            judge_value = (
                float(value)
                if isinstance(value, int | float) and not isinstance(value, bool)
                else None
            )
            out[pk] = prior_probability(signals, rating, judge_value)
    return np.array([out[int(i)] for i in ids])


def coverage_counts(*, project: Project, segment_minimums: dict[str, int]) -> CoverageCounts:
    """Labels already asked for: items selected by earlier runs, per segment value and cluster.

    Selected items count whether or not they are labelled yet (their labels are on the way), so a
    backlog does not make coverage ask for the same segment again and again. Read from the
    selected-items table (each item's segment is there; its topic cluster is looked up by id),
    not from the selected Inclusion rows joined to their wide interaction rows.
    """
    selected = SelectedItem.objects.filter(project=project)
    segment_labels: dict[str, dict[object, int]] = {}
    for key in segment_minimums:
        counts: dict[object, int] = defaultdict(int)
        for group, n in (
            selected.annotate(_g=segment_group(key))
            .values_list("_g")
            .annotate(n=Count("interaction_id"))
            .values_list("_g", "n")
        ):
            counts[group] += n
        segment_labels[key] = dict(counts)
    cluster_labels = {
        int(c): n
        for c, n in InteractionTopic.objects.filter(
            interaction_id__in=selected.values("interaction_id")
        )
        .values_list("cluster")
        .annotate(n=Count("interaction_id"))
        .values_list("cluster", "n")
    }
    return CoverageCounts(
        segment_minimums={k: int(v) for k, v in segment_minimums.items()},
        segment_labels=segment_labels,
        cluster_labels=cluster_labels,
        total_labels=selected.count(),
    )
