"""OTLP traces, step 2: one span to one interaction object (the ingestion API's shape), or why not.

Which spans are LLM calls, and where their messages are, follows the conventions instrumentations
use today and used before:

- OpenTelemetry GenAI semantic conventions, current: ``gen_ai.input.messages``,
  ``gen_ai.output.messages`` and ``gen_ai.system_instructions`` (JSON, messages of typed parts);
- the same conventions 1.28-1.36: span events ``gen_ai.system.message``, ``gen_ai.user.message``,
  ``gen_ai.assistant.message``, ``gen_ai.tool.message`` and ``gen_ai.choice``;
- older: events ``gen_ai.content.prompt`` / ``gen_ai.content.completion`` (attributes
  ``gen_ai.prompt`` / ``gen_ai.completion``), and the indexed attributes
  ``gen_ai.prompt.{i}.role|content`` / ``gen_ai.completion.{i}.role|content`` (OpenLLMetry);
- OpenInference: ``llm.input_messages.{i}.message.role|content`` (or ``.contents.{j}``),
  ``llm.output_messages.{i}.message.*``, ``llm.model_name``, ``session.id``.

A span is an LLM call when ``gen_ai.operation.name`` is chat, text_completion or
generate_content, when OpenInference says ``openinference.span.kind = LLM``, or when it has no
operation name but carries GenAI or OpenInference message attributes. Anything else (HTTP, database,
embeddings, tools, agents) is ignored and counted. An LLM call whose prompt or answer was not
captured (content capture is off by default in most instrumentations) is rejected with the reason.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import orjson

from labeling.services.chat import content_text, maybe_json, messages_of, role_of
from labeling.services.otlp.decode import Span

LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion"})
EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_INDEXED = re.compile(r"^(gen_ai\.prompt|gen_ai\.completion)\.(\d+)\.(role|content)$")
_OI = re.compile(
    r"^llm\.(input|output)_messages\.(\d+)\.message\."
    r"(role|content|contents\.(\d+)\.message_content\.(text|type))$"
)
SEGMENT_PREFIX = "flywheel.segment."
SCORE_PREFIX = "flywheel.score."
NO_CONTENT = (
    "an LLM span without {what} content: turn on content capture in the instrumentation "
    "(e.g. OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)"
)


def _from_current(attrs: Mapping[str, Any]) -> tuple[list[dict[str, str]], str | None]:
    messages: list[dict[str, str]] = []
    if "gen_ai.system_instructions" in attrs:
        text = content_text(attrs["gen_ai.system_instructions"])
        if text:
            messages.append({"role": "system", "content": text})
    if "gen_ai.input.messages" in attrs:
        messages += messages_of(attrs["gen_ai.input.messages"])
    response = None
    if "gen_ai.output.messages" in attrs:
        outputs = messages_of(attrs["gen_ai.output.messages"])
        if outputs:
            response = outputs[0]["content"]
    return messages, response


def _from_events(
    events: list[tuple[str, dict[str, Any]]],
) -> tuple[list[dict[str, str]], str | None]:
    messages: list[dict[str, str]] = []
    response: str | None = None
    for name, attrs in events:
        body = maybe_json(attrs.get("gen_ai.event.content")) or {}
        if name in EVENT_ROLES:
            content = attrs.get("content", body.get("content") if isinstance(body, dict) else None)
            role = role_of(attrs.get("role") or EVENT_ROLES[name], EVENT_ROLES[name])
            messages.append({"role": role, "content": content_text(content)})
        elif name == "gen_ai.choice":
            index = attrs.get("index", body.get("index", 0) if isinstance(body, dict) else 0)
            if response is None and int(index or 0) == 0:
                message = attrs.get(
                    "message", body.get("message") if isinstance(body, dict) else None
                )
                response = content_text(maybe_json(message))
        elif name == "gen_ai.content.prompt" and "gen_ai.prompt" in attrs:
            messages += messages_of(attrs["gen_ai.prompt"])
        elif name == "gen_ai.content.completion" and "gen_ai.completion" in attrs:
            outputs = messages_of(attrs["gen_ai.completion"])
            if outputs and response is None:
                response = outputs[0]["content"]
    return messages, response


def _indexed(attrs: Mapping[str, Any]) -> tuple[list[dict[str, str]], str | None]:
    """``gen_ai.prompt.{i}.*`` (OpenLLMetry) and OpenInference ``llm.*_messages.{i}.*``."""
    prompt: dict[int, dict[str, Any]] = {}
    completion: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if key.startswith("gen_ai.p") or key.startswith("gen_ai.c"):
            match = _INDEXED.match(key)
            if match:
                side = prompt if match.group(1) == "gen_ai.prompt" else completion
                side.setdefault(int(match.group(2)), {})[match.group(3)] = value
        elif key.startswith("llm.") and "_messages." in key:
            match = _OI.match(key)
            if match:
                side = prompt if match.group(1) == "input" else completion
                entry = side.setdefault(int(match.group(2)), {})
                if match.group(4) is not None:
                    if match.group(5) == "text":
                        entry.setdefault("parts", {})[int(match.group(4))] = str(value)
                else:
                    entry[match.group(3)] = value

    def as_messages(side: dict[int, dict[str, Any]], default: str) -> list[dict[str, str]]:
        out = []
        for _, entry in sorted(side.items()):
            content = entry.get("content")
            if content is None and "parts" in entry:
                content = "".join(text for _, text in sorted(entry["parts"].items()))
            out.append(
                {"role": role_of(entry.get("role"), default), "content": content_text(content)}
            )
        return out

    outputs = as_messages(completion, "assistant")
    return as_messages(prompt, "user"), (outputs[0]["content"] if outputs else None)


def is_llm_call(attrs: Mapping[str, Any]) -> bool:
    operation = attrs.get("gen_ai.operation.name")
    if operation is not None:
        return str(operation) in LLM_OPERATIONS
    kind = attrs.get("openinference.span.kind")
    if kind is not None:
        return str(kind).upper() == "LLM"
    return any(
        key.startswith(("gen_ai.prompt", "gen_ai.input.messages", "llm.input_messages."))
        for key in attrs
    )


def _first(attrs: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value not in (None, ""):
            return value
    return None


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return orjson.dumps(value).decode()


def segment_of(
    span: Span, *, mapping: Mapping[str, str], segment_keys: list[str]
) -> dict[str, Any]:
    """Segment values from span attributes (then resource attributes): the project's explicit
    mapping ``{attribute: segment key}``, ``flywheel.segment.<key>`` attributes, and attributes
    named like one of the project's segment keys."""
    segment: dict[str, Any] = {}
    for attrs in (span.resource, span.attributes):  # span attributes win
        for key in segment_keys:
            if key in attrs:
                segment[key] = _scalar(attrs[key])
        for name, value in attrs.items():
            if name.startswith(SEGMENT_PREFIX):
                segment[name[len(SEGMENT_PREFIX) :]] = _scalar(value)
        for attribute, key in mapping.items():
            if attribute in attrs:
                segment[key] = _scalar(attrs[attribute])
    return segment


