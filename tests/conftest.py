"""Shared fixtures: a project, members of each role, authenticated API clients."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import IngestToken, Project, Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql"))
HAS_REDIS = bool(os.environ.get("REDIS_URL"))


HAS_CHROMIUM = os.path.exists(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# CI sets this: a test that needs a missing service fails instead of being skipped.
REQUIRE_SERVICES = os.environ.get("FLYWHEEL_REQUIRE_SERVICES") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = {
        "postgres": (not ON_POSTGRES, "needs PostgreSQL: set DATABASE_URL=postgres://..."),
        "redis": (not HAS_REDIS, "needs a real Redis broker: set REDIS_URL"),
        "browser": (not HAS_CHROMIUM, "needs Debian's chromium at /usr/bin/chromium"),
    }
    for item in items:
        for marker, (absent, reason) in missing.items():
            if marker in item.keywords and absent:
                if REQUIRE_SERVICES:
                    raise pytest.UsageError(f"{item.nodeid} {reason} (FLYWHEEL_REQUIRE_SERVICES=1)")
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def project(db: None) -> Project:
    return ProjectFactory(slug="support-bot", name="Support bot")


@pytest.fixture
def other_project(db: None) -> Project:
    return ProjectFactory(slug="other-bot", name="Other bot")


@pytest.fixture
def member(project: Project) -> Callable[..., object]:
    """member(role="annotator", project=None, username=None) -> a user with that role."""

    def make(role: str = Role.ANNOTATOR, project: Project = project, username: str | None = None):
        user = UserFactory(username=username) if username else UserFactory()
        MembershipFactory(project=project, user=user, role=role)
        return user

    return make


def client_for(user: object) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api_as(member: Callable[..., object]) -> Callable[..., APIClient]:
    """api_as("engineer") -> an APIClient authenticated as a new member with that role."""

    def make(role: str = Role.ADMIN, project: Project | None = None) -> APIClient:
        user = member(role, project) if project is not None else member(role)
        return client_for(user)

    return make


@pytest.fixture
def ingest_client(project: Project) -> APIClient:
    """An APIClient authenticated with an ingestion token of ``project``."""
    from labeling.auth import generate_key, hash_key

    key = generate_key()
    IngestToken.objects.create(
        project=project, name="test", prefix=key[:12], key_hash=hash_key(key)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Ingest {key}")
    return client
