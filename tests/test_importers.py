"""Importers: OpenAI chat logs and Batch output, Langfuse and LangSmith exports, through
``manage.py import`` and ``POST /api/projects/{slug}/import`` — streamed, idempotent, errors by
line like the ingestion endpoints."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from labeling.models import Interaction, Project, Role

pytestmark = pytest.mark.django_db

T = 1764000000  # 2025-11-24T16:00:00Z


def jsonl(*rows: Any) -> bytes:
    return b"".join(
        (row if isinstance(row, bytes) else json.dumps(row).encode()) + b"\n" for row in rows
    )


def completion(cid: str, text: str, model: str = "gpt-4.1-mini-2025-04-14") -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": T,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }


OPENAI_CHAT = jsonl(
    {
        "request": {
            "model": "gpt-4.1-mini",
            "temperature": 0.3,
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Reset my password?"}]},
            ],
            "metadata": {"tier": "pro", "feature": "chat"},
        },
        "response": completion("chatcmpl-1", "Settings, Security."),
    },
    # A proxy's log: the completion carries the request's messages.
    {
        **completion("chatcmpl-2", "Within 14 days."),
        "messages": [{"role": "user", "content": "Refund?"}],
    },
    {"request": {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "x"}]}},
    b"{not json",
    {"request": {"messages": []}, "response": completion("chatcmpl-4", "?")},
)


def run_import(tmp_path: Path, fmt: str, data: bytes, project: Project, *args: str) -> str:
    path = tmp_path / f"{fmt}.jsonl"
    path.write_bytes(data)
    out = io.StringIO()
    call_command(
        "import",
        str(path),
        "--project",
        project.slug,
        "--format",
        fmt,
        *args,
        stdout=out,
        stderr=io.StringIO(),
    )
    return out.getvalue()


def test_openai_chat_logs(tmp_path: Path, project: Project):
    project.segment_keys = ["tier"]
    project.save(update_fields=["segment_keys"])
    out = run_import(tmp_path, "openai-chat", OPENAI_CHAT, project)
    assert out.splitlines()[0] == "created 2, duplicates 0, rejected 3, skipped 0"
    assert "line 3: {'response': 'required: the chat completion (an object)'}" in out
    assert "line 4: {'line': 'malformed JSON" in out
    assert "line 5: {'request.messages': \"required: the chat request's messages\"}" in out

    first = Interaction.objects.get(external_id="chatcmpl-1")
    assert first.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Reset my password?"},
    ]
    assert first.response == "Settings, Security."
    assert first.model_version == "gpt-4.1-mini-2025-04-14"
    assert first.occurred_at.timestamp() == T
    assert first.segment == {"tier": "pro"}
    assert first.metadata["usage"]["total_tokens"] == 25
    assert first.metadata["request"] == {"temperature": 0.3, "model": "gpt-4.1-mini"}
    assert first.metadata["feature"] == "chat"
    assert Interaction.objects.get(external_id="chatcmpl-2").messages == [
        {"role": "user", "content": "Refund?"}
    ]
    # Idempotent: the same file again stores nothing new.
    again = run_import(tmp_path, "openai-chat", OPENAI_CHAT, project)
    assert again.splitlines()[0] == "created 0, duplicates 2, rejected 3, skipped 0"


BATCH_INPUT = jsonl(
    *(
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": f"Q{i}"}]},
        }
        for i in range(3)
    )
)
BATCH_OUTPUT = jsonl(
    {
        "id": "batch_req_2",
        "custom_id": "req-2",
        "response": {
            "status_code": 200,
            "request_id": "r2",
            "body": completion("chatcmpl-b2", "A2"),
        },
        "error": None,
    },
    {
        "id": "batch_req_0",
        "custom_id": "req-0",
        "response": {
            "status_code": 200,
            "request_id": "r0",
            "body": completion("chatcmpl-b0", "A0"),
        },
        "error": None,
    },
    {
        "id": "batch_req_1",
        "custom_id": "req-1",
        "response": None,
        "error": {"code": "rate_limit_exceeded", "message": "Rate limit reached"},
    },
    {
        "id": "batch_req_9",
        "custom_id": "req-9",
        "response": {"status_code": 200, "body": completion("chatcmpl-b9", "A9")},
        "error": None,
    },
)


def test_openai_batch_output_joined_with_its_input_file(tmp_path: Path, project: Project):
    requests = tmp_path / "batch_input.jsonl"
    requests.write_bytes(BATCH_INPUT)
    out = run_import(tmp_path, "openai-batch", BATCH_OUTPUT, project, "--requests", str(requests))
    assert out.splitlines()[0] == "created 2, duplicates 0, rejected 2, skipped 0"
    assert "line 3: {'response': \"the batch request 'req-1' failed: Rate limit reached\"}" in out
    assert "line 4: {'custom_id': \"no request for 'req-9'" in out
    row = Interaction.objects.get(external_id="chatcmpl-b2")
    assert (row.messages, row.response) == ([{"role": "user", "content": "Q2"}], "A2")
    assert row.metadata["custom_id"] == "req-2"
    assert row.metadata["batch_request_id"] == "batch_req_2"


def test_openai_batch_through_the_api_input_lines_first(project: Project, ingest_client: Any):
    body = gzip.compress(BATCH_INPUT + BATCH_OUTPUT)
    answer = ingest_client.post(
        reverse("labeling_api:import", kwargs={"slug": project.slug}) + "?format=openai-batch",
        data=body,
        content_type="application/x-ndjson",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert answer.status_code == 201, answer.json()
    data = answer.json()
    assert (data["created"], data["rejected"], data["skipped"]) == (2, 2, 3)
    assert data["errors"][0]["line"] == 6  # the 3 input lines come first
    assert set(Interaction.objects.values_list("response", flat=True)) == {"A0", "A2"}


LANGFUSE = jsonl(
    {
        "id": "trace-1",
        "timestamp": "2026-11-20T10:00:00.000Z",
        "name": "support-chat",
        "sessionId": "sess-1",
        "userId": "u-9",
        "release": "v42",
        "tags": ["prod"],
        "metadata": {"tier": "enterprise"},
        "input": {"question": "ignored when a generation exists"},
        "output": "ignored too",
        "scores": [
            {"name": "helpfulness", "value": 0.8, "dataType": "NUMERIC"},
            {"name": "topic", "value": 0, "stringValue": "billing", "dataType": "CATEGORICAL"},
        ],
        "observations": [
            {
                "id": "obs-span",
                "type": "SPAN",
                "name": "retrieve",
                "startTime": "2026-11-20T10:00:00Z",
            },
            {
                "id": "obs-gen",
                "type": "GENERATION",
                "traceId": "trace-1",
                "startTime": "2026-11-20T10:00:01Z",
                "model": "gpt-4o-2024-08-06",
                "input": [
                    {"role": "system", "content": "You are support."},
                    {"role": "user", "content": "Where is my invoice?"},
                ],
                "output": {"role": "assistant", "content": "Under Billing."},
                "usageDetails": {"input": 30, "output": 4},
            },
        ],
    },
    {  # a trace with no generation: its own input and output
        "id": "trace-2",
        "timestamp": "2026-11-20T11:00:00Z",
        "input": "How do I export?",
        "output": {"content": "Use the Export button."},
    },
    {  # an API page of observations
        "data": [
            {
                "id": "obs-7",
                "type": "GENERATION",
                "traceId": "trace-7",
                "startTime": "2026-11-20T12:00:00Z",
                "model": "claude-sonnet",
                "input": {"messages": [{"role": "user", "content": "Hi"}]},
                "output": "Hello!",
            },
            {"id": "obs-8", "type": "EVENT", "traceId": "trace-7"},
        ],
        "meta": {"page": 1},
    },
    {"id": "obs-9", "type": "SPAN", "traceId": "trace-7"},
    {"id": "trace-3", "timestamp": "2026-11-20T11:00:00Z", "input": "no output"},
)


def test_langfuse_export(tmp_path: Path, project: Project):
    project.segment_keys = ["tier"]
    project.save(update_fields=["segment_keys"])
    out = run_import(tmp_path, "langfuse", LANGFUSE, project)
    assert out.splitlines()[0] == "created 3, duplicates 0, rejected 1, skipped 1"
    assert "line 5: {'output': \"required: the trace's (or its generation's) output\"}" in out
    trace = Interaction.objects.get(external_id="langfuse-trace-1")
    assert trace.messages[1] == {"role": "user", "content": "Where is my invoice?"}
    assert trace.response == "Under Billing."
    assert (trace.model_version, trace.conversation_id) == ("gpt-4o-2024-08-06", "sess-1")
    assert trace.scores == {"helpfulness": 0.8, "topic": 0.0}
    assert trace.segment == {"tier": "enterprise"}
    assert trace.metadata["user_id"] == "u-9"
    assert trace.metadata["release"] == "v42"
    plain = Interaction.objects.get(external_id="langfuse-trace-2")
    assert (plain.messages, plain.response) == (
        [{"role": "user", "content": "How do I export?"}],
        "Use the Export button.",
    )
    page = Interaction.objects.get(external_id="langfuse-obs-7")
    assert (page.response, page.conversation_id, page.model_version) == (
        "Hello!",
        "trace-7",
        "claude-sonnet",
    )


def lc(kind: str, content: str) -> dict[str, Any]:
    return {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain", "schema", "messages", kind],
        "kwargs": {"content": content},
    }


LANGSMITH = jsonl(
    {
        "id": "run-1",
        "name": "ChatOpenAI",
        "run_type": "llm",
        "trace_id": "trace-a",
        "start_time": "2026-11-21T09:30:00.123456",
        "inputs": {"messages": [[lc("SystemMessage", "Be kind."), lc("HumanMessage", "Hi?")]]},
        "outputs": {
            "generations": [[{"text": "Hello there.", "message": lc("AIMessage", "Hello there.")}]]
        },
        "extra": {
            "invocation_params": {"model": "gpt-4o-mini", "temperature": 0},
            "metadata": {"thread_id": "th-1", "tier": "free", "ls_provider": "openai"},
        },
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "feedback_stats": {"correctness": {"n": 2, "avg": 0.5}},
        "tags": ["prod"],
        "error": None,
    },
    {"id": "run-2", "run_type": "chain", "inputs": {"question": "?"}, "outputs": {"answer": "!"}},
    {
        "id": "run-3",
        "run_type": "llm",
        "start_time": "2026-11-21T09:31:00Z",
        "inputs": {"messages": [{"role": "user", "content": "2+2?"}], "model": "gpt-4.1"},
        "outputs": {"choices": [{"message": {"role": "assistant", "content": "4"}}]},
        "error": None,
    },
    {
        "id": "run-4",
        "run_type": "llm",
        "inputs": {"prompts": ["x"]},
        "outputs": None,
        "error": "RateLimitError('429')",
    },
    {"id": "run-5", "name": "no type"},
)


def test_langsmith_runs_export(tmp_path: Path, project: Project):
    project.segment_keys = ["tier"]
    project.save(update_fields=["segment_keys"])
    out = run_import(tmp_path, "langsmith", gzip.compress(LANGSMITH), project)
    assert out.splitlines()[0] == "created 2, duplicates 0, rejected 2, skipped 1"
    assert "line 4: {'outputs': \"the run failed: RateLimitError('429')\"}" in out
    assert "line 5: {'run_type': 'required" in out
    run = Interaction.objects.get(external_id="langsmith-run-1")
    assert run.messages == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi?"},
    ]
    assert (run.response, run.model_version, run.conversation_id) == (
        "Hello there.",
        "gpt-4o-mini",
        "th-1",
    )
    assert run.scores == {"correctness": 0.5}
    assert run.segment == {"tier": "free"}
    assert run.metadata["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
    }
    assert run.metadata["provider"] == "openai"
    assert Interaction.objects.get(external_id="langsmith-run-3").response == "4"


def test_api_import_rules(project: Project, api_as: Any, ingest_client: Any):
    url = reverse("labeling_api:import", kwargs={"slug": project.slug})
    unknown = ingest_client.post(f"{url}?format=csv", data=b"", content_type="application/x-ndjson")
    assert unknown.status_code == 400
    assert "openai-chat" in unknown.json()["errors"]["format"]
    engineer = api_as(Role.ENGINEER)
    answer = engineer.post(
        f"{url}?format=openai-chat", data=OPENAI_CHAT, content_type="application/x-ndjson"
    )
    assert answer.status_code == 201
    body = answer.json()
    assert (body["created"], body["rejected"], body["skipped"]) == (2, 3, 0)
    assert [e["line"] for e in body["errors"]] == [3, 4, 5]
    again = engineer.post(
        f"{url}?format=openai-chat", data=OPENAI_CHAT, content_type="application/x-ndjson"
    )
    assert again.status_code == 200
    assert again.json()["duplicates"] == 2
    assert (
        api_as(Role.ANNOTATOR)
        .post(f"{url}?format=langsmith", data=b"", content_type="application/x-ndjson")
        .status_code
        == 403
    )


def test_command_errors(tmp_path: Path, project: Project):
    with pytest.raises(CommandError, match="No project"):
        call_command("import", "x.jsonl", "--project", "nope", "--format", "langfuse")
    with pytest.raises(CommandError, match="No such file"):
        call_command(
            "import",
            str(tmp_path / "missing.jsonl"),
            "--project",
            project.slug,
            "--format",
            "langfuse",
        )
