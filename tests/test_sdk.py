"""The Python SDK (sdk/python) against the live server: the non-blocking logger, its async
interface, the OpenAI wrappers (with a real ``openai`` client and a fake OpenAI server on
loopback), a full queue and an unreachable server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import glob
import logging
import os
import shutil
import subprocess
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from flywheel_sdk import AsyncFlywheel, Flywheel, wrap_openai

from labeling.auth import generate_key, hash_key
from labeling.models import Event, IngestToken, Interaction, Project
from tests.fake_openai import FakeOpenAI
from tests.live_gunicorn import free_port

pytestmark = pytest.mark.django_db(transaction=True)

SDK_SOURCE = Path(__file__).resolve().parent.parent / "sdk" / "python"
MESSAGES = [{"role": "user", "content": "How do I reset my password?"}]
# On SQLite the live server's request threads share one in-memory connection, so two requests in
# flight at once can roll back each other's batch: send with one thread there. PostgreSQL (CI)
# keeps the SDK's default of two concurrent senders.
SENDERS = 1 if connection.vendor == "sqlite" else 2


def run_async(coroutine: Any) -> Any:
    """``asyncio.run`` in a thread of its own: the browser tests leave an event loop running in
    the main thread (Playwright's sync API), where ``asyncio.run`` refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture
def key(project: Project) -> str:
    raw = generate_key()
    IngestToken.objects.create(project=project, name="sdk", prefix=raw[:12], key_hash=hash_key(raw))
    return raw


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def test_batches_arrive_once_with_their_events(live_server: Any, key: str, project: Project):
    fw = Flywheel(
        live_server.url,
        key,
        batch_size=300,
        flush_interval=0.2,
        flush_at_exit=False,
        senders=SENDERS,
    )
    ids = [
        fw.log_interaction(
            messages=MESSAGES,
            response=f"answer {i}",
            model_version="bot-1",
            segment={"tier": "pro" if i % 2 else "free"},
            metadata={"i": i},
            scores={"judge": 0.5},
            events=[{"type": "copy"}] if i == 0 else None,
        )
        for i in range(1000)
    ]
    fw.log_event(ids[1], "thumbs_down")
    fw.log_event(ids[2], "edit", value=0.4)
    assert fw.flush(timeout=180), fw.stats()  # eager processing per batch is slow under load
    stats = fw.stats()
    fw.close()

    # 1000 interactions and 2 events (the inline event is counted with its row); a batch whose
    # answer was lost (a timeout on this loaded machine) is sent again and counted as duplicates.
    assert (stats.created + stats.duplicates, stats.pending, stats.failed) == (1002, 0, 0)
    assert Interaction.objects.filter(project=project).count() == 1000
    assert set(Interaction.objects.values_list("external_id", flat=True)) == set(ids)
    row = Interaction.objects.get(external_id=ids[3])
    assert (row.response, row.model_version, row.segment) == ("answer 3", "bot-1", {"tier": "pro"})
    assert sorted(Event.objects.values_list("type", flat=True)) == ["copy", "edit", "thumbs_down"]


def test_a_repeated_external_id_is_stored_once(live_server: Any, key: str, project: Project):
    with Flywheel(
        live_server.url, key, project=project.slug, flush_at_exit=False, senders=SENDERS
    ) as fw:
        for _ in range(3):
            fw.log_interaction(external_id="req-1", messages=MESSAGES, response="hi")
        fw.flush(timeout=30)
        stats = fw.stats()
    assert stats.created == 1
    assert stats.duplicates >= 2
    assert Interaction.objects.filter(external_id="req-1").count() == 1


def test_bad_rows_are_counted_and_logged_never_raised(
    live_server: Any, key: str, caplog: pytest.LogCaptureFixture
):
    fw = Flywheel(live_server.url, key, flush_at_exit=False, senders=SENDERS)
    with caplog.at_level(logging.WARNING, logger="flywheel_sdk"):
        fw.log_interaction(messages=[{"role": "robot", "content": "?"}], response="x")  # server
        fw.log_interaction(messages=MESSAGES, response="x", metadata={"obj": object()})  # client
        fw.log_interaction(messages=MESSAGES, response="fine")
        fw.flush(timeout=30)
    stats = fw.stats()
    fw.close()
    assert (stats.created, stats.rejected, stats.invalid) == (1, 1, 1)
    text = caplog.text
    assert "rejected 1 of 2 rows" in text
    assert "messages[0].role" in text
    assert "could not encode a row" in text


def test_a_wrong_key_fails_the_batch_with_a_logged_reason(
    live_server: Any, caplog: pytest.LogCaptureFixture
):
    fw = Flywheel(live_server.url, "fwi_not-a-key", flush_at_exit=False, senders=SENDERS)
    with caplog.at_level(logging.ERROR, logger="flywheel_sdk"):
        fw.log_interaction(messages=MESSAGES, response="x")
        assert fw.flush(timeout=30)
    assert fw.stats().failed == 1
    assert "HTTP 401" in caplog.text
    fw.close()


def test_server_down_memory_stays_bounded_and_nothing_raises(caplog: pytest.LogCaptureFixture):
    """Nothing listens on the port: rows beyond the bound are dropped (counted, logged once),
    the queue never grows past it, and closing gives up after its timeout."""
    url = f"http://127.0.0.1:{free_port()}"
    fw = Flywheel(
        url,
        "fwi_x",
        project="p",
        max_queue=1000,
        max_queue_bytes=10_000_000,
        flush_at_exit=False,
        backoff_base=0.05,
        backoff_max=0.2,
    )
    big = "x" * 1000
    tracemalloc.start()
    with caplog.at_level(logging.WARNING, logger="flywheel_sdk"):
        for i in range(22_000):
            fw.log_interaction(messages=MESSAGES, response=big, metadata={"i": i})
        # What the SDK's own code allocated and still holds (the encoded rows it keeps).
        held = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, "*flywheel_sdk*")]
        )
    tracemalloc.stop()
    held_bytes = sum(stat.size for stat in held.statistics("filename"))
    stats = fw.stats()
    in_flight = fw.senders * fw.batch_size  # batches the senders took out to retry
    assert stats.queued <= 1000 + in_flight
    assert stats.dropped == 22_000 - stats.queued
    assert stats.pending <= 1000 + in_flight
    assert held_bytes < 4_000_000  # about 3,000 rows of 1 KB, not 22,000
    assert caplog.text.count("queue full") == 1  # a warning, not one per dropped row
    assert fw.close(timeout=0.5) is False
    assert fw.stats().failed >= 1
    fw.log_interaction(messages=MESSAGES, response="after close")  # no exception, dropped


