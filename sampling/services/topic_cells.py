"""Topic cells (issue 16): per run x model version x segment x day x topic cluster, the count of the
run's considered items (``sampling.models.TopicCell``).

Written by the sampling run in the transaction of its Inclusion rows, from the clusters it read
with its pool (:func:`topic_cells_write_arrays` on PostgreSQL, :func:`topic_cells_write` with one
``INSERT ... SELECT ... GROUP BY`` elsewhere), and kept up to date afterwards by
:func:`topic_cells_move`, which scoring calls in the transaction that rewrites clusters: a
considered interaction scored again (late feedback processed, a retrain) moves from its old
cluster's cell to its new one. Scoring holds the project's run lock shared while it does
(:func:`run_lock_shared`; a run holds it exclusively from before its pool read to its commit), so
a cluster is never changed between a run's read and its commit without the change reaching the
cells. :func:`topic_cells_rebuild` recomputes a project's cells from its inclusions and current
clusters (repair; the tests).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.db import connection, transaction

from labeling.models import Interaction, Project
from sampling.models import Inclusion, InteractionTopic, SamplingRun, TopicCell
from sampling.services.population import (
    day_sql,
    inclusion_rows,
    inclusions_joined_sql,
    segment_sql,
)

# The advisory-lock namespace of ``sampling.services.runs._lock_project`` ("SAMP"): a run takes
# (namespace, project) exclusively, scoring shared.
RUN_LOCK_NAMESPACE = 0x53414D50


def run_lock_shared(*, project_ids: Sequence[int]) -> None:
    """Take the run lock of each project shared, until the transaction ends (PostgreSQL; on SQLite
    the IMMEDIATE transactions already serialise writers). Call it before taking row locks."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for project_id in sorted({int(p) for p in project_ids}):
            cursor.execute(
                "SELECT pg_advisory_xact_lock_shared(%s, %s)", [RUN_LOCK_NAMESPACE, project_id]
            )


def _insert_sql(where: str) -> str:
    return (
        f"INSERT INTO {TopicCell._meta.db_table} "
        "(run_id, project_id, model_version, segment, day, cluster, n) "
        f"SELECT inc.run_id, inc.project_id, i.model_version, i.segment, {day_sql()}, "
        "COALESCE(t.cluster, -1), COUNT(*) "
        f"FROM {Inclusion._meta.db_table} inc "
        f"JOIN {Interaction._meta.db_table} i ON i.id = inc.interaction_id "
        f"LEFT JOIN {InteractionTopic._meta.db_table} t ON t.interaction_id = inc.interaction_id "
        f"WHERE {where} GROUP BY 1, 2, 3, 4, 5, 6"
    )


def topic_cells_write(*, run_id: int) -> int:
    """Aggregate the run's Inclusion rows with their current clusters into its cells (in the
    run's transaction, once); returns the number of cells written."""
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql("inc.run_id = %s"), [run_id])
        return max(cursor.rowcount, 0)


def topic_cells_write_arrays(
    *,
    run: SamplingRun,
    ids: np.ndarray,
    keys: np.ndarray,
    clusters: np.ndarray,
) -> int:
    """The run's topic cells from the arrays it read (PostgreSQL): ``ids`` ascending, ``keys``
    each item's population-cell key (``sampling.selectors.pool`` ``Pool.cells``: hashes of
    model version and segment, and the day), ``clusters`` its cluster (-1: none). Each cell's
    version, segment and day are copied from its smallest interaction id, as the population
    cells' are."""
    if not len(ids):
        return 0
    columns = np.column_stack([keys, clusters.astype(np.int64)])
    order = np.lexsort(columns.T[::-1])  # stable: the smallest id first within a cell
    ordered = columns[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, len(order)])
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TopicCell._meta.db_table} "
            "(run_id, project_id, model_version, segment, day, cluster, n) "
            "SELECT %s, %s, i.model_version, i.segment, (i.occurred_at AT TIME ZONE 'UTC')::date, "
            "v.cluster, v.n FROM unnest(%s::bigint[], %s::smallint[], %s::int[]) "
            "AS v(id, cluster, n) "
            f"JOIN {Interaction._meta.db_table} i ON i.id = v.id",
            [
                run.pk,
                run.project_id,
                [int(i) for i in ids[order[first]]],
                [int(c) for c in ordered[first, -1]],
                [int(n) for n in counts],
            ],
        )
        return max(cursor.rowcount, 0)


