"""The OTLP/HTTP traces receiver: real spans from the official OpenTelemetry SDK and its
protobuf exporter against the live server, the same spans as OTLP/JSON, partial success, the
per-project segment mapping, and a corpus of malformed bodies (400/415 with a clear message,
nothing stored)."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import pytest
from django.urls import reverse
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

from labeling.auth import generate_key, hash_key
from labeling.models import IngestToken, Interaction, Project, Role
from tests.otlp_spans import json_body, make_spans, protobuf_body, provider, recorded

LLM_SPANS = 4  # one per convention in tests/otlp_spans.py (plus one without content)


@pytest.fixture
def key(project: Project) -> str:
    raw = generate_key()
    IngestToken.objects.create(
        project=project, name="otel", prefix=raw[:12], key_hash=hash_key(raw)
    )
    project.segment_keys = ["tier"]
    project.otlp_segment_attributes = {"app.tier": "tier", "deployment.environment": "env"}
    project.save(update_fields=["segment_keys", "otlp_segment_attributes"])
    return raw


def _check_interactions(project: Project) -> None:
    rows = {row.model_version: row for row in Interaction.objects.filter(project=project)}
    assert set(rows) == {"gpt-4.1-2025-04-14", "gpt-4o-mini", "gpt-3.5-turbo", "claude-sonnet"}

    current = rows["gpt-4.1-2025-04-14"]
    assert current.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Reset ?"},
    ]
    assert current.response == "Settings, Security."
    assert current.conversation_id == "conv-1"
    assert current.segment == {"tier": "pro", "env": "prod"}
    assert current.scores == {"judge": 0.9}
    meta = current.metadata
    assert meta["usage"] == {"input_tokens": 31, "output_tokens": 12}
    assert (meta["provider"], meta["service"], meta["source"]) == ("openai", "helpdesk-api", "otlp")
    assert meta["finish_reasons"] == ["stop"]
    assert current.external_id == f"otel-{meta['trace_id']}-{meta['span_id']}"

    events = rows["gpt-4o-mini"]
    assert events.messages == [
        {"role": "system", "content": "You help with billing."},
        {"role": "user", "content": "Refund ?"},
    ]
    assert events.response == "Within 14 days."
    assert events.conversation_id == meta["trace_id"]  # no conversation id: the trace

    older = rows["gpt-3.5-turbo"]
    assert older.messages == [
        {"role": "system", "content": "Short answers."},
        {"role": "user", "content": "Invoice ?"},
    ]
    assert older.response == "Under Billing."
    assert older.segment == {"tier": "free", "env": "prod"}  # a segment key named directly

    openinference = rows["claude-sonnet"]
    assert openinference.messages == [{"role": "user", "content": "Ship ?"}]
    assert openinference.response == "Tomorrow."
    assert openinference.conversation_id == "sess-"
    assert openinference.metadata["usage"] == {"input_tokens": 8, "output_tokens": 2}


@pytest.mark.django_db(transaction=True)
def test_the_official_exporter_sends_protobuf_to_the_live_server(
    live_server: Any, key: str, project: Project
):
    exporter = OTLPSpanExporter(
        endpoint=live_server.url + reverse("otlp:traces"),
        headers={"Authorization": f"Bearer {key}"},
        compression=Compression.Gzip,
    )
    tracer_provider = provider(exporter)
    make_spans(tracer_provider, with_uncaptured=False)
    tracer_provider.shutdown()
    _check_interactions(project)
    # The same spans exported again: stored once (the span ids are the external ids).
    again = OTLPSpanExporter(
        endpoint=live_server.url + reverse("otlp:traces"),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert again.export(recorded()) == SpanExportResult.SUCCESS
    assert Interaction.objects.filter(project=project).count() == LLM_SPANS * 2  # new ids


@pytest.mark.django_db(transaction=True)
def test_protobuf_and_json_answer_partial_success(live_server: Any, key: str, project: Project):
    spans = recorded()
    auth = {"Authorization": f"Bearer {key}"}
    answer = httpx.post(
        live_server.url + reverse("otlp:traces"),
        content=gzip.compress(protobuf_body(spans)),
        headers={**auth, "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/x-protobuf"
    decoded = ExportTraceServiceResponse.FromString(answer.content)
    assert decoded.partial_success.rejected_spans == 1
    assert "content capture" in decoded.partial_success.error_message
    assert answer.headers["X-Flywheel-Spans"] == (
        "spans=7 created=4 duplicates=0 rejected=1 ignored=2"
    )
    _check_interactions(project)

    # The same request as OTLP/JSON: every span is a duplicate now.
    as_json = httpx.post(
        live_server.url + reverse("otlp:traces"),
        content=json_body(spans),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert as_json.status_code == 200
    body = as_json.json()
    assert body["partialSuccess"]["rejectedSpans"] == "1"
    assert as_json.headers["X-Flywheel-Spans"] == (
        "spans=7 created=0 duplicates=4 rejected=1 ignored=2"
    )
    # New spans as JSON are stored like protobuf ones.
    fresh = httpx.post(
        live_server.url + reverse("otlp:traces"),
        content=json_body(recorded("b", with_uncaptured=False)),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert fresh.json() == {}  # fully accepted: no partial_success
    assert Interaction.objects.filter(project=project, response="Tomorrow.").count() == 2
    assert Interaction.objects.filter(conversation_id="sess-b").count() == 1


# --- malformed bodies: a clear message, nothing stored ------------------------------------------


def _post(client: Any, body: bytes, content_type: str, **headers: str) -> Any:
    return client.post(reverse("otlp:traces"), data=body, content_type=content_type, **headers)


@pytest.fixture
def otlp(key: str) -> Any:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _huge_attribute_body() -> bytes:
    data = json.loads(json_body(recorded(with_uncaptured=False)))
    spans = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[2]["attributes"].append({"key": "big", "value": {"stringValue": "x" * 250_000}})
    return json.dumps(data).encode()


MALFORMED = [
    (
        "truncated protobuf",
        "application/x-protobuf",
        lambda: protobuf_body(recorded())[:-7],
        400,
        "not a valid protobuf",
    ),
    (
        "json body sent as protobuf",
        "application/x-protobuf",
        lambda: json_body(recorded()),
        400,
        "not a valid protobuf",
    ),
    ("not JSON", "application/json", lambda: b"{resourceSpans: [", 400, "not valid JSON"),
    ("JSON array", "application/json", lambda: b"[]", 400, "must be a JSON object"),
    (
        "bad trace id",
        "application/json",
        lambda: json_body(recorded()).replace(b'"traceId": "', b'"traceId": "zz', 1),
        400,
        "traceId must be 16 bytes",
    ),
    (
        "int64 not a number",
        "application/json",
        lambda: json.dumps(
            {
                "resourceSpans": [
                    {
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "traceId": "0" * 32,
                                        "spanId": "1" * 16,
                                        "startTimeUnixNano": "soon",
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        ).encode(),
        400,
        "is not an integer",
    ),
    (
        "attributes not a list",
        "application/json",
        lambda: json.dumps(
            {
                "resourceSpans": [
                    {
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "traceId": "0" * 32,
                                        "spanId": "1" * 16,
                                        "attributes": {"a": 1},
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        ).encode(),
        400,
        "attributes must be a list",
    ),
    (
        "huge attribute",
        "application/json",
        _huge_attribute_body,
        400,
        "'big' is 250,000 characters long, over the limit of 200,000",
    ),
    (
        "wrong content type",
        "text/plain",
        lambda: protobuf_body(recorded()),
        415,
        "application/x-protobuf or application/json",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "content_type", "make", "status", "message"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_bodies_are_refused_whole(
    otlp: Any,
    project: Project,
    name: str,
    content_type: str,
    make: Any,
    status: int,
    message: str,
):
    answer = _post(otlp, make(), content_type)
    assert answer.status_code == status, answer.content
    if content_type == "application/json":
        assert message in answer.json()["message"]
        assert answer.json()["code"] == 3
    else:  # a protobuf google.rpc.Status: code 3 (INVALID_ARGUMENT), then the message
        assert answer.content.startswith(b"\x08\x03\x12")
        assert message.encode() in answer.content
    assert not Interaction.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_bad_gzip_and_who_may_send(otlp: Any, project: Project, api_as: Any):
    bad_gzip = _post(otlp, b"\x1f\x8bnot gzip", "application/json", HTTP_CONTENT_ENCODING="gzip")
    assert bad_gzip.status_code == 400
    assert "invalid gzip body" in bad_gzip.json()["message"]

    from rest_framework.test import APIClient

    anonymous = _post(APIClient(), json_body(recorded()), "application/json")
    assert anonymous.status_code == 401
    engineer = _post(api_as(Role.ENGINEER), json_body(recorded()), "application/json")
    assert engineer.status_code == 403
    assert "ingestion token" in engineer.json()["detail"]
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_segment_mapping_is_a_project_setting(project: Project, api_as: Any):
    admin = api_as(Role.ADMIN)
    url = reverse("labeling_api:project", kwargs={"slug": project.slug})
    ok = admin.patch(url, {"otlp_segment_attributes": {"user.plan": "tier"}}, format="json")
    assert ok.status_code == 200, ok.json()
    assert ok.json()["otlp_segment_attributes"] == {"user.plan": "tier"}
    bad = admin.patch(url, {"otlp_segment_attributes": {"user.plan": 3}}, format="json")
    assert bad.status_code == 400
    assert "otlp_segment_attributes" in bad.json()["errors"]
