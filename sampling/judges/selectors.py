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


def _pct(value: float | None) -> str:
    return "\u2013" if value is None else f"{100 * value:.1f}%"


def _judge_panel_row(judge: Judge) -> dict[str, Any]:
    """One judge on the dashboard, from its latest stored trust report (judges.calibrate)."""
    version = judge_version_current(judge=judge)
    report: dict[str, Any] = version.calibration or {}
    row: dict[str, Any] = {
        "judge": judge,
        "version": version.hash[:12],
        "calibrated_at": version.calibrated_at,
        "report": report,
        "warnings": [],
    }
    warnings: list[str] = row["warnings"]
    if judge.status != Judge.Status.ACTIVE:
        warnings.append(f"paused: {judge.pause_reason or 'by an admin'}")
    if not report:
        return row
    if report.get("warning"):
        warnings.append(f"the agreement {report['warning']}")
    if judge.weight == 0:
        warnings.append(
            "calibrated R² ≤ 0: weight 0, the proxy ignores this judge and the sampler "
            "falls back towards random"
        )
    if report.get("unparseable"):
        warnings.append(f"{report['unparseable']} unparseable replies (never stored as a score)")
    judge_share = report.get("judge_share_good_all")
    unbiased = report.get("unbiased_estimate") or {}
    lo, hi = unbiased.get("ci_low"), unbiased.get("ci_high")
    row["judge_share_pct"] = _pct(judge_share)
    row["unbiased_pct"] = (
        _pct(unbiased["estimate"])
        if unbiased.get("estimate") is not None
        else "none yet: needs labels of a sampling run"
    )
    row["unbiased_interval"] = f"{_pct(lo)} \u2013 {_pct(hi)}" if lo is not None else ""
    row["human_good_pct"] = _pct(report.get("human_good"))
    if (
        judge_share is not None
        and lo is not None
        and hi is not None
        and not float(lo) <= float(judge_share) <= float(hi)
    ):
        gap = 100 * (float(judge_share) - float(unbiased.get("estimate") or 0.0))
        warnings.append(
            f"the judge's share of good lies outside the unbiased interval ({gap:+.1f} "
            "points): it is a biased estimator, the estimate stays PPI++"
        )
    power = report.get("power") or {}
    if power.get("uniform"):
        points = round(100 * float(power.get("half_width", 0.03)))
        row["power_sentence"] = (
            f"With this judge, a ±{points}-point interval needs about {power['with_judge']:,} "
            f"labels instead of {power['uniform']:,}."
        )
    return row


def judges_power(*, project: Project) -> list[dict[str, Any]]:
    """What each judge saves, for the power report: labels for a ±3-point interval with the
    judge's calibrated scores against a uniform sample's plain mean, from the latest stored trust
    report (primary judge first). A judge not calibrated yet is listed with ``None`` numbers and
    says why; a judge at weight 0 saves nothing and says so."""
    out: list[dict[str, Any]] = []
    for judge in sorted(judge_list(project=project), key=lambda j: (not j.is_primary, j.name)):
        report: dict[str, Any] = judge_version_current(judge=judge).calibration or {}
        power = report.get("power") or {}
        row: dict[str, Any] = {
            "judge": judge.name,
            "primary": judge.is_primary,
            "weight": judge.weight,
            "r2": report.get("r2"),
            "half_width": power.get("half_width"),
            "labels_with_judge": power.get("with_judge"),
            "labels_uniform": power.get("uniform"),
            "labels_with_judge_range": power.get("with_judge_range"),
            "sentence": None,
            "warning": None,
        }
        if not power.get("uniform"):
            row["warning"] = "not calibrated yet: needs human labels of items this judge scored"
        else:
            points = round(100 * float(power.get("half_width", 0.03)))
            row["sentence"] = (
                f"With {judge.name}, a ±{points}-point interval needs about "
                f"{power['with_judge']:,} labels instead of {power['uniform']:,}."
            )
            if judge.weight == 0:
                row["warning"] = "calibrated R² ≤ 0: weight 0, this judge saves no labels"
        out.append(row)
    return out


def judges_dashboard(*, project: Project) -> dict[str, Any] | None:
    """The dashboard's judge panel: per judge (primary first) agreement with human labels, the
    judge's share of good next to the unbiased PPI++ estimate, warnings and what it saves.

    Reads the trust reports ``judges.calibrate`` stored (cheap); None when the project has no
    judge, so a project without judges shows no panel.
    """
    judges = sorted(judge_list(project=project), key=lambda j: (not j.is_primary, j.name))
    if not judges:
        return None
    return {"rows": [_judge_panel_row(j) for j in judges]}
