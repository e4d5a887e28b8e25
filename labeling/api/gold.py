"""API: gold items — list them with their answers, make an item gold, stop treating it as gold."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import acting_user, project_access
from labeling.api.params import url_id
from labeling.errors import Invalid
from labeling.selectors.gold import gold_items, gold_row
from labeling.selectors.queue import queue_item_in
from labeling.services.gold import gold_clear, gold_set


class GoldOutputSerializer(serializers.Serializer):
    queue_item_id = serializers.IntegerField()
    external_id = serializers.CharField()
    gold_answer = serializers.JSONField()
    overlap = serializers.IntegerField()
    done_count = serializers.IntegerField()
    status = serializers.CharField()


class GoldListApi(APIView):
    """Gold items of a project with their answers (paginated)."""

    @extend_schema(responses={200: GoldOutputSerializer(many=True)})
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(gold_items(project=project), request, view=self) or []
        return paginator.get_paginated_response([gold_row(i) for i in page])


class GoldApi(APIView):
    """POST: make an item gold with its expected answer (and optional overlap); DELETE: clear."""

    @extend_schema_serializer(component_name="GoldInput")
    class InputSerializer(serializers.Serializer):
        answer = serializers.JSONField()
        overlap = serializers.IntegerField(required=False, min_value=1, max_value=1000)

    @extend_schema(request=InputSerializer, responses={200: GoldOutputSerializer})
    def post(self, request: Request, slug: str, item_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        item = queue_item_in(project, url_id(item_id))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            item = gold_set(
                queue_item=item,
                actor=acting_user(request.user),
                answer=data.validated_data["answer"],
                overlap=data.validated_data.get("overlap"),
            )
        except Invalid as exc:
            raise ValidationError(
                {"detail": "The gold answer is invalid.", "answer": exc.errors}
            ) from exc
        return Response(gold_row(item))  # gold_set loads the item's interaction

    @extend_schema(
        responses={
            200: inline_serializer(
                name="GoldCleared",
                fields={
                    "queue_item_id": serializers.IntegerField(),
                    "is_gold": serializers.BooleanField(),
                },
            )
        }
    )
    def delete(self, request: Request, slug: str, item_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        item = gold_clear(
            queue_item=queue_item_in(project, url_id(item_id)), actor=acting_user(request.user)
        )
        return Response({"queue_item_id": item.pk, "is_gold": item.is_gold})
