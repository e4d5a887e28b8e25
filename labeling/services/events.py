"""Events: implicit and explicit signals about interactions, possibly arriving before them.

Invariants:
- An event whose interaction has not arrived is stored with ``interaction = NULL`` and attached
  when the interaction is processed (``labeling.process_interactions`` / the sweep).
- A client-supplied ``event_id`` is unique per project: a retried event is stored once.
- Storing events never changes aggregates directly; it marks the interactions unprocessed and the
  task recomputes ``signals`` from the Event rows (:mod:`labeling.services.processing`, which also
  attaches the orphans).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from labeling.models import Event, EventType, Interaction, Project
from labeling.nul import NUL, NUL_MESSAGE
from labeling.selectors.interactions import interaction_ids_by_external_id
from labeling.services.bulk import insert_returning
from labeling.services.processing import processing_enqueue_on_commit

EVENT_FIELDS = frozenset({"external_id", "type", "name", "value", "at", "occurred_at", "event_id"})
NEEDS_NAME = frozenset({EventType.OUTCOME, EventType.SCORE})
NEEDS_VALUE = frozenset({EventType.SCORE, EventType.DWELL_MS})
BATCH_SIZE = 2000


@dataclass(frozen=True)
class EventRow:
    external_id: str
    type: str
    occurred_at: dt.datetime
    name: str = ""
    value: float | None = None
    event_id: str | None = None
    interaction_id: int | None = None

    def attach(self, interaction_id: int) -> EventRow:
        return replace(self, interaction_id=interaction_id)


@dataclass
class EventsResult:
    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    attached: int = 0  # created and attached to their interaction
    pending: int = 0  # created without it (the interaction has not arrived yet)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "attached": self.attached,
            "pending": self.pending,
            "errors": self.errors,
        }


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 string as an aware datetime (naive times are taken as UTC); None if invalid."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def event_clean(
    obj: Any,
    *,
    external_id: str | None,
    default_at: dt.datetime,
    event_types: frozenset[str],
    inline: bool = False,
) -> tuple[EventRow | None, dict[str, str]]:
    """Validate one event. ``external_id`` comes from the parent row for inline events."""
    if type(obj) is not dict:
        return None, {"event": "must be a JSON object"}
    errors: dict[str, str] = {}
    for key in sorted(obj.keys() - EVENT_FIELDS)[:10]:
        errors[str(key)[:100]] = "unknown field"
    if not inline:
        external_id = obj.get("external_id")
        if type(external_id) is not str or not external_id.strip():
            errors["external_id"] = "required: the interaction's external_id"
        elif len(external_id) > 200:
            errors["external_id"] = "longer than 200 characters"
        elif NUL in external_id:
            errors["external_id"] = NUL_MESSAGE
    etype = obj.get("type")
    if type(etype) is not str or etype not in event_types:
        errors["type"] = (
            f"unknown event type {etype!r}; built-in types are {', '.join(EventType.values)}"
            " (a project may declare custom types)"
        )
        etype = ""  # not hashable or unknown: the checks below must not match on it
    name = obj.get("name", "")
    if name is None:
        name = ""
    if type(name) is not str or len(name) > 100:
        errors["name"] = "must be a string of at most 100 characters"
    elif NUL in name:
        errors["name"] = NUL_MESSAGE
    elif etype in NEEDS_NAME and not name:
        errors["name"] = f"required for {etype} events"
    value = obj.get("value")
    if value is not None:
        if type(value) not in (int, float) or not math.isfinite(value):
            errors["value"] = "must be a finite number"
        elif etype == EventType.EDIT and not 0 <= value <= 1:
            errors["value"] = "an edit ratio must be between 0 and 1"
        elif etype == EventType.DWELL_MS and value < 0:
            errors["value"] = "must be >= 0"
    elif etype in NEEDS_VALUE:
        errors["value"] = f"required for {etype} events"
    raw_at = obj.get("at", obj.get("occurred_at"))
    at = default_at if raw_at is None else parse_time(raw_at)
    if at is None:
        errors["at"] = "must be an ISO 8601 date-time"
    event_id = obj.get("event_id")
    if event_id is not None and (type(event_id) is not str or not 0 < len(event_id) <= 200):
        errors["event_id"] = "must be a non-empty string of at most 200 characters"
    elif event_id is not None and NUL in event_id:
        errors["event_id"] = NUL_MESSAGE
    if errors:
        return None, errors
    assert at is not None
    assert isinstance(external_id, str)
    return (
        EventRow(
            external_id=external_id,
            type=etype,  # type: ignore[arg-type]
            occurred_at=at,
            name=name,
            value=None if value is None else float(value),
            event_id=event_id,
        ),
        {},
    )


@dataclass
class InsertCount:
    created: int
    duplicates: int
    attached: int = 0  # created with their interaction


def events_insert(*, project: Project, events: list[EventRow]) -> InsertCount:
    """Insert events (caller holds the transaction); a repeated ``event_id`` is skipped."""
    unique: list[EventRow] = []
    seen_ids: set[str] = set()
    duplicates = 0
    for event in events:
        if event.event_id is not None:
            if event.event_id in seen_ids:
                duplicates += 1
                continue
            seen_ids.add(event.event_id)
        unique.append(event)
    time_field = Event._meta.get_field("occurred_at")
    if connection.vendor == "postgresql":
        prep = lambda v: v  # noqa: E731
    else:
        prep = lambda v: time_field.get_db_prep_save(v, connection)  # noqa: E731
    rows = [
        (
            project.pk,
            e.interaction_id,
            e.external_id,
            e.event_id,
            e.type,
            e.name,
            e.value,
            prep(e.occurred_at),
        )
        for e in unique
    ]
    inserted = insert_returning(
        model=Event,
        columns=(
            "project_id",
            "interaction_id",
            "external_id",
            "event_id",
            "type",
            "name",
            "value",
            "occurred_at",
        ),
        rows=rows,
        conflict=("project_id", "event_id"),
        conflict_where='"event_id" IS NOT NULL',
        returning=("id", "interaction_id"),
    )
    return InsertCount(
        created=len(inserted),
        duplicates=duplicates + len(unique) - len(inserted),
        attached=sum(1 for _, interaction_id in inserted if interaction_id is not None),
    )


def events_ingest(
    *, project: Project, objects: list[Any], event_types: frozenset[str]
) -> EventsResult:
    """Validate and store standalone events (``POST /api/projects/{slug}/events/``).

    Events whose interaction exists are attached now and the interaction is marked unprocessed
    (its aggregates are recomputed after commit); the others wait as orphans.
    """
    result = EventsResult()
    now = timezone.now()
    valid: list[EventRow] = []
    for index, obj in enumerate(objects):
        event, errors = event_clean(obj, external_id=None, default_at=now, event_types=event_types)
        if event is None:
            result.rejected += 1
            result.errors.append({"index": index, "errors": errors})
        else:
            valid.append(event)
    for start in range(0, len(valid), BATCH_SIZE):
        _events_store_batch(project, valid[start : start + BATCH_SIZE], result)
    return result


@transaction.atomic
def _events_store_batch(project: Project, batch: list[EventRow], result: EventsResult) -> None:
    ids = interaction_ids_by_external_id(
        project_id=project.pk, external_ids=(e.external_id for e in batch)
    )
    rows = [e.attach(ids[e.external_id]) if e.external_id in ids else e for e in batch]
    counts = events_insert(project=project, events=rows)
    result.created += counts.created
    result.duplicates += counts.duplicates
    touched = sorted({r.interaction_id for r in rows if r.interaction_id is not None})
    result.attached += counts.attached
    result.pending += counts.created - counts.attached
    if touched:
        # Mark dirty first: if the broker is down, the sweep still recomputes these.
        Interaction.objects.filter(pk__in=touched).update(processed_at=None)
        processing_enqueue_on_commit(project_id=project.pk, interaction_ids=touched)
