"""API: the caller's own submitted labels (history and undo on the labelling page).

``GET /api/projects/{slug}/my-labels/?period=today|week|all&before=<id>&id=<id>&returned=1``
lists them (``returned``: only those a reviewer sent back, with the reviewer's note),
newest submission first, each with its item (as ``queue/next`` shows it) and whether it may still
be edited; the edit itself is ``POST /api/annotations/{id}/edit`` (a new version, history kept).
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import project_access
from labeling.api.queue import InteractionOutputSerializer, interaction_payload
from labeling.models import Annotation
from labeling.schema import schema_for_display
from labeling.selectors.history import PERIODS, my_labels


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


urlpatterns = [
    path("projects/<slug:slug>/my-labels/", MyLabelsApi.as_view(), name="api-my-labels"),
]
