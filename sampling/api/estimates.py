"""API: unbiased estimates with confidence intervals, and the bias, power and regression reports.

All need the ``read`` capability. Common query parameters: ``method`` (``ppi_pp`` default, ``ppi``,
``hajek``, ``ht``), ``level`` (0.95), and filters ``model_version`` (repeatable), ``segment.<key>``
(repeatable), ``since``/``until`` (ISO 8601), ``run`` (repeatable id).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import project_access
from sampling import estimators
from sampling.judges.selectors import judges_power
from sampling.selectors.estimates import EstimateQueryError, estimates_compute
from sampling.selectors.monitoring import monitoring_report
from sampling.selectors.reports import bias_report, power_report, regression_report

COMMON_PARAMETERS = [
    OpenApiParameter("method", str, description="ppi_pp (default), ppi, hajek or ht"),
    OpenApiParameter("level", float, description="confidence level, default 0.95"),
    OpenApiParameter("model_version", str, many=True, description="filter (repeatable)"),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="occurred_at >= since"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="occurred_at < until"),
    OpenApiParameter("run", int, many=True, description="only these sampling runs"),
]


class CommonInput(serializers.Serializer):
    method = serializers.CharField(required=False, default=estimators.DEFAULT_METHOD)
    level = serializers.FloatField(required=False, default=0.95, min_value=0.5, max_value=0.999)

    def validate_method(self, value: str) -> str:
        try:
            return estimators.method_normalise(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


def parse_query(request: Request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """Validated parameters plus ``filters`` in the strategy-filter format."""
    data = {
        k: request.query_params.get(k) for k in request.query_params if not k.startswith("segment.")
    }
    data = {k: v for k, v in data.items() if k not in ("model_version", "run")}
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    params = dict(serializer.validated_data)
    filters: dict[str, Any] = {}
    versions = request.query_params.getlist("model_version")
    if versions:
        filters["model_versions"] = versions
    segment = {
        k[len("segment.") :]: request.query_params.getlist(k)
        for k in request.query_params
        if k.startswith("segment.") and len(k) > len("segment.")
    }
    if segment:
        filters["segment"] = segment
    for key in ("since", "until"):
        if request.query_params.get(key):
            filters[key] = request.query_params[key]
    runs = request.query_params.getlist("run")
    if runs:
        bad = [r for r in runs if not (r.isascii() and r.isdigit() and len(r) <= 18)]
        if bad:
            raise ValidationError({"run": f"not a run id: {', '.join(bad)}"})
        filters["runs"] = [int(r) for r in runs]
    params["filters"] = filters
    return params


def _raise(exc: EstimateQueryError) -> None:
    raise ValidationError({"detail": "Invalid estimate query.", **exc.errors}) from None


class EstimatesApi(APIView):
    """``GET /api/projects/{slug}/estimates/?by=...&method=...&level=0.95``."""

    class InputSerializer(CommonInput):
        by = serializers.CharField(required=False, allow_blank=True, default="")

    class GroupSerializer(serializers.Serializer):
        group = serializers.CharField()
        group_values = serializers.DictField()
        estimate = serializers.FloatField(allow_null=True)
        ci_low = serializers.FloatField(allow_null=True)
        ci_high = serializers.FloatField(allow_null=True)
        se = serializers.FloatField(allow_null=True)
        method = serializers.CharField()
        lam = serializers.FloatField(allow_null=True)
        n_labels = serializers.IntegerField()
        population = serializers.IntegerField()
        ess = serializers.FloatField(allow_null=True)
        kish_ess = serializers.FloatField(allow_null=True)
        selected = serializers.IntegerField()
        nonresponse = serializers.IntegerField()
        excluded = serializers.IntegerField()
        excluded_labels = serializers.IntegerField()
        runs = serializers.ListField(child=serializers.IntegerField())
        runs_without_labels = serializers.ListField(child=serializers.IntegerField())
        population_without_labels = serializers.IntegerField()
        coverage_note = serializers.CharField(allow_null=True)
        response = serializers.DictField()
        note = serializers.CharField(allow_null=True)
        warning = serializers.CharField(allow_null=True)
        interval = serializers.CharField()
        enough_labels = serializers.BooleanField()
        status = serializers.CharField()
        display = serializers.CharField(allow_null=True)
        provisional = serializers.DictField(allow_null=True)
        rating = serializers.DictField(required=False)

    class OutputSerializer(serializers.Serializer):
        target = serializers.DictField()
        method = serializers.CharField()
        level = serializers.FloatField()
        by = serializers.ListField(child=serializers.CharField())
        filters = serializers.DictField()
        coverage = serializers.DictField()
        groups = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "by",
                str,
                description="all, model_version, segment.<key>, week, run, or a "
                "comma-separated crossing such as model_version,segment.tier",
            ),
            *COMMON_PARAMETERS,
        ],
        responses=OutputSerializer,
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        params = parse_query(request, self.InputSerializer)
        try:
            data = estimates_compute(
                project=project,
                by=params["by"],
                method=params["method"],
                level=params["level"],
                filters=params["filters"],
            )
        except EstimateQueryError as exc:
            _raise(exc)
        data["groups"] = [self.GroupSerializer(g).data for g in data["groups"]]
        return Response(self.OutputSerializer(data).data)


class BiasReportApi(APIView):
    """``GET /api/projects/{slug}/reports/bias/``: explicit feedback against unbiased rates."""

    class InputSerializer(CommonInput):
        pass

    @extend_schema(parameters=COMMON_PARAMETERS, responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        params = parse_query(request, self.InputSerializer)
        try:
            data = bias_report(
                project=project,
                filters=params["filters"],
                method=params["method"],
                level=params["level"],
            )
        except EstimateQueryError as exc:
            _raise(exc)
        return Response(data)


class PowerReportApi(APIView):
    """``GET /api/projects/{slug}/reports/power/?delta=0.05``: labels and days to see a change."""

    class InputSerializer(CommonInput):
        delta = serializers.FloatField(required=False, default=0.05, min_value=0.001, max_value=0.5)
        alpha = serializers.FloatField(required=False, default=0.05, min_value=0.001, max_value=0.5)
        power = serializers.FloatField(required=False, default=0.8, min_value=0.5, max_value=0.999)

    @extend_schema(
        parameters=[
            OpenApiParameter("delta", float, description="change to detect, default 0.05"),
            OpenApiParameter("alpha", float, description="test level, default 0.05"),
            OpenApiParameter("power", float, description="power, default 0.8"),
            *COMMON_PARAMETERS,
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        params = parse_query(request, self.InputSerializer)
        try:
            data = power_report(
                project=project,
                delta=params["delta"],
                alpha=params["alpha"],
                power=params["power"],
                filters=params["filters"],
                method=params["method"],
            )
        except EstimateQueryError as exc:
            _raise(exc)
        # What each LLM judge would save (issue 13): from its latest trust report.
        data["judges"] = judges_power(project=project)
        return Response(data)


class RegressionReportApi(APIView):
    """``GET /api/projects/{slug}/reports/regression/?baseline=<model version>``."""

    class InputSerializer(CommonInput):
        baseline = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(
        parameters=[
            OpenApiParameter("baseline", str, description="baseline model version"),
            *COMMON_PARAMETERS,
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        params = parse_query(request, self.InputSerializer)
        try:
            data = regression_report(
                project=project,
                baseline=params["baseline"] or None,
                filters=params["filters"],
                method=params["method"],
                level=params["level"],
            )
        except EstimateQueryError as exc:
            _raise(exc)
        return Response(data)


class MonitoringApi(APIView):
    """``GET /api/projects/{slug}/monitoring/?baseline=<version>&segment=<key>``: always-valid
    confidence sequences per model version (and segment) and sequential comparisons with the
    baseline, valid however often anyone looks (docs/estimates.md, "Monitoring")."""

    class InputSerializer(CommonInput):
        baseline = serializers.CharField(required=False, allow_blank=True, default="")
        segment = serializers.CharField(required=False, allow_blank=True, default="")
        alpha = serializers.FloatField(required=False, default=0.05, min_value=0.001, max_value=0.2)
        min_effect = serializers.FloatField(
            required=False, default=0.0, min_value=0.0, max_value=0.5
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("baseline", str, description="baseline model version"),
            OpenApiParameter("segment", str, description="segment key to monitor per value"),
            OpenApiParameter("alpha", float, description="error rate over all looks, 0.05"),
            OpenApiParameter(
                "min_effect", float, description="flag only changes beyond this (share), 0"
            ),
            *COMMON_PARAMETERS,
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        params = parse_query(request, self.InputSerializer)
        try:
            data = monitoring_report(
                project=project,
                baseline=params["baseline"] or None,
                segment=params["segment"] or None,
                filters=params["filters"],
                alpha=params["alpha"],
                min_effect=params["min_effect"],
            )
        except EstimateQueryError as exc:
            _raise(exc)
        return Response(data)
