"""API: training and eval exports — create (202, written by a Celery task), follow, download.

Every lookup goes through ``labeling.access`` with the ``export`` capability: outsiders get 404,
annotators and reviewers 403.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.http import FileResponse, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import acting_user, project_access
from labeling.models import Export
from labeling.selectors.exports import export_get, export_list
from labeling.services.exports import export_create, export_retry


class ExportNotReady(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The export is not finished."
    default_code = "export_not_ready"


class ExportOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    kind = serializers.CharField()
    status = serializers.CharField()
    progress = serializers.FloatField()
    rows = serializers.IntegerField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    schema_version = serializers.IntegerField()
    filters = serializers.JSONField()
    options = serializers.SerializerMethodField()
    manifest = serializers.JSONField()
    error = serializers.CharField()
    created_by = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    download_url = serializers.SerializerMethodField()
    parquet_url = serializers.SerializerMethodField()

    def get_options(self, export: Export) -> dict[str, Any]:
        return {k: v for k, v in export.options.items() if k != "snapshot"}

    def get_created_by(self, export: Export) -> str | None:
        return export.created_by.get_username() if export.created_by else None

    def get_download_url(self, export: Export) -> str | None:
        if export.status != Export.Status.DONE:
            return None
        return _download_url(export)

    def get_parquet_url(self, export: Export) -> str | None:
        if export.status != Export.Status.DONE or not export.manifest.get("parquet"):
            return None
        return _download_url(export) + "?file=parquet"


def _download_url(export: Export) -> str:
    """The slash-less alias: the form clients have always been given (and manifests store)."""
    return reverse("labeling_api:export-download-noslash", kwargs={"export_id": export.id})


class ProjectExportsApi(APIView):
    """``POST``: create an export (202 ``{"id", "status"}``). ``GET``: the project's exports."""

    class InputSerializer(serializers.Serializer):
        kind = serializers.CharField()
        filters = serializers.JSONField(required=False, default=dict)
        options = serializers.JSONField(required=False, default=dict)

    class CreatedSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={202: CreatedSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="export")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        export = export_create(
            project=project,
            kind=data.validated_data["kind"],
            filters=data.validated_data["filters"],
            options=data.validated_data["options"],
            created_by=acting_user(request.user),
        )
        return Response(
            self.CreatedSerializer({"id": export.id, "status": export.status}).data,
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(responses={200: ExportOutputSerializer(many=True)})
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="export")
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(export_list(project=project), request, view=self)
        return paginator.get_paginated_response(ExportOutputSerializer(page, many=True).data)


class ExportDetailApi(APIView):
    """``GET``: status, progress, rows, bytes, sha256 and the manifest of one export."""

    @extend_schema(responses={200: ExportOutputSerializer})
    def get(self, request: Request, export_id: int) -> Response:
        export = export_get(user=request.user, export_id=export_id)
        return Response(ExportOutputSerializer(export).data)


class ExportRetryApi(APIView):
    """``POST``: put a failed export (or one whose worker died) back in the queue; same snapshot,
    so the file will be the one the first attempt would have written. 202 ``{"id", "status"}``."""

    @extend_schema(request=None, responses={202: ProjectExportsApi.CreatedSerializer})
    def post(self, request: Request, export_id: int) -> Response:
        export = export_get(user=request.user, export_id=export_id)
        export = export_retry(export=export)
        return Response({"id": export.id, "status": export.status}, status=202)


def _gzip_stream(path: Path, chunk: int = 1 << 16) -> Iterator[bytes]:
    """Compress a file on the fly (deterministic header: no name, mtime 0)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: gzip container
    with open(path, "rb") as f:
        while block := f.read(chunk):
            out = compressor.compress(block)
            if out:
                yield out
    yield compressor.flush()


def _range_start(request: Request, *, size: int) -> int | None:
    """Where a resumed download starts: ``Range: bytes=N-`` gives N (0 without the header or for
    a form this server does not serve, which then answers the whole file); None when N is past
    the end (416)."""
    match = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", "").strip())
    if match is None:
        return 0
    start = int(match.group(1))
    return start if start < size or start == 0 else None


class ExportDownloadApi(APIView):
    """``GET``: the JSONL file, streamed. ``?gzip=1`` compresses an uncompressed export on the
    fly; an export written with ``options.gzip`` is always served compressed. The stored file's
    sha256 is in the ``X-Export-SHA256`` header. A stored file is served from an offset with
    ``Range: bytes=N-`` (206 and ``Content-Range``), so an interrupted download resumes.
    ``?file=parquet``: the Parquet file of the same rows (its sha256 is
    ``manifest.parquet.sha256``)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("gzip", bool, description="gzip the stream"),
            OpenApiParameter("file", str, description="jsonl (default) or parquet"),
        ],
        responses={(200, "application/x-ndjson"): bytes},
    )
    def get(self, request: Request, export_id: int) -> Any:
        export = export_get(user=request.user, export_id=export_id)
        if export.status != Export.Status.DONE:
            raise ExportNotReady(f"The export is {export.status}; download it once it is done.")
        path = Path(export.file_path)
        # Not ``format``: DRF reads that one for its own content negotiation.
        which = request.query_params.get("file", "jsonl").lower()
        if which not in ("jsonl", "parquet"):
            raise ValidationError({"file": 'must be "jsonl" or "parquet"'})
        if which == "parquet":
            return _parquet_response(export, path)
        if not path.is_file():
            raise NotFound("The export file is gone from the server; create the export again.")
        stored_gzip = export.manifest.get("compression") == "gzip"
        want_gzip = request.query_params.get("gzip", "").lower() in ("1", "true", "yes")
        name = path.name
        response: Any
        if want_gzip and not stored_gzip:
            response = StreamingHttpResponse(_gzip_stream(path), content_type="application/gzip")
            name = f"{name}.gz"
        else:
            content_type = "application/gzip" if stored_gzip else "application/x-ndjson"
            handle = open(path, "rb")  # noqa: SIM115 - FileResponse closes it
            start = _range_start(request, size=path.stat().st_size)
            if start is None:
                handle.close()
                response = Response(
                    {
                        "detail": "The requested range starts beyond the end of the file.",
                        "errors": {"range": request.headers.get("Range", "")},
                    },
                    status=status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE,
                )
                response["Content-Range"] = f"bytes */{path.stat().st_size}"
                return response
            handle.seek(start)
            response = FileResponse(handle, content_type=content_type)
            response["Accept-Ranges"] = "bytes"
            if start:
                size = path.stat().st_size
                response.status_code = status.HTTP_206_PARTIAL_CONTENT
                response["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["X-Export-SHA256"] = export.sha256
        return response


def _parquet_response(export: Export, data_path: Path) -> Any:
    parquet = export.manifest.get("parquet") or {}
    path = data_path.with_name(parquet["file"]) if parquet.get("file") else None
    if path is None or not path.is_file():
        raise NotFound("This export has no Parquet file; create the export again.")
    response = FileResponse(
        open(path, "rb"),  # noqa: SIM115
        content_type="application/vnd.apache.parquet",
    )
    response["Content-Disposition"] = f'attachment; filename="{path.name}"'
    response["X-Export-SHA256"] = parquet.get("sha256", "")
    return response
