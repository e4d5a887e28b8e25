"""Ingestion pauses Python's cyclic garbage collector while it checks rows, and always resumes it.

The rows' objects hold no reference cycles, so the collector only re-walked them (about a tenth of
a row's CPU, bench/RESULTS.md "Ingestion"); a pause that outlived the call would leak every cycle
the process makes afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from labeling.models import Interaction, Project
from labeling.services.ingest import (
    TooManyRows,
    cyclic_gc_paused,
    interactions_ingest,
    interactions_ingest_jsonl,
)


def row(external_id: str) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "occurred_at": "2026-11-20T10:02:03Z",
        "messages": [{"role": "user", "content": "Where is my order?"}],
        "response": "It ships tomorrow.",
    }


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_rows_are_checked_with_the_collector_paused_and_it_resumes(project: Project) -> None:
    seen: list[bool] = []

    def items() -> Iterator[tuple[int, Any]]:
        for i in range(5):
            seen.append(gc.isenabled())
            yield i, row(f"r{i}") if i != 2 else {"external_id": "bad"}

    result = interactions_ingest(project=project, items=items(), batch_size=2)
    assert (result.created, result.rejected) == (4, 1)
    assert seen == [False] * 5
    assert gc.isenabled()


@pytest.mark.django_db(transaction=True)
def test_the_collector_resumes_after_a_refused_body(project: Project, settings: Any) -> None:
    settings.FLYWHEEL = {**settings.FLYWHEEL, "MAX_ROWS_PER_REQUEST": 3}
    body = b"".join(orjson.dumps(row(f"j{i}")) + b"\n" for i in range(5))
    with pytest.raises(TooManyRows):
        interactions_ingest_jsonl(project=project, chunks=[body])
    assert gc.isenabled()
    assert Interaction.objects.count() == 3


def test_a_collector_paused_by_the_caller_stays_paused(project: Project) -> None:
    gc.disable()
    interactions_ingest(project=project, items=iter([(1, row("a"))]))
    assert not gc.isenabled()
    assert Interaction.objects.filter(external_id="a").exists()


def test_nested_pauses_resume_once_at_the_outermost() -> None:
    with cyclic_gc_paused():
        with cyclic_gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
