"""Pages: the project's judges (admins configure; engineers and reviewers read the trust report).

Views parse, call one service and render; validation and the numbers live in the services and
``sampling.judges.calibration_report``. The API key is never on a page: only its variable's name.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from labeling.access import project_access
from sampling.judges import calibration_report, execution
from sampling.judges.config import judge_create, judge_pause, judge_resume, judge_update
from sampling.judges.forms import JudgeForm
from sampling.judges.selectors import judge_get, judge_list, judge_results, judge_status


def _attach(form: JudgeForm, detail: Any) -> None:
    items = detail.items() if isinstance(detail, dict) else [("non_field_errors", detail)]
    for field, problems in items:
        text = "; ".join(str(p) for p in (problems if isinstance(problems, list) else [problems]))
        form.add_error(field if field in form.fields else None, text)


@login_required
def judges(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_access(user=request.user, slug=slug, need="configure")
    rows = [{"judge": j, "state": judge_status(judge=j)} for j in judge_list(project=project)]
    return render(request, "judges/list.html", {"project": project, "rows": rows})


@login_required
def judge_edit(request: HttpRequest, slug: str, judge_id: int | None = None) -> HttpResponse:
    project = project_access(user=request.user, slug=slug, need="configure")
    judge = judge_get(project=project, judge_id=judge_id) if judge_id else None
    if judge_id and judge is None:
        raise Http404("No such judge.")
    if request.method == "POST":
        form = JudgeForm(request.POST)
        if form.is_valid():
            try:
                data = form.judge_data()
                saved = (
                    judge_update(judge=judge, data=data)
                    if judge
                    else judge_create(project=project, data=data, user=request.user)
                )
                messages.success(request, f"Judge {saved.name} saved.")
                return redirect("project-judges", slug=slug)
            except ValidationError as exc:
                _attach(form, exc.detail)
    else:
        form = JudgeForm(initial=JudgeForm.initial_from(judge) if judge else None)
    return render(request, "judges/form.html", {"project": project, "form": form, "judge": judge})


@login_required
@require_POST
def judge_action(request: HttpRequest, slug: str, judge_id: int) -> HttpResponse:
    """Buttons of the list: test connection, pause, resume, judge the pool, retry failures."""
    project = project_access(user=request.user, slug=slug, need="configure")
    judge = judge_get(project=project, judge_id=judge_id)
    if judge is None:
        raise Http404("No such judge.")
    action = request.POST.get("action")
    if action == "test":
        result = execution.judge_test_connection(judge=judge)
        if result["ok"]:
            messages.success(
                request,
                f"{judge.name}: the endpoint answered in {result['latency_ms']} ms with score "
                f"{result['score']} ({result['method']}).",
            )
        else:
            messages.error(request, f"{judge.name}: test connection failed — {result['error']}")
    elif action == "pause":
        judge_pause(judge=judge, reason="paused by an admin", kind="manual")
    elif action == "resume":
        judge_resume(judge=judge)
    elif action in ("pool", "retry"):
        from sampling.judges.tasks import run_judge

        if action == "pool":
            ids = execution.pool_unjudged_ids(judge=judge, limit=100_000)
            queued = execution.judge_schedule(judge=judge, interaction_ids=ids)
        else:
            queued = execution.judge_retry_failed(judge=judge)
        run_judge.delay(judge.pk)
        messages.success(request, f"{judge.name}: {queued} interactions queued.")
    return redirect("project-judges", slug=slug)


def _bars(bins: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reliability bins as percentages for the page's bars."""
    return [
        {
            **b,
            "lo": round(100 * b["bin"][0]),
            "hi": round(100 * b["bin"][1]),
            "pred_pct": round(100 * b["predicted"], 1),
            "obs_pct": round(100 * b["observed"], 1),
        }
        for b in bins
    ]


@login_required
def judge_trust(request: HttpRequest, slug: str, judge_id: int) -> HttpResponse:
    project = project_access(user=request.user, slug=slug, need="read")
    judge = judge_get(project=project, judge_id=judge_id)
    if judge is None:
        raise Http404("No such judge.")
    versions = list(judge.versions.order_by("-created_at"))
    wanted = request.GET.get("version") or None
    report = calibration_report.judge_trust(judge=judge, version_hash=wanted)
    if report is None:
        raise Http404("No such version of this judge.")
    context = {
        "project": project,
        "judge": judge,
        "versions": versions,
        "report": report,
        "raw_bars": _bars(report["reliability_raw"]["bins"]),
        "cal_bars": _bars(report["reliability_calibrated"]["bins"]),
        "unparseable": judge_results(judge=judge, status="unparseable")[:10],
    }
    return render(request, "judges/trust.html", context)
