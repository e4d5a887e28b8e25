"""Template context for every page: the user's projects, the current project, its navigation.

The navigation is built here once so every page (whoever owns it) gets the same project switcher
and sub-navigation. ``labeling`` lists its own pages; another app adds its pages with
:func:`register_project_page` from its ``AppConfig.ready()`` (``sampling`` adds the dashboard and
the strategies), so this module never names another app's URLs. An entry shows only when the
user's role holds its capability (``labeling.access``) and its page exists (its URL name
reverses), so a page that is not installed simply does not appear instead of breaking every page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from labeling.access import Capability, IngestClient, has_capability, visible_projects
from labeling.models import Membership, Project, Role


@dataclass(frozen=True)
class ProjectPage:
    """One entry of a project's sub-navigation: ``url_name`` takes the project slug as ``slug``;
    entries are shown in ``position`` order."""

    label: str
    need: Capability
    url_name: str
    position: int


PROJECT_NAV: list[ProjectPage] = [
    ProjectPage("Label", "label", "annotate", 10),
    ProjectPage("Review", "review", "review", 20),
    ProjectPage("Schema", "configure", "project-schema", 50),
    ProjectPage("Queues", "configure", "project-queues", 55),
    ProjectPage("Members", "configure", "project-members", 60),
    # Engineers create ingestion tokens through the API too (need "ingest"): the page matches.
    ProjectPage("Tokens", "ingest", "project-tokens", 70),
    ProjectPage("Settings", "configure", "project-settings", 75),
    ProjectPage("Webhooks", "configure", "project-webhooks", 77),
    ProjectPage("Exports", "export", "project-exports", 80),
]


def register_project_page(label: str, need: Capability, url_name: str, *, position: int) -> None:
    """Add another app's page to every project's sub-navigation (idempotent, by ``url_name``)."""
    if any(page.url_name == url_name for page in PROJECT_NAV):
        return
    PROJECT_NAV.append(ProjectPage(label, need, url_name, position))
    PROJECT_NAV.sort(key=lambda page: page.position)


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    active: bool = False


@dataclass(frozen=True)
class NavProject:
    project: Project
    role: str
    links: tuple[NavLink, ...]

    @property
    def home_url(self) -> str:
        return self.links[0].url if self.links else ""


def _reverse(name: str, slug: str) -> str | None:
    try:
        return reverse(name, kwargs={"slug": slug})
    except NoReverseMatch:
        return None


def project_links(*, slug: str, role: str | None, current_path: str = "") -> tuple[NavLink, ...]:
    """The sub-navigation of one project for a role: only pages the role may open and that exist."""
    links: list[NavLink] = []
    for page in PROJECT_NAV:
        if not has_capability(role=role, need=page.need):
            continue
        url = _reverse(page.url_name, slug)
        if url is not None:
            links.append(NavLink(page.label, url, active=bool(current_path.startswith(url))))
    return tuple(links)


def roles_by_project(*, user: Any) -> dict[int, str]:
    """project id -> the user's role, for every project the user can see (one query)."""
    projects = visible_projects(user=user)
    if getattr(user, "is_superuser", False):
        return dict.fromkeys(projects.values_list("pk", flat=True), Role.ADMIN)
    return dict(Membership.objects.filter(user=user).values_list("project_id", "role"))


def flywheel(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    context: dict[str, Any] = {
        "celery_eager": settings.CELERY_TASK_ALWAYS_EAGER,
        "nav_projects": visible_projects(user=user) if user is not None else [],
        "nav_tree": [],
        "current_project": None,
        "current_role": None,
        "current_links": (),
    }
    if user is None or isinstance(user, IngestClient) or not user.is_authenticated:
        return context  # a DRF view rendering HTML for an ingestion token: no member navigation
    roles = roles_by_project(user=user)
    match = getattr(request, "resolver_match", None)
    current_slug = (match.kwargs.get("slug") if match is not None else None) or None
    tree = []
    for project in context["nav_projects"]:
        role = roles.get(project.pk)
        links = project_links(slug=project.slug, role=role, current_path=request.path)
        entry = NavProject(project=project, role=role or "", links=links)
        tree.append(entry)
        if project.slug == current_slug:
            context.update(current_project=project, current_role=role, current_links=links)
    context["nav_tree"] = tree
    return context
