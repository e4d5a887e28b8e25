"""Follow-up work through Celery: a real worker on Redis, and ingestion with the broker down."""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from flywheel_site.celery import app
from labeling.dispatch import broker_breaker_reset
from labeling.models import Event, Interaction, Project
from labeling.tasks.ingest import process_interactions, sweep_unprocessed


def _row(external_id: str, **extra: object) -> dict[str, object]:
    return {
        "external_id": external_id,
        "occurred_at": "2026-11-20T10:02:03Z",
        "messages": [{"role": "user", "content": "Where is my order?"}],
        "response": "It ships tomorrow.",
        **extra,
    }


def _reset_pools() -> None:
    # Drop the app's references only: kombu keeps one pool per broker URL, and closing it would
    # break the next user of that URL.
    app._pool = None
    app.amqp._producer_pool = None
    broker_breaker_reset()


@contextmanager
def celery_on(broker_url: str, backend_url: str | None = None) -> Iterator[None]:
    """Run tasks through ``broker_url`` (not eagerly) for the duration of the block."""
    saved = (app.conf.broker_url, app.conf.result_backend, app.conf.task_always_eager)
    app.conf.broker_url = broker_url
    app.conf.result_backend = backend_url
    app.conf.task_always_eager = False
    _reset_pools()
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.result_backend, app.conf.task_always_eager = saved
        _reset_pools()


@pytest.mark.django_db(transaction=True)
def test_ingest_succeeds_with_broker_down_and_the_sweep_catches_up(
    ingest_client: APIClient, project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    body = b"".join(orjson.dumps(_row(f"r{i}")) + b"\n" for i in range(5))
    late_event = [{"external_id": "r0", "type": "thumbs_down"}]
    with celery_on("redis://127.0.0.1:1/0"), caplog.at_level(logging.WARNING):
        response = ingest_client.generic(
            "POST",
            reverse("labeling_api:interactions-bulk", kwargs={"slug": "support-bot"}),
            gzip.compress(body),
            content_type="application/x-ndjson",
            HTTP_CONTENT_ENCODING="gzip",
        )
        assert response.status_code == 201
        assert response.json()["created"] == 5
        events = ingest_client.post(
            reverse("labeling_api:events", kwargs={"slug": "support-bot"}),
            late_event,
            format="json",
        )
        assert events.status_code == 201
    assert "broker unreachable" in caplog.text
    assert Interaction.objects.filter(processed_at__isnull=True).count() == 5
    # Beat runs the sweep later (here: eagerly, as in a fresh install).
    assert sweep_unprocessed.apply().result == 5
    assert not Interaction.objects.filter(processed_at__isnull=True).exists()
    interaction = Interaction.objects.get(external_id="r0")
    assert interaction.explicit_rating == -1
    assert interaction.signals == {"thumbs_down": 1}


@pytest.mark.django_db(transaction=True)
def test_sweep_attaches_orphans_missed_by_a_race(project: Project) -> None:
    """An event stored as an orphan after its interaction was processed is attached by the sweep."""
    from django.utils import timezone

    interaction = Interaction.objects.create(
        project=project,
        external_id="late",
        occurred_at=timezone.now(),
        messages=[{"role": "user", "content": "x"}],
        response="y",
        processed_at=timezone.now(),
    )
    Event.objects.create(
        project=project, external_id="late", type="copy", occurred_at=timezone.now()
    )
    assert sweep_unprocessed.apply().result == 1
    interaction.refresh_from_db()
    assert interaction.signals == {"copy": 1}
    assert Event.objects.get(external_id="late").interaction_id == interaction.pk


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_process_interactions_runs_in_a_real_worker(project: Project) -> None:
    from celery.contrib.testing.worker import start_worker
    from celery.result import allow_join_result
    from django.conf import settings

    from labeling.services.ingest import interactions_ingest_objects

    redis_url = os.environ["REDIS_URL"]
    broker = settings.CELERY_BROKER_URL or redis_url
    with celery_on(broker, settings.CELERY_RESULT_BACKEND or redis_url):
        result = interactions_ingest_objects(
            project=project,
            objects=[_row("w1", events=[{"type": "copy"}, {"type": "regenerate"}]), _row("w2")],
        )
        assert Interaction.objects.filter(processed_at__isnull=True).count() == 2
        # allow_join_result: waiting here is the point (we are not inside a task).
        with (
            start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30),
            allow_join_result(),
        ):
            processed = process_interactions.delay(result.created_ids).get(timeout=60)
    assert processed == 2
    w1 = Interaction.objects.get(external_id="w1")
    assert w1.processed_at is not None
    assert w1.signals == {"copy": 1, "regenerate": 1}
    assert Interaction.objects.get(external_id="w2").processed_at is not None


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_retrain_in_a_real_worker_rescores_the_pool_through_chunk_tasks(
    project: Project, settings, tmp_path
) -> None:
    """``rescore_pool`` fans out through the broker: one chunk task per range, then next waves."""
    import time

    from celery.contrib.testing.worker import start_worker

    from sampling.models import ProxyModel
    from sampling.tasks.proxy import retrain
    from tests.sampling_fixtures import label, seed_interactions

    settings.MODEL_ROOT = tmp_path / "models"
    settings.FLYWHEEL = {**settings.FLYWHEEL, "SCORE_CHUNK_SIZE": 4}
    rows = seed_interactions(project, 150)  # 150 in the pool: 38 chunks, three waves of 16
    label(project, rows[:20])
    redis_url = os.environ["REDIS_URL"]
    ready = ProxyModel.objects.filter(project=project, status=ProxyModel.Status.READY)
    stale = Interaction.objects.filter(project=project).exclude(
        proxy_version__in=ready.values("version")
    )
    with (
        celery_on(settings.CELERY_BROKER_URL or redis_url, redis_url),
        start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30),
    ):
        retrain.delay(project.pk)  # ignore_result: watch the database instead
        deadline = time.monotonic() + 180
        while (not ready.exists() or stale.exists()) and time.monotonic() < deadline:
            time.sleep(0.2)  # waiting for the worker to drain the chunk tasks, not timing them
    assert ready.count() == 1
    assert not stale.exists()  # every interaction re-scored by the new model
