"""The ingest benchmarks' reference: the same rows COPYed straight into labeling_interaction.

"Raw COPY of the same rows into the same database": one ``COPY`` into the real table (its foreign
key and every index) for a fresh project, with no conflict check and no ``RETURNING`` — what an
idempotent path is measured against. Needs Django set up; the rows are validated first, untimed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any


def validated_rows(lines: Iterable[bytes], project_id: int) -> list[Sequence[Any]]:
    """``lines`` (JSONL rows) through ingestion's validation: ``INSERT_COLUMNS`` values."""
    import orjson

    from labeling.limits import current_limits
    from labeling.models import Project
    from labeling.services.ingest.storage import time_preparer
    from labeling.services.ingest.validation import event_types_for, interaction_clean

    project = Project.objects.get(pk=project_id)
    limits, types, prep = current_limits(), event_types_for(project), time_preparer()
    rows = []
    for line in lines:
        row, errors = interaction_clean(
            orjson.loads(line),
            project_id=project_id,
            limits=limits,
            event_types=types,
            redact=False,
            prep_time=prep,
        )
        assert row is not None, errors
        rows.append(row.values)
    return rows


def copy_into_interactions(rows: Sequence[Sequence[Any]], project_id: int) -> float:
    """COPY ``rows`` (``INSERT_COLUMNS`` values) as ``project_id``'s; returns rows/s."""
    from django.db import connection, transaction
    from django.utils import timezone

    from labeling.services.ingest.validation import INSERT_COLUMNS

    pos = list(INSERT_COLUMNS).index("project_id")
    now = timezone.now()
    sql = f"COPY labeling_interaction ({', '.join(INSERT_COLUMNS)}, signals, created_at) FROM STDIN"
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            values = list(row)
            values[pos] = project_id
            copy.write_row([*values, "{}", now])
    return len(rows) / (time.perf_counter() - started)


def reference_rate(lines: Sequence[bytes], slug: str) -> float:
    """Create project ``slug`` and COPY the validated ``lines`` into it; rows/s of the COPY."""
    from labeling.models import Project

    project = Project.objects.create(slug=slug, name="COPY reference")
    return copy_into_interactions(validated_rows(lines, project.pk), project.pk)
