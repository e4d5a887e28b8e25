"""Who may ingest and read: ingestion tokens, members of other projects, anonymous callers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.auth import generate_key, hash_key
from labeling.models import IngestToken, Interaction, Project, Role
from tests.factories import InteractionFactory

ROW = {
    "external_id": "x1",
    "occurred_at": "2026-11-20T10:02:03Z",
    "messages": [{"role": "user", "content": "hi"}],
    "response": "hello",
}


@pytest.mark.django_db
def test_ingestion_token_cannot_read(ingest_client: APIClient, project: Project) -> None:
    InteractionFactory(project=project)
    assert (
        ingest_client.get(
            reverse("labeling_api:interactions", kwargs={"slug": "support-bot"})
        ).status_code
        == 403
    )
    assert (
        ingest_client.get(
            reverse("labeling_api:project", kwargs={"slug": "support-bot"})
        ).status_code
        == 403
    )
    assert ingest_client.get(reverse("labeling_api:projects")).status_code == 403
    assert (
        ingest_client.get(
            reverse("labeling_api:ingest-tokens", kwargs={"slug": "support-bot"})
        ).status_code
        == 403
    )
    response = ingest_client.post(
        reverse("labeling_api:ingest-tokens", kwargs={"slug": "support-bot"}),
        {"name": "more"},
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "An ingestion token can only ingest."


@pytest.mark.django_db
def test_ingestion_token_cannot_reach_another_project(
    ingest_client: APIClient, other_project: Project
) -> None:
    response = ingest_client.post(
        reverse("labeling_api:interactions", kwargs={"slug": "other-bot"}), ROW, format="json"
    )
    assert response.status_code == 404
    assert not Interaction.objects.filter(project=other_project).exists()


@pytest.mark.django_db
def test_revoked_token_is_refused(project: Project) -> None:
    key = generate_key()
    IngestToken.objects.create(project=project, name="old", prefix=key[:12], key_hash=hash_key(key))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Ingest {key}")
    from labeling.services.projects import ingest_token_revoke

    ingest_token_revoke(token=IngestToken.objects.get(name="old"))
    response = client.post(
        reverse("labeling_api:interactions", kwargs={"slug": "support-bot"}), ROW, format="json"
    )
    assert response.status_code == 401


@pytest.mark.django_db
def test_member_of_a_gets_404_on_b(
    api_as: Callable[..., APIClient], project: Project, other_project: Project
) -> None:
    InteractionFactory(project=other_project)
    client = api_as(Role.ADMIN)  # admin of support-bot only
    assert (
        client.get(reverse("labeling_api:interactions", kwargs={"slug": "other-bot"})).status_code
        == 404
    )
    assert (
        client.get(reverse("labeling_api:project", kwargs={"slug": "other-bot"})).status_code == 404
    )
    assert (
        client.patch(
            reverse("labeling_api:project", kwargs={"slug": "other-bot"}),
            {"name": "x"},
            format="json",
        ).status_code
        == 404
    )
    assert (
        client.post(
            reverse("labeling_api:interactions", kwargs={"slug": "other-bot"}), ROW, format="json"
        ).status_code
        == 404
    )
    assert (
        client.post(
            reverse("labeling_api:events", kwargs={"slug": "other-bot"}), [], format="json"
        ).status_code
        == 404
    )
    assert (
        client.get(reverse("labeling_api:project", kwargs={"slug": "no-such-project"})).status_code
        == 404
    )


@pytest.mark.django_db
def test_anonymous_is_refused(project: Project) -> None:
    client = APIClient()
    for method, url in [
        ("get", reverse("labeling_api:projects")),
        ("get", reverse("labeling_api:interactions", kwargs={"slug": "support-bot"})),
        ("post", reverse("labeling_api:interactions", kwargs={"slug": "support-bot"})),
        ("post", reverse("labeling_api:interactions-bulk", kwargs={"slug": "support-bot"})),
        ("post", reverse("labeling_api:events", kwargs={"slug": "support-bot"})),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code in (401, 403), url
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_roles_for_ingest_and_read(api_as: Callable[..., APIClient], project: Project) -> None:
    annotator = api_as(Role.ANNOTATOR)
    assert (
        annotator.post(
            reverse("labeling_api:interactions", kwargs={"slug": "support-bot"}), ROW, format="json"
        ).status_code
        == 403
    )
    assert (
        annotator.get(
            reverse("labeling_api:interactions", kwargs={"slug": "support-bot"})
        ).status_code
        == 403
    )
    engineer = api_as(Role.ENGINEER)
    assert (
        engineer.post(
            reverse("labeling_api:interactions", kwargs={"slug": "support-bot"}), ROW, format="json"
        ).status_code
        == 201
    )
    assert (
        engineer.get(
            reverse("labeling_api:interactions", kwargs={"slug": "support-bot"})
        ).status_code
        == 200
    )


@pytest.mark.django_db
def test_ingest_rate_limit_is_per_token(project: Project) -> None:
    from django.core.cache import cache
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    cache.clear()
    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "ingest": "2/min"}
    clients = []
    for name in ("a", "b"):
        key = generate_key()
        IngestToken.objects.create(
            project=project, name=name, prefix=key[:12], key_hash=hash_key(key)
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Ingest {key}")
        clients.append(client)
    url = reverse("labeling_api:events", kwargs={"slug": "support-bot"})
    original = ScopedRateThrottle.THROTTLE_RATES
    ScopedRateThrottle.THROTTLE_RATES = rates
    try:
        codes_a = [clients[0].post(url, [], format="json").status_code for _ in range(3)]
        code_b = clients[1].post(url, [], format="json").status_code
    finally:
        ScopedRateThrottle.THROTTLE_RATES = original
        cache.clear()
    assert codes_a == [200, 200, 429]
    assert code_b == 200  # another token has its own budget
