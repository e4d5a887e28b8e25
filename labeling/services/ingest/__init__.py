"""Interaction ingestion: parse, validate and store rows; one service for the API, CLI and demo.

The pipeline is here; its steps are :mod:`.parsing` (bytes to decoded rows), :mod:`.validation`
(one row's rules) and :mod:`.storage` (batched, idempotent inserts).

Invariants:
- ``(project, external_id)`` is unique: a repeated id (in the same batch, a later batch or a
  concurrent client) is counted as a duplicate and never makes a second row (see
  :mod:`labeling.services.bulk`).
- Valid rows are stored even when others are rejected; each reject names its line (JSONL, 1-based)
  or index (JSON array, 0-based) and the field errors.
- Rows are committed in batches of ``BATCH_SIZE``; each committed batch hands its new ids to the
  ``labeling.process_interactions`` task after commit. If the broker is down the sweep catches up.
- Per-row work is plain Python (no serializer per row) so bulk ingestion stays fast.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from labeling.limits import Limits, current_limits
from labeling.models import Project
from labeling.services.ingest.parsing import (
    BOM,
    BadBody,
    BodyTooLarge,
    ParseError,
    TooManyRows,
    decompressed_chunks,
    jsonl_items,
    parse_json_line,
    row_too_long,
)
from labeling.services.ingest.storage import IngestResult, store_batch, time_preparer
from labeling.services.ingest.validation import (
    INTERACTION_FIELDS,
    MAX_FUTURE,
    CleanRow,
    event_types_for,
    interaction_clean,
    json_depth,
)

__all__ = [
    "BATCH_SIZE",
    "BOM",
    "INTERACTION_FIELDS",
    "BadBody",
    "BodyTooLarge",
    "IngestResult",
    "ParseError",
    "TooManyRows",
    "decompressed_chunks",
    "event_types_for",
    "interaction_clean",
    "interactions_ingest",
    "interactions_ingest_jsonl",
    "interactions_ingest_objects",
    "json_depth",
    "jsonl_items",
    "parse_json_line",
]

# Rows per transaction (each batch is one INSERT ... RETURNING and one processing task).
BATCH_SIZE = 2000


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while rows are parsed and checked.

    Each row allocates a dozen containers (the decoded JSON, the checked values), none of them in
    a reference cycle: reference counting frees them all. The collector would only walk them, and
    on its older-generation passes the thousands of rows of the batch held for the insert, again
    and again. Collection resumes afterwards (and picks up any cycle made meanwhile). Process-wide,
    so it is resumed only by the call that paused it.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def interactions_ingest(
    *,
    project: Project,
    items: Iterable[tuple[int, Any]],
    loc_key: str = "line",
    batch_size: int | None = None,
    limits: Limits | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Validate and store ``items`` (``(line or index, decoded object or ParseError)``).

    Rows are committed in batches (each batch is atomic and idempotent, so a client may retry the
    whole request after any failure). When a size limit is crossed (BodyTooLarge, TooManyRows) or
    the body is undecodable (BadBody), the rows validated so far are stored and the exception is
    raised with ``exc.result`` holding the counts, so the caller can report them.
    """
    limits = limits or current_limits()
    batch_size = batch_size or BATCH_SIZE  # read now, so a test may lower it
    event_types = event_types_for(project)
    prep_time = time_preparer()
    redact = bool(project.redact_pii)
    result = IngestResult()
    batch: list[CleanRow] = []
    seen = 0
    not_after = dt.datetime.now(dt.UTC) + MAX_FUTURE
    with cyclic_gc_paused():
        try:
            for loc, obj in items:
                seen += 1
                if seen > limits.max_rows_per_request:
                    raise TooManyRows(limits.max_rows_per_request)
                if type(obj) is ParseError:
                    result.reject(loc_key, loc, obj.errors)
                    continue
                row, errors = interaction_clean(
                    obj,
                    project_id=project.pk,
                    limits=limits,
                    event_types=event_types,
                    redact=redact,
                    prep_time=prep_time,
                    not_after=not_after,
                )
                if row is None:
                    external_id = obj.get("external_id") if type(obj) is dict else None
                    result.reject(loc_key, loc, errors, external_id)
                    continue
                batch.append(row)
                if len(batch) >= batch_size:
                    store_batch(project, batch, result)
                    batch = []
                    gc.collect(0)  # what the insert left in a cycle (the collector is paused)
                    not_after = dt.datetime.now(dt.UTC) + MAX_FUTURE
                    if on_progress is not None:
                        on_progress(seen)
        except (BodyTooLarge, BadBody) as exc:
            # Rows validated before the limit was crossed are stored too: a retry is harmless.
            if batch:
                store_batch(project, batch, result)
            exc.result = result
            raise
        if batch:
            store_batch(project, batch, result)
            if on_progress is not None:
                on_progress(seen)
    return result


def interactions_ingest_objects(
    *, project: Project, objects: list[Any], limits: Limits | None = None
) -> IngestResult:
    """Ingest a decoded JSON array (or one object); rejects are reported by 0-based index."""
    limits = limits or current_limits()

    def items() -> Iterator[tuple[int, Any]]:
        for index, obj in enumerate(objects):
            if len(orjson.dumps(obj)) > limits.max_row_bytes:
                yield index, ParseError({"row": row_too_long(limits)})
            else:
                yield index, obj

    return interactions_ingest(project=project, items=items(), loc_key="index", limits=limits)


def interactions_ingest_jsonl(
    *,
    project: Project,
    chunks: Iterable[bytes],
    gzipped: bool = False,
    limits: Limits | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Ingest a JSONL byte stream (optionally gzip), reading it chunk by chunk."""
    limits = limits or current_limits()
    stream = decompressed_chunks(chunks, limits=limits) if gzipped else chunks
    return interactions_ingest(
        project=project,
        items=jsonl_items(stream, limits=limits),
        loc_key="line",
        limits=limits,
        on_progress=on_progress,
    )
