"""OpenAI chat-completions logs and Batch API output.

``openai-chat``: one JSON object per line holding a request and its response, in any of these
shapes: ``{"request": {...}, "response": {...}}`` (``"body"`` is taken for ``"request"``; extra
top-level keys such as ``metadata``, ``user``, ``timestamp`` are used when present), or a response
object that also carries the request's ``messages`` (as several proxies log them).

``openai-batch``: the Batch API output file, one ``{"id", "custom_id", "response":
{"status_code", "body"}, "error"}`` per line. The output holds no prompts, so each line is joined
with its request from the batch input file (``{"custom_id", "method", "url", "body"}``): the
command line takes ``--requests INPUT.jsonl``; over the API, send the input lines first and the
output lines after them in one body. Failed requests are rejected with the batch's error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from labeling.services.importers.common import (
    Context,
    Converted,
    answer_text,
    as_mapping,
    compact,
    prompt_messages,
    segment_from,
    unix_time,
)
from labeling.services.ingest import ParseError

REQUEST_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "n")


def _completion(
    request: Mapping[str, Any],
    response: Mapping[str, Any],
    context: Context,
    *,
    source: str,
    fallback_id: str,
    extra: Mapping[str, Any] | None = None,
) -> Converted:
    extra = extra or {}
    messages = prompt_messages(request)
    if not messages:
        return ParseError({"request.messages": "required: the chat request's messages"})
    answer = answer_text(response)
    if answer is None:
        return ParseError({"response.choices": "required: a completion with choices[0].message"})
    occurred = unix_time(response.get("created")) or unix_time(
        extra.get("timestamp") or extra.get("created_at")
    )
    if occurred is None:
        return ParseError({"response.created": "required: the completion's Unix time"})
    meta = as_mapping(request.get("metadata"))
    extra_meta = as_mapping(extra.get("metadata"))
    choices = response.get("choices") or [{}]
    first = as_mapping(choices[0])
    metadata = compact(
        {
            "source": source,
            "usage": response.get("usage"),
            "finish_reason": first.get("finish_reason"),
            "request": compact({k: request[k] for k in (*REQUEST_PARAMS, "model") if k in request}),
            "user": request.get("user") or extra.get("user"),
            **dict(meta or {}),
            **dict(extra_meta or {}),
        }
    )
    return compact(
        {
            "external_id": str(response.get("id") or fallback_id),
            "occurred_at": occurred,
            "model_version": str(response.get("model") or request.get("model") or ""),
            "conversation_id": str(extra.get("conversation_id") or ""),
            "messages": messages,
            "response": answer,
            "segment": segment_from([meta, extra_meta], context.segment_keys),
            "metadata": metadata,
        }
    ) | {"response": answer}


def _line_id(obj: Any) -> str:
    return (
        "openai-" + hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    )


def chat_record(obj: Any, context: Context) -> Converted:
    if not isinstance(obj, Mapping):
        return ParseError({"line": "must be a JSON object"})
    request = obj.get("request", obj.get("body"))
    response = obj.get("response")
    if request is None and response is None and "choices" in obj:
        request, response = obj, obj  # a completion logged with its request's messages
    if not isinstance(request, Mapping):
        return ParseError({"request": "required: the chat-completions request (an object)"})
    if isinstance(response, Mapping) and isinstance(response.get("body"), Mapping):
        response = response["body"]  # {"status_code", "body"} as some gateways log it
    if not isinstance(response, Mapping):
        return ParseError({"response": "required: the chat completion (an object)"})
    return _completion(
        request, response, context, source="openai-chat", fallback_id=_line_id(obj), extra=obj
    )


def batch_record(obj: Any, context: Context) -> Converted:
    if not isinstance(obj, Mapping):
        return ParseError({"line": "must be a JSON object"})
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return ParseError({"custom_id": "required: a batch output or input line has a custom_id"})
    if "method" in obj and "body" in obj and "response" not in obj:
        # A line of the batch input file: remember its request for the output line.
        context.requests[custom_id] = obj["body"]
        return None
    error = obj.get("error")
    response = as_mapping(obj.get("response"))
    status = response.get("status_code")
    if error or (status is not None and status != 200):
        reason = as_mapping(error).get("message")
        failed = as_mapping(response.get("body"))
        reason = reason or as_mapping(failed.get("error")).get("message") or f"status {status}"
        return ParseError({"response": f"the batch request {custom_id!r} failed: {reason}"})
    body = response.get("body")
    if not isinstance(body, Mapping):
        return ParseError({"response.body": "required: the chat completion of this request"})
    request = context.requests.pop(custom_id, None)
    if request is None and context.lookup is not None:
        request = context.lookup(custom_id)
    if not isinstance(request, Mapping):
        return ParseError(
            {
                "custom_id": f"no request for {custom_id!r} in the batch input: pass the input "
                "file (--requests) or send its lines before the output lines"
            }
        )
    return _completion(
        request,
        body,
        context,
        source="openai-batch",
        fallback_id=f"openai-batch-{obj.get('id') or custom_id}",
        extra={"metadata": {"batch_request_id": obj.get("id"), "custom_id": custom_id}},
    )
