"""A Langfuse export: traces (with their observations inlined, as ``GET /api/public/traces/{id}``
returns them), observations, or pages of either (``{"data": [...], "meta": {...}}``), one JSON
object per line.

A trace becomes one interaction: the prompt and answer of its last GENERATION observation when it
has one (model and usage from it), else the trace's own input and output. A GENERATION observation
on its own line becomes one interaction. SPAN and EVENT observations are skipped. Numeric scores
(``scores: [{"name", "value"}]``) become ``scores``; the project's segment keys are looked up in
the trace's metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labeling.services.importers.common import (
    Context,
    Converted,
    answer_text,
    as_mapping,
    compact,
    numbers,
    prompt_messages,
    segment_from,
)
from labeling.services.ingest import ParseError


def record(obj: Any, context: Context) -> Converted:
    if isinstance(obj, Mapping) and isinstance(obj.get("data"), list):  # an API page
        rows: list[dict[str, Any]] = []
        for item in obj["data"]:
            converted = record(item, context)
            if isinstance(converted, ParseError):
                return converted
            if isinstance(converted, dict):
                rows.append(converted)
        return rows or None
    if not isinstance(obj, Mapping):
        return ParseError({"line": "must be a JSON object (a Langfuse trace or observation)"})
    kind = str(obj.get("type") or "").upper()
    if kind:  # an observation
        if kind != "GENERATION":
            return None
        return _generation(obj, context)
    return _trace(obj, context)


def _scores(trace: Mapping[str, Any]) -> dict[str, float]:
    found: dict[str, Any] = {}
    for score in trace.get("scores") or []:
        if isinstance(score, Mapping) and isinstance(score.get("name"), str):
            found[score["name"]] = score.get("value")
    return numbers(found)


def _generation(obs: Mapping[str, Any], context: Context) -> Converted:
    messages = prompt_messages(obs.get("input"))
    answer = answer_text(obs.get("output"))
    if not messages:
        return ParseError({"input": "required: the generation's prompt"})
    if answer is None:
        return ParseError({"output": "required: the generation's output"})
    metadata = as_mapping(obs.get("metadata"))
    return compact(
        {
            "external_id": f"langfuse-{obs.get('id')}",
            "occurred_at": obs.get("startTime"),
            "model_version": str(obs.get("model") or ""),
            "conversation_id": str(obs.get("traceId") or ""),
            "messages": messages,
            "segment": segment_from([metadata], context.segment_keys),
            "metadata": compact(
                {
                    "source": "langfuse",
                    "observation_id": obs.get("id"),
                    "trace_id": obs.get("traceId"),
                    "name": obs.get("name"),
                    "usage": obs.get("usageDetails") or obs.get("usage"),
                    "model_parameters": obs.get("modelParameters"),
                    **dict(metadata or {}),
                }
            ),
        }
    ) | {"response": answer}


def _trace(trace: Mapping[str, Any], context: Context) -> Converted:
    if not trace.get("id"):
        return ParseError({"id": "required: a Langfuse trace or observation id"})
    generations = [
        o
        for o in trace.get("observations") or []
        if isinstance(o, Mapping) and str(o.get("type") or "").upper() == "GENERATION"
    ]
    generations.sort(key=lambda o: str(o.get("startTime") or ""))
    last = generations[-1] if generations else {}
    messages = prompt_messages(last.get("input")) or prompt_messages(trace.get("input"))
    answer = answer_text(last.get("output"))
    if answer is None:
        answer = answer_text(trace.get("output"))
    if not messages:
        return ParseError({"input": "required: the trace's (or its generation's) input"})
    if answer is None:
        return ParseError({"output": "required: the trace's (or its generation's) output"})
    metadata = as_mapping(trace.get("metadata"))
    return compact(
        {
            "external_id": f"langfuse-{trace['id']}",
            "occurred_at": trace.get("timestamp") or last.get("startTime"),
            "model_version": str(last.get("model") or trace.get("release") or ""),
            "conversation_id": str(trace.get("sessionId") or trace["id"]),
            "messages": messages,
            "segment": segment_from([metadata], context.segment_keys),
            "scores": _scores(trace),
            "metadata": compact(
                {
                    "source": "langfuse",
                    "trace_id": trace["id"],
                    "name": trace.get("name"),
                    "user_id": trace.get("userId"),
                    "tags": trace.get("tags"),
                    "release": trace.get("release"),
                    "version": trace.get("version"),
                    "usage": last.get("usageDetails") or last.get("usage"),
                    **dict(metadata or {}),
                }
            ),
        }
    ) | {"response": answer}
