"""Explicit ratings in the population cells (issue 16): the transaction that processes rating
events moves the counts of each considered interaction whose rating changed.

``labeling.services.processing`` recomputes ``Interaction.explicit_rating`` from the events and
calls two ``labeling.hooks`` events in its transaction (``labeling`` never imports ``sampling``):
``interactions_processing`` before it locks its rows (:func:`ratings_lock`: the project's run lock,
shared, so no sampling run of the project is between reading the ratings of its pool and
committing its cells) and ``ratings_changed`` after it wrote them (:func:`population_ratings_move`).
So a population cell's ``rated``, ``down``, ``rated_f`` and ``rated_excluded`` always count its
items' current ratings, and no page reads the rated interactions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.db import connection

from labeling.models import Interaction
from sampling.models import PopulationCell
from sampling.services.population import (
    day_sql,
    inclusion_rows,
    inclusions_joined_sql,
    segment_sql,
)
from sampling.services.topic_cells import run_lock_shared


def ratings_lock(*, interaction_ids: Sequence[int]) -> None:
    """Take the run lock of the interactions' projects shared (before their rows are locked)."""
    if connection.vendor != "postgresql" or not interaction_ids:
        return
    projects = (
        Interaction.objects.filter(pk__in=list(interaction_ids))
        .values_list("project_id", flat=True)
        .distinct()
        .order_by()
    )
    run_lock_shared(project_ids=list(projects))


def population_ratings_move(*, changes: Sequence[tuple[int, int | None, int | None]]) -> int:
    """``changes``: (interaction id, old rating, new rating) just written in this transaction.
    Moves the rating counts of the considered ones in their runs' cells; returns how many moved."""

    def state(rating: int | None) -> tuple[bool, bool]:  # (rated, thumbs-down)
        return rating is not None, rating is not None and rating < 0

    wanted = {int(i): (old, new) for i, old, new in changes if state(old) != state(new)}
    if not wanted:
        return 0
    postgres = connection.vendor == "postgresql"
    select = (
        f"SELECT inc.interaction_id, inc.run_id, i.model_version, {segment_sql()}, {day_sql()}, "
        f"inc.pi, inc.f {inclusions_joined_sql()}"
    )
    with connection.cursor() as cursor:
        rows = inclusion_rows(cursor, select, sorted(wanted))
        delta: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0])
        for interaction_id, run_id, version, seg, day, pi, f in rows:
            (was_rated, was_down), (is_rated, is_down) = map(state, wanted[int(interaction_id)])
            rated, down = int(is_rated) - int(was_rated), int(is_down) - int(was_down)
            d = delta[(run_id, version, seg, day)]
            if pi is None:
                d[3] += rated
            else:
                d[0] += rated
                d[1] += down
                d[2] += rated * float(f)
        cast = "::jsonb" if postgres else ""
        table = PopulationCell._meta.db_table
        cursor.executemany(
            f"UPDATE {table} SET rated = rated + %s, down = down + %s, "
            "rated_f = rated_f + %s, rated_excluded = rated_excluded + %s "
            f"WHERE run_id = %s AND model_version = %s AND segment = %s{cast} AND day = %s",
            [(*d, *key) for key, d in delta.items()],
        )
    return len(rows)
