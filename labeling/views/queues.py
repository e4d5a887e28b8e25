"""Admin page: the project's named queues (routing by strategy and segment, a skill tag, blind or
open review) and the labelling members' skill tags. Writes go through labeling.services.queues."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from labeling import hooks
from labeling.access import acting_user, project_access
from labeling.errors import DomainError, Invalid
from labeling.models import Membership, Project, Queue, Role
from labeling.selectors.queues import project_queues, queue_backlogs
from labeling.services.queues import member_skills_set, queue_create, queue_update


def segment_parse(text: str) -> dict[str, list[str]]:
    """``"locale=de,at; tier=pro"`` -> ``{"locale": ["de", "at"], "tier": ["pro"]}``."""
    rule: dict[str, list[str]] = {}
    for part in text.replace("\n", ";").split(";"):
        if not part.strip():
            continue
        key, sep, values = part.partition("=")
        listed = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not listed:
            raise Invalid(
                {"segment": f"{part.strip()!r}: write key=value[,value] (e.g. locale=de)"}
            )
        rule[key.strip()] = listed
    return rule


def segment_text(rule: dict[str, list[str]]) -> str:
    return "; ".join(f"{key}={','.join(values)}" for key, values in rule.items())


def _form_data(post: QueryDict) -> dict[str, Any]:
    position = post.get("position", "").strip()
    return {
        "name": post.get("name", ""),
        "description": post.get("description", ""),
        "segment": segment_parse(post.get("segment", "")),
        "skill": post.get("skill", ""),
        "strategy_ids": [int(s) for s in post.getlist("strategy_ids") if s.isdigit()],
        "blind": post.get("mode", "blind") != "open",
        "active": post.get("active") == "on",
        **({"position": int(position)} if position.isdigit() else {}),
    }


def _post(request: HttpRequest, project: Project) -> str:
    actor = acting_user(request.user)
    action = request.POST.get("action", "")
    if action == "skills":
        membership = get_object_or_404(
            Membership, pk=request.POST.get("membership") or 0, project=project
        )
        tags = request.POST.get("skills", "").replace(",", " ").split()
        member_skills_set(project=project, user=membership.user, skills=tags, actor=actor)
        return f"Skills of {membership.user.get_username()} saved."
    data = _form_data(request.POST)
    if action == "update":
        queue = get_object_or_404(Queue, pk=request.POST.get("queue") or 0, project=project)
        queue_update(queue=queue, actor=actor, data=data)
        return f"Queue {queue.name!r} saved."
    queue = queue_create(project=project, actor=actor, data=data)
    return f"Queue {queue.name!r} created."


@login_required
@require_http_methods(["GET", "POST"])
def queues_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_access(user=request.user, slug=slug, need="configure")
    if request.method == "POST":
        try:
            messages.success(request, _post(request, project))
        except DomainError as exc:
            messages.error(request, exc.text())
        return HttpResponseRedirect(reverse("project-queues", kwargs={"slug": slug}))
    strategies: dict[int, str] = hooks.ask("strategy_names", {}, project_id=project.pk)
    counts = queue_backlogs(project=project)
    empty = {"items": 0, "backlog": 0, "done": 0}
    queues = [
        {
            "queue": q,
            "segment": segment_text(q.segment),
            "strategies": [strategies.get(i, f"#{i} (deleted)") for i in q.strategy_ids],
            "counts": counts.get(q.pk, empty),
        }
        for q in project_queues(project=project)
    ]
    members = (
        Membership.objects.filter(project=project)
        .exclude(role=Role.ENGINEER)
        .select_related("user")
        .order_by("user__username")
    )
    return render(
        request,
        "labeling/queues.html",
        {
            "project": project,
            "queues": queues,
            "main": counts.get(None, empty),
            "strategies": sorted(strategies.items()),
            "members": members,
        },
    )
