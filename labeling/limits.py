"""Ingestion size limits (declared in :mod:`flywheel_site.app_settings`; env ``FLYWHEEL_MAX_*``).

- ``MAX_REQUEST_BYTES``: the body as sent (compressed or not); over it the request answers 413.
- ``MAX_DECOMPRESSED_BYTES``: the body after gzip decoding (a gzip bomb is refused with 413).
- ``MAX_ROW_BYTES``: one interaction (one JSONL line, or one array element re-encoded).
- ``MAX_FIELD_CHARS``: one text field (``response``, ``alt_response``, each message ``content``).
- ``MAX_ROWS_PER_REQUEST``: rows in one request (413 beyond it).
"""

from __future__ import annotations

from dataclasses import dataclass

from flywheel_site.app_settings import setting


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
    return Limits(
        max_request_bytes=setting("MAX_REQUEST_BYTES"),
        max_decompressed_bytes=setting("MAX_DECOMPRESSED_BYTES"),
        max_row_bytes=setting("MAX_ROW_BYTES"),
        max_field_chars=setting("MAX_FIELD_CHARS"),
        max_rows_per_request=setting("MAX_ROWS_PER_REQUEST"),
    )
