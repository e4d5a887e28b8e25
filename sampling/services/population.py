"""Population cells: the per run x model version x segment x day aggregates of a run's inclusions.

A sampling run writes its cells right after its Inclusion rows, in the same transaction
(:func:`population_cells_write`), with one ``INSERT ... SELECT ... GROUP BY`` over the rows it
just wrote. The estimates read them instead of every considered interaction
(``sampling.selectors.estimates``). :func:`population_cells_rebuild` recomputes a project's cells
from its inclusions (repair, and for rows written outside a run, as the tests do).
"""

from __future__ import annotations

from django.db import connection, transaction

from labeling.models import Interaction, Project
from sampling.models import Inclusion, PopulationCell


def _day_sql() -> str:
    """The UTC date of ``occurred_at`` (datetimes are stored in UTC on both databases)."""
    if connection.vendor == "postgresql":
        return "(i.occurred_at AT TIME ZONE 'UTC')::date"
    return "date(i.occurred_at)"


_RATED = "i.explicit_rating IS NOT NULL"


def _insert_sql(where: str) -> str:
    return (
        f"INSERT INTO {PopulationCell._meta.db_table} "
        "(run_id, project_id, model_version, segment, day, n, f_total, excluded, "
        "rated, down, rated_f, rated_excluded) "
        f"SELECT inc.run_id, inc.project_id, i.model_version, i.segment, {_day_sql()}, "
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


def population_cells_write(*, run_id: int) -> int:
    """Aggregate the run's Inclusion rows into its cells; returns the number of cells written.

    Call it in the transaction that wrote the inclusions, once: a run's inclusions never change.
    """
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql("inc.run_id = %s"), [run_id])
        return max(cursor.rowcount, 0)


@transaction.atomic
def population_cells_rebuild(*, project: Project | int) -> int:
    """Recompute every cell of the project from its Inclusion rows; returns the cells written."""
    project_id = project if isinstance(project, int) else project.pk
    PopulationCell.objects.filter(project_id=project_id).delete()
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql("inc.project_id = %s"), [project_id])
        return max(cursor.rowcount, 0)
