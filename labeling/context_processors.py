"""Template context shared by every page: the user's projects and whether Celery runs eagerly."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from labeling.access import visible_projects


def flywheel(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    return {
        "celery_eager": settings.CELERY_TASK_ALWAYS_EAGER,
        "nav_projects": visible_projects(user=user) if user is not None else [],
    }
