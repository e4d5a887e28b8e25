"""Reads of projects, members and ingestion tokens (scoped through labeling.access, except the
by-id reads of background tasks, which act for no user)."""

from __future__ import annotations

from django.db.models import QuerySet

from labeling.access import RequestUser, project_access, role_in, visible_projects
from labeling.errors import Forbidden
from labeling.models import IngestToken, Membership, Project


def project_by_id(project_id: int) -> Project | None:
    """The project with that id, None when it was deleted (tasks take ids and may outlive rows)."""
    return Project.objects.filter(pk=project_id).first()


def project_ids() -> list[int]:
    """Every project's id (periodic sweeps visit them one by one)."""
    return list(Project.objects.values_list("pk", flat=True))


def project_for_member(*, user: RequestUser, slug: str) -> Project:
    """The project if ``user`` holds any role in it (annotators need the schema too); 404 else."""
    try:
        return project_access(user=user, slug=slug, need="label")
    except Forbidden:
        return project_access(user=user, slug=slug, need="read")


def projects_visible(*, user: RequestUser) -> QuerySet[Project]:
    return visible_projects(user=user).order_by("slug")


def project_role(*, user: RequestUser, project: Project) -> str | None:
    return role_in(user=user, project=project)


def project_members(*, project: Project) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    )


def ingest_tokens_list(*, project: Project) -> QuerySet[IngestToken]:
    return IngestToken.objects.filter(project=project).order_by("-created_at", "-pk")
