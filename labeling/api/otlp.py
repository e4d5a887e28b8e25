"""OTLP/HTTP traces receiver: ``POST /v1/traces`` (protobuf or JSON, optionally gzip).

Point any OpenTelemetry exporter at Flywheel with a project ingestion token::

    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://flywheel.example.com/v1/traces
    OTEL_EXPORTER_OTLP_TRACES_HEADERS="Authorization=Bearer fwi_..."

Answers follow the OTLP/HTTP specification: 200 with an ``ExportTraceServiceResponse`` in the
request's encoding (``partial_success`` names the LLM spans that were rejected and why); 400 for a
body that cannot be decoded and 415 for another content type, each with a ``google.rpc.Status``
whose message says what is wrong (nothing of such a request is stored). The counts, including the
ignored non-LLM spans, are in the ``X-Flywheel-Spans`` header.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from rest_framework.request import Request
from rest_framework.views import APIView

from labeling.access import IngestClient, project_access
from labeling.api.ingest import IngestRateThrottle, body_chunks, is_gzip
from labeling.errors import Forbidden
from labeling.limits import current_limits
from labeling.services.ingest import BadBody, BodyTooLarge, decompressed_chunks
from labeling.services.otlp import (
    JSON,
    PROTOBUF,
    OtlpBadRequest,
    OtlpUnsupportedMedia,
    traces_ingest,
)

log = logging.getLogger(__name__)

INVALID_ARGUMENT = 3  # google.rpc.Code
RESOURCE_EXHAUSTED = 8


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def status_body(code: int, message: str, *, as_json: bool) -> tuple[bytes, str]:
    """A ``google.rpc.Status`` (code, message) in the request's encoding. JSON answers also carry
    the API's usual ``detail`` / ``errors`` keys."""
    if as_json:
        import orjson

        data = {"code": code, "message": message, "detail": message, "errors": {"body": message}}
        return orjson.dumps(data), JSON
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text, PROTOBUF


class OtlpTracesApi(APIView):
    """``POST``: an OTLP ``ExportTraceServiceRequest``; LLM-call spans become interactions."""

    throttle_classes = [IngestRateThrottle]
    throttle_scope = "ingest"

    @extend_schema(
        request={PROTOBUF: OpenApiTypes.BINARY, JSON: OpenApiTypes.OBJECT},
        responses={(200, PROTOBUF): OpenApiTypes.BINARY, (200, JSON): OpenApiTypes.OBJECT},
        summary="OTLP/HTTP traces: GenAI and OpenInference LLM spans become interactions",
    )
    def post(self, request: Request) -> HttpResponse:
        user = request.user
        if not isinstance(user, IngestClient):
            raise Forbidden("Send traces with a project ingestion token (Bearer fwi_...).")
        project = project_access(user=user, slug=user.token.project.slug, need="ingest")
        content_type = request.META.get("CONTENT_TYPE", "")
        as_json = content_type.split(";")[0].strip().lower() == JSON
        limits = current_limits()
        try:
            chunks: Any = body_chunks(request, limits=limits)
            if is_gzip(request):
                chunks = decompressed_chunks(chunks, limits=limits)
            body = b"".join(chunks)
            result = traces_ingest(
                project=project, body=body, content_type=content_type, limits=limits
            )
        except OtlpUnsupportedMedia as exc:
            return self._error(415, INVALID_ARGUMENT, str(exc), as_json=as_json)
        except BodyTooLarge as exc:
            message = f"{exc} Export smaller batches (e.g. a lower OTEL_BSP_MAX_EXPORT_BATCH_SIZE)."
            return self._error(413, RESOURCE_EXHAUSTED, message, as_json=as_json)
        except (OtlpBadRequest, BadBody) as exc:
            return self._error(400, INVALID_ARGUMENT, str(exc), as_json=as_json)
        answer = ExportTraceServiceResponse()
        if result.rejected:
            answer.partial_success.rejected_spans = result.rejected
            answer.partial_success.error_message = result.message()
        if as_json:
            data = json_format.MessageToJson(answer, indent=None).encode()
        else:
            data = answer.SerializeToString()
        response = HttpResponse(data, content_type=JSON if as_json else PROTOBUF)
        response["X-Flywheel-Spans"] = result.header()
        log.info("OTLP traces for %s: %s", project.slug, result.header())
        return response

    def _error(self, status: int, code: int, message: str, *, as_json: bool) -> HttpResponse:
        data, content_type = status_body(code, message, as_json=as_json)
        return HttpResponse(data, status=status, content_type=content_type)
