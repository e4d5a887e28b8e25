"""Ingestion API: single, array, JSONL, gzip, duplicates, partial rejects, limits, late events."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Event, Interaction, Project

BULK = reverse("labeling_api:interactions-bulk", kwargs={"slug": "support-bot"})
ARRAY = reverse("labeling_api:interactions", kwargs={"slug": "support-bot"})
EVENTS = reverse("labeling_api:events", kwargs={"slug": "support-bot"})


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


@pytest.mark.django_db(transaction=True)
def test_array_with_partial_rejects_reports_indexes(
    ingest_client: APIClient, project: Project
) -> None:
    rows = [
        row("b1"),
        row("b2", occurred_at="yesterday"),
        row("b3", messages=[{"role": "robot", "content": 3}]),
        row("b4", segment={"tier": ["a", "b"]}),
        {"external_id": "b5"},
        row("b6", scores={"judge": "high"}, extra_field=1),
        row("b7"),
    ]
    response = ingest_client.post(ARRAY, rows, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["created"], body["duplicates"], body["rejected"]) == (2, 0, 5)
    errors = {e["index"]: e["errors"] for e in body["errors"]}
    assert set(errors) == {1, 2, 3, 4, 5}
    assert "occurred_at" in errors[1]
    assert set(errors[2]) == {"messages[0].role", "messages[0].content"}
    assert "segment.tier" in errors[3]
    assert {"occurred_at", "messages", "response"} <= set(errors[4])
    assert {"scores.judge", "extra_field"} <= set(errors[5])
    stored = set(Interaction.objects.filter(project=project).values_list("external_id", flat=True))
    assert stored == {"b1", "b7"}


@pytest.mark.django_db(transaction=True)
def test_jsonl_duplicates_within_and_across_batches(
    ingest_client: APIClient, project: Project
) -> None:
    body = jsonl([row("c1"), row("c2"), row("c1", response="changed"), row("c3")])
    first = post_bulk(ingest_client, body)
    assert first.status_code == 201
    assert first.json() == {"created": 3, "duplicates": 1, "rejected": 0, "errors": []}
    # The same batch again (a client retry): nothing new.
    second = post_bulk(ingest_client, body)
    assert second.status_code == 200
    assert second.json() == {"created": 0, "duplicates": 4, "rejected": 0, "errors": []}
    assert Interaction.objects.filter(project=project).count() == 3
    # The first occurrence wins.
    assert (
        Interaction.objects.get(project=project, external_id="c1").response == "It ships tomorrow."
    )


@pytest.mark.django_db(transaction=True)
def test_jsonl_batches_larger_than_one_insert(
    ingest_client: APIClient, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """51 rows with a batch size of 7 are stored in 8 transactions, and a duplicate whose first
    copy is in an earlier batch is still counted once."""
    from labeling.services import ingest as ingest_service
    from labeling.services.ingest import storage

    monkeypatch.setattr(ingest_service, "BATCH_SIZE", 7)  # read at call time by the pipeline
    batches: list[list[str]] = []
    real_store_batch = storage.store_batch

    def recording_store_batch(project: Project, batch: list[Any], result: Any) -> None:
        batches.append([r.external_id for r in batch])
        real_store_batch(project, batch, result)

    monkeypatch.setattr(ingest_service, "store_batch", recording_store_batch)
    rows = [row(f"d{i}") for i in range(50)] + [row("d3")]
    response = post_bulk(ingest_client, jsonl(rows))
    assert [len(b) for b in batches] == [7, 7, 7, 7, 7, 7, 7, 2]
    assert batches[-1] == ["d49", "d3"]  # the repeat arrives in the last batch
    assert response.json()["created"] == 50
    assert response.json()["duplicates"] == 1
    assert Interaction.objects.filter(project=project).count() == 50
    assert not Interaction.objects.filter(project=project, processed_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_gzip_jsonl(ingest_client: APIClient, project: Project) -> None:
    body = gzip.compress(jsonl([row(f"g{i}") for i in range(20)]))
    response = post_bulk(ingest_client, body, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 201
    assert response.json()["created"] == 20
    # Two concatenated gzip members are one valid gzip stream.
    body2 = gzip.compress(jsonl([row("g100")])) + gzip.compress(jsonl([row("g101")]))
    response = post_bulk(ingest_client, body2, HTTP_CONTENT_ENCODING="gzip")
    assert response.json()["created"] == 2


@pytest.mark.django_db(transaction=True)
def test_corrupt_gzip_is_a_400(ingest_client: APIClient) -> None:
    response = post_bulk(ingest_client, b"this is not gzip", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 400
    assert "gzip" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_malformed_json_and_invalid_utf8_lines_are_rejected_with_line_numbers(
    ingest_client: APIClient, project: Project
) -> None:
    good = orjson.dumps(row("e1"))
    bad_utf8 = orjson.dumps(row("e2")).replace(b"Where", b"Wh\xff\xfere")
    body = b"\n".join(
        [good, b'{"external_id": "e3", ', b"", bad_utf8, b"[1, 2]", orjson.dumps(row("e4"))]
    )
    response = post_bulk(ingest_client, body + b"\n")
    assert response.status_code == 201
    result = response.json()
    assert (result["created"], result["rejected"]) == (2, 3)
    by_line = {e["line"]: e["errors"] for e in result["errors"]}
    assert set(by_line) == {2, 4, 5}
    assert "malformed JSON" in by_line[2]["line"]
    assert "invalid UTF-8" in by_line[4]["line"]
    assert by_line[5] == {"row": "must be a JSON object"}
    assert set(Interaction.objects.values_list("external_id", flat=True)) == {"e1", "e4"}


@pytest.mark.django_db(transaction=True)
def test_last_line_without_newline_and_crlf(ingest_client: APIClient) -> None:
    body = orjson.dumps(row("f1")) + b"\r\n" + orjson.dumps(row("f2"))
    assert post_bulk(ingest_client, body).json()["created"] == 2


@pytest.mark.django_db(transaction=True)
def test_oversize_body_is_413(ingest_client: APIClient, project: Project, settings: Any) -> None:
    settings.FLYWHEEL = {**settings.FLYWHEEL, "MAX_REQUEST_BYTES": 2000}
    body = jsonl([row(f"h{i}") for i in range(20)])
    assert len(body) > 2000
    response = post_bulk(ingest_client, body)
    assert response.status_code == 413
    assert "exceeds the limit" in response.json()["detail"]
    assert response.json()["errors"]["body"]
    response = ingest_client.post(ARRAY, [row(f"h{i}") for i in range(20)], format="json")
    assert response.status_code == 413
    assert not Interaction.objects.filter(project=project).exists()


@pytest.mark.django_db(transaction=True)
def test_gzip_bomb_is_refused(ingest_client: APIClient, settings: Any) -> None:
    settings.FLYWHEEL = {
        **settings.FLYWHEEL,
        "MAX_REQUEST_BYTES": 1_000_000,
        "MAX_DECOMPRESSED_BYTES": 5_000_000,
    }
    bomb = gzip.compress(b"\n" * 200_000_000, compresslevel=9)
    assert len(bomb) < 1_000_000
    response = post_bulk(ingest_client, bomb, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413
    assert "Decompressed body" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_oversize_row_and_field(ingest_client: APIClient, settings: Any) -> None:
    settings.FLYWHEEL = {**settings.FLYWHEEL, "MAX_ROW_BYTES": 3000, "MAX_FIELD_CHARS": 500}
    body = jsonl(
        [row("i1", response="x" * 600), row("i2", metadata={"blob": "y" * 5000}), row("i3")]
    )
    result = post_bulk(ingest_client, body).json()
    assert result["created"] == 1
    by_line = {e["line"]: e["errors"] for e in result["errors"]}
    assert "response" in by_line[1]
    assert "longer than" in by_line[2]["line"]


@pytest.mark.django_db(transaction=True)
def test_too_many_rows_is_413_after_storing_the_first(
    ingest_client: APIClient, settings: Any
) -> None:
    settings.FLYWHEEL = {**settings.FLYWHEEL, "MAX_ROWS_PER_REQUEST": 3}
    response = post_bulk(ingest_client, jsonl([row(f"j{i}") for i in range(5)]))
    assert response.status_code == 413
    assert response.json()["result"]["created"] == 3
    assert Interaction.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_inline_events_and_late_events_are_attached(
    ingest_client: APIClient, project: Project
) -> None:
    # Events for an interaction that has not arrived yet are kept...
    early = [
        {"external_id": "k1", "type": "thumbs_down", "at": "2026-11-20T10:05:00Z"},
        {"external_id": "k1", "type": "score", "name": "reward", "value": -0.5},
        {"external_id": "k1", "type": "regenerate", "event_id": "ev-1"},
        {"external_id": "k1", "type": "regenerate", "event_id": "ev-1"},
    ]
    response = ingest_client.post(EVENTS, early, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["created"], body["duplicates"], body["pending"]) == (3, 1, 0 + 3)
    assert Event.objects.filter(interaction__isnull=True).count() == 3
    # ...and attached when it arrives; its own inline events count too.
    post_bulk(
        ingest_client, jsonl([row("k1", events=[{"type": "copy"}, {"type": "edit", "value": 0.4}])])
    )
    interaction = Interaction.objects.get(project=project, external_id="k1")
    assert Event.objects.filter(interaction=interaction).count() == 5
    assert interaction.signals == {
        "thumbs_down": 1,
        "score": 1,
        "regenerate": 1,
        "copy": 1,
        "edit": 1,
        "edit_ratio": 0.4,
    }
    assert interaction.explicit_rating == -1
    assert interaction.scores == {"judge": 0.8, "reward": -0.5}
    # A later thumbs up (after the thumbs down) changes the explicit rating; a retry of the
    # same event_id does nothing.
    later = [
        {"external_id": "k1", "type": "thumbs_up", "at": "2026-11-20T11:00:00Z"},
        {"external_id": "k1", "type": "regenerate", "event_id": "ev-1"},
    ]
    body = ingest_client.post(EVENTS, later, format="json").json()
    assert (body["created"], body["duplicates"], body["attached"]) == (1, 1, 1)
    interaction.refresh_from_db()
    assert interaction.explicit_rating == 1
    assert interaction.signals["thumbs_up"] == 1
    assert interaction.signals["regenerate"] == 1


@pytest.mark.django_db(transaction=True)
def test_event_types_validated_and_custom_types_accepted(
    ingest_client: APIClient, project: Project
) -> None:
    project.custom_event_types = ["escalated"]
    project.save(update_fields=["custom_event_types"])
    post_bulk(ingest_client, jsonl([row("l1")]))
    events = [
        {"external_id": "l1", "type": "escalated"},
        {"external_id": "l1", "type": "teleported"},
        {"external_id": "l1", "type": "score", "name": "judge"},
        {"external_id": "l1", "type": "edit", "value": 3},
        {"external_id": "l1", "type": "outcome", "name": "resolved", "value": 1},
        {"external_id": "l1", "type": "dwell_ms", "value": 1500},
    ]
    body = ingest_client.post(EVENTS, events, format="json").json()
    assert (body["created"], body["rejected"]) == (3, 3)
    errors = {e["index"]: e["errors"] for e in body["errors"]}
    assert "unknown event type 'teleported'" in errors[1]["type"]
    assert errors[2] == {"value": "required for score events"}
    assert "between 0 and 1" in errors[3]["value"]
    signals = Interaction.objects.get(external_id="l1").signals
    assert signals == {
        "escalated": 1,
        "outcome": {"resolved": 1.0},
        "dwell_events": 1,
        "dwell_ms": 1500.0,
    }


@pytest.mark.django_db(transaction=True)
def test_pii_redaction(ingest_client: APIClient, project: Project) -> None:
    project.redact_pii = True
    project.save(update_fields=["redact_pii"])
    text = "Mail jane.doe@example.com, call +1 415 555 0100, card 4111 1111 1111 1111."
    post_bulk(
        ingest_client,
        jsonl([row("p1", messages=[{"role": "user", "content": text}], response=text)]),
    )
    interaction = Interaction.objects.get(external_id="p1")
    expected = "Mail [EMAIL], call [PHONE], card [CARD]."
    assert interaction.response == expected
    assert interaction.messages[0]["content"] == expected


def test_redact_keeps_non_card_numbers() -> None:
    from labeling.redact import redact_text

    assert redact_text("order 1234 5678 9012 3456 shipped") == "order 1234 5678 9012 3456 shipped"
    assert redact_text("version 2.1.3 in 2026") == "version 2.1.3 in 2026"


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1 << 20])
def test_jsonl_splitter_across_chunk_boundaries(chunk_size: int) -> None:
    from labeling.limits import current_limits
    from labeling.services.ingest import ParseError, jsonl_items

    limits = current_limits()
    limits = type(limits)(**{**limits.__dict__, "max_row_bytes": 40})
    body = (
        b"\xef\xbb\xbf"
        + b'{"a": 1}\n\n'
        + b'{"long": "'
        + b"x" * 100
        + b'"}\n'
        + b'{"b": 2}\r\n'
        + b"{oops\n"
        + b'{"c": 3}'
    )
    chunks = [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)]
    out = list(jsonl_items(chunks, limits=limits))
    decoded = [(n, obj) for n, obj in out if not isinstance(obj, ParseError)]
    errors = {n: obj.errors["line"] for n, obj in out if isinstance(obj, ParseError)}
    assert decoded == [(1, {"a": 1}), (4, {"b": 2}), (6, {"c": 3})]
    assert set(errors) == {3, 5}
    assert "longer than 40 bytes" in errors[3]
    assert "malformed JSON" in errors[5]