@transaction.atomic
def topic_cells_rebuild(*, project: Project | int) -> int:
    """Recompute every topic cell of the project from its inclusions and current clusters."""
    project_id = project if isinstance(project, int) else project.pk
    TopicCell.objects.filter(project_id=project_id).delete()
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql("inc.project_id = %s"), [project_id])
        return max(cursor.rowcount, 0)


def topic_cells_move(*, ids: Sequence[int], clusters: Sequence[int]) -> int:
    """Before the clusters of ``ids`` are rewritten to ``clusters``: move each considered
    interaction whose cluster changes from its old cell to its new one (one count each). Call it
    in the transaction that writes the clusters, holding :func:`run_lock_shared`. Returns how
    many interactions moved."""
    new = {int(i): int(c) for i, c in zip(ids, clusters, strict=True)}
    if not new:
        return 0
    postgres = connection.vendor == "postgresql"
    select = (
        f"SELECT inc.interaction_id, inc.run_id, inc.project_id, i.model_version, "
        f"{segment_sql()}, {day_sql()}, COALESCE(t.cluster, -1) "
        f"{inclusions_joined_sql(topic=True)}"
    )
    wanted = sorted(new)
    with connection.cursor() as cursor:
        if postgres:
            # Most scoring is of new arrivals, none considered: find the considered ones first
            # (index probes only), and join only those.
            cursor.execute(
                f"SELECT interaction_id FROM {Inclusion._meta.db_table} "
                "WHERE interaction_id = ANY(%s::bigint[])",
                [wanted],
            )
            wanted = [int(r[0]) for r in cursor.fetchall()]
            if not wanted:
                return 0
        rows = inclusion_rows(cursor, select, wanted)
        delta: Counter[tuple[Any, ...]] = Counter()
        moved = 0
        for interaction_id, run_id, project_id, version, seg, day, old in rows:
            cluster = new[int(interaction_id)]
            if int(old) == cluster:
                continue
            moved += 1
            key = (run_id, project_id, version, seg, day)
            delta[(*key, int(old))] -= 1
            delta[(*key, cluster)] += 1
        changes = [(*key, n) for key, n in delta.items() if n]
        if changes:
            cast = "::jsonb" if postgres else ""
            table = TopicCell._meta.db_table
            cursor.executemany(
                f"INSERT INTO {table} "
                "(run_id, project_id, model_version, segment, day, cluster, n) "
                f"VALUES (%s, %s, %s, %s{cast}, %s, %s, %s) "
                "ON CONFLICT (run_id, model_version, segment, day, cluster) "
                f"DO UPDATE SET n = {table}.n + excluded.n",
                changes,
            )
    return moved


def topic_cells_forget(*, interaction_ids: Sequence[int]) -> int:
    """Before the interactions ``ids`` are deleted: take each considered one out of its run's
    topic cell (its current cluster's), and drop cells left at zero. In the deleting transaction,
    before the Inclusion rows go, holding the project's run lock shared. Returns how many were
    taken out."""
    ids = sorted({int(i) for i in interaction_ids})
    if not ids:
        return 0
    select = (
        f"SELECT inc.run_id, i.model_version, {segment_sql()}, {day_sql()}, "
        f"COALESCE(t.cluster, -1) {inclusions_joined_sql(topic=True)}"
    )
    with connection.cursor() as cursor:
        rows = inclusion_rows(cursor, select, ids)
        delta = Counter(tuple(row) for row in rows)
        if not delta:
            return 0
        cast = "::jsonb" if connection.vendor == "postgresql" else ""
        table = TopicCell._meta.db_table
        key = (
            f"run_id = %s AND model_version = %s AND segment = %s{cast} AND day = %s "
            "AND cluster = %s"
        )
        cursor.executemany(
            f"UPDATE {table} SET n = n - %s WHERE {key}", [(n, *k) for k, n in delta.items()]
        )
        cursor.executemany(f"DELETE FROM {table} WHERE {key} AND n <= 0", list(delta))
    return len(rows)
