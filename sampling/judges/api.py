"""API: judges of a project (docs/api.md conventions; docs/judges.md).

Reading needs ``read``, writing ``configure`` (admins). The answer never carries an API key: a
judge only names the environment variable that holds it. Validation is
``sampling.judges.config.judge_validate`` (field errors such as ``prompt_template`` or
``rpm_limit``), shared with the page and the command.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import project_access
from sampling.judges import calibration_report, tasks
from sampling.judges.config import FIELDS, judge_create, judge_update
from sampling.judges.execution import judge_retry_failed, judge_schedule, judge_test_connection
from sampling.judges.models import Judge, JudgeResult
from sampling.judges.selectors import judge_get, judge_list, judge_results, judge_status


class JudgeInputSerializer(serializers.Serializer):
    """The accepted fields (documentation; the service validates and names each problem)."""

    name = serializers.CharField(max_length=64)
    base_url = serializers.URLField()
    model = serializers.CharField()
    api_key_env = serializers.CharField(required=False, help_text="NAME of an env variable")
    prompt_template = serializers.CharField(required=False)
    template_syntax = serializers.ChoiceField(Judge.TemplateSyntax.choices, required=False)
    score_min = serializers.FloatField(required=False)
    score_max = serializers.FloatField(required=False)
    temperature = serializers.FloatField(required=False)
    max_tokens = serializers.IntegerField(required=False)
    timeout_s = serializers.FloatField(required=False)
    request_logprobs = serializers.BooleanField(required=False)
    concurrency = serializers.IntegerField(required=False)
    batch_size = serializers.IntegerField(required=False)
    max_retries = serializers.IntegerField(required=False)
    rpm_limit = serializers.IntegerField(required=False)
    tpm_limit = serializers.IntegerField(required=False)
    daily_request_budget = serializers.IntegerField(required=False)
    daily_token_budget = serializers.IntegerField(required=False)
    scope = serializers.ChoiceField(Judge.Scope.choices, required=False)
    fraction = serializers.FloatField(required=False)
    active = serializers.BooleanField(required=False)
    is_primary = serializers.BooleanField(required=False)


class JudgeOutputSerializer(serializers.ModelSerializer):
    score_key = serializers.CharField(read_only=True)
    state = serializers.SerializerMethodField()

    class Meta:
        model = Judge
        fields = (
            "id",
            *FIELDS,
            "status",
            "pause_reason",
            "is_primary",
            "weight",
            "score_key",
            "state",
            "created_at",
            "updated_at",
        )

    def get_state(self, judge: Judge) -> dict:
        return judge_status(judge=judge)


class ResultOutputSerializer(serializers.ModelSerializer):
    external_id = serializers.CharField(source="interaction.external_id")
    version = serializers.CharField(source="version.hash")

    class Meta:
        model = JudgeResult
        fields = (
            "id",
            "external_id",
            "version",
            "status",
            "score",
            "method",
            "reason",
            "raw_reply",
            "error",
            "attempts",
            "latency_ms",
            "prompt_tokens",
            "completion_tokens",
            "created_at",
            "finished_at",
        )


def _body(request: Request) -> dict:
    if not isinstance(request.data, dict):
        raise ValidationError({"non_field_errors": ["the body must be a JSON object"]})
    return dict(request.data)


def _judge(request: Request, slug: str, judge_id: int, need: str = "read") -> Judge:
    project = project_access(user=request.user, slug=slug, need=need)  # type: ignore[arg-type]
    judge = judge_get(project=project, judge_id=int(judge_id))
    if judge is None:
        raise NotFound("No such judge in this project.")
    return judge


class JudgeListCreateApi(APIView):
    @extend_schema(responses=JudgeOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(judge_list(project=project), request, view=self)
        return paginator.get_paginated_response(JudgeOutputSerializer(page, many=True).data)

    @extend_schema(request=JudgeInputSerializer, responses={201: JudgeOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        judge = judge_create(project=project, data=_body(request), user=request.user)
        return Response(JudgeOutputSerializer(judge).data, status=status.HTTP_201_CREATED)


class JudgeDetailApi(APIView):
    @extend_schema(responses=JudgeOutputSerializer)
    def get(self, request: Request, slug: str, judge_id: int) -> Response:
        return Response(JudgeOutputSerializer(_judge(request, slug, judge_id)).data)

    @extend_schema(request=JudgeInputSerializer(partial=True), responses=JudgeOutputSerializer)
    def patch(self, request: Request, slug: str, judge_id: int) -> Response:
        judge = judge_update(
            judge=_judge(request, slug, judge_id, "configure"), data=_body(request)
        )
        return Response(JudgeOutputSerializer(judge).data)


class JudgeResultsApi(APIView):
    @extend_schema(responses=ResultOutputSerializer(many=True))
    def get(self, request: Request, slug: str, judge_id: int) -> Response:
        judge = _judge(request, slug, judge_id)
        wanted = request.query_params.get("status") or None
        if wanted and wanted not in JudgeResult.Status.values:
            raise ValidationError(
                {"status": [f"must be one of {', '.join(JudgeResult.Status.values)}"]}
            )
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(judge_results(judge=judge, status=wanted), request, self)
        return paginator.get_paginated_response(ResultOutputSerializer(page, many=True).data)


class JudgeTestConnectionApi(APIView):
    """One real call to the endpoint with a sample; 200 with ``ok`` and the parsed score, or 400
    with the error under ``base_url``."""

    @extend_schema(request=None, responses={200: dict})
    def post(self, request: Request, slug: str, judge_id: int) -> Response:
        result = judge_test_connection(judge=_judge(request, slug, judge_id, "configure"))
        if not result["ok"] and "reply" not in result:
            raise ValidationError({"base_url": [result["error"]]})
        return Response(result)


class JudgeRunApi(APIView):
    """Queue interactions for the judge now: ``{"external_ids": [...]}``, ``{"pool": true}`` (the
    unconsidered pool) or ``{"retry_failed": true}``; 202 with how many were queued."""

    @extend_schema(request=dict, responses={202: dict})
    def post(self, request: Request, slug: str, judge_id: int) -> Response:
        from labeling.models import Interaction
        from sampling.judges.execution import pool_unjudged_ids

        judge = _judge(request, slug, judge_id, "configure")
        body = _body(request)
        queued = 0
        if body.get("retry_failed") is True:
            queued += judge_retry_failed(judge=judge)
        if body.get("pool") is True:
            queued += judge_schedule(
                judge=judge, interaction_ids=pool_unjudged_ids(judge=judge, limit=100_000)
            )
        external = body.get("external_ids")
        if external is not None:
            if not isinstance(external, list) or not all(isinstance(x, str) for x in external):
                raise ValidationError({"external_ids": ["must be a list of strings"]})
            ids = Interaction.objects.filter(
                project_id=judge.project_id, external_id__in=external[:100_000]
            ).values_list("id", flat=True)
            queued += judge_schedule(judge=judge, interaction_ids=list(ids))
        transaction.on_commit(partial(tasks.run_judge.delay, judge.pk), robust=True)
        return Response({"queued": queued}, status=status.HTTP_202_ACCEPTED)


class JudgeCalibrationApi(APIView):
    """The trust report of the judge's current version (or ``?version=<hash>``)."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request, slug: str, judge_id: int) -> Response:
        judge = _judge(request, slug, judge_id)
        version = request.query_params.get("version") or None
        report = calibration_report.judge_trust(judge=judge, version_hash=version)
        if report is None:
            raise NotFound("No such version of this judge.")
        return Response(report)
