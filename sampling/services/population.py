"""The per-run tables the estimates read instead of every considered interaction (issue 16).

- Population cells: per run x model version x segment x day aggregates of a run's inclusions.
- Selected items (``sampling.models.SelectedItem``): a run's selected Inclusion rows with their
  interactions' version, segment and time, the labelled side of every estimate.

A sampling run writes both right after its Inclusion rows, in the same transaction
(:func:`population_cells_write` or the run's own aggregate of its arrays, and
:func:`selected_items_write`). The estimates read them (``sampling.selectors.estimates``,
``sampling.selectors.labelled``). :func:`population_cells_rebuild` recomputes a project's cells
and selected items from its inclusions (repair, and for rows written outside a run, as the tests
do).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from labeling.models import Interaction, Project
from labeling.rows import rows_by_ids
from sampling.models import Inclusion, InteractionTopic, PopulationCell, SelectedItem


def day_sql() -> str:
    """The UTC date of ``i.occurred_at`` (datetimes are stored in UTC on both databases): the day
    of every per-day aggregate (population cells, topic cells, their moves)."""
    if connection.vendor == "postgresql":
        return "(i.occurred_at AT TIME ZONE 'UTC')::date"
    return "date(i.occurred_at)"


def segment_sql() -> str:
    """``i.segment`` as the cells compare it: its text on PostgreSQL (jsonb is not a key there)."""
    return "i.segment::text" if connection.vendor == "postgresql" else "i.segment"


def inclusions_joined_sql(*, topic: bool = False) -> str:
    """``FROM`` the Inclusion rows ``inc`` joined to their interactions ``i`` (and, with
    ``topic``, left-joined to their current topic ``t``): what the moves of the cells select
    from, ahead of :func:`inclusion_rows`' WHERE."""
    sql = (
        f"FROM {Inclusion._meta.db_table} inc "
        f"JOIN {Interaction._meta.db_table} i ON i.id = inc.interaction_id "
    )
    if topic:
        sql += (
            f"LEFT JOIN {InteractionTopic._meta.db_table} t "
            "ON t.interaction_id = inc.interaction_id "
        )
    return sql


def inclusion_rows(cursor: CursorWrapper, select: str, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """The rows of ``select`` (a statement over ``inc``, the Inclusion table, up to its WHERE) for
    the inclusions of the interactions ``ids`` (:func:`labeling.rows.rows_by_ids`)."""
    return rows_by_ids(cursor, select, "inc.interaction_id", ids)


_RATED = "i.explicit_rating IS NOT NULL"


def _insert_sql(where: str) -> str:
    return (
        f"INSERT INTO {PopulationCell._meta.db_table} "
        "(run_id, project_id, model_version, segment, day, n, f_total, excluded, "
        "rated, down, rated_f, rated_excluded) "
        f"SELECT inc.run_id, inc.project_id, i.model_version, i.segment, {day_sql()}, "
        "COUNT(inc.pi), COALESCE(SUM(CASE WHEN inc.pi IS NOT NULL THEN inc.f END), 0), "
        "COUNT(*) - COUNT(inc.pi), "
        f"SUM(CASE WHEN {_RATED} AND inc.pi IS NOT NULL THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN i.explicit_rating < 0 AND inc.pi IS NOT NULL THEN 1 ELSE 0 END), "
        f"COALESCE(SUM(CASE WHEN {_RATED} AND inc.pi IS NOT NULL THEN inc.f END), 0), "
        f"SUM(CASE WHEN {_RATED} AND inc.pi IS NULL THEN 1 ELSE 0 END) "
        f"FROM {Inclusion._meta.db_table} inc "
        f"JOIN {Interaction._meta.db_table} i ON i.id = inc.interaction_id "
        f"WHERE {where} GROUP BY 1, 2, 3, 4, 5"
    )


def selected_items_sql(where: str) -> str:
    """Copy the selected Inclusion rows matching ``where`` (on ``inc``) with their interactions'
    version, segment and time into the selected-items table (the one statement of the run, the
    rebuild and the migration's backfill)."""
    return (
        f"INSERT INTO {SelectedItem._meta.db_table} "
        "(interaction_id, run_id, project_id, f, pi, model_version, segment, occurred_at) "
        "SELECT inc.interaction_id, inc.run_id, inc.project_id, inc.f, inc.pi, "
        "i.model_version, i.segment, i.occurred_at "
        f"FROM {Inclusion._meta.db_table} inc "
        f"JOIN {Interaction._meta.db_table} i ON i.id = inc.interaction_id "
        f"WHERE inc.selected AND {where}"
    )


def population_cells_write(*, run_id: int) -> int:
    """Aggregate the run's Inclusion rows into its cells; returns the number of cells written.

    Call it in the transaction that wrote the inclusions, once: a run's inclusions never change.
    """
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql("inc.run_id = %s"), [run_id])
        return max(cursor.rowcount, 0)


