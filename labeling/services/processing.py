"""Processing after ingestion: attach late events, recompute signal aggregates, notify scoring.

``Interaction.signals`` and ``explicit_rating`` are always recomputed from the Event rows, never
incremented in place, so re-running the work is harmless and the aggregates cannot drift.

``signals`` shape (read by the sampler's features):
``{"<type>": count, ...}`` for every event type seen (built-in and custom), plus
``"edit_ratio"``: the largest edit ratio (0..1), ``"dwell_ms"``: total dwell time (its event count
is ``"dwell_events"``), and
``"outcome"``: ``{name: latest value}``. ``explicit_rating`` is +1/-1 from the latest thumbs event.
``score`` events set ``Interaction.scores[name]`` to their latest value.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from labeling import dispatch, hooks
from labeling.models import Event, EventType, Interaction
from labeling.selectors.interactions import interaction_ids_by_external_id

PROCESS_CHUNK = 2000


def signals_aggregate(
    events: Iterable[tuple[str, str, float | None]],
) -> tuple[dict[str, Any], int | None, dict[str, float]]:
    """Aggregate ``(type, name, value)`` events, oldest first.

    Returns ``(signals, explicit_rating, score_updates)``; see the module docstring for the shape.
    """
    signals: dict[str, Any] = {}
    rating: int | None = None
    scores: dict[str, float] = {}
    outcomes: dict[str, float | None] = {}
    for etype, name, value in events:
        if etype == EventType.DWELL_MS:
            # "dwell_ms" holds the total time, so its event count goes under "dwell_events".
            signals["dwell_events"] = signals.get("dwell_events", 0) + 1
            signals["dwell_ms"] = float(signals.get("dwell_ms", 0.0)) + (value or 0.0)
            continue
        signals[etype] = signals.get(etype, 0) + 1
        if etype == EventType.THUMBS_UP:
            rating = 1
        elif etype == EventType.THUMBS_DOWN:
            rating = -1
        elif etype == EventType.EDIT and value is not None:
            signals["edit_ratio"] = max(float(signals.get("edit_ratio", 0.0)), value)
        elif etype == EventType.OUTCOME:
            outcomes[name] = value
        elif etype == EventType.SCORE and value is not None:
            scores[name] = value
    if outcomes:
        signals["outcome"] = outcomes
    return signals, rating, scores


def interactions_process(*, interaction_ids: Sequence[int]) -> list[int]:
    """Attach late events, recompute aggregates, set ``processed_at``, fire
    ``interactions_processed``. Idempotent; missing ids are ignored. Returns the processed ids.

    Each chunk locks its interaction rows first, so an event batch that marks a row dirty while
    it is being processed waits and leaves it dirty for the next run (nothing is lost).
    """
    done: list[int] = []
    ids = sorted({int(i) for i in interaction_ids})
    for start in range(0, len(ids), PROCESS_CHUNK):
        chunk = ids[start : start + PROCESS_CHUNK]
        with transaction.atomic():
            hooks.call("interactions_processing", interaction_ids=chunk)  # before the row locks
            rows = list(
                Interaction.objects.select_for_update()
                .filter(pk__in=chunk)
                .order_by("pk")
                .values_list("pk", "project_id", "explicit_rating")
            )
            if not rows:
                continue
            present = [pk for pk, _, _ in rows]
            events_attach_orphans(interaction_ids=present)
            by_interaction: dict[int, list[tuple[str, str, float | None]]] = defaultdict(list)
            for iid, etype, name, value in (
                Event.objects.filter(interaction_id__in=present)
                .order_by("occurred_at", "pk")
                .values_list("interaction_id", "type", "name", "value")
            ):
                by_interaction[iid].append((etype, name, value))
            now = timezone.now()
            scores_of = dict(
                Interaction.objects.filter(pk__in=list(by_interaction)).values_list("pk", "scores")
            )
            updates = []
            for pk, stored_scores in scores_of.items():
                signals, rating, score_updates = signals_aggregate(by_interaction[pk])
                scores = {**(stored_scores or {}), **score_updates}
                updates.append((pk, signals, rating, scores))
            _aggregates_write(updates, now)
            without = [pk for pk in present if pk not in by_interaction]
            if without:
                Interaction.objects.filter(pk__in=without).update(
                    signals={}, explicit_rating=None, processed_at=now
                )
            rated = {pk: rating for pk, _, rating, _ in updates}
            changes = [(pk, old, rated.get(pk)) for pk, _, old in rows if old != rated.get(pk)]
            if changes:  # in this transaction: the population's rating counts move with it
                hooks.call("ratings_changed", changes=changes)
            by_project: dict[int, list[int]] = defaultdict(list)
            for pk, project_id, _ in rows:
                by_project[project_id].append(pk)
            for project_id, pks in by_project.items():
                transaction.on_commit(_hook_firer(project_id, pks))
            done.extend(present)
    return done


def _hook_firer(project_id: int, interaction_ids: list[int]) -> Callable[[], None]:
    def fire() -> None:
        hooks.fire("interactions_processed", project_id=project_id, interaction_ids=interaction_ids)

    return fire


def _aggregates_write(
    updates: list[tuple[int, dict[str, Any], int | None, dict[str, Any]]], now: Any
) -> None:
    """Set signals, explicit_rating, scores and processed_at of many rows, a few hundred per
    ``UPDATE ... FROM (VALUES ...)`` statement (PostgreSQL, SQLite >= 3.33); much cheaper than
    ``bulk_update``'s CASE expressions."""
    if not updates:
        return
    table = connection.ops.quote_name(Interaction._meta.db_table)
    stamp = Interaction._meta.get_field("processed_at").get_db_prep_save(now, connection)
    with connection.cursor() as cursor:
        for start in range(0, len(updates), 200):
            chunk = updates[start : start + 200]
            values = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
            params: list[Any] = [stamp]
            for pk, signals, rating, scores in chunk:
                params += [
                    pk,
                    orjson.dumps(signals).decode(),
                    rating,
                    orjson.dumps(scores).decode(),
                ]
            if connection.vendor == "postgresql":
                sql = (
                    f"UPDATE {table} AS t SET signals = v.s::jsonb, "
                    "explicit_rating = v.r::smallint, scores = v.sc::jsonb, processed_at = %s "
                    f"FROM (VALUES {values}) AS v(id, s, r, sc) WHERE t.id = v.id"
                )
            else:
                sql = (
                    f"UPDATE {table} SET signals = v.column2, explicit_rating = v.column3, "
                    f"scores = v.column4, processed_at = %s FROM (VALUES {values}) AS v "
                    f"WHERE {table}.id = v.column1"
                )
            cursor.execute(sql, params)


