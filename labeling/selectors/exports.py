"""Reads for exports: the caller's exports, and the labelled items of an export's snapshot.

``labelled_items`` is what every row builder iterates. It streams interactions from a server-side
cursor in id order and fetches their annotations and queue flags in one query per chunk (by id
range), so memory stays flat and there is no per-row query. It applies the export's snapshot
(annotations with ``id <= max_annotation_id``, the schema copied at creation) and filters, and it
is the one place that enforces the holdout rule: an interaction with any holdout queue item never
reaches a *training* kind, whatever the filters.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Exists, OuterRef, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils.dateparse import parse_datetime

from labeling.access import RequestUser, project_access
from labeling.errors import NotFound
from labeling.models import Annotation, Export, Interaction, Project, QueueItem
from labeling.selectors.labels import final_values, target_good

DEFAULT_CHUNK_SIZE = 2000


# --- Progress side channel ---------------------------------------------------------------------
@dataclass
class ExportScan:
    """How far the scan of an export's candidates has got, plus counts for the manifest.

    ``export_run`` installs one in a context variable; ``labelled_items`` and the row builders
    update it. Kinds that do not use ``labelled_items`` simply leave it at zero.
    """

    total: int = 0
    done: int = 0
    counts: Counter[str] = field(default_factory=Counter)


_current_scan: contextvars.ContextVar[ExportScan | None] = contextvars.ContextVar(
    "export_scan", default=None
)


def export_scan_current() -> ExportScan:
    """The scan of the export being written, or a throwaway one outside ``export_run``."""
    scan = _current_scan.get()
    return scan if scan is not None else ExportScan()


def export_scan_install(scan: ExportScan) -> contextvars.Token[ExportScan | None]:
    return _current_scan.set(scan)


def export_scan_uninstall(token: contextvars.Token[ExportScan | None]) -> None:
    _current_scan.reset(token)


# --- Lookups ------------------------------------------------------------------------------------
def export_list(*, project: Project) -> QuerySet[Export]:
    return (
        Export.objects.filter(project=project)
        .select_related("created_by")
        .order_by("-created_at", "-id")
    )


def export_get(*, user: RequestUser, export_id: int) -> Export:
    """The export if ``user`` may export in its project: 404 for outsiders, 403 for annotators."""
    export = Export.objects.select_related("project", "created_by").filter(id=export_id).first()
    if export is None:
        raise NotFound("No such export.")
    try:
        project_access(user=user, slug=export.project.slug, need="export")
    except NotFound:
        # Same answer as an id that does not exist: an outsider learns nothing from the id.
        raise NotFound("No such export.") from None
    return export


# --- Labelled items ------------------------------------------------------------------------------
@dataclass(slots=True)
class LabelledItem:
    """One labelled interaction as of the export's snapshot."""

    id: int
    external_id: str
    conversation_id: str
    model_version: str
    messages: list[Any]
    response: str
    alt_response: str
    holdout: bool
    is_gold: bool
    final: dict[str, Any]
    good: float | None
    agreement: float | None  # computed only when asked for (with_agreement or min_agreement)
    n_annotations: int

    @property
    def conversation_key(self) -> str:
        """What a split keeps together: the conversation, or the interaction when it has none."""
        return self.conversation_id or f"interaction:{self.external_id}"


def export_snapshot(export: Export) -> dict[str, Any]:
    """The frozen part of an export, written at creation (see ``export_create``)."""
    return dict(export.options.get("snapshot") or {})


def agreement_share(
    *, schema: dict[str, Any], labels: list[dict[str, Any]], final: dict[str, Any]
) -> float | None:
    """Share of annotators whose own target answer (good or not) equals the final one.

    None when the final target is unknown or no annotator answered the target question.
    """
    final_good = target_good(schema=schema, values=final)
    if final_good is None:
        return None
    own = [target_good(schema=schema, values=values) for values in labels]
    answered = [g for g in own if g is not None]
    if not answered:
        return None
    return sum(1 for g in answered if g == final_good) / len(answered)


_COMPARE = {
    "gt": lambda v, x: v > x,
    "gte": lambda v, x: v >= x,
    "lt": lambda v, x: v < x,
    "lte": lambda v, x: v <= x,
}


