"""Interaction ingestion: parse, validate and store rows; one service for the API, CLI and demo.

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
import math
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection, transaction

from labeling.limits import Limits, current_limits
from labeling.models import BUILTIN_EVENT_TYPES, Interaction, Project
from labeling.redact import redact_text
from labeling.services.bulk import insert_returning
from labeling.services.events import EventRow, event_clean, events_insert, parse_time
from labeling.services.processing import processing_enqueue_on_commit

BATCH_SIZE = 2000
MAX_REPORTED_ERRORS = 1000
# An interaction stamped further ahead than this is refused: a wrong clock or time zone on the
# sender, which would otherwise sit at the top of every "latest" view and skew weekly estimates.
MAX_FUTURE = dt.timedelta(days=1)
# Free-form metadata may nest, but not without bound (every reader walks it recursively).
MAX_DEPTH = 32


def json_depth(value: Any) -> int:
    """How deep a parsed JSON value nests (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark some editors put at the start of a file
MESSAGE_ROLES = frozenset({"system", "user", "assistant", "tool"})
INTERACTION_FIELDS = frozenset(
    {
        "external_id",
        "conversation_id",
        "occurred_at",
        "model_version",
        "messages",
        "response",
        "alt_response",
        "alt_model_version",
        "segment",
        "metadata",
        "scores",
        "events",
    }
)
_STR_FIELDS = ("conversation_id", "model_version", "alt_model_version")


class BodyTooLarge(Exception):
    """The request crossed a size limit; ``what`` says which one. ``result``: what was stored
    before (set by interactions_ingest)."""

    result: IngestResult | None = None

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} exceeds the limit of {limit:,} bytes.")
        self.what = what
        self.limit = limit


class BadBody(Exception):
    """The body cannot be decoded at all (e.g. corrupt gzip)."""

    result: IngestResult | None = None


class TooManyRows(BodyTooLarge):
    def __init__(self, limit: int) -> None:
        Exception.__init__(self, f"More than {limit:,} rows in one request.")
        self.what = "rows"
        self.limit = limit


@dataclass
class IngestResult:
    """Counts and the rejects (``{"line"|"index": n, "errors": {field: message}}``)."""

    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    created_ids: list[int] = field(default_factory=list)
    events_created: int = 0

    def reject(
        self, loc_key: str, loc: int, errors: dict[str, str], external_id: Any = None
    ) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            entry: dict[str, Any] = {loc_key: loc, "errors": errors}
            if isinstance(external_id, str):
                entry["external_id"] = external_id
            self.errors.append(entry)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "created": self.created,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors,
        }
        if self.rejected > len(self.errors):
            out["errors_truncated"] = True
        return out


# --- Parsing ----------------------------------------------------------------------------------


class ParseError:
    """A line that could not be decoded; carried through the pipeline to be reported."""

    __slots__ = ("errors",)

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors


def parse_json_line(line: bytes) -> Any:
    """Decode one JSONL line; a ParseError says whether UTF-8 or JSON is at fault."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as uexc:
            return ParseError({"line": f"invalid UTF-8 at byte {uexc.start}"})
        return ParseError({"line": f"malformed JSON: {exc}"})


def decompressed_chunks(
    chunks: Iterable[bytes], *, limits: Limits, chunk_out: int = 1 << 20
) -> Iterator[bytes]:
    """Incrementally gunzip ``chunks`` (several gzip members allowed), never more than
    ``chunk_out`` bytes at a time; raise BodyTooLarge once the output passes the decompressed limit
    (so a gzip bomb is refused after reading at most the limit)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total = 0
    for chunk in chunks:
        data = chunk
        while data:
            try:
                out = inflater.decompress(data, chunk_out)
            except zlib.error as exc:
                raise BadBody(f"invalid gzip body: {exc}") from exc
            total += len(out)
            if total > limits.max_decompressed_bytes:
                raise BodyTooLarge("Decompressed body", limits.max_decompressed_bytes)
            if out:
                yield out
            if inflater.eof:
                # A new gzip member may follow (concatenated .gz files are valid gzip).
                data = inflater.unused_data
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = inflater.unconsumed_tail
    try:
        tail = inflater.flush()
    except zlib.error as exc:
        raise BadBody(f"invalid gzip body: {exc}") from exc
    if not inflater.eof and total == 0:
        raise BadBody("invalid gzip body: truncated or empty")
    if tail:
        total += len(tail)
        if total > limits.max_decompressed_bytes:
            raise BodyTooLarge("Decompressed body", limits.max_decompressed_bytes)
        yield tail


