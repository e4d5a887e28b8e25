"""Ingestion, step 2: check one decoded interaction and prepare its row for the database.

Per-row work is plain Python (no serializer per row) so bulk ingestion stays fast. A row that
breaks a rule is returned with its field errors (``{"field": "message"}``); the pipeline reports it
and stores the good rows beside it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from labeling.limits import Limits
from labeling.models import BUILTIN_EVENT_TYPES, Project
from labeling.nul import NUL, NUL_ESCAPE, NUL_MESSAGE, nul_path
from labeling.redact import redact_text
from labeling.services.events import EventRow, event_clean, parse_time

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


def dumped_json(value: Any, name: str, errors: dict[str, str]) -> str:
    """``value`` as JSON text for a jsonb column; a NUL anywhere in it is a field error."""
    text = orjson.dumps(value)
    # JSON carries NUL only as the escape: a quick test, then the exact place.
    if NUL_ESCAPE in text and (where := nul_path(value, name)) is not None:
        errors[where] = NUL_MESSAGE
    return text.decode()


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
    elif NUL in value:
        errors[name] = NUL_MESSAGE
    return value


def _nests(mapping: dict[Any, Any]) -> bool:
    """Whether any value of ``mapping`` is itself a container (most metadata is flat)."""
    for value in mapping.values():
        kind = type(value)
        if kind is dict or kind is list:
            return True
    return False


def interaction_clean(
    obj: Any,
    *,
    project_id: int,
    limits: Limits,
    event_types: frozenset[str],
    redact: bool,
    prep_time: Callable[[dt.datetime], Any],
    not_after: dt.datetime | None = None,
) -> tuple[CleanRow | None, dict[str, str]]:
    """Validate one interaction object. Returns the row ready to insert, or the field errors.

    ``not_after`` is the latest ``occurred_at`` accepted (default: now + ``MAX_FUTURE``); a caller
    checking many rows computes it once per batch.
    """
    if type(obj) is not dict:
        return None, {"row": "must be a JSON object"}
    errors: dict[str, str] = {}
    if not obj.keys() <= INTERACTION_FIELDS:
        for key in sorted(obj.keys() - INTERACTION_FIELDS)[:10]:
            errors[str(key)[:100]] = "unknown field (put free-form data in metadata)"

    external_id = obj.get("external_id")
    if type(external_id) is not str or not external_id.strip():
        errors["external_id"] = "required: a non-empty string"
    elif len(external_id) > limits.max_id_chars:
        errors["external_id"] = f"longer than {limits.max_id_chars} characters"
    elif NUL in external_id:
        errors["external_id"] = NUL_MESSAGE

    occurred_raw = obj.get("occurred_at")
    occurred_at = parse_time(occurred_raw)
    if occurred_at is None:
        errors["occurred_at"] = (
            "required" if occurred_raw is None else "must be an ISO 8601 date-time"
        )
    elif occurred_at > (not_after or dt.datetime.now(dt.UTC) + MAX_FUTURE):
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
        elif NUL in value:
            errors[name] = NUL_MESSAGE
        strings.append(value)

    response = _check_text(obj.get("response"), "response", limits, errors, required=True)
    alt_response = _check_text(
        obj.get("alt_response"), "alt_response", limits, errors, required=False
    )

    messages = obj.get("messages")
    messages_json = ""
    if type(messages) is not list or not messages:
        errors["messages"] = "required: a non-empty list of {role, content}"
    elif len(messages) > limits.max_messages:
        errors["messages"] = f"more than {limits.max_messages} messages"
    else:
        max_chars = limits.max_field_chars
        for i, message in enumerate(messages):
            if type(message) is not dict:
                errors[f"messages[{i}]"] = "must be an object with role and content"
                continue
            role = message.get("role")
            if type(role) is not str or role not in MESSAGE_ROLES:
                errors[f"messages[{i}].role"] = "must be one of system, user, assistant, tool"
            content = message.get("content")
            if type(content) is not str:
                errors[f"messages[{i}].content"] = "must be a string"
            elif len(content) > max_chars:
                errors[f"messages[{i}].content"] = f"longer than {max_chars:,} characters"
        messages_json = dumped_json(messages, "messages", errors)

    segment = obj.get("segment")
    segment_json = "{}"
    if segment is None:
        pass
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
        segment_json = dumped_json(segment, "segment", errors)

    metadata = obj.get("metadata")
    metadata_json = "{}"
    if metadata is None:
        pass
    elif type(metadata) is not dict:
        errors["metadata"] = "must be an object"
    elif _nests(metadata) and json_depth(metadata) > MAX_DEPTH:
        errors["metadata"] = f"nested deeper than {MAX_DEPTH} levels"
    else:
        metadata_json = dumped_json(metadata, "metadata", errors)

    scores = obj.get("scores")
    scores_json = "{}"
    if scores is None:
        pass
    elif type(scores) is not dict:
        errors["scores"] = "must be an object of named numbers"
    elif len(scores) > limits.max_scores:
        errors["scores"] = f"more than {limits.max_scores} scores"
    else:
        for key, value in scores.items():
            if not is_number(value):
                errors[f"scores.{key}"] = "must be a finite number"
        scores_json = dumped_json(scores, "scores", errors)

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
        messages_json = orjson.dumps(
            [
                {**m, "content": redact_text(m["content"])}
                for m in messages  # type: ignore[union-attr]
            ]
        ).decode()
        response = redact_text(response)
        alt_response = redact_text(alt_response)
    values = (
        project_id,
        external_id,
        strings[0],
        prep_time(occurred_at),
        strings[1],
        messages_json,
        response,
        alt_response,
        strings[2],
        segment_json,
        metadata_json,
        scores_json,
    )
    return CleanRow(external_id, values, occurred_at, events), {}