def selected_items_write(*, run_id: int) -> int:
    """Copy the run's selected Inclusion rows into the selected-items table (through the partial
    index of selected rows); returns the rows written. In the transaction that wrote the
    inclusions, once."""
    with connection.cursor() as cursor:
        cursor.execute(selected_items_sql("inc.run_id = %s"), [run_id])
        return max(cursor.rowcount, 0)


@transaction.atomic
def selected_items_rebuild(*, project: Project | int) -> int:
    """Recompute the project's selected items from its Inclusion rows; returns the rows written."""
    project_id = project if isinstance(project, int) else project.pk
    SelectedItem.objects.filter(project_id=project_id).delete()
    with connection.cursor() as cursor:
        cursor.execute(selected_items_sql("inc.project_id = %s"), [project_id])
        return max(cursor.rowcount, 0)


@transaction.atomic
def population_cells_rebuild(*, project: Project | int) -> int:
    """Recompute every cell and every selected item of the project from its Inclusion rows
    (:func:`selected_items_rebuild`); returns the cells written."""
    project_id = project if isinstance(project, int) else project.pk
    selected_items_rebuild(project=project_id)
    PopulationCell.objects.filter(project_id=project_id).delete()
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql("inc.project_id = %s"), [project_id])
        return max(cursor.rowcount, 0)


def population_cells_forget(*, interaction_ids: Sequence[int]) -> int:
    """Before the interactions ``ids`` are deleted: take each considered one out of its run's
    population cell (its count, ``f`` and rating counts), and drop cells left empty, so the cells
    equal a rebuild from the inclusions that remain. Call it in the deleting transaction, before
    the Inclusion rows go, holding the project's run lock shared. Returns how many were taken
    out. (Their selected-items rows go with the interactions: an ORM cascade.)"""
    ids = sorted({int(i) for i in interaction_ids})
    if not ids:
        return 0
    select = (
        f"SELECT inc.run_id, i.model_version, {segment_sql()}, {day_sql()}, inc.pi, inc.f, "
        f"i.explicit_rating {inclusions_joined_sql()}"
    )
    with connection.cursor() as cursor:
        rows = inclusion_rows(cursor, select, ids)
        # per cell: n, f_total, excluded, rated, down, rated_f, rated_excluded
        delta: dict[tuple[Any, ...], list[float]] = {}
        for run_id, version, seg, day, pi, f, rating in rows:
            d = delta.setdefault((run_id, version, seg, day), [0, 0.0, 0, 0, 0, 0.0, 0])
            rated = rating is not None
            if pi is None:
                d[2] += 1
                d[6] += int(rated)
            else:
                d[0] += 1
                d[1] += float(f)
                d[3] += int(rated)
                d[4] += int(rated and rating < 0)
                d[5] += float(f) if rated else 0.0
        if not delta:
            return 0
        cast = "::jsonb" if connection.vendor == "postgresql" else ""
        table = PopulationCell._meta.db_table
        key = f"run_id = %s AND model_version = %s AND segment = %s{cast} AND day = %s"
        cursor.executemany(
            f"UPDATE {table} SET n = n - %s, f_total = f_total - %s, excluded = excluded - %s, "
            "rated = rated - %s, down = down - %s, rated_f = rated_f - %s, "
            f"rated_excluded = rated_excluded - %s WHERE {key}",
            [(*d, *k) for k, d in delta.items()],
        )
        cursor.executemany(
            f"DELETE FROM {table} WHERE {key} AND n = 0 AND excluded = 0",
            list(delta),
        )
    return len(rows)
