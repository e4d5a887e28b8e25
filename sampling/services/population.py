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
from sampling.models import Inclusion, PopulationCell, SelectedItem


def day_sql() -> str:
    """The UTC date of ``i.occurred_at`` (datetimes are stored in UTC on both databases): the day
    of every per-day aggregate (population cells, topic cells, their moves)."""
    if connection.vendor == "postgresql":
        return "(i.occurred_at AT TIME ZONE 'UTC')::date"
    return "date(i.occurred_at)"


IN_CHUNK = 500  # ids per IN (...) on SQLite


def inclusion_rows(cursor: CursorWrapper, select: str, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """The rows of ``select`` (a statement over ``inc``, the Inclusion table, up to its WHERE) for
    the inclusions of the interactions ``ids``: one ``= ANY(array)`` on PostgreSQL, ``IN (...)``
    chunks elsewhere."""
    if connection.vendor == "postgresql":
        cursor.execute(select + "WHERE inc.interaction_id = ANY(%s::bigint[])", [list(ids)])
        return cursor.fetchall()
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), IN_CHUNK):
        chunk = list(ids[start : start + IN_CHUNK])
        marks = ", ".join(["%s"] * len(chunk))
        cursor.execute(select + f"WHERE inc.interaction_id IN ({marks})", chunk)
        rows.extend(cursor.fetchall())
    return rows


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