def label_conditions_match(*, final: dict[str, Any], conditions: dict[str, dict[str, Any]]) -> bool:
    """True when the final values satisfy every condition, e.g. ``{"quality": {"gte": 4}}``.

    Operators: eq, ne, gt, gte, lt, lte, in, not_in, includes, excludes, exists. A question with
    no final value fails every operator except ``exists: false`` and ``ne``/``not_in``/``excludes``.
    """
    for key, ops in conditions.items():
        value = final.get(key)
        for op, expected in ops.items():
            if op == "exists":
                if (value is not None) != bool(expected):
                    return False
            elif op == "eq":
                if value is None or value != expected:
                    return False
            elif op == "ne":
                if value == expected:
                    return False
            elif op in _COMPARE:
                if not isinstance(value, int | float) or isinstance(value, bool):
                    return False
                if not _COMPARE[op](value, expected):
                    return False
            elif op == "in":
                if value is None or value not in expected:
                    return False
            elif op == "not_in":
                if value in expected:
                    return False
            elif op == "includes":
                if not isinstance(value, list) or expected not in value:
                    return False
            elif op == "excludes":
                if isinstance(value, list) and expected in value:
                    return False
            else:  # validated at creation; an unknown operator never matches
                return False
    return True


def _parse_time(value: str) -> dt.datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError(f"not a datetime: {value!r}")
    return parsed


def _candidates(export: Export, *, cutoff: int, annotator_ids: list[int] | None) -> QuerySet:
    """Interactions of the project with at least one annotation inside the snapshot."""
    filters = export.filters
    labelled = Annotation.objects.filter(interaction_id=OuterRef("pk"), id__lte=cutoff)
    if annotator_ids is not None:
        labelled = labelled.filter(annotator_id__in=annotator_ids)
    qs = Interaction.objects.filter(project_id=export.project_id).filter(Exists(labelled))
    if filters.get("since"):
        qs = qs.filter(occurred_at__gte=_parse_time(filters["since"]))
    if filters.get("until"):
        qs = qs.filter(occurred_at__lt=_parse_time(filters["until"]))
    if filters.get("model_versions"):
        qs = qs.filter(model_version__in=filters["model_versions"])
    for key, values in (filters.get("segment") or {}).items():
        qs = qs.filter(**{f"segment__{key}__in": values})
    return qs


