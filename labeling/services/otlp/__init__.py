"""OTLP traces in: LLM-call spans (OpenTelemetry GenAI or OpenInference) become interactions.

The pipeline: :mod:`.decode` turns the body (protobuf or JSON, already gunzipped) into spans,
refusing a malformed body as a whole (:class:`OtlpBadRequest`: nothing is stored);
:mod:`.mapping` turns each span into an interaction object or says why not; the objects go
through the ingestion pipeline (:func:`labeling.services.ingest.interactions_ingest`), so the same
rules, limits, redaction and idempotency apply (the ``external_id`` is
``otel-<trace id>-<span id>``: a span exported twice is stored once).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from labeling.limits import Limits, current_limits
from labeling.models import Project
from labeling.services.ingest import ParseError, interactions_ingest
from labeling.services.otlp.decode import (
    OtlpBadRequest,
    check_sizes,
    decode_json,
    decode_protobuf,
)
from labeling.services.otlp.mapping import span_interaction

__all__ = [
    "JSON",
    "PROTOBUF",
    "OtlpBadRequest",
    "OtlpResult",
    "OtlpUnsupportedMedia",
    "traces_ingest",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_MESSAGE_ERRORS = 5  # rejects named in the partial-success message


class OtlpUnsupportedMedia(Exception):
    """Neither protobuf nor JSON (OTLP/HTTP answers 415)."""


@dataclass
class OtlpResult:
    spans: int = 0
    ignored: int = 0  # not LLM calls
    created: int = 0
    duplicates: int = 0
    rejected: int = 0  # LLM calls that could not become interactions (see errors)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def message(self) -> str:
        """The partial-success message: why spans were rejected, with the first few reasons."""
        if not self.rejected:
            return ""
        parts = []
        for error in self.errors[:MAX_MESSAGE_ERRORS]:
            reasons = "; ".join(f"{k}: {v}" for k, v in error["errors"].items())
            name = error.get("external_id") or f"span {error['span']}"
            parts.append(f"{name}: {reasons}")
        more = self.rejected - len(parts)
        tail = f"; and {more} more" if more > 0 else ""
        return f"{self.rejected} LLM spans rejected: " + " | ".join(parts) + tail

    def header(self) -> str:
        return (
            f"spans={self.spans} created={self.created} duplicates={self.duplicates} "
            f"rejected={self.rejected} ignored={self.ignored}"
        )


def media_type(content_type: str) -> str:
    kind = content_type.split(";")[0].strip().lower()
    if kind in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if kind == JSON:
        return JSON
    raise OtlpUnsupportedMedia(
        f"Content-Type {content_type or '(none)'!r} is not supported: send OTLP/HTTP as "
        f"{PROTOBUF} or {JSON}."
    )


def traces_ingest(
    *, project: Project, body: bytes, content_type: str, limits: Limits | None = None
) -> OtlpResult:
    """Store the LLM-call spans of one ``ExportTraceServiceRequest`` body."""
    limits = limits or current_limits()
    kind = media_type(content_type)
    spans = decode_protobuf(body) if kind == PROTOBUF else decode_json(body)
    check_sizes(spans, max_chars=limits.max_field_chars)
    result = OtlpResult(spans=len(spans))
    mapping = dict(project.otlp_segment_attributes or {})
    segment_keys = [str(k) for k in project.segment_keys or []]

    def items() -> Iterator[tuple[int, Any]]:
        for index, span in enumerate(spans):
            outcome, value = span_interaction(span, mapping=mapping, segment_keys=segment_keys)
            if outcome == "ignored":
                result.ignored += 1
            elif outcome == "rejected":
                yield index, ParseError(value)
            else:
                yield index, value

    stored = interactions_ingest(project=project, items=items(), loc_key="span", limits=limits)
    result.created = stored.created
    result.duplicates = stored.duplicates
    result.rejected = stored.rejected
    result.errors = stored.errors
    return result
