"""Parquet beside every JSONL export: the same rows, typed columns, deterministic bytes.

The JSONL file is the source: it is read back in chunks (twice: once to settle every column's
Arrow type across all rows, once to write), so memory stays flat in the row count.

- A column's type is inferred per chunk and unified over the chunks (``int`` and ``float`` give
  ``double``; a struct gets every key seen; a column that is always null stays ``null``).
- A column whose values have no common Arrow type (e.g. message ``content`` that is a string in
  one row and a list of parts in another) is stored as its JSON text; the manifest lists it in
  ``parquet.json_columns``.
- An empty object (``{}``), which Parquet cannot store, is written as null.
- Rows keep the JSONL order, ``ROW_GROUP_ROWS`` per row group, zstd compression; a rerun of the
  same export with the same pyarrow version writes the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 10_000
COMPRESSION = "zstd"


def _open(path: Path) -> IO[bytes]:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _no_empty_objects(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_empty_objects(v) for k, v in value.items()} if value else None
    if isinstance(value, list):
        return [_no_empty_objects(v) for v in value]
    return value


def _chunks(path: Path) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    with _open(path) as f:
        for line in f:
            if line.strip():
                chunk.append(_no_empty_objects(orjson.loads(line)))
            if len(chunk) >= ROW_GROUP_ROWS:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _unify(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    merged = pa.unify_schemas(
        [pa.schema([pa.field("c", a)]), pa.schema([pa.field("c", b)])],
        promote_options="permissive",
    )
    return merged.field("c").type


def _infer(path: Path) -> tuple[pa.Schema, list[str]]:
    """The unified schema of every row, and the columns stored as JSON text."""
    types: dict[str, pa.DataType] = {}
    as_json: set[str] = set()
    for chunk in _chunks(path):
        columns: dict[str, None] = {}
        for row in chunk:
            columns.update(dict.fromkeys(row))
        for name in columns:
            if name in as_json:
                continue
            try:
                found = pa.array([row.get(name) for row in chunk]).type
                types[name] = _unify(types[name], found) if name in types else found
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                as_json.add(name)
                types[name] = pa.string()
    fields = [pa.field(name, pa.string() if name in as_json else t) for name, t in types.items()]
    return pa.schema(fields), sorted(as_json)


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def parquet_write(*, jsonl_path: Path, out_path: Path) -> dict[str, Any]:
    """Write ``out_path`` from the rows of ``jsonl_path`` (plain or gzip) atomically (temp file,
    fsync, rename); return its manifest entry."""
    schema, as_json = _infer(jsonl_path)
    tmp = out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex}.tmp")
    rows = 0
    try:
        with pq.ParquetWriter(
            tmp, schema, compression=COMPRESSION, write_page_index=False
        ) as writer:
            for chunk in _chunks(jsonl_path):
                arrays = []
                for field in schema:
                    values = [row.get(field.name) for row in chunk]
                    if field.name in as_json:
                        values = [_json_text(v) for v in values]
                    arrays.append(pa.array(values, type=field.type))
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                rows += len(chunk)
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    digest = hashlib.sha256()
    with open(out_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {
        "file": out_path.name,
        "rows": rows,
        "bytes": out_path.stat().st_size,
        "sha256": digest.hexdigest(),
        "compression": COMPRESSION,
        "row_group_rows": ROW_GROUP_ROWS,
        "json_columns": as_json,
        "columns": [f.name for f in schema],
        "pyarrow": pa.__version__,
    }
