"""Model instances from hand-written SQL, for the statements every label runs.

On the labelling path Django spends more CPU building and compiling a query than the database
spends running it (``bench/label_profile.py``: about two thirds of a ``queue/next`` was query
construction and compilation). The few statements that run on every ``queue/next``, submit and
token-authenticated request are therefore written as SQL in the modules that use them, over the
models' own table and column names, and their rows become model instances here, through the same
converters the ORM applies. So a JSON, datetime or boolean column reads the same as through the
ORM, on SQLite and on PostgreSQL (``tests/test_rows.py`` compares them field by field).

    reader = row_reader(QueueItem, "qi")
    sql = f"SELECT {reader.columns} FROM {reader.table} qi WHERE qi.id = %s"
    item = reader.read(row)                    # row from cursor.fetchone()
    interaction = other.read(row, reader.width) # the next model's columns in the same row
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)

Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class RowReader(Generic[M]):
    """Reads one model's concrete columns from a result row (``alias``-qualified in SQL)."""

    model: type[M]
    table: str
    columns: str  # 'qi."id", qi."project_id", ...' in the model's field order
    names: str  # '"id", "project_id", ...': the same columns unqualified (for RETURNING)
    attnames: tuple[str, ...]
    converters: tuple[tuple[int, tuple[Converter, ...], Any], ...]

    @property
    def width(self) -> int:
        return len(self.attnames)

    def read(self, row: Sequence[Any], start: int = 0) -> M:
        """The instance whose columns start at ``row[start]`` (as if loaded by the ORM)."""
        values = list(row[start : start + len(self.attnames)])
        for index, funcs, expression in self.converters:
            value = values[index]
            for func in funcs:
                value = func(value, expression, connection)
            values[index] = value
        return self.model.from_db(connection.alias, list(self.attnames), values)

    def read_nullable(self, row: Sequence[Any], start: int = 0) -> M | None:
        """As ``read``, or None when the row's primary key column is NULL (a LEFT JOIN miss)."""
        pk_index = self.attnames.index(self.model._meta.pk.attname)
        return None if row[start + pk_index] is None else self.read(row, start)


_readers: dict[tuple[type[Model], str, str], RowReader[Any]] = {}
_lock = threading.Lock()


def row_reader(model: type[M], alias: str) -> RowReader[M]:
    """The reader of ``model`` under SQL alias ``alias``, built once per database alias (the
    converters depend on the backend and its settings, which every connection of an alias
    shares)."""
    key = (model, alias, connection.alias)
    reader = _readers.get(key)
    if reader is None:
        fields = model._meta.concrete_fields
        converters = []
        for index, field in enumerate(fields):
            expression = field.get_col(alias)
            funcs = tuple(
                connection.ops.get_db_converters(expression)
                + expression.get_db_converters(connection)
            )
            if funcs:
                converters.append((index, funcs, expression))
        quote = connection.ops.quote_name
        reader = RowReader(
            model=model,
            table=quote(model._meta.db_table),
            columns=", ".join(f"{alias}.{quote(str(f.column))}" for f in fields),
            names=", ".join(quote(str(f.column)) for f in fields),
            attnames=tuple(f.attname for f in fields),
            converters=tuple(converters),
        )
        with _lock:
            _readers[key] = reader
    return reader


IN_CHUNK = 500  # ids per IN (...) on SQLite (under its oldest limit of 999 parameters)


def rows_by_ids(
    cursor: Any, select: str, column: str, ids: Sequence[int], *, also: str = ""
) -> list[tuple[Any, ...]]:
    """The rows of ``select`` (a statement up to its WHERE) whose ``column`` is one of ``ids``
    (and, with ``also``, that meet that condition too): one ``= ANY(array)`` on PostgreSQL,
    ``IN (...)`` chunks of ``IN_CHUNK`` ids elsewhere."""
    extra = f" AND {also}" if also else ""
    if connection.vendor == "postgresql":
        cursor.execute(f"{select}WHERE {column} = ANY(%s::bigint[]){extra}", [list(ids)])
        return list(cursor.fetchall())
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), IN_CHUNK):
        chunk = list(ids[start : start + IN_CHUNK])
        marks = ", ".join(["%s"] * len(chunk))
        cursor.execute(f"{select}WHERE {column} IN ({marks}){extra}", chunk)
        rows.extend(cursor.fetchall())
    return rows
