"""API: sampling runs — start one (async, 202), list them, follow one (docs/api.md).

Starting a run needs ``configure``; reading needs ``read``. The run executes in a Celery task
after commit; ``GET .../sampling-runs/{id}/`` shows its status, sizes, proxy model and timings.
"""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import dispatch
from labeling.access import acting_user, project_access
from sampling.models import SamplingRun
from sampling.selectors.runs import run_get, run_list
from sampling.selectors.strategies import strategy_get
from sampling.services.runs import sampling_run_create


class RunOutputSerializer(serializers.ModelSerializer):
    proxy_model = serializers.SerializerMethodField()
    min_pi = serializers.SerializerMethodField()

    class Meta:
        model = SamplingRun
        fields = (
            "id",
            "status",
            "strategy",
            "deterministic",
            "pool_size",
            "expected_size",
            "selected_count",
            "holdout_count",
            "proxy_model",
            "min_pi",
            "seed",
            "timings",
            "strategy_snapshot",
            "created_at",
            "started_at",
            "finished_at",
            "error",
        )

    def get_proxy_model(self, run: SamplingRun) -> int | None:
        """The proxy model version whose stored scores the run used (null: the prior)."""
        return run.proxy_model.version if run.proxy_model is not None else None

    def get_min_pi(self, run: SamplingRun) -> float | None:
        return (run.timings or {}).get("min_pi")


class RunListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        strategy = serializers.IntegerField()

        class Meta:
            ref_name = "SamplingRunCreateInput"

    class CreatedSerializer(serializers.ModelSerializer):
        class Meta:
            model = SamplingRun
            fields = ("id", "status")
            ref_name = "SamplingRunCreated"

    @extend_schema(responses=RunOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(run_list(project=project), request, view=self)
        return paginator.get_paginated_response(RunOutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={202: CreatedSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        strategy = strategy_get(project=project, strategy_id=data.validated_data["strategy"])
        if strategy is None:
            raise ValidationError({"strategy": ["no such strategy in this project"]})
        with transaction.atomic():
            run = sampling_run_create(
                project=project, strategy=strategy, user=acting_user(request.user)
            )
            dispatch.enqueue_on_commit("sampling.execute_run", run.pk)
        return Response(self.CreatedSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailApi(APIView):
    @extend_schema(responses=RunOutputSerializer)
    def get(self, request: Request, slug: str, run_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        run = run_get(project=project, run_id=int(run_id))
        if run is None:
            raise NotFound("No such sampling run in this project.")
        return Response(RunOutputSerializer(run).data)