def jsonl_items(chunks: Iterable[bytes], *, limits: Limits) -> Iterator[tuple[int, Any]]:
    """Split a byte stream into JSONL lines and decode them: yields ``(line_number, object)``
    where a bad line's object is a ParseError. Blank lines are skipped (but counted). A line longer
    than the row limit is rejected without being held in memory."""
    max_row = limits.max_row_bytes
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    tail = b""
    line_no = 0
    skipping = False  # inside an over-long line: drop bytes until its newline
    for chunk in chunks:
        if skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                continue
            chunk = chunk[nl + 1 :]
            skipping = False
        lines = (tail + chunk if tail else chunk).split(b"\n")
        tail = lines.pop()  # the part after the last newline (may be a partial line)
        for line in lines:
            line_no += 1
            if line_no == 1:
                line = line.removeprefix(BOM)
            if len(line) > max_row:
                yield line_no, ParseError({"line": _row_too_long(limits)})
                continue
            try:
                yield line_no, loads(line)  # orjson ignores surrounding whitespace and \r
            except decode_error:
                if line.strip():
                    yield line_no, parse_json_line(line)
        if len(tail) > max_row:
            line_no += 1
            yield line_no, ParseError({"line": _row_too_long(limits)})
            tail = b""
            skipping = True
    if line_no == 0:
        tail = tail.removeprefix(BOM)
    if tail.strip() and not skipping:
        line_no += 1
        yield line_no, parse_json_line(tail)


def _row_too_long(limits: Limits) -> str:
    return f"row longer than {limits.max_row_bytes:,} bytes"


# --- Validation -------------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    return (type(value) is int) or (type(value) is float and math.isfinite(value))


def event_types_for(project: Project) -> frozenset[str]:
    """Built-in event types plus the project's declared custom types."""
    custom: set[str] = set()
    for entry in project.custom_event_types or []:
        if isinstance(entry, str):
            custom.add(entry)
        elif isinstance(entry, dict):
            name = entry.get("type") or entry.get("name")
            if isinstance(name, str):
                custom.add(name)
    return BUILTIN_EVENT_TYPES | frozenset(custom)


@dataclass
class CleanRow:
    external_id: str
    values: tuple[Any, ...]  # in INSERT_COLUMNS order, prepared for the database
    occurred_at: dt.datetime
    events: list[EventRow]


INSERT_COLUMNS = (
    "project_id",
    "external_id",
    "conversation_id",
    "occurred_at",
    "model_version",
    "messages",
    "response",
    "alt_response",
    "alt_model_version",
    "segment",
    "metadata",
    "scores",
)


def _check_text(value: Any, name: str, limits: Limits, errors: dict[str, str], *, required: bool):
    if value is None:
        if required:
            errors[name] = "required"
        return ""
    if type(value) is not str:
        errors[name] = "must be a string"
        return ""
    if len(value) > limits.max_field_chars:
        errors[name] = f"longer than {limits.max_field_chars:,} characters"
    return value


