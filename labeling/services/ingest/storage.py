"""Ingestion, step 3: store validated rows, one batch per transaction, and count exactly.

``(project, external_id)`` is unique: a repeated id (in the same batch, a later batch or a
concurrent client) is counted as a duplicate and never makes a second row
(:func:`labeling.services.bulk.insert_returning`). Each committed batch hands its new ids to
``labeling.process_interactions`` after commit; if the broker is down the sweep catches up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction

from labeling.models import Interaction, Project
from labeling.services.bulk import insert_returning
from labeling.services.events import events_insert
from labeling.services.ingest.validation import INSERT_COLUMNS, CleanRow
from labeling.services.processing import processing_enqueue_on_commit

MAX_REPORTED_ERRORS = 1000


@dataclass
class IngestResult:
    """Counts and the rejects (``{"line"|"index": n, "errors": {field: message}}``)."""

    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    created_ids: list[int] = field(default_factory=list)
    events_created: int = 0

    def reject(
        self, loc_key: str, loc: int, errors: dict[str, str], external_id: Any = None
    ) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            entry: dict[str, Any] = {loc_key: loc, "errors": errors}
            if isinstance(external_id, str):
                entry["external_id"] = external_id
            self.errors.append(entry)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "created": self.created,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors,
        }
        if self.rejected > len(self.errors):
            out["errors_truncated"] = True
        return out


def time_preparer() -> Callable[[dt.datetime], Any]:
    """How a datetime is passed to the current database (ISO text for SQLite, as-is for PG)."""
    time_field = Interaction._meta.get_field("occurred_at")
    if connection.vendor == "postgresql":
        return lambda value: value
    return lambda value: time_field.get_db_prep_save(value, connection)


def store_batch(project: Project, batch: list[CleanRow], result: IngestResult) -> None:
    """Insert one batch in its own transaction; count created/duplicates exactly."""
    unique: dict[str, CleanRow] = {}
    for row in batch:
        if row.external_id in unique:
            result.duplicates += 1
        else:
            unique[row.external_id] = row
    with transaction.atomic():
        inserted = insert_returning(
            model=Interaction,
            columns=INSERT_COLUMNS,
            rows=[row.values for row in unique.values()],
            conflict=("project_id", "external_id"),
            returning=("id", "external_id"),
        )
        created = {ext: pk for pk, ext in inserted}
        result.created += len(created)
        result.duplicates += len(unique) - len(created)
        ids = list(created.values())
        result.created_ids.extend(ids)
        # Inline events of a duplicate row are dropped: the row (and its events) already arrived.
        events = [
            event.attach(created[ext])
            for ext, row in unique.items()
            if ext in created
            for event in row.events
        ]
        if events:
            result.events_created += events_insert(project=project, events=events).created
        processing_enqueue_on_commit(project_id=project.pk, interaction_ids=ids)
