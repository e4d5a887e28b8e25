"""A LangSmith runs export (``client.list_runs`` dumped one run per line, or the UI's JSONL).

Runs of type ``llm`` become interactions: the prompt from ``inputs`` (``messages``, as LangChain
chat models log them, possibly a list of lists and serialized LangChain messages; or
``prompts``), the answer from ``outputs`` (``generations``, an OpenAI-style ``choices``, or a
message), the model from ``extra.invocation_params`` or ``extra.metadata.ls_model_name``, the
conversation from ``extra.metadata`` (``thread_id``, ``session_id``, ``conversation_id``) or the
trace. Feedback averages (``feedback_stats: {key: {"avg"}}``) become ``scores``. Other run types
(chain, tool, retriever, ...) are skipped; a failed llm run is rejected with its error.
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
    if not isinstance(obj, Mapping):
        return ParseError({"line": "must be a JSON object (a LangSmith run)"})
    if not obj.get("id") or "run_type" not in obj:
        return ParseError({"run_type": "required: a LangSmith run has an id and a run_type"})
    if obj["run_type"] != "llm":
        return None
    if obj.get("error") and not obj.get("outputs"):
        return ParseError({"outputs": f"the run failed: {str(obj['error'])[:500]}"})
    messages = prompt_messages(obj.get("inputs"))
    answer = answer_text(obj.get("outputs"))
    if not messages:
        return ParseError({"inputs": "required: the llm run's messages or prompts"})
    if answer is None:
        return ParseError({"outputs": "required: the llm run's generations or message"})
    extra = as_mapping(obj.get("extra"))
    meta = as_mapping(extra.get("metadata"))
    params = as_mapping(extra.get("invocation_params"))
    feedback = {
        key: stats.get("avg")
        for key, stats in (obj.get("feedback_stats") or {}).items()
        if isinstance(stats, Mapping)
    }
    conversation = meta.get("thread_id") or meta.get("session_id") or meta.get("conversation_id")
    return compact(
        {
            "external_id": f"langsmith-{obj['id']}",
            "occurred_at": obj.get("start_time"),
            "model_version": str(
                params.get("model") or params.get("model_name") or meta.get("ls_model_name") or ""
            ),
            "conversation_id": str(conversation or obj.get("trace_id") or ""),
            "messages": messages,
            "segment": segment_from([meta], context.segment_keys),
            "scores": numbers(feedback),
            "metadata": compact(
                {
                    "source": "langsmith",
                    "run_id": obj["id"],
                    "trace_id": obj.get("trace_id"),
                    "name": obj.get("name"),
                    "tags": obj.get("tags"),
                    "usage": compact(
                        {
                            "prompt_tokens": obj.get("prompt_tokens"),
                            "completion_tokens": obj.get("completion_tokens"),
                            "total_tokens": obj.get("total_tokens"),
                        }
                    ),
                    "provider": meta.get("ls_provider"),
                    **{k: v for k, v in meta.items() if not str(k).startswith("ls_")},
                }
            ),
        }
    ) | {"response": answer}