def interaction_clean(
    obj: Any,
    *,
    project_id: int,
    limits: Limits,
    event_types: frozenset[str],
    redact: bool,
    prep_time: Callable[[dt.datetime], Any],
) -> tuple[CleanRow | None, dict[str, str]]:
    """Validate one interaction object. Returns the row ready to insert, or the field errors."""
    if type(obj) is not dict:
        return None, {"row": "must be a JSON object"}
    errors: dict[str, str] = {}
    unknown = obj.keys() - INTERACTION_FIELDS
    for key in sorted(unknown)[:10]:
        errors[str(key)[:100]] = "unknown field (put free-form data in metadata)"

    external_id = obj.get("external_id")
    if type(external_id) is not str or not external_id.strip():
        errors["external_id"] = "required: a non-empty string"
    elif len(external_id) > limits.max_id_chars:
        errors["external_id"] = f"longer than {limits.max_id_chars} characters"

    occurred_raw = obj.get("occurred_at")
    occurred_at = parse_time(occurred_raw)
    if occurred_at is None:
        errors["occurred_at"] = (
            "required" if occurred_raw is None else "must be an ISO 8601 date-time"
        )
    elif occurred_at > dt.datetime.now(dt.UTC) + MAX_FUTURE:
        errors["occurred_at"] = "more than 1 day in the future (check the sender's clock and zone)"
        occurred_at = None

    strings = []
    for name in _STR_FIELDS:
        value = obj.get(name, "")
        if value is None:
            value = ""
        if type(value) is not str:
            errors[name] = "must be a string"
        elif len(value) > limits.max_id_chars:
            errors[name] = f"longer than {limits.max_id_chars} characters"
        strings.append(value)

    response = _check_text(obj.get("response"), "response", limits, errors, required=True)
    alt_response = _check_text(
        obj.get("alt_response"), "alt_response", limits, errors, required=False
    )

    messages = obj.get("messages")
    if type(messages) is not list or not messages:
        errors["messages"] = "required: a non-empty list of {role, content}"
    elif len(messages) > limits.max_messages:
        errors["messages"] = f"more than {limits.max_messages} messages"
    else:
        for i, message in enumerate(messages):
            if type(message) is not dict:
                errors[f"messages[{i}]"] = "must be an object with role and content"
                continue
            role = message.get("role")
            if role not in MESSAGE_ROLES:
                errors[f"messages[{i}].role"] = "must be one of system, user, assistant, tool"
            content = message.get("content")
            if type(content) is not str:
                errors[f"messages[{i}].content"] = "must be a string"
            elif len(content) > limits.max_field_chars:
                errors[f"messages[{i}].content"] = (
                    f"longer than {limits.max_field_chars:,} characters"
                )

    segment = obj.get("segment")
    if segment is None:
        segment = {}
    elif type(segment) is not dict:
        errors["segment"] = "must be an object of scalar values"
    elif len(segment) > limits.max_segment_keys:
        errors["segment"] = f"more than {limits.max_segment_keys} keys"
    else:
        for key, value in segment.items():
            if value is not None and type(value) not in (str, int, float, bool):
                errors[f"segment.{key}"] = "must be a scalar (string, number, boolean or null)"
            elif type(value) is str and len(value) > limits.max_id_chars:
                errors[f"segment.{key}"] = f"longer than {limits.max_id_chars} characters"

    metadata = obj.get("metadata")
    if metadata is None:
        metadata = {}
    elif type(metadata) is not dict:
        errors["metadata"] = "must be an object"
    elif json_depth(metadata) > MAX_DEPTH:
        errors["metadata"] = f"nested deeper than {MAX_DEPTH} levels"

    scores = obj.get("scores")
    if scores is None:
        scores = {}
    elif type(scores) is not dict:
        errors["scores"] = "must be an object of named numbers"
    elif len(scores) > limits.max_scores:
        errors["scores"] = f"more than {limits.max_scores} scores"
    else:
        for key, value in scores.items():
            if not is_number(value):
                errors[f"scores.{key}"] = "must be a finite number"

    events: list[EventRow] = []
    raw_events = obj.get("events")
    if raw_events is not None:
        if type(raw_events) is not list:
            errors["events"] = "must be a list of events"
        elif len(raw_events) > limits.max_events_per_row:
            errors["events"] = f"more than {limits.max_events_per_row} events"
        elif occurred_at is not None and type(external_id) is str:
            for i, raw in enumerate(raw_events):
                event, ev_errors = event_clean(
                    raw,
                    external_id=external_id,
                    default_at=occurred_at,
                    event_types=event_types,
                    inline=True,
                )
                if event is None:
                    for key, message in ev_errors.items():
                        errors[f"events[{i}].{key}"] = message
                else:
                    events.append(event)

    if errors:
        return None, errors
    assert occurred_at is not None
    assert type(external_id) is str
    if redact:
        messages = [
            {**m, "content": redact_text(m["content"])}
            for m in messages  # type: ignore[union-attr]
        ]
        response = redact_text(response)
        alt_response = redact_text(alt_response)
    values = (
        project_id,
        external_id,
        strings[0],
        prep_time(occurred_at),
        strings[1],
        orjson.dumps(messages).decode(),
        response,
        alt_response,
        strings[2],
        orjson.dumps(segment).decode(),
        orjson.dumps(metadata).decode(),
        orjson.dumps(scores).decode(),
    )
    return CleanRow(external_id, values, occurred_at, events), {}


