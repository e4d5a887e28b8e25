"""API: import other tools' logs (``POST /api/projects/{slug}/import?format=...``).

The body is JSONL (optionally ``Content-Encoding: gzip``), streamed like the bulk ingestion
endpoint; the answer is the bulk endpoint's plus ``skipped`` (docs/importers.md).
"""

from __future__ import annotations

from types import SimpleNamespace

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import project_access
from labeling.api.ingest import (
    IngestRateThrottle,
    IngestResultSerializer,
    bad_body_response,
    body_chunks,
    is_gzip,
    too_large_response,
)
from labeling.limits import current_limits
from labeling.services.importers import FORMATS, import_format, records_import
from labeling.services.ingest import BadBody, BodyTooLarge


class _FormatIsNotARenderer(DefaultContentNegotiation):
    """Here ``?format=`` names the import format, not DRF's renderer override."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)  # type: ignore[assignment]


class ImportApi(APIView):
    """Import OpenAI chat logs, OpenAI Batch output, a Langfuse or a LangSmith export."""

    content_negotiation_class = _FormatIsNotARenderer

    throttle_classes = [IngestRateThrottle]
    throttle_scope = "ingest"

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=sorted(FORMATS), required=True),
        ],
        request={"application/x-ndjson": OpenApiTypes.BINARY},
        responses={201: IngestResultSerializer, 200: IngestResultSerializer},
        summary="Import OpenAI, Langfuse or LangSmith logs (JSONL, streamed)",
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="ingest")
        fmt = request.query_params.get("format", "")
        import_format(fmt)  # an unknown format is a 400 before the body is read
        limits = current_limits()
        try:
            result = records_import(
                project=project,
                fmt=fmt,
                chunks=body_chunks(request, limits=limits),
                gzipped=is_gzip(request),
                limits=limits,
            )
        except BodyTooLarge as exc:
            return too_large_response(exc)
        except BadBody as exc:
            return bad_body_response(exc)
        return Response(result.as_dict(), status=201 if result.ingest.created else 200)
