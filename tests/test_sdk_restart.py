"""The SDK against a real server process that is SIGKILLed mid-stream and started again: every
interaction arrives exactly once, and the caller never sees an error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flywheel_sdk import Flywheel

from tests.live_gunicorn import GunicornServer

TOTAL = 6000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    live = GunicornServer(Path(tmp_path_factory.mktemp("sdk-gunicorn")))
    live.setup()
    live.start()
    yield live
    live.stop()


def test_killed_and_restarted_server_gets_every_interaction_once(server: GunicornServer):
    fw = Flywheel(
        server.url,
        server.key,
        batch_size=250,
        flush_interval=0.05,
        backoff_base=0.05,
        backoff_max=0.5,
        flush_at_exit=False,
    )
    logged: list[str] = []

    def log(n: int) -> None:  # the host application's calls
        for _ in range(n):
            i = len(logged)
            logged.append(
                fw.log_interaction(
                    messages=[{"role": "user", "content": f"question {i}"}],
                    response=f"answer {i}",
                    model_version="bot-1",
                )
            )

    log(2000)
    deadline = time.monotonic() + 120
    while fw.stats().created < 1000 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fw.stats().created >= 1000, "the first batches never arrived"
    log(1000)
    pending_at_kill = fw.stats().pending
    server.kill()  # batches in flight and more queued
    log(2000)  # the server is down: these queue up
    server.start()
    log(TOTAL - len(logged))
    assert fw.flush(timeout=120)
    stats = fw.stats()
    fw.close()

    assert pending_at_kill > 0  # the kill happened mid-stream
    assert len(set(logged)) == TOTAL
    assert server.count() == (TOTAL, TOTAL)  # every interaction, exactly once
    assert stats.retries >= 1
    # Each batch was answered once: a retried batch that had been stored shows as duplicates.
    assert stats.created + stats.duplicates == TOTAL
    assert (stats.dropped, stats.failed, stats.rejected, stats.pending) == (0, 0, 0, 0)
