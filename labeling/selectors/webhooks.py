"""Reads of webhooks: a project's subscriptions, their delivery log and a short summary."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from labeling.errors import Invalid, NotFound
from labeling.models import Project, WebhookDelivery, WebhookSubscription


def webhook_subscriptions_list(*, project: Project) -> QuerySet[WebhookSubscription]:
    return WebhookSubscription.objects.filter(project=project).order_by("id")


def webhook_subscription_get(*, project: Project, webhook_id: int) -> WebhookSubscription:
    sub = (
        WebhookSubscription.objects.select_related("project")
        .filter(project=project, pk=webhook_id)
        .first()
    )
    if sub is None:
        raise NotFound("No such webhook.")
    return sub


def webhook_deliveries_list(
    *, subscription: WebhookSubscription, status: str | None = None
) -> QuerySet[WebhookDelivery]:
    """The delivery log, newest first; ``status`` one of pending, delivered, failed."""
    qs = WebhookDelivery.objects.filter(subscription=subscription).order_by("-id")
    if status:
        if status not in WebhookDelivery.Status.values:
            raise Invalid(
                {"status": f"unknown status {status!r}; known: {WebhookDelivery.Status.values}"}
            )
        qs = qs.filter(status=status)
    return qs


def webhook_delivery_get(*, subscription: WebhookSubscription, delivery_id: int) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.filter(subscription=subscription, pk=delivery_id).first()
    if delivery is None:
        raise NotFound("No such delivery.")
    return delivery


def webhook_summary(*, subscription: WebhookSubscription, recent: int = 100) -> dict[str, Any]:
    """Counts by status and the median latency of the ``recent`` last delivered attempts."""
    counts = dict(
        WebhookDelivery.objects.filter(subscription=subscription)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    latencies = sorted(
        v
        for v in WebhookDelivery.objects.filter(
            subscription=subscription, status=WebhookDelivery.Status.DELIVERED
        )
        .order_by("-id")
        .values_list("latency_ms", flat=True)[:recent]
        if v is not None
    )
    median = latencies[len(latencies) // 2] if latencies else None
    return {
        "pending": counts.get("pending", 0),
        "delivered": counts.get("delivered", 0),
        "failed": counts.get("failed", 0),
        "median_latency_ms": median,
    }