def test_the_project_comes_from_the_key(live_server: Any, key: str, api_as: Any):
    fw = Flywheel(live_server.url, key, flush_at_exit=False, senders=SENDERS)
    fw.log_interaction(messages=MESSAGES, response="hi")
    fw.flush(timeout=30)
    assert fw.project == "support-bot"
    fw.close()
    # A person's token has no single project.
    assert api_as("engineer").get(reverse("labeling_api:ingest-whoami")).status_code == 403


def test_async_interface(live_server: Any, key: str, project: Project):
    async def main() -> Any:
        async with AsyncFlywheel(live_server.url, key, flush_at_exit=False, senders=SENDERS) as fw:
            ext = fw.log_interaction(messages=MESSAGES, response="from a coroutine")
            fw.log_event(ext, "thumbs_up")
            assert await fw.flush(timeout=30)
            return fw.stats()

    stats = run_async(main())
    assert stats.created + stats.duplicates == 2
    assert Interaction.objects.get(project=project).response == "from a coroutine"


def test_openai_sync_and_streaming_are_logged(
    live_server: Any, key: str, project: Project, fake_openai: FakeOpenAI
):
    from openai import OpenAI

    fw = Flywheel(live_server.url, key, flush_at_exit=False, senders=SENDERS)
    client = fw.wrap_openai(
        OpenAI(base_url=fake_openai.url, api_key="sk-test"), segment={"surface": "api"}
    )
    answer = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "developer", "content": "Be brief."}, *MESSAGES],
        temperature=0.2,
    )
    assert answer.choices[0].message.content == "echo: How do I reset my password?"
    stream = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Stream it"}]}],
        stream=True,
        stream_options={"include_usage": True},
        flywheel={"conversation_id": "conv-9", "metadata": {"user": "u1"}},
    )
    pieces = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == "echo: Stream it"
    assert fw.flush(timeout=30)
    fw.close()

    plain = Interaction.objects.get(external_id=answer.id)
    assert plain.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How do I reset my password?"},
    ]
    assert plain.response == "echo: How do I reset my password?"
    assert plain.model_version == "gpt-test-2026-11"
    assert plain.segment == {"surface": "api"}
    assert plain.metadata["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 3,
        "total_tokens": 12,
    }
    assert plain.metadata["request"] == {"temperature": 0.2, "model": "gpt-test"}
    streamed = Interaction.objects.exclude(pk=plain.pk).get(project=project)
    assert streamed.response == "echo: Stream it"
    assert streamed.messages == [{"role": "user", "content": "Stream it"}]
    assert streamed.conversation_id == "conv-9"
    assert streamed.metadata["streamed"] is True
    assert streamed.metadata["user"] == "u1"
    assert streamed.metadata["usage"]["total_tokens"] == 12


def test_openai_async_streaming_is_logged(
    live_server: Any, key: str, project: Project, fake_openai: FakeOpenAI
):
    from openai import AsyncOpenAI

    async def main() -> str:
        async with AsyncFlywheel(live_server.url, key, flush_at_exit=False, senders=SENDERS) as fw:
            client = wrap_openai(AsyncOpenAI(base_url=fake_openai.url, api_key="sk-test"), fw.sync)
            stream = await client.chat.completions.create(
                model="gpt-test", messages=MESSAGES, stream=True
            )
            text = ""
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
            done = await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
            await fw.flush(timeout=30)
            return text + "|" + done.id

    text, done_id = run_async(main()).split("|")
    assert text == "echo: How do I reset my password?"
    assert Interaction.objects.filter(project=project).count() == 2
    assert Interaction.objects.get(external_id=done_id).metadata["streamed"] is False


def _python39() -> str | None:
    found = shutil.which("python3.9")
    candidates = [found] if found else []
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))
    for path in candidates:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return path
    return None


def test_the_sdk_runs_on_python_39(live_server: Any, key: str, project: Project):
    """The SDK promises Python >= 3.9 and no dependency: run it there, from its source folder."""
    python = _python39()
    if python is None:
        pytest.skip("no Python 3.9 interpreter on this machine")
    script = (
        "import sys, flywheel_sdk\n"
        "fw = flywheel_sdk.Flywheel(sys.argv[1], sys.argv[2], flush_at_exit=False)\n"
        "fw.log_interaction(external_id='py39', messages=[{'role': 'user', 'content': 'q'}],"
        " response='from 3.9')\n"
        "assert fw.flush(timeout=60), fw.stats()\n"
        "print(fw.stats().created + fw.stats().duplicates)\n"
    )
    done = subprocess.run(
        [python, "-c", script, live_server.url, key],
        env={"PYTHONPATH": str(SDK_SOURCE), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert Interaction.objects.get(project=project, external_id="py39").response == "from 3.9"
