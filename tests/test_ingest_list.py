"""GET /api/projects/{slug}/interactions/: filters and cursor pagination."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Annotation, Project, Role
from tests.factories import InteractionFactory, QueueItemFactory, UserFactory

URL = reverse("labeling_api:interactions", kwargs={"slug": "support-bot"})


@pytest.fixture
def rows(project: Project) -> dict[str, object]:
    base = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    made = {}
    for i in range(12):
        made[f"i{i}"] = InteractionFactory(
            project=project,
            external_id=f"i{i}",
            occurred_at=base + dt.timedelta(days=i),
            model_version="v1" if i % 2 else "v2",
            segment={"tier": "pro" if i < 4 else "free", "rank": i % 3, "beta": i == 5},
            explicit_rating=-1 if i in (3, 7) else None,
        )
    item = QueueItemFactory(interaction=made["i9"])
    Annotation.objects.create(
        queue_item=item,
        interaction=made["i9"],
        annotator=UserFactory(),
        values={"quality": 5},
        schema_version=1,
    )
    return made


def ids(response: object) -> list[str]:
    return [r["external_id"] for r in response.json()["results"]]  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_filters(api_as: Callable[..., APIClient], rows: dict[str, object]) -> None:
    client = api_as(Role.ENGINEER)
    assert ids(client.get(URL, {"model_version": "v1", "segment.tier": "pro"})) == ["i3", "i1"]
    assert ids(client.get(URL, {"segment.rank": "2", "segment.tier": "free"})) == [
        "i11",
        "i8",
        "i5",
    ]
    assert ids(client.get(URL, {"segment.beta": "true"})) == ["i5"]
    assert ids(
        client.get(URL, {"since": "2026-11-03T00:00:00Z", "until": "2026-11-05T00:00:00Z"})
    ) == ["i3", "i2"]
    assert ids(client.get(URL, {"has_feedback": "true"})) == ["i7", "i3"]
    assert ids(client.get(URL, {"has_label": "true"})) == ["i9"]
    assert len(ids(client.get(URL, {"has_label": "false"}))) == 11
    assert client.get(URL, {"since": "not a date"}).status_code == 400


@pytest.mark.django_db
def test_cursor_pagination_walks_everything_once(
    api_as: Callable[..., APIClient], rows: dict[str, object]
) -> None:
    client = api_as(Role.REVIEWER)
    seen: list[str] = []
    response = client.get(URL, {"limit": 5})
    while True:
        assert response.status_code == 200
        seen += ids(response)
        nxt = response.json()["next"]
        if not nxt:
            break
        response = client.get(nxt)
    assert seen == [f"i{i}" for i in range(11, -1, -1)]
    row = client.get(URL, {"limit": 1}).json()["results"][0]
    assert {"external_id", "messages", "response", "segment", "signals", "scores"} <= set(row)
