"""Reads of alerts and alert rules (the dashboard banner, the project home, the API)."""

from __future__ import annotations

from django.db.models import QuerySet

from labeling.models import Project
from sampling.models import Alert, AlertRule


def alert_rules(*, project: Project) -> QuerySet[AlertRule]:
    return AlertRule.objects.filter(project=project).order_by("id")


def alert_rule_get(*, project: Project, rule_id: int) -> AlertRule | None:
    return AlertRule.objects.filter(project=project, pk=rule_id).first()


def alerts_list(*, project: Project, open_only: bool = False) -> QuerySet[Alert]:
    qs = Alert.objects.filter(project=project).select_related("rule").order_by("-created_at", "-id")
    return qs.filter(resolved_at__isnull=True) if open_only else qs


def open_alerts(*, project: Project, limit: int = 10) -> list[Alert]:
    """The open alerts of a project, newest first (the dashboard and project pages show them)."""
    return list(alerts_list(project=project, open_only=True)[:limit])
