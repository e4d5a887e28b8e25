"""Ingestion size limits, read from ``settings.FLYWHEEL`` (environment: ``FLYWHEEL_MAX_*``).

- ``MAX_REQUEST_BYTES``: the body as sent (compressed or not); over it the request answers 413.
- ``MAX_DECOMPRESSED_BYTES``: the body after gzip decoding (a gzip bomb is refused with 413).
- ``MAX_ROW_BYTES``: one interaction (one JSONL line, or one array element re-encoded).
- ``MAX_FIELD_CHARS``: one text field (``response``, ``alt_response``, each message ``content``).
- ``MAX_ROWS_PER_REQUEST``: rows in one request (413 beyond it).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int
    max_decompressed_bytes: int
    max_row_bytes: int
    max_field_chars: int
    max_rows_per_request: int
    max_messages: int = 1000
    max_events_per_row: int = 1000
    max_id_chars: int = 200
    max_segment_keys: int = 50
    max_scores: int = 100


def current_limits() -> Limits:
    """The limits in force now (read at call time so tests can override settings)."""
    conf = getattr(settings, "FLYWHEEL", {})
    max_request = int(conf.get("MAX_REQUEST_BYTES", 64 * 1024**2))
    return Limits(
        max_request_bytes=max_request,
        max_decompressed_bytes=int(conf.get("MAX_DECOMPRESSED_BYTES", 4 * max_request)),
        max_row_bytes=int(conf.get("MAX_ROW_BYTES", 1024**2)),
        max_field_chars=int(conf.get("MAX_FIELD_CHARS", 200_000)),
        max_rows_per_request=int(conf.get("MAX_ROWS_PER_REQUEST", 100_000)),
    )
