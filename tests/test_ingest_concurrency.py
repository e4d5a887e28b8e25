"""Two clients sending the same batch at the same time never make a second row (PostgreSQL)."""

from __future__ import annotations

import threading

import orjson
import pytest
from django.db import connection

from labeling.models import Interaction, Project
from labeling.services.ingest import interactions_ingest_jsonl


def _body(prefix: str, n: int) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "external_id": f"{prefix}{i}",
                "occurred_at": "2026-11-20T10:02:03Z",
                "messages": [{"role": "user", "content": f"question {i}"}],
                "response": f"answer {i}",
            }
        )
        + b"\n"
        for i in range(n)
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_batches(project: Project) -> None:
    n, clients = 3000, 4
    body = _body("c", n)
    barrier = threading.Barrier(clients)
    results: list[tuple[int, int]] = []
    failures: list[BaseException] = []

    def send() -> None:
        try:
            barrier.wait()
            result = interactions_ingest_jsonl(
                project=project, chunks=[body[i : i + 65536] for i in range(0, len(body), 65536)]
            )
            results.append((result.created, result.duplicates))
        except BaseException as exc:  # reported below: a thread's exception would be lost
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert Interaction.objects.filter(project=project).count() == n
    # Exact counts under concurrency: every row created exactly once across the clients.
    assert sum(created for created, _ in results) == n
    assert sum(duplicates for _, duplicates in results) == n * (clients - 1)
