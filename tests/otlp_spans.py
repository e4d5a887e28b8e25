"""Real OpenTelemetry spans for the OTLP tests and bench: made with the official
``opentelemetry-sdk`` in every form the receiver maps, plus an OTLP/JSON encoder (the Python SDK
only exports protobuf; the JSON is the same request in the OTLP/JSON mapping: hex ids,
lowerCamelCase keys)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

RESOURCE = {"service.name": "helpdesk-api", "deployment.environment": "prod"}


def provider(*exporters: SpanExporter) -> TracerProvider:
    tracer_provider = TracerProvider(resource=Resource.create(RESOURCE))
    for exporter in exporters:
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider


def make_spans(
    tracer_provider: TracerProvider, *, tag: str = "", with_uncaptured: bool = True
) -> None:
    """One span per convention, two non-LLM spans and (optionally) an LLM span whose content
    was not captured."""
    tracer = tracer_provider.get_tracer("tests.otlp")
    with tracer.start_as_current_span("handle request") as root:  # an HTTP span: ignored
        root.set_attribute("http.request.method", "POST")
        # Current GenAI conventions: JSON messages of typed parts.
        with tracer.start_as_current_span("chat gpt-4.1") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4.1",
                    "gen_ai.response.model": "gpt-4.1-2025-04-14",
                    "gen_ai.conversation.id": f"conv-{tag}1",
                    "gen_ai.usage.input_tokens": 31,
                    "gen_ai.usage.output_tokens": 12,
                    "gen_ai.response.finish_reasons": ["stop"],
                    "app.tier": "pro",
                    "flywheel.score.judge": 0.9,
                    "gen_ai.system_instructions": json.dumps(
                        [{"type": "text", "content": "Be brief."}]
                    ),
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": f"Reset {tag}?"}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [{"type": "text", "content": "Settings, Security."}],
                                "finish_reason": "stop",
                            }
                        ]
                    ),
                }
            )
        # GenAI conventions 1.28-1.36: messages as span events.
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                }
            )
            span.add_event("gen_ai.system.message", {"content": "You help with billing."})
            span.add_event("gen_ai.user.message", {"content": f"Refund {tag}?"})
            span.add_event(
                "gen_ai.choice",
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": json.dumps({"role": "assistant", "content": "Within 14 days."}),
                },
            )
        # Older: indexed prompt/completion attributes (OpenLLMetry), no operation name.
        with tracer.start_as_current_span("openai.chat") as span:
            span.set_attributes(
                {
                    "gen_ai.system": "OpenAI",
                    "gen_ai.request.model": "gpt-3.5-turbo",
                    "gen_ai.prompt.0.role": "system",
                    "gen_ai.prompt.0.content": "Short answers.",
                    "gen_ai.prompt.1.role": "user",
                    "gen_ai.prompt.1.content": f"Invoice {tag}?",
                    "gen_ai.completion.0.role": "assistant",
                    "gen_ai.completion.0.content": "Under Billing.",
                    "tier": "free",
                }
            )
        # OpenInference.
        with tracer.start_as_current_span("ChatCompletion") as span:
            span.set_attributes(
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "claude-sonnet",
                    "llm.provider": "anthropic",
                    "session.id": f"sess-{tag}",
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.contents.0.message_content.type": "text",
                    "llm.input_messages.0.message.contents.0.message_content.text": f"Ship {tag}?",
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": "Tomorrow.",
                    "llm.token_count.prompt": 8,
                    "llm.token_count.completion": 2,
                }
            )
        with tracer.start_as_current_span("embeddings text-embedding-3") as span:  # ignored
            span.set_attributes({"gen_ai.operation.name": "embeddings", "gen_ai.system": "openai"})
        if with_uncaptured:
            with tracer.start_as_current_span("chat gpt-4.1") as span:  # content not captured
                span.set_attributes(
                    {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1"}
                )


def recorded(tag: str = "", *, with_uncaptured: bool = True) -> Sequence[ReadableSpan]:
    memory = InMemorySpanExporter()
    tracer_provider = provider(memory)
    make_spans(tracer_provider, tag=tag, with_uncaptured=with_uncaptured)
    tracer_provider.shutdown()
    return memory.get_finished_spans()


def protobuf_body(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


def json_body(spans: Sequence[ReadableSpan]) -> bytes:
    """The OTLP/JSON encoding: protobuf's JSON mapping with trace and span ids as hex."""
    data = json_format.MessageToDict(encode_spans(spans))

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("traceId", "spanId", "parentSpanId"):
                if isinstance(node.get(key), str) and node[key]:
                    node[key] = base64.b64decode(node[key]).hex()
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(data)
    return json.dumps(data).encode()
