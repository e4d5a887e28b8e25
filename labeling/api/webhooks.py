"""API: a project's webhook subscriptions and their delivery log (admins: capability
``configure``). The secret is in the answer of create and rotate only. docs/webhooks.md."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import acting_user, project_access
from labeling.api.projects import HumanUserOnly
from labeling.models import Project, WebhookDelivery, WebhookSubscription
from labeling.selectors.webhooks import (
    webhook_deliveries_list,
    webhook_delivery_get,
    webhook_subscription_get,
    webhook_subscriptions_list,
    webhook_summary,
)
from labeling.services.webhooks import (
    webhook_secret_rotate,
    webhook_send_test,
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_subscription_update,
)


def _project(request: Request, slug: str) -> Project:
    return project_access(user=request.user, slug=slug, need="configure")


def _subscription(request: Request, slug: str, webhook_id: int) -> WebhookSubscription:
    return webhook_subscription_get(project=_project(request, slug), webhook_id=webhook_id)


class WebhookOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    active = serializers.BooleanField()
    disabled_reason = serializers.CharField()
    disabled_at = serializers.DateTimeField()
    consecutive_failures = serializers.IntegerField()
    failing_since = serializers.DateTimeField()
    last_success_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    summary = serializers.SerializerMethodField()

    def get_summary(self, sub: WebhookSubscription) -> dict[str, Any]:
        return webhook_summary(subscription=sub)


class WebhookCreatedSerializer(WebhookOutputSerializer):
    secret = serializers.CharField()


class DeliveryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    uid = serializers.CharField()
    event = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    response_status = serializers.IntegerField()
    latency_ms = serializers.FloatField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_attempt_at = serializers.DateTimeField()
    next_attempt_at = serializers.SerializerMethodField()
    delivered_at = serializers.DateTimeField()

    def get_next_attempt_at(self, delivery: WebhookDelivery) -> str | None:
        if delivery.status != WebhookDelivery.Status.PENDING:
            return None
        return serializers.DateTimeField().to_representation(delivery.next_attempt_at)


class AttemptOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    ok = serializers.BooleanField()
    response_status = serializers.IntegerField()
    latency_ms = serializers.FloatField()
    error = serializers.CharField()


class DeliveryDetailSerializer(DeliveryOutputSerializer):
    body = serializers.JSONField(source="payload")
    attempt_log = AttemptOutputSerializer(many=True)


class WebhooksApi(APIView):
    """``GET``: the project's webhooks. ``POST``: subscribe a URL (the secret is answered once)."""

    permission_classes = [HumanUserOnly]

    class InputSerializer(serializers.Serializer):
        # Checked by the service, which names the field: a bad URL, an unknown event.
        url = serializers.JSONField()
        events = serializers.JSONField()
        description = serializers.CharField(
            required=False, default="", allow_blank=True, max_length=200
        )

    @extend_schema(responses=WebhookOutputSerializer(many=True), summary="List webhooks")
    def get(self, request: Request, slug: str) -> Response:
        project = _project(request, slug)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(
            webhook_subscriptions_list(project=project), request, view=self
        )
        return paginator.get_paginated_response(WebhookOutputSerializer(page, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: WebhookCreatedSerializer},
        summary="Subscribe a URL to events",
    )
    def post(self, request: Request, slug: str) -> Response:
        project = _project(request, slug)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sub, secret = webhook_subscription_create(
            project=project, created_by=acting_user(request.user), **serializer.validated_data
        )
        data = dict(WebhookOutputSerializer(sub).data, secret=secret)
        return Response(data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    """``GET`` one webhook; ``PATCH`` url, events, description or active; ``DELETE`` it."""

    permission_classes = [HumanUserOnly]

    class InputSerializer(serializers.Serializer):
        url = serializers.JSONField(required=False)
        events = serializers.JSONField(required=False)
        description = serializers.JSONField(required=False)
        active = serializers.JSONField(required=False)

    @extend_schema(responses=WebhookOutputSerializer, summary="Get a webhook")
    def get(self, request: Request, slug: str, webhook_id: int) -> Response:
        return Response(WebhookOutputSerializer(_subscription(request, slug, webhook_id)).data)

    @extend_schema(
        request=InputSerializer, responses=WebhookOutputSerializer, summary="Change a webhook"
    )
    def patch(self, request: Request, slug: str, webhook_id: int) -> Response:
        sub = _subscription(request, slug, webhook_id)
        data = request.data if isinstance(request.data, dict) else {}
        sub = webhook_subscription_update(
            subscription=sub, data=dict(data), actor=acting_user(request.user)
        )
        return Response(WebhookOutputSerializer(sub).data)

    @extend_schema(responses={204: None}, summary="Delete a webhook and its delivery log")
    def delete(self, request: Request, slug: str, webhook_id: int) -> Response:
        sub = _subscription(request, slug, webhook_id)
        webhook_subscription_delete(subscription=sub, actor=acting_user(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateApi(APIView):
    """``POST``: a new secret, answered once; the old one stops signing at once."""

    permission_classes = [HumanUserOnly]

    @extend_schema(request=None, responses=WebhookCreatedSerializer, summary="Rotate the secret")
    def post(self, request: Request, slug: str, webhook_id: int) -> Response:
        sub = _subscription(request, slug, webhook_id)
        secret = webhook_secret_rotate(subscription=sub, actor=acting_user(request.user))
        return Response(dict(WebhookOutputSerializer(sub).data, secret=secret))


class WebhookTestApi(APIView):
    """``POST``: send a ``webhook.test`` event now and answer the delivery with its result."""

    permission_classes = [HumanUserOnly]

    @extend_schema(request=None, responses=DeliveryDetailSerializer, summary="Send a test")
    def post(self, request: Request, slug: str, webhook_id: int) -> Response:
        sub = _subscription(request, slug, webhook_id)
        delivery = webhook_send_test(subscription=sub, actor=acting_user(request.user))
        return Response(DeliveryDetailSerializer(delivery).data)


class WebhookDeliveriesApi(APIView):
    """``GET``: the delivery log, newest first (paginated; ``?status=`` filters)."""

    permission_classes = [HumanUserOnly]

    @extend_schema(
        parameters=[OpenApiParameter("status", str, description="pending, delivered or failed")],
        responses=DeliveryOutputSerializer(many=True),
        summary="A webhook's delivery log",
    )
    def get(self, request: Request, slug: str, webhook_id: int) -> Response:
        sub = _subscription(request, slug, webhook_id)
        qs = webhook_deliveries_list(subscription=sub, status=request.query_params.get("status"))
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(DeliveryOutputSerializer(page, many=True).data)


class WebhookDeliveryApi(APIView):
    """``GET``: one delivery with the body sent and every attempt."""

    permission_classes = [HumanUserOnly]

    @extend_schema(responses=DeliveryDetailSerializer, summary="One delivery")
    def get(self, request: Request, slug: str, webhook_id: int, delivery_id: int) -> Response:
        sub = _subscription(request, slug, webhook_id)
        delivery = webhook_delivery_get(subscription=sub, delivery_id=delivery_id)
        return Response(DeliveryDetailSerializer(delivery).data)
