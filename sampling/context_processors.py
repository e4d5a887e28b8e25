"""Template context for every page: the open alerts a member may read.

``project_alerts``: the open alerts of the project the page belongs to (a banner on every project
page, so the project home and the dashboard both show a confirmed regression);
``alert_counts``: slug -> open alerts of each project the user may read (the project list).
Annotators do not read estimates, so they see neither. Two small queries per page.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count
from django.http import HttpRequest

from labeling.access import has_capability
from labeling.models import Membership, Project, Role
from sampling.models import Alert


def alerts(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if not isinstance(user, User) or not user.is_authenticated:
        return {}
    readable: list[int]
    if user.is_superuser:
        readable = list(Project.objects.values_list("pk", flat=True))
    else:
        readable = [
            pid
            for pid, role in Membership.objects.filter(user=user).values_list("project_id", "role")
            if has_capability(role=role or Role.ANNOTATOR, need="read")
        ]
    counts = dict(
        Alert.objects.filter(project_id__in=readable, resolved_at__isnull=True)
        .values_list("project__slug")
        .annotate(n=Count("id"))
        .order_by()
    )
    context: dict[str, Any] = {"alert_counts": counts, "project_alerts": []}
    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("slug") if match is not None else None
    if slug and counts.get(slug):
        context["project_alerts"] = list(
            Alert.objects.filter(project__slug=slug, resolved_at__isnull=True)
            .select_related("rule")
            .order_by("-created_at", "-id")[:5]
        )
    return context
