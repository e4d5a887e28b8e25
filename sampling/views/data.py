"""Pages: the data browser (reviewers, engineers, admins: need ``read``).

Search and filter interactions, open one with everything recorded about it, and put a selection
in the queue as a deliberate batch (no sampling run: ``pi`` stays empty and the labels stay out of
estimates, as for every item no run selected) or as gold candidates. Admins may erase one
interaction (a privacy request) from its page.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from labeling.access import Capability, acting_user, has_capability, project_access, role_in
from labeling.models import Interaction, Project
from labeling.services.erasure import interactions_erase
from sampling.selectors.data_browser import (
    SIGNALS,
    BrowserFilters,
    FilterError,
    browse_rows,
    filters_parse,
    interaction_detail,
    interactions_browse,
)
from sampling.services.deliberate import deliberate_batch_enqueue

PAGE_SIZE = 50
FILTER_KEYS = (
    "q", "model_version", "segment", "since", "until", "signal", "proxy_min", "proxy_max",
    "judge", "judge_min", "judge_max", "label", "disagreement", "queued",
)  # fmt: skip


def _choices(project: Project) -> dict[str, list[str]]:
    versions = (
        Interaction.objects.filter(project=project)
        .order_by()
        .values_list("model_version", flat=True)
        .distinct()[:200]
    )
    judges: set[str] = set()
    for scores in Interaction.objects.filter(project=project).values_list("scores", flat=True)[
        :500
    ]:
        judges.update((scores or {}).keys())
    return {"model_versions": sorted(v for v in versions if v), "judges": sorted(judges)}


@login_required
def data_browser(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_access(user=request.user, slug=slug, need="read")
    error = None
    try:
        filters = filters_parse(request.GET, project=project)
    except FilterError as exc:
        error = (exc.field, str(exc))
        filters = BrowserFilters()
    found = interactions_browse(project=project, filters=filters)
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = browse_rows(project=project, interactions=list(page.object_list))
    query = {k: request.GET[k] for k in FILTER_KEYS if request.GET.get(k)}
    role = role_in(user=request.user, project=project)
    return render(
        request,
        "sampling/data.html",
        {
            "project": project,
            "params": request.GET,
            "error": error,
            "page": page,
            "rows": rows,
            "query": urlencode(query),
            "choices": _choices(project),
            "signals": SIGNALS,
            "can_queue": has_capability(role=role, need="configure"),
            "can_gold": has_capability(role=role, need="review"),
        },
    )


@login_required
def data_item(request: HttpRequest, slug: str, interaction_id: int) -> HttpResponse:
    project = project_access(user=request.user, slug=slug, need="read")
    detail = interaction_detail(project=project, interaction_id=interaction_id)
    if detail is None:
        raise Http404("No such interaction.")
    questions = project.label_schema.get("questions", [])
    role = role_in(user=request.user, project=project)
    return render(
        request,
        "sampling/data_item.html",
        {
            "project": project,
            **detail,
            "question_keys": [q["key"] for q in questions],
            "can_erase": has_capability(role=role, need="configure"),
        },
    )


@login_required
def data_erase(request: HttpRequest, slug: str, interaction_id: int) -> HttpResponse:
    """Erase one interaction (admins): GET asks, naming what goes; POST erases it (a privacy
    request; :mod:`labeling.services.erasure`) and returns to the data browser."""
    project = project_access(user=request.user, slug=slug, need="configure")
    detail = interaction_detail(project=project, interaction_id=interaction_id)
    if detail is None:
        raise Http404("No such interaction.")
    interaction = detail["interaction"]
    if request.method == "POST":
        result = interactions_erase(
            project=project, external_ids=[interaction.external_id], actor=acting_user(request.user)
        )
        labels = result.labels_erased
        messages.success(
            request,
            f"Erased {interaction.external_id} with {labels} label{'' if labels == 1 else 's'} "
            "and everything else recorded about it; the estimates no longer count it.",
        )
        return HttpResponseRedirect(reverse("data-browser", kwargs={"slug": slug}))
    return render(
        request,
        "sampling/data_erase.html",
        {
            "project": project,
            "interaction": interaction,
            "labels": len(detail["annotations"]),
            "events": len(detail["events"]),
            "considered": detail["inclusion"] is not None,
            "queued": detail["queue_item"] is not None,
        },
    )


@login_required
@require_POST
def data_enqueue(request: HttpRequest, slug: str) -> HttpResponse:
    """Put the chosen interactions in the queue: ``as=batch`` (admins) or ``as=gold`` (reviewers
    and admins: they are queued, then chosen on the gold page with their answers)."""
    as_gold = request.POST.get("as") == "gold"
    need: Capability = "review" if as_gold else "configure"
    project = project_access(user=request.user, slug=slug, need=need)
    ids = [int(i) for i in request.POST.getlist("interaction") if i.isdigit()]
    overlap_raw = request.POST.get("overlap", "1")
    back = reverse("data-browser", kwargs={"slug": slug}) + (
        "?" + request.POST["query"] if request.POST.get("query") else ""
    )
    if not ids:
        messages.error(request, "Tick at least one interaction first.")
        return HttpResponseRedirect(back)
    try:
        overlap = int(overlap_raw)
        result = deliberate_batch_enqueue(
            project=project,
            interaction_ids=ids,
            actor=request.user,
            overlap=overlap,
            purpose="gold" if as_gold else "batch",
        )
    except ValueError as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(back)
    messages.success(
        request,
        f"{result.added} added to the queue as a deliberate {'gold' if as_gold else 'batch'}"
        f" (no pi: outside estimates); {result.already} already queued.",
    )
    if as_gold:
        return HttpResponseRedirect(reverse("review-gold", kwargs={"slug": slug}))
    return HttpResponseRedirect(back)
