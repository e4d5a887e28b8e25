"""Multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` for PostgreSQL and SQLite.

The ingestion path needs to know exactly which rows it created, also when two clients insert the
same keys at the same time: ``ON CONFLICT DO NOTHING`` waits for a concurrent inserter of the same
key to commit and then skips the row, and ``RETURNING`` lists only the rows this statement inserted.
Django's ``bulk_create(ignore_conflicts=True)`` cannot say which rows were skipped, hence raw SQL.

Columns the caller does not supply get the model field's default, prepared once per call (so a
field added later with a default keeps working).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from django.db import connections
from django.db.models import Model
from django.utils import timezone


def _max_params(connection: Any) -> int:
    if connection.vendor == "sqlite":
        raw = connection.connection
        if raw is not None and hasattr(raw, "getlimit"):
            return int(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        return 999
    return 60_000  # PostgreSQL's protocol limit is 65,535 bind parameters per statement


def insert_returning(
    *,
    model: type[Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    conflict: Sequence[str],
    conflict_where: str = "",
    returning: Sequence[str] = ("id",),
    using: str = "default",
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (values already prepared for the database, in ``columns`` order).

    Rows whose ``conflict`` key exists (or appears earlier in the same statement) are skipped.
    Returns the ``returning`` columns of the inserted rows only.
    """
    if not rows:
        return []
    connection = connections[using]
    connection.ensure_connection()
    meta = model._meta
    qn = connection.ops.quote_name
    now = timezone.now()
    supplied = set(columns)
    const_cols: list[str] = []
    const_vals: list[Any] = []
    for field in meta.concrete_fields:
        if field.primary_key or field.attname in supplied:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value: Any = now
        elif field.has_default():
            value = field.get_default()
        else:
            value = None
        const_cols.append(field.attname)
        const_vals.append(field.get_db_prep_save(value, connection))
    all_cols = [*columns, *const_cols]
    if connection.vendor == "postgresql":
        return _insert_returning_pg(
            connection,
            meta,
            columns,
            rows,
            const_cols,
            const_vals,
            conflict,
            conflict_where,
            returning,
        )
    width = len(all_cols)
    per_statement = max(1, min(len(rows), _max_params(connection) // width))
    head = f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(c) for c in all_cols)}) VALUES "
    tail = (
        f" ON CONFLICT ({', '.join(qn(c) for c in conflict)})"
        f"{' WHERE ' + conflict_where if conflict_where else ''} DO NOTHING"
        f" RETURNING {', '.join(qn(c) for c in returning)}"
    )
    one = "(" + ", ".join(["%s"] * width) + ")"
    out: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[Any] = []
            for row in chunk:
                params.extend(row)
                params.extend(const_vals)
            cursor.execute(head + ", ".join([one] * len(chunk)) + tail, params)
            out.extend(cursor.fetchall())
    return out


def _insert_returning_pg(
    connection: Any,
    meta: Any,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    const_cols: list[str],
    const_vals: list[Any],
    conflict: Sequence[str],
    conflict_where: str,
    returning: Sequence[str],
) -> list[tuple[Any, ...]]:
    """PostgreSQL: one statement per call, ``INSERT ... SELECT FROM unnest(arrays)``.

    Each column travels as one array parameter with server-side binding, so the statement text
    stays small however many rows there are (a multi-row VALUES list with client-side binding
    spends most of its time building and splitting a huge query string).
    """
    import psycopg

    qn = connection.ops.quote_name
    fields = {f.attname: f for f in meta.concrete_fields}
    casts = []
    for name in columns:
        db_type = fields[name].db_type(connection)
        base = "jsonb" if db_type == "jsonb" else db_type.split("(")[0]
        casts.append(base)
    # jsonb travels as text (psycopg would otherwise need Jsonb wrappers per value).
    unnest = ", ".join(f"%b::{'text' if cast == 'jsonb' else cast}[]" for cast in casts)
    select = ", ".join(
        f"u.c{i}::jsonb" if cast == "jsonb" else f"u.c{i}" for i, cast in enumerate(casts)
    )
    aliases = ", ".join(f"c{i}" for i in range(len(columns)))
    consts = "".join(", %s" for _ in const_cols)
    sql = (
        f"INSERT INTO {qn(meta.db_table)} "
        f"({', '.join(qn(c) for c in [*columns, *const_cols])}) "
        f"SELECT {select}{consts} FROM unnest({unnest}) AS u({aliases})"
        f" ON CONFLICT ({', '.join(qn(c) for c in conflict)})"
        f"{' WHERE ' + conflict_where if conflict_where else ''} DO NOTHING"
        f" RETURNING {', '.join(qn(c) for c in returning)}"
    )
    arrays = [list(col) for col in zip(*rows, strict=True)]
    raw = connection.connection
    # wrap_database_errors: psycopg errors surface as django.db errors (OperationalError on a
    # dropped connection), as they would through a Django cursor.
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:  # server-side binding
        # %b: arrays travel in binary format, elements as they are (no text escaping).
        cursor.execute(sql, [*const_vals, *arrays])  # the constants come first in the text
        return [tuple(r) for r in cursor.fetchall()]
