"""Projects, members and ingestion tokens API: a script can set up a project end to end."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.auth import hash_key
from labeling.models import (
    AuditLog,
    IngestToken,
    LabelSchemaVersion,
    Membership,
    Project,
    Role,
)
from labeling.schema import DEFAULT_SCHEMA
from tests.conftest import client_for
from tests.factories import UserFactory


@pytest.mark.django_db
def test_end_to_end_setup_by_script() -> None:
    staff = UserFactory(username="lead", is_staff=True)
    client = client_for(staff)
    response = client.post(
        reverse("labeling_api:projects"),
        {
            "slug": "helpdesk",
            "name": "Helpdesk",
            "label_schema": DEFAULT_SCHEMA,
            "segment_keys": ["tier", "locale"],
            "custom_event_types": ["escalated"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["role"] == "admin"
    assert response.json()["schema_version"] == 1
    project = Project.objects.get(slug="helpdesk")
    assert Membership.objects.get(project=project, user=staff).role == Role.ADMIN
    assert LabelSchemaVersion.objects.filter(project=project, version=1).exists()

    UserFactory(username="ann")
    response = client.post(
        reverse("labeling_api:members", kwargs={"slug": "helpdesk"}),
        {"username": "ann", "role": "annotator"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json() == {
        "username": "ann",
        "role": "annotator",
        "created_at": response.json()["created_at"],
    }
    members = client.get(reverse("labeling_api:members", kwargs={"slug": "helpdesk"})).json()[
        "results"
    ]
    assert {(m["username"], m["role"]) for m in members} == {
        ("ann", "annotator"),
        ("lead", "admin"),
    }

    response = client.post(
        reverse("labeling_api:ingest-tokens", kwargs={"slug": "helpdesk"}),
        {"name": "prod"},
        format="json",
    )
    assert response.status_code == 201
    key = response.json()["key"]
    token = IngestToken.objects.get(pk=response.json()["id"])
    assert token.key_hash == hash_key(key)
    assert key not in str(IngestToken.objects.filter(pk=token.pk).values().first())
    listed = client.get(reverse("labeling_api:ingest-tokens", kwargs={"slug": "helpdesk"})).json()[
        "results"
    ]
    assert [t["name"] for t in listed] == ["prod"]
    assert "key" not in listed[0]

    ingest = APIClient()
    ingest.credentials(HTTP_AUTHORIZATION=f"Ingest {key}")
    row = {
        "external_id": "r1",
        "occurred_at": "2026-11-20T10:00:00+01:00",
        "messages": [{"role": "user", "content": "hi"}],
        "response": "hello",
    }
    assert (
        ingest.post(
            reverse("labeling_api:interactions", kwargs={"slug": "helpdesk"}), row, format="json"
        ).status_code
        == 201
    )

    assert (
        client.delete(
            reverse("labeling_api:ingest-token", kwargs={"slug": "helpdesk", "token_id": token.pk})
        ).status_code
        == 204
    )
    assert (
        ingest.post(
            reverse("labeling_api:interactions", kwargs={"slug": "helpdesk"}), row, format="json"
        ).status_code
        == 401
    )
    actions = set(AuditLog.objects.filter(project=project).values_list("action", flat=True))
    assert {
        "project_create",
        "membership_add",
        "ingest_token_create",
        "ingest_token_revoke",
    } <= actions


@pytest.mark.django_db
def test_only_staff_create_projects(api_as: Callable[..., APIClient]) -> None:
    client = api_as(Role.ADMIN)
    response = client.post(
        reverse("labeling_api:projects"), {"slug": "x", "name": "X"}, format="json"
    )
    assert response.status_code == 403
    assert not Project.objects.filter(slug="x").exists()


@pytest.mark.django_db
def test_create_rejects_bad_schema_and_duplicate_slug(project: Project) -> None:
    client = client_for(UserFactory(is_staff=True))
    response = client.post(
        reverse("labeling_api:projects"),
        {"slug": "bad", "name": "Bad", "label_schema": {"questions": []}},
        format="json",
    )
    assert response.status_code == 400
    assert "label_schema" in response.json()["errors"]
    response = client.post(
        reverse("labeling_api:projects"), {"slug": "support-bot", "name": "Again"}, format="json"
    )
    assert response.status_code == 400
    assert "slug" in response.json()["errors"]


@pytest.mark.django_db
def test_list_shows_only_my_projects(
    api_as: Callable[..., APIClient], project: Project, other_project: Project
) -> None:
    client = api_as(Role.ANNOTATOR)
    body = client.get(reverse("labeling_api:projects")).json()
    assert [p["slug"] for p in body["results"]] == ["support-bot"]
    assert body["results"][0]["role"] == "annotator"
    assert body["count"] == 1
    assert (
        client.get(reverse("labeling_api:project", kwargs={"slug": "support-bot"})).status_code
        == 200
    )


@pytest.mark.django_db
def test_patch_needs_configure_and_schema_change_is_versioned(
    api_as: Callable[..., APIClient], project: Project
) -> None:
    from labeling.models import Annotation
    from tests.factories import QueueItemFactory

    engineer = api_as(Role.ENGINEER)
    assert (
        engineer.patch(
            reverse("labeling_api:project", kwargs={"slug": "support-bot"}),
            {"name": "N"},
            format="json",
        ).status_code
        == 403
    )
    admin = api_as(Role.ADMIN)
    # No annotations yet: the current version is replaced in place.
    schema = copy.deepcopy(DEFAULT_SCHEMA)
    schema["questions"][0]["prompt"] = "Rate it"
    response = admin.patch(
        reverse("labeling_api:project", kwargs={"slug": "support-bot"}),
        {"label_schema": schema},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["schema_version"] == 1
    # Once annotations exist under version 1, a change makes version 2.
    item = QueueItemFactory(interaction__project=project)
    Annotation.objects.create(
        queue_item=item,
        interaction=item.interaction,
        annotator=UserFactory(),
        values={"quality": 4},
        schema_version=1,
    )
    schema["questions"][0]["prompt"] = "Rate it again"
    response = admin.patch(
        reverse("labeling_api:project", kwargs={"slug": "support-bot"}),
        {"label_schema": schema},
        format="json",
    )
    assert response.json()["schema_version"] == 2
    versions = LabelSchemaVersion.objects.filter(project=project).order_by("version")
    assert [v.version for v in versions] == [1, 2]
    assert versions[1].schema["questions"][0]["prompt"] == "Rate it again"
    response = admin.patch(
        reverse("labeling_api:project", kwargs={"slug": "support-bot"}),
        {"slug": "renamed"},
        format="json",
    )
    assert response.status_code == 400


@pytest.mark.django_db
def test_members_roles_and_last_admin(api_as: Callable[..., APIClient], project: Project) -> None:
    admin = api_as(Role.ADMIN)
    reviewer = api_as(Role.REVIEWER)
    UserFactory(username="bob")
    assert (
        reviewer.post(
            reverse("labeling_api:members", kwargs={"slug": "support-bot"}),
            {"username": "bob", "role": "admin"},
            format="json",
        ).status_code
        == 403
    )
    response = admin.post(
        reverse("labeling_api:members", kwargs={"slug": "support-bot"}),
        {"username": "nobody", "role": "admin"},
        format="json",
    )
    assert response.status_code == 400
    assert "username" in response.json()["errors"]
    admin.post(
        reverse("labeling_api:members", kwargs={"slug": "support-bot"}),
        {"username": "bob", "role": "reviewer"},
        format="json",
    )
    admin.post(
        reverse("labeling_api:members", kwargs={"slug": "support-bot"}),
        {"username": "bob", "role": "engineer"},
        format="json",
    )
    assert Membership.objects.get(project=project, user__username="bob").role == "engineer"
    assert (
        admin.delete(
            reverse("labeling_api:member", kwargs={"slug": "support-bot", "username": "bob"})
        ).status_code
        == 204
    )
    assert not Membership.objects.filter(project=project, user__username="bob").exists()
    # The only admin cannot remove themselves.
    admin_name = Membership.objects.get(project=project, role="admin").user.username
    response = admin.delete(
        reverse("labeling_api:member", kwargs={"slug": "support-bot", "username": admin_name})
    )
    assert response.status_code == 400


@pytest.mark.django_db
def test_token_of_other_project_cannot_be_revoked(
    api_as: Callable[..., APIClient], project: Project, other_project: Project
) -> None:
    from labeling.services.projects import ingest_token_create

    token, _ = ingest_token_create(project=other_project, name="theirs", created_by=None)
    client = api_as(Role.ADMIN)
    assert (
        client.delete(
            reverse(
                "labeling_api:ingest-token", kwargs={"slug": "support-bot", "token_id": token.pk}
            )
        ).status_code
        == 404
    )
    token.refresh_from_db()
    assert token.revoked_at is None
