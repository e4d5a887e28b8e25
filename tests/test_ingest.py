"""Ingestion API: single, array, JSONL, gzip, duplicates, partial rejects, limits, late events."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from labeling.models import Event, Interaction, Project

BULK = "/api/projects/support-bot/interactions/bulk"
ARRAY = "/api/projects/support-bot/interactions/"
EVENTS = "/api/projects/support-bot/events/"


def row(external_id: str, **extra: Any) -> dict[str, Any]:
    base = {
        "external_id": external_id,
        "conversation_id": f"conv-{external_id}",
        "occurred_at": "2026-11-20T10:02:03Z",
        "model_version": "bot-1",
        "messages": [{"role": "user", "content": "Where is my order?"}],
        "response": "It ships tomorrow.",
        "segment": {"tier": "free", "locale": "de"},
        "metadata": {"latency_ms": 812},
        "scores": {"judge": 0.8},
    }
    base.update(extra)
    return base


def jsonl(rows: list[Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def post_bulk(client: APIClient, body: bytes, **headers: str) -> Any:
    return client.generic("POST", BULK, body, content_type="application/x-ndjson", **headers)


@pytest.mark.django_db(transaction=True)
def test_single_object(ingest_client: APIClient, project: Project) -> None:
    response = ingest_client.post(ARRAY, row("a1"), format="json")
    assert response.status_code == 201, response.content
    assert response.json() == {"created": 1, "duplicates": 0, "rejected": 0, "errors": []}
    interaction = Interaction.objects.get(project=project, external_id="a1")
    assert interaction.messages == [{"role": "user", "content": "Where is my order?"}]
    assert interaction.segment == {"tier": "free", "locale": "de"}
    assert interaction.scores == {"judge": 0.8}
    assert interaction.occurred_at.isoformat() == "2026-11-20T10:02:03+00:00"
    # Eager Celery: the follow-up task ran after commit.
    assert interaction.processed_at is not None
