"""Sampling run reads for the API and pages."""

from __future__ import annotations

from django.db.models import QuerySet

from labeling.models import Project
from sampling.models import SamplingRun


def run_list(*, project: Project) -> QuerySet[SamplingRun]:
    return (
        SamplingRun.objects.filter(project=project)
        .select_related("proxy_model", "strategy")
        .order_by("-created_at", "-id")
    )


def run_get(*, project: Project, run_id: int) -> SamplingRun | None:
    return run_list(project=project).filter(pk=run_id).first()
