"""API: ingestion (interactions one by one, as an array, as streamed JSONL; events) and the
filtered interaction list.

Bodies are read by these views themselves, never through ``request.data``: the bulk endpoint reads
the WSGI input in chunks and decompresses incrementally, so memory stays flat and a size limit is
enforced as soon as it is crossed (413), also on the decompressed size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from labeling.access import IngestClient, project_access
from labeling.api.errors import PayloadTooLarge
from labeling.errors import Forbidden
from labeling.limits import Limits, current_limits
from labeling.selectors.interactions import interactions_list
from labeling.services.events import events_ingest
from labeling.services.ingest import (
    BadBody,
    BodyTooLarge,
    IngestResult,
    decompressed_chunks,
    event_types_for,
    interactions_ingest_jsonl,
    interactions_ingest_objects,
)

READ_CHUNK = 256 * 1024


class IngestTokenScheme(OpenApiAuthenticationExtension):
    """Documents ``Authorization: Ingest fwi_...`` in the OpenAPI schema."""

    target_class = "labeling.auth.IngestTokenAuthentication"
    name = "IngestToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A project ingestion token: `Ingest fwi_...` (can only ingest).",
        }


class IngestRateThrottle(ScopedRateThrottle):
    """The ``ingest`` rate per ingestion token (per user for people; per IP for the rest)."""

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        if isinstance(user, IngestClient):
            return self.cache_format % {"scope": self.scope, "ident": f"token-{user.token.pk}"}
        return super().get_cache_key(request, view)


def body_chunks(
    request: Request, *, limits: Limits, chunk_size: int = READ_CHUNK
) -> Iterator[bytes]:
    """The raw request body in chunks; BodyTooLarge as soon as the body passes the limit."""
    http = request._request
    declared = int(http.META.get("CONTENT_LENGTH") or 0)
    if declared > limits.max_request_bytes:
        raise BodyTooLarge("Request body", limits.max_request_bytes)
    # Chunked uploads (no Content-Length) are read from the server's terminated input stream.
    stream: Any = http
    if not declared and http.META.get("wsgi.input_terminated"):
        stream = http.META["wsgi.input"]
    total = 0
    while True:
        data = stream.read(chunk_size)
        if not data:
            return
        total += len(data)
        if total > limits.max_request_bytes:
            raise BodyTooLarge("Request body", limits.max_request_bytes)
        yield data


def is_gzip(request: Request) -> bool:
    encoding = request._request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding in ("", "identity"):
        return False
    if encoding in ("gzip", "x-gzip"):
        return True
    raise BadBody(f"unsupported Content-Encoding {encoding!r} (use gzip or none)")


def read_json_body(request: Request, *, limits: Limits) -> Any:
    """The whole (size-limited) body decoded as JSON; gzip allowed."""
    chunks: Any = body_chunks(request, limits=limits)
    if is_gzip(request):
        chunks = decompressed_chunks(chunks, limits=limits)
    body = b"".join(chunks)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBody(f"malformed JSON body: {exc}") from exc


def too_large_response(exc: BodyTooLarge) -> Response:
    result: IngestResult | None = getattr(exc, "result", None)
    data: dict[str, Any] = {
        "detail": f"{exc} Split the data into smaller requests.",
        "errors": {"body": str(exc)},
    }
    if result is not None:
        # Rows before the limit were stored; retrying them is harmless (idempotent on external_id).
        data["result"] = result.as_dict()
    return Response(data, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


def bad_body_response(exc: BadBody) -> Response:
    result: IngestResult | None = getattr(exc, "result", None)
    data: dict[str, Any] = {"detail": str(exc), "errors": {"body": str(exc)}}
    if result is not None:
        data["result"] = result.as_dict()
    return Response(data, status=status.HTTP_400_BAD_REQUEST)


def result_response(result: IngestResult) -> Response:
    code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
    return Response(result.as_dict(), status=code)


class IngestResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField())  # type: ignore[assignment]


class InteractionInSerializer(serializers.Serializer):
    """Documentation of one ingested interaction (validation is done by plain functions)."""

    external_id = serializers.CharField(max_length=200)
    conversation_id = serializers.CharField(required=False)
    occurred_at = serializers.DateTimeField()
    model_version = serializers.CharField(required=False)
    messages = serializers.ListField(child=serializers.DictField())
    response = serializers.CharField()
    alt_response = serializers.CharField(required=False)
    alt_model_version = serializers.CharField(required=False)
    segment = serializers.DictField(required=False)
    metadata = serializers.DictField(required=False)
    scores = serializers.DictField(child=serializers.FloatField(), required=False)
    events = serializers.ListField(child=serializers.DictField(), required=False)


class InteractionCursorPagination(CursorPagination):
    ordering = ("-occurred_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


class InteractionsApi(APIView):
    """``POST``: ingest one interaction or a JSON array. ``GET``: the filtered list (cursor)."""

    throttle_scope = "ingest"

    def get_throttles(self) -> list[Any]:
        return [IngestRateThrottle()] if self.request.method == "POST" else []

    class FilterSerializer(serializers.Serializer):
        model_version = serializers.CharField(required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        has_label = serializers.BooleanField(required=False, allow_null=True, default=None)
        has_feedback = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema_serializer(component_name="Interaction")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        external_id = serializers.CharField()
        conversation_id = serializers.CharField()
        occurred_at = serializers.DateTimeField()
        model_version = serializers.CharField()
        messages = serializers.JSONField()
        response = serializers.CharField()
        alt_response = serializers.CharField()
        alt_model_version = serializers.CharField()
        segment = serializers.JSONField()
        metadata = serializers.JSONField()
        scores = serializers.JSONField()
        signals = serializers.JSONField()
        explicit_rating = serializers.IntegerField(allow_null=True)
        proxy_score = serializers.FloatField(allow_null=True)
        processed_at = serializers.DateTimeField(allow_null=True)
        created_at = serializers.DateTimeField()

    @extend_schema(
        request=InteractionInSerializer(many=True),
        responses={201: IngestResultSerializer, 200: IngestResultSerializer},
        summary="Ingest one interaction or a JSON array of them",
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="ingest")
        limits = current_limits()
        try:
            body = read_json_body(request, limits=limits)
            objects = body if isinstance(body, list) else [body]
            if len(objects) > limits.max_rows_per_request:
                raise PayloadTooLarge(
                    f"More than {limits.max_rows_per_request:,} interactions in one request."
                )
            result = interactions_ingest_objects(project=project, objects=objects, limits=limits)
        except BodyTooLarge as exc:
            return too_large_response(exc)
        except BadBody as exc:
            return bad_body_response(exc)
        return result_response(result)

    @extend_schema(
        parameters=[
            FilterSerializer,
            OpenApiParameter(
                "segment.<key>",
                OpenApiTypes.STR,
                description="Filter on a segment value, e.g. segment.tier=pro",
            ),
        ],
        responses=OutputSerializer(many=True),
        summary="List interactions (filtered, cursor-paginated)",
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        segment = {
            key.removeprefix("segment."): str(value)
            for key, value in request.query_params.items()
            if key.startswith("segment.") and re.fullmatch(r"segment\.[\w-]{1,100}", key)
        }
        versions = [v for v in request.query_params.getlist("model_version") if v]
        qs = interactions_list(
            project=project,
            model_versions=[p for v in versions for p in v.split(",") if p],
            segment=segment,
            since=data.get("since"),
            until=data.get("until"),
            has_label=data.get("has_label"),
            has_feedback=data.get("has_feedback"),
        )
        paginator = InteractionCursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class InteractionsBulkApi(APIView):
    """Ingest a JSONL body (``application/x-ndjson``, optionally ``Content-Encoding: gzip``),
    streamed: rejects are reported by 1-based line number."""

    throttle_classes = [IngestRateThrottle]
    throttle_scope = "ingest"

    @extend_schema(
        request={"application/x-ndjson": OpenApiTypes.BINARY},
        responses={201: IngestResultSerializer, 200: IngestResultSerializer},
        summary="Ingest interactions from a JSONL stream",
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="ingest")
        limits = current_limits()
        try:
            result = interactions_ingest_jsonl(
                project=project,
                chunks=body_chunks(request, limits=limits),
                gzipped=is_gzip(request),
                limits=limits,
            )
        except BodyTooLarge as exc:
            return too_large_response(exc)
        except BadBody as exc:
            return bad_body_response(exc)
        return result_response(result)


class EventsApi(APIView):
    """Ingest events keyed by the interaction's ``external_id`` (a list, or one object)."""

    throttle_classes = [IngestRateThrottle]
    throttle_scope = "ingest"

    @extend_schema_serializer(component_name="EventIn")
    class EventInSerializer(serializers.Serializer):
        external_id = serializers.CharField()
        type = serializers.CharField()
        name = serializers.CharField(required=False)
        value = serializers.FloatField(required=False)
        at = serializers.DateTimeField(required=False)
        event_id = serializers.CharField(required=False)

    @extend_schema_serializer(component_name="EventsResult")
    class OutputSerializer(serializers.Serializer):
        created = serializers.IntegerField()
        duplicates = serializers.IntegerField()
        rejected = serializers.IntegerField()
        attached = serializers.IntegerField()
        pending = serializers.IntegerField()
        errors = serializers.ListField(child=serializers.DictField())  # type: ignore[assignment]

    @extend_schema(
        request=EventInSerializer(many=True),
        responses={201: OutputSerializer, 200: OutputSerializer},
        summary="Ingest events (late signals) for interactions",
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="ingest")
        limits = current_limits()
        try:
            body = read_json_body(request, limits=limits)
        except BodyTooLarge as exc:
            return too_large_response(exc)
        except BadBody as exc:
            return bad_body_response(exc)
        if isinstance(body, dict) and isinstance(body.get("events"), list):
            body = body["events"]
        objects = body if isinstance(body, list) else [body]
        if len(objects) > limits.max_rows_per_request:
            raise PayloadTooLarge(
                f"More than {limits.max_rows_per_request:,} events in one request."
            )
        result = events_ingest(
            project=project, objects=objects, event_types=event_types_for(project)
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(result.as_dict(), status=code)


class IngestWhoamiApi(APIView):
    """``GET``: the project of the calling ingestion token, so an SDK configured with only a URL
    and a key knows where to send (a person's token gets 403: it has no single project)."""

    @extend_schema_serializer(component_name="IngestWhoami")
    class OutputSerializer(serializers.Serializer):
        project = serializers.CharField()
        token = serializers.CharField()

    @extend_schema(responses=OutputSerializer, summary="The project of an ingestion token")
    def get(self, request: Request) -> Response:
        user = request.user
        if not isinstance(user, IngestClient):
            raise Forbidden(
                "Only an ingestion token (Authorization: Ingest fwi_...) has one project."
            )
        data = {"project": user.token.project.slug, "token": user.token.prefix}
        return Response(self.OutputSerializer(data).data)
