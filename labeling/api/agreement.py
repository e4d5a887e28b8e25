"""API: inter-annotator agreement per question, the items annotators disagree on, and a
reviewer's adjudication of a disputed item."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import acting_user, project_access
from labeling.api.errors import invalid_values
from labeling.api.params import url_id
from labeling.errors import Invalid
from labeling.selectors.agreement import disagreement_items, disagreements, project_agreement
from labeling.selectors.queue import queue_item_in
from labeling.services.annotations import annotation_adjudicate


class QuestionAgreementSerializer(serializers.Serializer):
    key = serializers.CharField()
    type = serializers.CharField()
    alpha = serializers.FloatField(allow_null=True)
    kappa = serializers.FloatField(allow_null=True)
    f1 = serializers.FloatField(allow_null=True, required=False)
    items = serializers.IntegerField()


class DisagreementOutputSerializer(serializers.Serializer):
    queue_item_id = serializers.IntegerField()
    external_id = serializers.CharField()
    questions = serializers.ListField(child=serializers.CharField())
    adjudicated = serializers.BooleanField()


class AgreementApi(APIView):
    """Per question: Krippendorff's alpha, mean pairwise Cohen's kappa, items with overlap."""

    @extend_schema(
        responses={
            200: inline_serializer(
                name="Agreement", fields={"questions": QuestionAgreementSerializer(many=True)}
            )
        }
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        return Response(project_agreement(project=project))


class DisagreementListApi(APIView):
    """Items whose annotators disagree (paginated); ``?all=1`` includes adjudicated ones."""

    @extend_schema(responses={200: DisagreementOutputSerializer(many=True)})
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        rows = disagreements(
            project=project, include_adjudicated=request.query_params.get("all") == "1"
        )
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(rows, request, view=self) or []
        items = disagreement_items(page)
        for row in page:
            row["external_id"] = items[row["queue_item_id"]].interaction.external_id
        return paginator.get_paginated_response(page)


class AdjudicateApi(APIView):
    """A reviewer records the answer for a disputed item (only the questions given): 201."""

    @extend_schema_serializer(component_name="AdjudicateInput")
    class InputSerializer(serializers.Serializer):
        values = serializers.JSONField()
        note = serializers.CharField(required=False, allow_blank=True, max_length=1000)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: inline_serializer(
                name="Adjudication",
                fields={
                    "id": serializers.IntegerField(),
                    "values": serializers.JSONField(),
                    "version": serializers.IntegerField(),
                },
            )
        },
    )
    def post(self, request: Request, slug: str, item_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="review")
        item = queue_item_in(project, url_id(item_id))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            annotation = annotation_adjudicate(
                queue_item=item,
                reviewer=acting_user(request.user),
                values=data.validated_data["values"],
                note=data.validated_data.get("note", ""),
            )
        except Invalid as exc:
            raise invalid_values(exc) from exc
        return Response(
            {"id": annotation.pk, "values": annotation.values, "version": annotation.version},
            status=status.HTTP_201_CREATED,
        )
