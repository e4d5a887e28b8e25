"""API: label history — the caller's own submitted labels (history and undo on the labelling
page), every version of an item's annotations, and an annotator's edit of their label.

``GET /api/projects/{slug}/my-labels/?period=today|week|all&before=<id>&id=<id>&returned=1``
lists them (``returned``: only those a reviewer sent back, with the reviewer's note),
newest submission first, each with its item (as ``queue/next`` shows it) and whether it may still
be edited; the edit itself is ``POST /api/annotations/{id}/edit`` (a new version, history kept).
``GET /api/projects/{slug}/items/{id}/annotations`` lists every version of an item's annotations
(annotators see only their own).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import acting_user, project_access
from labeling.api.errors import invalid_values
from labeling.api.params import url_id
from labeling.api.queue import InteractionOutputSerializer
from labeling.errors import Invalid
from labeling.models import Annotation
from labeling.schema import schema_for_display
from labeling.selectors.assignments import interaction_payload
from labeling.selectors.history import PERIODS, annotation_history_for, my_labels, own_annotation
from labeling.selectors.queue import queue_item_in
from labeling.services.annotations import annotation_edit


def label_row(annotation: Any, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "annotation_id": annotation.pk,
        "queue_item_id": annotation.queue_item_id,
        "version": annotation.version,
        "values": annotation.values,
        "submitted_at": annotation.assignment.finished_at if annotation.assignment else None,
        "changed_at": annotation.created_at,
        "adjudicated": annotation.adjudicated,
        "editable": not annotation.adjudicated,
        "review": {
            "status": annotation.review_status or None,
            "note": annotation.review_note,
            "reviewer": annotation.reviewed_by.get_username() if annotation.reviewed_by else None,
            "reviewed_at": annotation.reviewed_at,
        },
        "interaction": interaction_payload(annotation.interaction),
        "schema": schema,
    }


class MyLabelsApi(APIView):
    """The caller's current labels in a project, newest submission first (paginated)."""

    class OutputSerializer(serializers.Serializer):
        annotation_id = serializers.IntegerField()
        queue_item_id = serializers.IntegerField()
        version = serializers.IntegerField()
        values = serializers.DictField()
        submitted_at = serializers.DateTimeField(allow_null=True)
        changed_at = serializers.DateTimeField()
        adjudicated = serializers.BooleanField()
        editable = serializers.BooleanField()
        review = serializers.DictField()
        interaction = InteractionOutputSerializer()
        schema = serializers.DictField()

    @extend_schema(
        parameters=[
            OpenApiParameter("period", str, enum=list(PERIODS)),
            OpenApiParameter("before", int, description="an annotation id: labels before it"),
            OpenApiParameter("id", int, description="an annotation id: just that label"),
            OpenApiParameter(
                "returned", bool, description="only labels a reviewer sent back (oldest first)"
            ),
        ],
        responses={200: OutputSerializer(many=True)},
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="label")
        period = request.query_params.get("period", "all")
        if period not in PERIODS:
            raise ValidationError({"period": f"must be one of {', '.join(PERIODS)}"})
        ids: dict[str, int | None] = {}
        for name in ("before", "id"):
            raw = request.query_params.get(name)
            if raw is not None and not (raw.isdigit() and int(raw) < 2**63):
                raise ValidationError({name: "must be an annotation id"})
            ids[name] = int(raw) if raw is not None else None
        labels = my_labels(
            project=project,
            user=request.user,
            period=period,  # type: ignore[arg-type]
            before=ids["before"],
            only=ids["id"],
            returned=request.query_params.get("returned") in ("1", "true"),
        )
        paginator = LimitOffsetPagination()
        page: list[Annotation] = paginator.paginate_queryset(labels, request, view=self) or []
        schema = schema_for_display(project.label_schema)
        rows = [label_row(a, schema) for a in page]
        return paginator.get_paginated_response(self.OutputSerializer(rows, many=True).data)


class AnnotationOutputSerializer(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username")
    supersedes = serializers.IntegerField(source="supersedes_id", allow_null=True)

    class Meta:
        model = Annotation
        fields = [
            "id",
            "annotator",
            "kind",
            "values",
            "version",
            "is_current",
            "supersedes",
            "schema_version",
            "time_spent_ms",
            "saw_suggestion",
            "review_status",
            "review_note",
            "created_at",
        ]


class AnnotationHistoryApi(APIView):
    """Every version of an item's annotations; annotators see only their own."""

    @extend_schema(responses={200: AnnotationOutputSerializer(many=True)})
    def get(self, request: Request, slug: str, item_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="label")
        item = queue_item_in(project, url_id(item_id))
        qs = annotation_history_for(project=project, queue_item=item, user=request.user)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(qs, request, view=self) or []
        return paginator.get_paginated_response(AnnotationOutputSerializer(page, many=True).data)


class AnnotationEditApi(APIView):
    """The author edits their current label: 201 with the new version (history is kept)."""

    @extend_schema_serializer(component_name="AnnotationEditInput")
    class InputSerializer(serializers.Serializer):
        values = serializers.JSONField()
        time_spent_ms = serializers.IntegerField(required=False, allow_null=True, min_value=0)

    @extend_schema(request=InputSerializer, responses={201: AnnotationOutputSerializer})
    def post(self, request: Request, annotation_id: int) -> Response:
        own_annotation(user=request.user, annotation_id=url_id(annotation_id))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            new = annotation_edit(
                annotation_id=url_id(annotation_id),
                actor=acting_user(request.user),
                values=data.validated_data["values"],
                time_spent_ms=data.validated_data.get("time_spent_ms"),
            )
        except Invalid as exc:
            raise invalid_values(exc) from exc
        return Response(AnnotationOutputSerializer(new).data, status=status.HTTP_201_CREATED)
