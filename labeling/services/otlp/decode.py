"""OTLP traces, step 1: a request body (protobuf or JSON) to plain :class:`Span` objects.

Both encodings of ``ExportTraceServiceRequest`` give the same result: ids as lowercase hex,
attribute values as Python values (AnyValue arrays and key-value lists become lists and dicts),
resource attributes beside each span. The whole body is decoded before anything is stored, so a
malformed body (:class:`OtlpBadRequest`) stores nothing. A string attribute over the per-field
limit is a malformed body too: OTLP has no way to send half an attribute.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class OtlpBadRequest(Exception):
    """The body cannot be used at all (400): the message says what and where."""


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""


# --------------------------------------------------------------------------------- protobuf


def _pb_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _pb_attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in pairs}


def decode_protobuf(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpBadRequest(
            f"The body is not a valid protobuf ExportTraceServiceRequest ({exc}); "
            "it may be truncated or not protobuf at all."
        ) from exc
    spans: list[Span] = []
    for r_index, resource_spans in enumerate(request.resource_spans):
        resource = _pb_attributes(resource_spans.resource.attributes)
        for s_index, scope_spans in enumerate(resource_spans.scope_spans):
            scope = scope_spans.scope.name
            for index, span in enumerate(scope_spans.spans):
                where = f"resourceSpans[{r_index}].scopeSpans[{s_index}].spans[{index}]"
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    raise OtlpBadRequest(f"{where}: traceId must be 16 bytes and spanId 8 bytes.")
                spans.append(
                    Span(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=_pb_attributes(span.attributes),
                        events=[(e.name, _pb_attributes(e.attributes)) for e in span.events],
                        resource=resource,
                        scope=scope,
                    )
                )
    return spans


# --------------------------------------------------------------------------------- JSON


def _json_value(value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise OtlpBadRequest(f"{where}: an AnyValue must be an object like {{'stringValue': ...}}.")
    for key, item in value.items():
        if key == "stringValue":
            return item
        if key in ("intValue", "int_value"):
            return _int(item, where)
        if key in ("doubleValue", "double_value", "boolValue", "bool_value"):
            return item
        if key in ("arrayValue", "array_value"):
            return [
                _json_value(v, f"{where}[{i}]")
                for i, v in enumerate((item or {}).get("values", []))
            ]
        if key in ("kvlistValue", "kvlist_value"):
            return _json_attributes((item or {}).get("values", []), where)
        if key in ("bytesValue", "bytes_value"):
            return item
        if key == "string_value":
            return item
    return None


def _int(value: Any, where: str) -> int:
    try:
        return int(value or 0)  # int64 is a string in OTLP JSON; numbers are accepted too
    except (TypeError, ValueError) as exc:
        raise OtlpBadRequest(f"{where}: {value!r} is not an integer.") from exc


def _json_attributes(pairs: Any, where: str) -> dict[str, Any]:
    if not isinstance(pairs, list):
        raise OtlpBadRequest(f"{where}.attributes must be a list of {{key, value}}.")
    out: dict[str, Any] = {}
    for i, pair in enumerate(pairs):
        if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
            raise OtlpBadRequest(f"{where}.attributes[{i}] must be an object with a string key.")
        out[pair["key"]] = _json_value(pair.get("value") or {}, f"{where}.attributes[{i}]")
    return out


def _json_id(value: Any, size: int, where: str) -> str:
    """OTLP JSON ids are hex; base64 (protobuf's JSON mapping, sent by some SDKs) is accepted."""
    if isinstance(value, str):
        if len(value) == 2 * size:
            try:
                return bytes.fromhex(value).hex()
            except ValueError:
                pass
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == size:
            return raw.hex()
    raise OtlpBadRequest(f"{where} must be {size} bytes as {2 * size} hex digits, got {value!r}.")


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def decode_json(body: bytes) -> list[Span]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpBadRequest(f"The body is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise OtlpBadRequest("The body must be a JSON object with resourceSpans.")
    spans: list[Span] = []
    resource_list = _get(data, "resourceSpans", "resource_spans") or []
    if not isinstance(resource_list, list):
        raise OtlpBadRequest("resourceSpans must be a list.")
    for r_index, resource_spans in enumerate(resource_list):
        rwhere = f"resourceSpans[{r_index}]"
        if not isinstance(resource_spans, dict):
            raise OtlpBadRequest(f"{rwhere} must be an object.")
        resource = _json_attributes(
            (resource_spans.get("resource") or {}).get("attributes") or [], f"{rwhere}.resource"
        )
        for s_index, scope_spans in enumerate(
            _get(resource_spans, "scopeSpans", "scope_spans") or []
        ):
            swhere = f"{rwhere}.scopeSpans[{s_index}]"
            if not isinstance(scope_spans, dict):
                raise OtlpBadRequest(f"{swhere} must be an object.")
            scope = str((scope_spans.get("scope") or {}).get("name") or "")
            for index, span in enumerate(scope_spans.get("spans") or []):
                where = f"{swhere}.spans[{index}]"
                if not isinstance(span, dict):
                    raise OtlpBadRequest(f"{where} must be an object.")
                events = []
                for e_index, event in enumerate(span.get("events") or []):
                    ewhere = f"{where}.events[{e_index}]"
                    if not isinstance(event, dict):
                        raise OtlpBadRequest(f"{ewhere} must be an object.")
                    attrs = _json_attributes(event.get("attributes") or [], ewhere)
                    events.append((str(event.get("name") or ""), attrs))
                spans.append(
                    Span(
                        trace_id=_json_id(
                            _get(span, "traceId", "trace_id"), 16, f"{where}.traceId"
                        ),
                        span_id=_json_id(_get(span, "spanId", "span_id"), 8, f"{where}.spanId"),
                        name=str(span.get("name") or ""),
                        start_ns=_int(
                            _get(span, "startTimeUnixNano", "start_time_unix_nano"), where
                        ),
                        end_ns=_int(_get(span, "endTimeUnixNano", "end_time_unix_nano"), where),
                        attributes=_json_attributes(span.get("attributes") or [], where),
                        events=events,
                        resource=resource,
                        scope=scope,
                    )
                )
    return spans


# --------------------------------------------------------------------------------- limits


def check_sizes(spans: list[Span], *, max_chars: int) -> None:
    """Refuse the body when any string attribute is over ``max_chars`` (nothing is stored)."""
    for index, span in enumerate(spans):
        for where, attrs in (
            ("attributes", span.attributes),
            *((f"events[{i}]", e[1]) for i, e in enumerate(span.events)),
        ):
            for key, value in attrs.items():
                size = _longest(value)
                if size > max_chars:
                    raise OtlpBadRequest(
                        f"Span {index} ({span.name!r}, spanId {span.span_id}) {where} {key!r} "
                        f"is {size:,} characters long, over the limit of {max_chars:,}."
                    )


def _longest(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return max((_longest(v) for v in value), default=0)
    if isinstance(value, dict):
        return max((_longest(v) for v in value.values()), default=0)
    return 0
