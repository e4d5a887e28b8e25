"""API: alert rules (list, create, update), alerts (list) and evaluating the rules now.

Reading needs ``read`` (reviewer, engineer, admin); changing rules and evaluating them needs
``configure`` (admins). Rules and alerts are described in docs/estimates.md, "Alerts".
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
from sampling.models import Alert, AlertRule
from sampling.selectors.alerts import alert_rule_get, alert_rules, alerts_list
from sampling.services.alerts import alert_rule_create, alert_rule_update, alerts_evaluate


class AlertRuleInputSerializer(serializers.Serializer):
    """The accepted fields (documentation; the service validates and names each problem)."""

    name = serializers.CharField(max_length=100)
    model_versions = serializers.ListField(child=serializers.CharField(), required=False)
    baseline = serializers.CharField(required=False, allow_blank=True)
    segment_key = serializers.CharField(required=False, allow_blank=True)
    segment_values = serializers.ListField(child=serializers.CharField(), required=False)
    min_effect = serializers.FloatField(required=False)
    alpha = serializers.FloatField(required=False)
    emails = serializers.ListField(child=serializers.CharField(), required=False)
    active = serializers.BooleanField(required=False)


class AlertRuleOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertRule
        fields = (
            "id", "name", "model_versions", "baseline", "segment_key", "segment_values",
            "min_effect", "alpha", "emails", "active", "created_at", "updated_at",
        )  # fmt: skip


class AlertOutputSerializer(serializers.ModelSerializer):
    rule = serializers.CharField(source="rule.name")

    class Meta:
        model = Alert
        fields = (
            "id", "rule", "model_version", "baseline", "segment", "difference", "cs_low",
            "cs_high", "confirmed_on", "sentence", "created_at", "emailed_to",
            "webhook_deliveries", "resolved_at",
        )  # fmt: skip


def _body(request: Request) -> dict:
    if not isinstance(request.data, dict):
        raise ValidationError({"non_field_errors": ["the body must be a JSON object"]})
    return dict(request.data)


class AlertRuleListCreateApi(APIView):
    @extend_schema(responses=AlertRuleOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(alert_rules(project=project), request, view=self)
        return paginator.get_paginated_response(AlertRuleOutputSerializer(page, many=True).data)

    @extend_schema(request=AlertRuleInputSerializer, responses={201: AlertRuleOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        rule = alert_rule_create(
            project=project, data=_body(request), created_by=acting_user(request.user)
        )
        return Response(AlertRuleOutputSerializer(rule).data, status=status.HTTP_201_CREATED)


class AlertRuleDetailApi(APIView):
    @extend_schema(
        request=AlertRuleInputSerializer(partial=True), responses=AlertRuleOutputSerializer
    )
    def patch(self, request: Request, slug: str, rule_id: int) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        rule = alert_rule_get(project=project, rule_id=int(rule_id))
        if rule is None:
            raise NotFound("No such alert rule in this project.")
        rule = alert_rule_update(rule=rule, data=_body(request))
        return Response(AlertRuleOutputSerializer(rule).data)


class AlertRuleEvaluateApi(APIView):
    """Run the project's rules now (the periodic task does it every hour); returns new alerts."""

    @extend_schema(request=None, responses={200: AlertOutputSerializer(many=True)})
    def post(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="configure")
        opened = alerts_evaluate(project=project)
        return Response({"opened": AlertOutputSerializer(opened, many=True).data})


class AlertListApi(APIView):
    """``GET /api/projects/{slug}/alerts/?open=1``: newest first."""

    @extend_schema(responses=AlertOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = project_access(user=request.user, slug=slug, need="read")
        open_only = request.query_params.get("open") in ("1", "true", "yes")
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(
            alerts_list(project=project, open_only=open_only), request, view=self
        )
        return paginator.get_paginated_response(AlertOutputSerializer(page, many=True).data)
