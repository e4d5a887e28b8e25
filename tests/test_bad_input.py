"""The bad-input corpus: each bad input is refused with an error that names where it is, and good
data sent beside it is stored untouched.

Table-driven; ``python -m tests.test_bad_input`` is not needed: the tables below are what
bench/RESULTS.md lists ("bad inputs tried and refused"). Body-level limits (oversize body -> 413
before reading it all, gzip bomb, corrupt gzip, too many rows) are tested in tests/test_ingest.py
and are only listed here, not repeated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Annotation, Event, Interaction, Project
from tests.conftest import client_for
from tests.factories import QueueItemFactory

BULK = reverse("labeling_api:interactions-bulk", kwargs={"slug": "support-bot"})
EVENTS = reverse("labeling_api:events", kwargs={"slug": "support-bot"})


def row(external_id: str, **extra: Any) -> dict[str, Any]:
    base = {
        "external_id": external_id,
        "occurred_at": "2026-11-20T10:02:03Z",
        "messages": [{"role": "user", "content": "Where is my order?"}],
        "response": "It ships tomorrow.",
        "segment": {"tier": "free"},
    }
    base.update(extra)
    return base


def line(obj: Any) -> bytes:
    return orjson.dumps(obj)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


FAR_FUTURE = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
NEAR_FUTURE = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()

# name -> (the bad JSONL line, the error key that must name the place, a word of the message)
INGEST_LINES: dict[str, tuple[bytes, str, str]] = {
    "malformed JSON": (b'{"external_id": "x", ', "line", "malformed JSON"),
    "invalid UTF-8": (line(row("bad")).replace(b"Where", b"Wh\xff\xfere"), "line", "UTF-8"),
    "not an object": (b"[1, 2, 3]", "row", "JSON object"),
    "missing external_id": (
        line({k: v for k, v in row("x").items() if k != "external_id"}),
        "external_id",
        "required",
    ),
    "missing response": (
        line({k: v for k, v in row("bad").items() if k != "response"}),
        "response",
        "",
    ),
    "wrong type: external_id number": (
        line({**row("x"), "external_id": 12}),
        "external_id",
        "string",
    ),
    "wrong type: messages string": (line(row("bad", messages="hi")), "messages", ""),
    "wrong type: a message's role is a list": (
        line(row("bad", messages=[{"role": ["user"], "content": "hi"}])),
        "messages[0].role",
        "one of",
    ),
    "wrong type: segment list": (line(row("bad", segment=["a"])), "segment", ""),
    "bad timestamp": (line(row("bad", occurred_at="yesterday")), "occurred_at", "ISO 8601"),
    "timestamp far in the future": (
        line(row("bad", occurred_at=FAR_FUTURE)),
        "occurred_at",
        "future",
    ),
    "unknown field": (line(row("bad", colour="red")), "colour", "unknown field"),
    "very long string": (line(row("bad", response="x" * 300_000)), "", "longer than"),
    "very long external_id": (line(row("y" * 5000)), "external_id", "longer than"),
    "deeply nested metadata": (
        line(row("bad")).replace(
            b'"segment"', b'"metadata":' + orjson.dumps(nested(200)) + b',"segment"'
        ),
        "metadata",
        "nested deeper",
    ),
    "nesting beyond the JSON parser": (
        b'{"external_id": "bad", "metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "line",
        "malformed JSON",
    ),
    # PostgreSQL stores no NUL in text or jsonb: refused per field, wherever it hides.
    "NUL in the response": (line(row("bad", response="It\x00ships")), "response", "NUL"),
    "NUL in external_id": (line(row("bad\x00")), "external_id", "NUL"),
    "NUL in model_version": (line(row("bad", model_version="v\x001")), "model_version", "NUL"),
    "NUL in a message": (
        line(row("bad", messages=[{"role": "user", "content": "Where\x00"}])),
        "messages[0].content",
        "NUL",
    ),
    "NUL in a message's extra field": (
        line(row("bad", messages=[{"role": "user", "content": "hi", "name": "a\x00"}])),
        "messages[0].name",
        "NUL",
    ),
    "NUL in a segment value": (
        line(row("bad", segment={"tier": "pro\x00"})),
        "segment.tier",
        "NUL",
    ),
    "NUL deep in metadata": (
        line(row("bad", metadata={"notes": ["ok", {"by": "a\x00b"}]})),
        "metadata.notes[1].by",
        "NUL",
    ),
    "NUL in a metadata key": (line(row("bad", metadata={"k\x00": 1})), "metadata.k\\u0000", "NUL"),
    "NUL in a score's name": (line(row("bad", scores={"judge\x00": 0.5})), "scores.judge", "NUL"),
    "NUL in an inline event": (
        line(row("bad", events=[{"type": "outcome", "name": "paid\x00"}])),
        "events[0].name",
        "NUL",
    ),
    "unknown inline event type": (
        line(row("bad", events=[{"type": "teleport"}])),
        "events[0].type",
        "unknown event type",
    ),
    "inline event value out of range": (
        line(row("bad", events=[{"type": "edit", "value": 7}])),
        "events[0].value",
        "between 0 and 1",
    ),
}


@pytest.mark.parametrize("name", list(INGEST_LINES))
@pytest.mark.django_db(transaction=True)
def test_bad_ingestion_line_is_refused_and_its_neighbours_stored(
    name: str, ingest_client: APIClient, project: Project
) -> None:
    bad, where, word = INGEST_LINES[name]
    body = line(row("good-before")) + b"\n" + bad + b"\n" + line(row("good-after")) + b"\n"
    response = ingest_client.generic("POST", BULK, body, content_type="application/x-ndjson")
    assert response.status_code == 201, response.content[:300]
    result = response.json()
    assert (result["created"], result["rejected"]) == (2, 1), result
    [error] = result["errors"]
    assert error["line"] == 2
    joined = " ".join(f"{k}: {v}" for k, v in error["errors"].items())
    if where:
        assert any(key.startswith(where) for key in error["errors"]), error
    assert word in joined, error
    stored = set(Interaction.objects.filter(project=project).values_list("external_id", flat=True))
    assert stored == {"good-before", "good-after"}


def test_a_day_ahead_is_accepted(ingest_client: APIClient, project: Project) -> None:
    """The future rule leaves room for clock skew: two hours ahead is fine."""
    response = ingest_client.generic(
        "POST",
        BULK,
        line(row("soon", occurred_at=NEAR_FUTURE)),
        content_type="application/x-ndjson",
    )
    assert response.json()["created"] == 1


@pytest.mark.django_db(transaction=True)
def test_duplicate_ids_in_one_batch_store_one_row(
    ingest_client: APIClient, project: Project
) -> None:
    body = line(row("dup")) + b"\n" + line(row("dup", response="changed")) + b"\n"
    result = ingest_client.generic("POST", BULK, body, content_type="application/x-ndjson").json()
    assert result["created"] == 1
    assert Interaction.objects.filter(project=project, external_id="dup").count() == 1
    assert Interaction.objects.get(external_id="dup").response == "It ships tomorrow."


EVENT_CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "unknown event type": ({"external_id": "good-before", "type": "teleport"}, "type", "unknown"),
    "event type of the wrong type": ({"external_id": "good-before", "type": {}}, "type", "unknown"),
    "event value out of range": (
        {"external_id": "good-before", "type": "edit", "value": 3},
        "value",
        "between 0 and 1",
    ),
    "event value not a number": (
        {"external_id": "good-before", "type": "rating", "value": "x"},
        "value",
        "number",
    ),
    "event without external_id": ({"type": "copy"}, "external_id", "required"),
    "event name with NUL": (
        {"external_id": "good-before", "type": "outcome", "name": "paid\x00"},
        "name",
        "NUL",
    ),
    "event_id with NUL": (
        {"external_id": "good-before", "type": "copy", "event_id": "e\x00"},
        "event_id",
        "NUL",
    ),
    "event external_id with NUL": (
        {"external_id": "good\x00", "type": "copy"},
        "external_id",
        "NUL",
    ),
    "event bad timestamp": (
        {"external_id": "good-before", "type": "copy", "at": "soon"},
        "at",
        "ISO 8601",
    ),
}


@pytest.mark.parametrize("name", list(EVENT_CASES))
def test_bad_event_is_refused_and_its_neighbour_stored(
    name: str, ingest_client: APIClient, project: Project
) -> None:
    bad, where, word = EVENT_CASES[name]
    ingest_client.generic(
        "POST", BULK, line(row("good-before")), content_type="application/x-ndjson"
    )
    good = {"external_id": "good-before", "type": "copy", "event_id": "ok-1"}
    response = ingest_client.post(EVENTS, [good, bad], format="json")
    assert response.status_code in (200, 201), response.content[:300]
    body = response.json()
    assert body["rejected"] == 1, body
    [error] = body["errors"]
    assert error["index"] == 1, error
    assert where in error["errors"], error
    assert word in str(error["errors"][where]), error
    assert list(Event.objects.values_list("event_id", flat=True)) == ["ok-1"]


# Submission: values checked against the project's label schema (DEFAULT_SCHEMA).
SUBMIT_CASES: dict[str, tuple[Any, str]] = {
    "rating out of range": ({"quality": 9}, "quality"),
    "rating of the wrong type": ({"quality": "great"}, "quality"),
    "missing required answer": ({"failure_modes": []}, "quality"),
    "unknown question": ({"quality": 4, "colour": "red"}, "colour"),
    "unknown option": ({"quality": 2, "failure_modes": ["teleported"]}, "failure_modes"),
    "values not an object": ([4], "values"),
    "very long text": ({"quality": 3, "correction": "x" * 300_000}, "correction"),
    "NUL in a text answer": ({"quality": 3, "correction": "Fixed\x00"}, "values.correction"),
}


@pytest.mark.parametrize("name", list(SUBMIT_CASES))
def test_bad_submission_is_refused_and_nothing_stored(
    name: str, project: Project, member: Callable[..., Any]
) -> None:
    QueueItemFactory(interaction__project=project)
    client = client_for(member())
    lease = client.post(reverse("labeling_api:queue-next", kwargs={"slug": project.slug})).json()
    values, where = SUBMIT_CASES[name]
    response = client.post(
        reverse("labeling_api:assignment-submit", kwargs={"assignment_id": lease["id"]}),
        {"values": values},
        format="json",
    )
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["detail"]
    assert where in str(body["errors"]), body
    assert not Annotation.objects.exists()
    # The same lease still takes a good answer afterwards.
    ok = client.post(
        reverse("labeling_api:assignment-submit", kwargs={"assignment_id": lease["id"]}),
        {"values": {"quality": 4}},
        format="json",
    )
    assert ok.status_code in (200, 201), ok.content[:300]
    assert Annotation.objects.count() == 1


def corpus_table() -> list[tuple[str, str]]:
    """(area, bad input) rows for bench/RESULTS.md."""
    rows = [("ingest (JSONL line)", name) for name in INGEST_LINES]
    rows += [("ingest (JSONL)", "duplicate external_id in one batch")]
    rows += [("events", name) for name in EVENT_CASES]
    rows += [("submission", name) for name in SUBMIT_CASES]
    rows += [
        ("ingest (body)", name)
        for name in (
            "oversize body (413)",
            "gzip bomb (413)",
            "corrupt gzip (400)",
            "too many rows (413)",
        )
    ]
    return rows
