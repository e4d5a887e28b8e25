"""Faults with the real services (see also the faults tested next to their feature):

- Redis (the Celery broker) down during ingestion: tests/test_celery_worker.py
  ``test_ingest_succeeds_with_broker_down_and_the_sweep_catches_up``;
- one client retrying a batch / clients sending the same batch at once: tests/test_ingest.py
  ``test_jsonl_duplicates_within_and_across_batches`` and tests/test_ingest_concurrency.py
  ``test_concurrent_duplicate_batches`` (exactly one row per external_id);
- a worker SIGKILLed mid-export: tests/test_exports.py (redone once, same file).

Here: the database connection dropped in the middle of a bulk ingest request.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from labeling.models import Interaction, Project
from labeling.services import ingest
from labeling.services.bulk import insert_returning
from labeling.services.ingest import BATCH_SIZE

BULK = "/api/projects/support-bot/interactions/bulk"


def body(prefix: str, n: int) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "external_id": f"{prefix}{i}",
                "occurred_at": "2026-11-20T10:00:00Z",
                "messages": [{"role": "user", "content": f"question {i}"}],
                "response": f"answer {i}",
            }
        )
        + b"\n"
        for i in range(n)
    )


def kill_backend() -> None:
    """Terminate this connection's server process from another connection (a real drop)."""
    db = settings.DATABASES["default"]
    pid = connection.connection.info.backend_pid
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
        autocommit=True,
    ) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_connection_dropped_mid_bulk_ingest(
    ingest_client: APIClient, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = BATCH_SIZE * 2 + 500  # three batches; the connection dies before the second one's INSERT
    payload = body("drop-", n)
    calls = {"n": 0}

    def insert_then_die(**kwargs: Any) -> Any:
        # Fault injection around the real insert: the connection dies inside the second batch's
        # transaction, right before its INSERT is sent.
        calls["n"] += 1
        if calls["n"] == 2:
            kill_backend()
        return insert_returning(**kwargs)

    monkeypatch.setattr(ingest, "insert_returning", insert_then_die)
    try:
        response = ingest_client.generic("POST", BULK, payload, content_type="application/x-ndjson")
    finally:
        connection.close()  # the test client keeps the dead connection; reconnect
        monkeypatch.undo()
    assert response.status_code == 503
    error = response.json()
    assert "database connection was lost" in error["detail"]
    assert error["errors"] == {}
    # The first batch committed, the second rolled back whole, the third never started.
    stored = set(Interaction.objects.filter(project=project).values_list("external_id", flat=True))
    assert stored == {f"drop-{i}" for i in range(BATCH_SIZE)}
    # Retrying the same request completes it, one row per external_id.
    retry = ingest_client.generic("POST", BULK, payload, content_type="application/x-ndjson")
    assert retry.status_code == 201
    assert (retry.json()["created"], retry.json()["duplicates"]) == (n - BATCH_SIZE, BATCH_SIZE)
    assert Interaction.objects.filter(project=project).count() == n