# --- Storing ----------------------------------------------------------------------------------


def _time_preparer() -> Callable[[dt.datetime], Any]:
    """How a datetime is passed to the current database (ISO text for SQLite, as-is for PG)."""
    time_field = Interaction._meta.get_field("occurred_at")
    if connection.vendor == "postgresql":
        return lambda value: value
    return lambda value: time_field.get_db_prep_save(value, connection)


def _store_batch(project: Project, batch: list[CleanRow], result: IngestResult) -> None:
    """Insert one batch in its own transaction; count created/duplicates exactly."""
    unique: dict[str, CleanRow] = {}
    for row in batch:
        if row.external_id in unique:
            result.duplicates += 1
        else:
            unique[row.external_id] = row
    with transaction.atomic():
        inserted = insert_returning(
            model=Interaction,
            columns=INSERT_COLUMNS,
            rows=[row.values for row in unique.values()],
            conflict=("project_id", "external_id"),
            returning=("id", "external_id"),
        )
        created = {ext: pk for pk, ext in inserted}
        result.created += len(created)
        result.duplicates += len(unique) - len(created)
        ids = list(created.values())
        result.created_ids.extend(ids)
        # Inline events of a duplicate row are dropped: the row (and its events) already arrived.
        events = [
            event.attach(created[ext])
            for ext, row in unique.items()
            if ext in created
            for event in row.events
        ]
        if events:
            result.events_created += events_insert(project=project, events=events).created
        processing_enqueue_on_commit(project_id=project.pk, interaction_ids=ids)


def interactions_ingest(
    *,
    project: Project,
    items: Iterable[tuple[int, Any]],
    loc_key: str = "line",
    batch_size: int = BATCH_SIZE,
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
    event_types = event_types_for(project)
    prep_time = _time_preparer()
    redact = bool(project.redact_pii)
    result = IngestResult()
    batch: list[CleanRow] = []
    seen = 0
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
            )
            if row is None:
                result.reject(
                    loc_key, loc, errors, obj.get("external_id") if type(obj) is dict else None
                )
                continue
            batch.append(row)
            if len(batch) >= batch_size:
                _store_batch(project, batch, result)
                batch = []
                if on_progress is not None:
                    on_progress(seen)
    except (BodyTooLarge, BadBody) as exc:
        # Rows validated before the limit was crossed are stored too: a retry is harmless.
        if batch:
            _store_batch(project, batch, result)
        exc.result = result
        raise
    if batch:
        _store_batch(project, batch, result)
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
                yield index, ParseError({"row": _row_too_long(limits)})
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
