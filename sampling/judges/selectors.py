"""Judge reads: lists scoped to a project, counts by status, today's usage."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from labeling.models import Project
from sampling.judges.config import judge_version_current
from sampling.judges.execution import budget_left, usage_today
from sampling.judges.models import Judge, JudgeResult


def judge_list(*, project: Project) -> QuerySet[Judge]:
    return Judge.objects.filter(project=project).order_by("name")


def judge_get(*, project: Project, judge_id: int) -> Judge | None:
    return Judge.objects.filter(project=project, pk=judge_id).select_related("project").first()


def judge_status(*, judge: Judge) -> dict[str, Any]:
    """Counts by status for the current version and overall, today's usage and budget left."""
    version = judge_version_current(judge=judge)
    by_status = dict(
        JudgeResult.objects.filter(version=version)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    requests, tokens = usage_today(judge=judge)
    requests_left, tokens_left = budget_left(judge=judge)
    return {
        "version": version.hash,
        "versions": judge.versions.count(),
        "counts": {s: int(by_status.get(s, 0)) for s in JudgeResult.Status.values},
        "today": {"requests": requests, "tokens": tokens},
        "budget_left": {"requests": requests_left, "tokens": tokens_left},
    }


def judge_results(*, judge: Judge, status: str | None = None) -> QuerySet[JudgeResult]:
    qs = JudgeResult.objects.filter(judge=judge).select_related("interaction", "version")
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-id")
