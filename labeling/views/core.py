"""Login, logout, the home page (the user's projects and queues) and a project's landing page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from labeling.access import can_create_projects, projects_for, role_in, visible_projects
from labeling.context_processors import project_links
from labeling.selectors.queue import my_queues


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = visible_projects(user=request.user)
    return render(
        request,
        "labeling/home.html",
        {
            "projects": projects,
            "queues": my_queues(user=request.user),
            "can_create_projects": can_create_projects(request.user),
            "review_slugs": set(
                projects_for(user=request.user, need="review").values_list("slug", flat=True)
            ),
        },
    )


@login_required
def project_home(request: HttpRequest, slug: str) -> HttpResponse:
    """A project's landing page: the first page its role may open (the queue for annotators)."""
    found = visible_projects(user=request.user).filter(slug=slug).first()
    if found is None:
        raise Http404("No such project.")
    links = project_links(slug=slug, role=role_in(user=request.user, project=found))
    if links:
        return redirect(links[0].url)
    return render(request, "labeling/project_home.html", {"project": found})