def unprocessed_sweep(*, chunk_size: int = PROCESS_CHUNK, max_rows: int | None = None) -> int:
    """Process every interaction with ``processed_at`` null (and attach orphans whose interaction
    has arrived), in chunks of ascending id. Returns how many interactions were processed."""
    with transaction.atomic():
        touched = events_attach_orphans()
    if touched:
        Interaction.objects.filter(pk__in=touched).update(processed_at=None)
    total = 0
    last = 0
    while max_rows is None or total < max_rows:
        ids = list(
            Interaction.objects.filter(processed_at__isnull=True, pk__gt=last)
            .order_by("pk")
            .values_list("pk", flat=True)[:chunk_size]
        )
        if not ids:
            break
        total += len(interactions_process(interaction_ids=ids))
        last = ids[-1]
    return total


def processing_enqueue(*, project_id: int, interaction_ids: list[int]) -> bool:
    """Hand ids to ``labeling.process_interactions``. When the broker is unreachable, log it and
    return False: the rows keep ``processed_at`` null and ``labeling.sweep_unprocessed`` will
    process them. Eager mode (no broker configured) runs the task here."""
    return dispatch.enqueue_guarded(
        "labeling.process_interactions",
        interaction_ids,
        what=f"{len(interaction_ids)} interactions of project {project_id}",
    )


def processing_enqueue_on_commit(*, project_id: int, interaction_ids: list[int]) -> None:
    """After the current transaction commits, enqueue processing of ``interaction_ids``."""
    if not interaction_ids:
        return
    ids = list(interaction_ids)
    transaction.on_commit(lambda: processing_enqueue(project_id=project_id, interaction_ids=ids))


def events_attach_orphans(
    *, interaction_ids: list[int] | None = None, limit: int = 5000
) -> list[int]:
    """Attach events stored before their interaction arrived. Returns the interactions touched.

    With ``interaction_ids`` only those interactions are considered (the task after ingest);
    without, any orphan whose interaction now exists (the sweep, for races between the two).
    """
    orphans = Event.objects.filter(interaction__isnull=True)
    if interaction_ids is not None:
        pairs = list(
            Interaction.objects.filter(pk__in=interaction_ids).values_list(
                "project_id", "external_id", "id"
            )
        )
        by_project: dict[int, dict[str, int]] = {}
        for project_id, external_id, pk in pairs:
            by_project.setdefault(project_id, {})[external_id] = pk
    else:
        candidates = list(orphans.values_list("project_id", "external_id").distinct()[:limit])
        by_project = {}
        for project_id, external_id in candidates:
            by_project.setdefault(project_id, {})[external_id] = 0
        for project_id, mapping in by_project.items():
            found = interaction_ids_by_external_id(project_id=project_id, external_ids=mapping)
            by_project[project_id] = found
    touched: list[int] = []
    for project_id, mapping in by_project.items():
        if not mapping:
            continue
        externals = list(mapping)
        for start in range(0, len(externals), 900):
            chunk = externals[start : start + 900]
            waiting = set(
                orphans.filter(project_id=project_id, external_id__in=chunk).values_list(
                    "external_id", flat=True
                )
            )
            for external_id in waiting:
                Event.objects.filter(
                    project_id=project_id, external_id=external_id, interaction__isnull=True
                ).update(interaction_id=mapping[external_id])
                touched.append(mapping[external_id])
    return touched
