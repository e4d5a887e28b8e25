"""What every importer shares: the conversion context, times, answers and segments."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from labeling.services.chat import content_text, messages_of
from labeling.services.ingest import ParseError

# What a converter returns for one record: an interaction object, several, a ParseError naming
# what is wrong, or None (not an LLM call: skipped).
Converted = Union[dict[str, Any], list[dict[str, Any]], ParseError, None]  # noqa: UP007


@dataclass
class Context:
    segment_keys: list[str]
    lookup: Callable[[str], Any] | None = None  # openai-batch: custom_id -> request body
    requests: dict[str, Any] = field(default_factory=dict)  # batch inputs seen in the stream


def unix_time(value: Any) -> str | None:
    """ISO 8601 of a Unix time in seconds (or milliseconds), or an ISO string as it is."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat()
    if isinstance(value, str) and value:
        return value
    return None


def answer_text(output: Any) -> str | None:
    """The assistant's text from an output in any common shape, or None when there is none:
    a string, a message, a list of messages (the last assistant one), an OpenAI completion
    (``choices[0].message``), LangChain generations."""
    if output is None:
        return None
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        messages = [m for m in messages_of(output, "assistant") if m["role"] == "assistant"]
        return messages[-1]["content"] if messages else None
    if isinstance(output, Mapping):
        choices = output.get("choices")
        if isinstance(choices, list) and choices:
            first = choices[0]
            if isinstance(first, Mapping):
                if "message" in first:
                    return content_text((first.get("message") or {}).get("content"))
                if "text" in first:
                    return str(first["text"])
        generations = output.get("generations")
        if isinstance(generations, list) and generations:
            first = generations[0][0] if isinstance(generations[0], list) else generations[0]
            if isinstance(first, Mapping):
                message = first.get("message")
                if message is not None:
                    converted = messages_of([message], "assistant")
                    if converted:
                        return converted[0]["content"]
                if "text" in first:
                    return str(first["text"])
        for key in ("content", "text", "output", "answer", "response", "completion"):
            if key in output:
                return answer_text(output[key]) if key != "content" else content_text(output[key])
    return None


def prompt_messages(inputs: Any) -> list[dict[str, str]]:
    """Chat messages from an input in any common shape: a list of messages (or a list of lists,
    as LangChain chat models log them), ``{"messages": ...}``, ``{"prompts": [...]}``, a string."""
    if isinstance(inputs, Mapping):
        for key in ("messages", "prompts", "prompt", "input", "question", "query"):
            if key in inputs:
                return prompt_messages(inputs[key])
        return []
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], list):
        inputs = inputs[0]  # one conversation per generation: take the first
    return messages_of(inputs, "user")


def segment_from(sources: list[Mapping[str, Any] | None], keys: list[str]) -> dict[str, Any]:
    """The project's segment keys found in the given dicts (later ones win); scalars only."""
    segment: dict[str, Any] = {}
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for key in keys:
            value = source.get(key)
            if key in source and (value is None or isinstance(value, str | int | float | bool)):
                segment[key] = value
    return segment


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is an object, else an empty one (for optional nested objects)."""
    return value if isinstance(value, Mapping) else {}


def numbers(values: Mapping[str, Any]) -> dict[str, float]:
    return {
        str(k): float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def compact(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v not in (None, "", [], {})}
