"""Ingestion, step 1: turn request bytes into ``(line or index, decoded object or ParseError)``.

Streams: the body is read chunk by chunk (optionally gzip-decoded with a limit on the decompressed
size), split into lines and decoded one at a time, so the server never holds the whole body. A
line that cannot be decoded is not an error of the request: it becomes a :class:`ParseError` that
the pipeline reports by line number beside the good rows. Size limits that concern the whole body
raise :class:`BodyTooLarge` / :class:`BadBody`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

from labeling.limits import Limits

if TYPE_CHECKING:
    from labeling.services.ingest.storage import IngestResult

BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark some editors put at the start of a file


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
                yield line_no, ParseError({"line": row_too_long(limits)})
                continue
            try:
                yield line_no, loads(line)  # orjson ignores surrounding whitespace and \r
            except decode_error:
                if line.strip():
                    yield line_no, parse_json_line(line)
        if len(tail) > max_row:
            line_no += 1
            yield line_no, ParseError({"line": row_too_long(limits)})
            tail = b""
            skipping = True
    if line_no == 0:
        tail = tail.removeprefix(BOM)
    if tail.strip() and not skipping:
        line_no += 1
        yield line_no, parse_json_line(tail)


def row_too_long(limits: Limits) -> str:
    return f"row longer than {limits.max_row_bytes:,} bytes"
