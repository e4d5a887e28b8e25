"""Pages: sampling configuration for project admins (need ``configure``).

Sampling strategies (form, preview on the current pool, save) and the page that starts sampling
runs, retrains and exports (members, tokens and the schema editor are ``labeling``'s pages, in
``labeling/views/settings.py``). Views parse the form, call one service and render; the rules live
in the services every caller shares (the API calls the same ones), and their errors are put back on
the form fields. Long jobs (runs, retrains, exports) are started through the JSON API by
``static/flywheel/config.js``, which polls the API for their progress.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from labeling import dispatch
from labeling.access import acting_user, project_access
from labeling.forms import SERVICE_ERRORS, attach_errors, error_detail
from labeling.models import Project
from labeling.selectors.queue import queue_health
from sampling.forms import StrategyForm
from sampling.models import ProxyModel
from sampling.selectors.runs import run_list
from sampling.selectors.strategies import strategy_get, strategy_list, strategy_preview
from sampling.services.strategies import strategy_create, strategy_update


def _configure(request: HttpRequest, slug: str) -> Project:
    return project_access(user=request.user, slug=slug, need="configure")


# --- Sampling strategies, runs, retrains, exports ---------------------------------------------


@login_required
def strategies(request: HttpRequest, slug: str) -> HttpResponse:
    """Strategies with "run now", recent runs with progress, proxy models, retrain and export."""
    project = _configure(request, slug)
    return render(
        request,
        "sampling/strategies.html",
        {
            "project": project,
            "strategies": strategy_list(project=project),
            "runs": run_list(project=project).select_related("strategy")[:10],
            "proxies": ProxyModel.objects.filter(project=project).order_by("-version")[:5],
            "queue": queue_health(project=project),
            "export_kinds": ("sft", "preference", "classification", "eval"),
            # URLs for static/flywheel/config.js (rendered with json_script); "0" stands for an
            # id the script learns later.
            "jobs_config": {
                "runsUrl": reverse("sampling_api:runs", kwargs={"slug": slug}),
                "runUrl": reverse("sampling_api:run", kwargs={"slug": slug, "run_id": 0}),
                "exportsUrl": reverse("labeling_api:exports", kwargs={"slug": slug}),
                "exportUrl": reverse("labeling_api:export", kwargs={"export_id": 0}),
            },
        },
    )


@login_required
@require_POST
def retrain(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a proxy retrain (a Celery task; a second request while one trains does nothing)."""
    project = _configure(request, slug)
    project_id = project.pk
    dispatch.enqueue_on_commit("sampling.retrain", project_id)
    messages.success(request, "Retraining the proxy model: its row below shows the progress.")
    return redirect("project-strategies", slug=slug)


@login_required
def strategy_edit(request: HttpRequest, slug: str, strategy_id: int | None = None) -> HttpResponse:
    """Create or edit a strategy. "Preview" shows, on the current pool, the expected labels per
    segment and per component and the smallest pi, without saving."""
    project = _configure(request, slug)
    strategy = None
    if strategy_id is not None:
        strategy = strategy_get(project=project, strategy_id=strategy_id)
        if strategy is None:
            raise Http404("No such strategy.")
    preview: Any = None
    if request.method == "POST":
        form = StrategyForm(request.POST)
        if form.is_valid():
            data = form.strategy_data()
            try:
                if request.POST.get("action") == "preview":
                    preview = preview_context(
                        strategy_preview(strategy_data=data, project=project, instance=strategy)
                    )
                else:
                    saved = (
                        strategy_update(strategy=strategy, data=data)
                        if strategy is not None
                        else strategy_create(
                            project=project, data=data, user=acting_user(request.user)
                        )
                    )
                    messages.success(request, f"Strategy {saved.name} saved.")
                    return redirect("project-strategies", slug=slug)
            except SERVICE_ERRORS as exc:
                attach_errors(form, error_detail(exc), field_for=form.field_for)
    else:
        form = StrategyForm(initial=StrategyForm.initial_from(strategy) if strategy else None)
    return render(
        request,
        "sampling/strategy_form.html",
        {"project": project, "form": form, "strategy": strategy, "preview": preview},
    )


def preview_context(preview: dict[str, Any]) -> dict[str, Any]:
    """The preview selector's answer arranged as table rows (no numbers computed here)."""
    segments = [
        {"key": key, **row}
        for key, rows in sorted((preview.get("segments") or {}).items())
        for row in rows
    ]
    return {
        **preview,
        "component_rows": [
            {"name": name, "expected": expected}
            for name, expected in (preview.get("components") or {}).items()
        ],
        "segment_rows": segments,
        "max_weight": 1 / preview["min_pi"] if preview.get("min_pi") else None,
    }
