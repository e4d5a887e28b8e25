"""The one way a view, API or task gets a project it must be allowed to see.

Every lookup of a project-scoped object goes through :func:`project_access` (or, for objects
addressed by id, a selector that filters on the projects it returns). A caller who is not a member
gets :class:`~labeling.errors.NotFound` (never a 403 that confirms the project exists); a member
whose role lacks the capability gets :class:`~labeling.errors.Forbidden`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.db.models import QuerySet

from labeling.errors import Forbidden, NotFound
from labeling.models import IngestToken, Membership, Project, Role
from labeling.rows import row_reader

Capability = Literal["ingest", "label", "review", "read", "export", "configure"]

# Which roles hold which capability. Annotators see their queue only; engineers read data,
# estimates and exports and may ingest; reviewers adjudicate and set gold; admins do everything.
CAPABILITIES: dict[str, frozenset[str]] = {
    "ingest": frozenset({Role.ENGINEER, Role.ADMIN}),
    "label": frozenset({Role.ANNOTATOR, Role.REVIEWER, Role.ADMIN}),
    "review": frozenset({Role.REVIEWER, Role.ADMIN}),
    "read": frozenset({Role.REVIEWER, Role.ENGINEER, Role.ADMIN}),
    "export": frozenset({Role.ENGINEER, Role.ADMIN}),
    "configure": frozenset({Role.ADMIN}),
}


@dataclass(frozen=True)
class IngestClient:
    """The request.user of a call authenticated with a project ingestion token."""

    token: IngestToken
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    is_anonymous: bool = False
    pk: None = None
    id: None = None
    username: str = "ingest-token"

    def __str__(self) -> str:
        return f"ingest-token:{self.token.prefix}"


# What ``request.user`` can be: a person (the auth user model, ``auth.User``), nobody, or an
# ingestion token. Access checks take any of them; services that record who did something take
# ``User`` (get it with :func:`acting_user`).
RequestUser = User | AnonymousUser | IngestClient


def acting_user(user: RequestUser) -> User:
    """The signed-in person behind a request, typed as the auth user model.

    Call it after :func:`project_access` (which already turns away anonymous callers and
    ingestion tokens for anything but ``ingest``); it raises Forbidden for them all the same.
    """
    if isinstance(user, User):
        return user
    if isinstance(user, IngestClient):
        raise Forbidden("An ingestion token can only ingest.")
    raise Forbidden("Authentication required.")


def role_in(*, user: RequestUser, project: Project) -> str | None:
    """The user's role in the project, ``"admin"`` for superusers, None for non-members."""
    if not isinstance(user, User):  # anonymous, or an ingestion token
        return None
    if user.is_superuser:
        return Role.ADMIN
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def has_capability(*, role: str | None, need: Capability) -> bool:
    return role is not None and role in CAPABILITIES[need]


# The caller's role in project ``p`` (NULL: not a member), for SQL that selects a project row;
# its one parameter is the user id.
ROLE_SQL = (
    f"(SELECT m.role FROM {Membership._meta.db_table} m "
    "WHERE m.project_id = p.id AND m.user_id = %s LIMIT 1)"
)


def _project_with_role(*, slug: str, user_id: int) -> tuple[Project | None, str | None]:
    """The project ``slug`` and the user's role there (None: no such project / not a member)."""
    reader = row_reader(Project, "p")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {reader.columns}, {ROLE_SQL} FROM {reader.table} p WHERE p.slug = %s",
            [user_id, slug],
        )
        row = cursor.fetchone()
    if row is None:
        return None, None
    return reader.read(row), row[-1]


def project_access(*, user: RequestUser, slug: str, need: Capability) -> Project:
    """Return the project if ``user`` may ``need`` it; 404 for outsiders, 403 for a weaker role.

    Ingestion tokens reach only their own project and only the ``ingest`` capability.
    """
    if isinstance(user, IngestClient):
        if user.token.project.slug != slug:
            raise NotFound("No such project.")
        if need != "ingest":
            raise Forbidden("An ingestion token can only ingest.")
        return user.token.project
    if not isinstance(user, User):
        raise Forbidden("Authentication required.")
    # The project and the caller's role in one statement (it runs on every request; written as
    # SQL for the reason labeling.rows gives).
    project, member_role = _project_with_role(slug=slug, user_id=user.pk)
    if project is None:
        raise NotFound("No such project.")
    role = Role.ADMIN if user.is_superuser else member_role
    if role is None:
        raise NotFound("No such project.")
    if not has_capability(role=role, need=need):
        raise Forbidden(f"Your role ({role}) cannot {need} in this project.")
    return project


def projects_for(*, user: RequestUser, need: Capability = "label") -> QuerySet[Project]:
    """Projects where the user holds ``need`` (all projects for superusers)."""
    if not isinstance(user, User):  # anonymous, or an ingestion token
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(
        memberships__user=user, memberships__role__in=CAPABILITIES[need]
    ).distinct()


def visible_projects(*, user: RequestUser) -> QuerySet[Project]:
    """Every project the user is a member of, whatever the role."""
    if not isinstance(user, User):  # anonymous, or an ingestion token
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def can_create_projects(user: RequestUser) -> bool:
    """Who may create a project (the API's ``POST /api/projects/`` and the New project page):
    staff users and superusers."""
    if isinstance(user, IngestClient) or not getattr(user, "is_authenticated", False):
        return False
    return bool(user.is_staff or user.is_superuser)
