"""Faults with the real services (see also the faults tested next to their feature):

- Redis (the Celery broker) down during ingestion: tests/test_celery_worker.py
  ``test_ingest_succeeds_with_broker_down_and_the_sweep_catches_up``;
- one client retrying a batch / clients sending the same batch at once: tests/test_ingest.py
  ``test_jsonl_duplicates_within_and_across_batches`` and tests/test_ingest_concurrency.py
  ``test_concurrent_duplicate_batches`` (exactly one row per external_id);
- a worker SIGKILLed mid-export: tests/test_exports_api.py (redone once, same file).

Here: the database connection dropped in the middle of a bulk ingest request, and a worker
SIGKILLed in the middle of a sampling run (after writing its inclusions, before committing) and in
the middle of scoring (after its first chunk).
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Interaction, Project
from labeling.services.bulk import insert_returning
from labeling.services.ingest import BATCH_SIZE, storage
from tests.killed_worker import kill_at_pause

BULK = reverse("labeling_api:interactions-bulk", kwargs={"slug": "support-bot"})


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

    monkeypatch.setattr(storage, "insert_returning", insert_then_die)
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


# --- A worker SIGKILLed in the middle of a sampling run ----------------------------------------
KILLED_RUN = r"""
import sys
import django
django.setup()
from sampling.services import runs

real = runs.queue_items_enqueue

def pausing(**kwargs):
    # The inclusions are written (not committed): stop here until killed.
    print("PAUSED", flush=True)
    sys.stdin.readline()
    return real(**kwargs)

runs.queue_items_enqueue = pausing
runs.sampling_run_execute(run_id=int(sys.argv[1]))
"""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sigkilled_sampling_run_is_redone_once(project: Project) -> None:
    import datetime as dt

    from django.utils import timezone

    from labeling.models import QueueItem
    from sampling.models import Inclusion, SamplingRun, SamplingStrategy
    from sampling.services.runs import sampling_run_create
    from sampling.tasks.runs import resume_pending_runs
    from tests.sampling_fixtures import seed_interactions

    seed_interactions(project, 120)
    strategy = SamplingStrategy.objects.create(
        project=project, name="s", weights={"random": 1.0}, batch_size=30
    )
    run = sampling_run_create(project=project, strategy=strategy)
    kill_at_pause(KILLED_RUN, str(run.pk))

    run.refresh_from_db()
    assert run.status == SamplingRun.Status.RUNNING  # claimed, never finished
    assert not Inclusion.objects.filter(run=run).exists()  # the half-written run rolled back
    assert not QueueItem.objects.filter(sampling_run_id=run.pk).exists()
    # The claim goes stale (as RUN_STALE_AFTER_S later); the periodic resume redoes it once.
    SamplingRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - dt.timedelta(hours=1))
    assert resume_pending_runs() == 1
    assert resume_pending_runs() == 0
    run.refresh_from_db()
    assert run.status == SamplingRun.Status.DONE
    inclusions = Inclusion.objects.filter(run=run)
    assert inclusions.count() == 120  # one per pool item, counted once
    assert inclusions.values("interaction_id").distinct().count() == 120
    queued = QueueItem.objects.filter(sampling_run_id=run.pk)
    assert queued.count() == run.selected_count


# --- A worker SIGKILLed in the middle of scoring ------------------------------------------------
KILLED_SCORING = r"""
import sys
import django
django.setup()
from django.conf import settings
settings.FLYWHEEL = {**settings.FLYWHEEL, "SCORE_CHUNK_SIZE": 20}
from labeling.models import Project
from sampling.services import scoring

real = scoring.scores_write
calls = {"n": 0}

def pausing(**kwargs):
    calls["n"] += 1
    if calls["n"] == 2:  # the first chunk is committed; stop before the second
        print("PAUSED", flush=True)
        sys.stdin.readline()
    return real(**kwargs)

scoring.scores_write = pausing
project = Project.objects.get(pk=int(sys.argv[1]))
scoring.interactions_score(project=project, interaction_ids=[int(i) for i in sys.argv[2:]])
"""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sigkilled_scoring_is_finished_by_the_sweep(project: Project, settings: Any) -> None:

    from sampling.models import InteractionTopic
    from sampling.tasks.scoring import score_sweep
    from tests.sampling_fixtures import seed_interactions

    ids = [i.pk for i in seed_interactions(project, 60)]
    kill_at_pause(KILLED_SCORING, str(project.pk), *map(str, ids))

    scored = Interaction.objects.filter(project=project, scored_at__isnull=False)
    assert scored.count() == 20  # the committed first chunk only
    settings.FLYWHEEL = {**settings.FLYWHEEL, "SCORE_CHUNK_SIZE": 20}
    assert score_sweep() == 40  # the sweep hands exactly the rest to scoring (eager here)
    assert score_sweep() == 0
    assert scored.count() == 60
    assert not Interaction.objects.filter(project=project, proxy_score__isnull=True).exists()
    topics = InteractionTopic.objects.filter(interaction__project=project)
    assert topics.count() == topics.values("interaction_id").distinct().count()
