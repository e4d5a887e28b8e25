"""API: sampling strategies (list, create, read, update, preview) — docs/api.md.

Reading needs the ``read`` capability, writing ``configure`` (admins). Validation lives in
``sampling.services.strategies.strategy_validate``, shared with the configuration pages; its errors
come back as ``{"detail": ..., "errors": {"weights.random": [...]}}``.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import acting_user, project_access
from sampling.models import SamplingStrategy
from sampling.selectors.strategies import strategy_get, strategy_list, strategy_preview
from sampling.services.strategies import strategy_create, strategy_update


class StrategyInputSerializer(serializers.Serializer):
    """The accepted fields (documentation; the service validates and names each problem)."""

    name = serializers.CharField(max_length=100)
    mode = serializers.ChoiceField(choices=SamplingStrategy.Mode.choices, required=False)
    weights = serializers.DictField(child=serializers.FloatField(), required=False)
    uncertainty_measure = serializers.CharField(required=False)
    batch_size = serializers.IntegerField(required=False)
    filters = serializers.JSONField(required=False)
    segment_minimums = serializers.DictField(child=serializers.IntegerField(), required=False)
    overlap_fraction = serializers.FloatField(required=False)
    overlap_k = serializers.IntegerField(required=False)
    holdout_fraction = serializers.FloatField(required=False)
    schedule = serializers.CharField(required=False, allow_null=True)
    active = serializers.BooleanField(required=False)


class StrategyOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = SamplingStrategy
        fields = (
            "id",
            "name",
            "mode",
            "weights",
            "uncertainty_measure",
            "batch_size",
            "filters",
            "segment_minimums",
            "overlap_fraction",
            "overlap_k",
            "holdout_fraction",
            "schedule",
            "active",
            "created_at",
            "updated_at",
        )


def _body(request: Request) -> dict:
    if not isinstance(request.data, dict):
        raise ValidationError({"non_field_errors": ["the body must be a JSON object"]})
    return dict(request.data)


class StrategyListCreateApi(APIView):
    @extend_schema(responses=StrategyOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(strategy_list(project=project), request, view=self)
        return paginator.get_paginated_response(StrategyOutputSerializer(page, many=True).data)

    @extend_schema(request=StrategyInputSerializer, responses={201: StrategyOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        strategy = strategy_create(
            project=project, data=_body(request), user=acting_user(request.user)
        )
        return Response(StrategyOutputSerializer(strategy).data, status=status.HTTP_201_CREATED)


class StrategyDetailApi(APIView):
    @extend_schema(responses=StrategyOutputSerializer)
    def get(self, request: Request, slug: str, strategy_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        strategy = strategy_get(project=project, strategy_id=int(strategy_id))
        if strategy is None:
            raise NotFound("No such strategy in this project.")
        return Response(StrategyOutputSerializer(strategy).data)

    @extend_schema(
        request=StrategyInputSerializer(partial=True), responses=StrategyOutputSerializer
    )
    def patch(self, request: Request, slug: str, strategy_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        strategy = strategy_get(project=project, strategy_id=int(strategy_id))
        if strategy is None:
            raise NotFound("No such strategy in this project.")
        strategy = strategy_update(strategy=strategy, data=_body(request))
        return Response(StrategyOutputSerializer(strategy).data)


class StrategyPreviewApi(APIView):
    """What a run of the posted (unsaved) strategy would do on the current pool; writes nothing."""

    @extend_schema(request=StrategyInputSerializer, responses={200: dict})
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        return Response(strategy_preview(strategy_data=_body(request), project=project))