def span_interaction(
    span: Span, *, mapping: Mapping[str, str], segment_keys: list[str]
) -> tuple[str, Any]:
    """``("ignored", None)``, ``("rejected", {field: reason})`` or ``("row", interaction)``."""
    attrs = span.attributes
    if not is_llm_call(attrs):
        return "ignored", None
    messages, response = _from_current(attrs)
    if not messages or response is None:
        event_messages, event_response = _from_events(span.events)
        messages = messages or event_messages
        response = response if response is not None else event_response
    if not messages or response is None:
        indexed_messages, indexed_response = _indexed(attrs)
        messages = messages or indexed_messages
        response = response if response is not None else indexed_response
    if not messages and isinstance(attrs.get("input.value"), str):
        messages = [{"role": "user", "content": attrs["input.value"]}]
    if response is None and isinstance(attrs.get("output.value"), str):
        response = attrs["output.value"]
    if not messages:
        return "rejected", {"messages": NO_CONTENT.format(what="prompt")}
    if response is None:
        return "rejected", {"response": NO_CONTENT.format(what="response")}

    start = dt.datetime.fromtimestamp(span.start_ns / 1e9, tz=dt.UTC) if span.start_ns else None
    usage = {
        name: value
        for name, value in (
            (
                "input_tokens",
                _first(
                    attrs,
                    "gen_ai.usage.input_tokens",
                    "gen_ai.usage.prompt_tokens",
                    "llm.token_count.prompt",
                ),
            ),
            (
                "output_tokens",
                _first(
                    attrs,
                    "gen_ai.usage.output_tokens",
                    "gen_ai.usage.completion_tokens",
                    "llm.token_count.completion",
                ),
            ),
        )
        if value is not None
    }
    metadata: dict[str, Any] = {
        "source": "otlp",
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "span_name": span.name,
    }
    optional = {
        "service": span.resource.get("service.name"),
        "provider": _first(
            attrs, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"
        ),
        "operation": attrs.get("gen_ai.operation.name"),
        "response_id": attrs.get("gen_ai.response.id"),
        "finish_reasons": attrs.get("gen_ai.response.finish_reasons"),
        "usage": usage or None,
        "latency_ms": round((span.end_ns - span.start_ns) / 1e6, 3)
        if span.end_ns >= span.start_ns > 0
        else None,
    }
    metadata.update({k: v for k, v in optional.items() if v is not None})
    scores = {
        name[len(SCORE_PREFIX) :]: value
        for name, value in attrs.items()
        if name.startswith(SCORE_PREFIX) and isinstance(value, int | float)
    }
    row: dict[str, Any] = {
        "external_id": f"otel-{span.trace_id}-{span.span_id}",
        "conversation_id": str(
            _first(attrs, "gen_ai.conversation.id", "session.id") or span.trace_id
        )[:200],
        "occurred_at": start.isoformat() if start else None,
        "model_version": str(
            _first(attrs, "gen_ai.response.model", "gen_ai.request.model", "llm.model_name") or ""
        )[:200],
        "messages": messages,
        "response": response,
        "segment": segment_of(span, mapping=mapping, segment_keys=segment_keys),
        "metadata": metadata,
    }
    if scores:
        row["scores"] = scores
    return "row", row