def labelled_items(
    export: Export,
    *,
    training: bool,
    with_agreement: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[LabelledItem]:
    """Yield the export's labelled items in interaction id order (deterministic for a snapshot).

    ``training=True`` drops every interaction with a holdout queue item (counted as
    ``holdout_excluded``); gold items are dropped unless ``filters.include_gold``. Updates the
    installed :class:`ExportScan` (total, done, counts) as it goes.
    """
    scan = export_scan_current()
    snapshot = export_snapshot(export)
    annotator_ids = snapshot.get("annotator_ids")
    scope = _Scope(
        project_id=export.project_id,
        cutoff=int(snapshot.get("max_annotation_id", 0)),
        schema=snapshot.get("label_schema") or export.project.label_schema,
        annotators=set(annotator_ids) if annotator_ids is not None else None,
        training=training,
        include_gold=bool(export.filters.get("include_gold", False)),
        conditions=export.filters.get("labels") or {},
        min_agreement=export.filters.get("min_agreement"),
        with_agreement=with_agreement,
    )
    qs = _candidates(export, cutoff=scope.cutoff, annotator_ids=annotator_ids)
    scan.total = qs.count()
    # JSON columns come as text and are parsed with orjson: several times faster than the
    # stdlib json the JSONField would use, and this is the hot loop of a million-row export.
    rows = (
        qs.order_by("id")
        .annotate(messages_text=Cast("messages", TextField()))
        .values_list(
            "id",
            "external_id",
            "conversation_id",
            "model_version",
            "messages_text",
            "response",
            "alt_response",
        )
    )
    alias = _reader_alias()
    try:
        with transaction.atomic(using=alias):
            chunk: list[tuple[Any, ...]] = []
            for row in rows.using(alias).iterator(chunk_size=chunk_size):
                chunk.append(row)
                if len(chunk) >= chunk_size:
                    yield from _chunk_items(scope, chunk, scan)
                    chunk = []
            if chunk:
                yield from _chunk_items(scope, chunk, scan)
    finally:
        if alias != DEFAULT_DB_ALIAS:
            connections[alias].close()


READER_ALIAS = "export_reader"


def _reader_alias() -> str:
    """The connection the interaction stream reads from.

    On PostgreSQL, ``.iterator()`` is a server-side cursor. Outside a transaction Django declares
    it ``WITH HOLD``, and PostgreSQL then materialises the whole result before the first row
    (measured: 16 s for 1M rows). Inside a transaction it streams, but progress updates written in
    that transaction would stay invisible until the end. So the stream gets its own connection
    (the ``export_reader`` alias that settings define on PostgreSQL) and transaction, and progress
    goes through the default one. When the caller is already inside a transaction (tests), or on
    SQLite, the default connection is used.
    """
    default = connections[DEFAULT_DB_ALIAS]
    if READER_ALIAS not in connections.settings or default.in_atomic_block:
        return DEFAULT_DB_ALIAS
    return READER_ALIAS


@dataclass(frozen=True)
class _Scope:
    project_id: int
    cutoff: int
    schema: dict[str, Any]
    annotators: set[int] | None
    training: bool
    include_gold: bool
    conditions: dict[str, dict[str, Any]]
    min_agreement: float | None
    with_agreement: bool


def _chunk_items(
    scope: _Scope, chunk: list[tuple[Any, ...]], scan: ExportScan
) -> Iterator[LabelledItem]:
    lo, hi = chunk[0][0], chunk[-1][0]
    ids = {row[0] for row in chunk}
    flags: dict[int, tuple[bool, bool]] = {}
    for interaction_id, holdout, is_gold in QueueItem.objects.filter(
        project_id=scope.project_id, interaction_id__gte=lo, interaction_id__lte=hi
    ).values_list("interaction_id", "holdout", "is_gold"):
        h, g = flags.get(interaction_id, (False, False))
        flags[interaction_id] = (h or holdout, g or is_gold)

    # All versions inside the snapshot, so an edit made after creation does not change the rows:
    # a version is current as of the snapshot when no version inside the snapshot supersedes it.
    found: list[tuple[int, int, int, str, Any, int | None]] = list(
        Annotation.objects.filter(
            interaction_id__gte=lo, interaction_id__lte=hi, id__lte=scope.cutoff
        )
        .order_by("id")
        .annotate(values_text=Cast("values", TextField()))
        .values_list("id", "interaction_id", "annotator_id", "kind", "values_text", "supersedes_id")
    )
    superseded = {a[5] for a in found if a[5] is not None}
    labels: dict[int, list[dict[str, Any]]] = {}
    adjudications: dict[int, dict[str, Any]] = {}
    for ann_id, interaction_id, annotator_id, kind, values_text, _ in found:
        if ann_id in superseded or interaction_id not in ids:
            continue
        if scope.annotators is not None and annotator_id not in scope.annotators:
            continue
        values = orjson.loads(values_text)
        if kind == Annotation.Kind.ADJUDICATION:
            adjudications[interaction_id] = values  # the latest adjudication wins
        else:
            labels.setdefault(interaction_id, []).append(values)

    schema, conditions, min_agreement = scope.schema, scope.conditions, scope.min_agreement
    counts = scan.counts
    for iid, external_id, conv, model_version, messages_text, response, alt in chunk:
        scan.done += 1
        holdout, is_gold = flags.get(iid, (False, False))
        if scope.training and holdout:
            counts["holdout_excluded"] += 1
            continue
        if is_gold and not scope.include_gold:
            counts["gold_excluded"] += 1
            continue
        own = labels.get(iid, [])
        adjudication = adjudications.get(iid)
        if not own and adjudication is None:
            counts["no_labels"] += 1
            continue
        final = final_values(schema=schema, annotations=own, adjudication=adjudication)
        if conditions and not label_conditions_match(final=final, conditions=conditions):
            counts["label_filter"] += 1
            continue
        agreement = None
        if scope.with_agreement or min_agreement is not None:
            agreement = agreement_share(schema=schema, labels=own, final=final)
        if min_agreement is not None and (agreement is None or agreement < min_agreement):
            counts["agreement_filter"] += 1
            continue
        messages = orjson.loads(messages_text)
        yield LabelledItem(
            id=iid,
            external_id=external_id,
            conversation_id=conv,
            model_version=model_version,
            messages=messages if isinstance(messages, list) else [],
            response=response,
            alt_response=alt,
            holdout=holdout,
            is_gold=is_gold,
            final=final,
            good=target_good(schema=schema, values=final),
            agreement=agreement,
            n_annotations=len(own),
        )
