"""The data browser's reads: find interactions by text and by what is known about them (model
version, segment, time, signals, proxy score, judge scores, label values, disagreement), and one
interaction with everything recorded about it (events, scores, inclusion, queue item, labels).

Text search uses PostgreSQL full-text search (``websearch_to_tsquery`` over the response and the
messages, config ``simple``) and falls back to a case-insensitive substring match elsewhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils.dateparse import parse_date, parse_datetime

from labeling.models import Annotation, Event, Interaction, Project, QueueItem
from labeling.selectors.agreement import disagreements
from labeling.selectors.labels import final_labels
from sampling.models import Inclusion

SIGNALS = (
    "thumbs_up", "thumbs_down", "copy", "regenerate", "edit", "abandon", "follow_up", "share",
)  # fmt: skip


class FilterError(ValueError):
    """A filter the browser cannot apply; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass
class BrowserFilters:
    q: str = ""
    model_version: str = ""
    segment: dict[str, str] = field(default_factory=dict)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    signal: str = ""
    proxy_min: float | None = None
    proxy_max: float | None = None
    judge: str = ""
    judge_min: float | None = None
    judge_max: float | None = None
    label: tuple[str, Any] | None = None
    disagreement: bool = False
    queued: str = ""  # "", "yes", "no"


def _number(raw: str, name: str) -> float | None:
    if raw.strip() == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise FilterError(name, "must be a number") from None


def _moment(raw: str, name: str) -> dt.datetime | None:
    if not raw.strip():
        return None
    value = parse_datetime(raw.strip())
    if value is None:
        day = parse_date(raw.strip())
        if day is None:
            raise FilterError(name, "must be a date (2026-11-20) or a date and time")
        value = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def filters_parse(params: Any, *, project: Project) -> BrowserFilters:
    """Read the filters from a query dict; raise FilterError naming the field that is wrong."""
    f = BrowserFilters(
        q=params.get("q", "").strip()[:500],
        model_version=params.get("model_version", "").strip(),
        signal=params.get("signal", "").strip(),
        judge=params.get("judge", "").strip(),
        disagreement=params.get("disagreement") in ("1", "on", "true"),
        queued=params.get("queued", ""),
    )
    segment = params.get("segment", "").strip()
    if segment:
        key, sep, value = segment.partition("=")
        if not sep or not key.strip():
            raise FilterError("segment", "write key=value, e.g. tier=pro")
        f.segment = {key.strip(): value.strip()}
    f.since = _moment(params.get("since", ""), "since")
    f.until = _moment(params.get("until", ""), "until")
    if f.since and f.until and f.until <= f.since:
        raise FilterError("until", "must be after since")
    if f.signal and f.signal not in SIGNALS:
        raise FilterError("signal", f"one of {', '.join(SIGNALS)}")
    f.proxy_min = _number(params.get("proxy_min", ""), "proxy_min")
    f.proxy_max = _number(params.get("proxy_max", ""), "proxy_max")
    f.judge_min = _number(params.get("judge_min", ""), "judge_min")
    f.judge_max = _number(params.get("judge_max", ""), "judge_max")
    if (f.judge_min is not None or f.judge_max is not None) and not f.judge:
        raise FilterError("judge", "name the score to filter on")
    label = params.get("label", "").strip()
    if label:
        key, sep, raw = label.partition("=")
        questions = {q["key"]: q for q in project.label_schema.get("questions", [])}
        if not sep or key.strip() not in questions:
            raise FilterError("label", f"write question=value; questions: {', '.join(questions)}")
        question = questions[key.strip()]
        f.label = (key.strip(), _label_value(question, raw.strip()))
    if f.queued not in ("", "yes", "no"):
        raise FilterError("queued", "yes, no or empty")
    return f


def _label_value(question: dict[str, Any], raw: str) -> Any:
    if question["type"] == "binary":
        return {"true": True, "yes": True, "false": False, "no": False}.get(raw.lower(), raw)
    if question["type"] == "rating":
        try:
            number = float(raw)
        except ValueError:
            raise FilterError("label", "a rating value is a number") from None
        return int(number) if number.is_integer() else number
    return raw


def _text_search(qs: QuerySet[Interaction], query: str) -> QuerySet[Interaction]:
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery, SearchVector

        vector = SearchVector("response", config="simple") + SearchVector(
            Cast("messages", TextField()), config="simple"
        )
        return qs.annotate(search=vector).filter(
            search=SearchQuery(query, config="simple", search_type="websearch")
        )
    return qs.filter(Q(response__icontains=query) | Q(messages__icontains=query))


def interactions_browse(*, project: Project, filters: BrowserFilters) -> QuerySet[Interaction]:
    """Interactions of ``project`` matching every filter, newest first."""
    qs = Interaction.objects.filter(project=project)
    f = filters
    if f.q:
        qs = _text_search(qs, f.q)
    if f.model_version:
        qs = qs.filter(model_version=f.model_version)
    for key, value in f.segment.items():
        qs = qs.filter(**{f"segment__{key}": value})
    if f.since:
        qs = qs.filter(occurred_at__gte=f.since)
    if f.until:
        qs = qs.filter(occurred_at__lt=f.until)
    if f.signal:
        qs = qs.filter(**{f"signals__{f.signal}__gte": 1})
    if f.proxy_min is not None:
        qs = qs.filter(proxy_score__gte=f.proxy_min)
    if f.proxy_max is not None:
        qs = qs.filter(proxy_score__lte=f.proxy_max)
    if f.judge:
        qs = qs.filter(scores__has_key=f.judge)
        if f.judge_min is not None:
            qs = qs.filter(**{f"scores__{f.judge}__gte": f.judge_min})
        if f.judge_max is not None:
            qs = qs.filter(**{f"scores__{f.judge}__lte": f.judge_max})
    if f.label is not None:
        key, value = f.label
        labelled = Annotation.objects.filter(
            queue_item__project=project, is_current=True, **{f"values__{key}": value}
        ).values("interaction_id")
        qs = qs.filter(pk__in=labelled)
    if f.disagreement:
        items = [row["queue_item_id"] for row in disagreements(project=project)]
        qs = qs.filter(queue_items__pk__in=items)
    if f.queued == "yes":
        qs = qs.filter(queue_items__isnull=False)
    elif f.queued == "no":
        qs = qs.filter(queue_items__isnull=True)
    return qs.order_by("-occurred_at", "-id")


def browse_rows(*, project: Project, interactions: list[Interaction]) -> list[dict[str, Any]]:
    """The table rows of one page: each interaction with its queue status and final label."""
    ids = [i.pk for i in interactions]
    queued = dict(
        QueueItem.objects.filter(project=project, interaction_id__in=ids).values_list(
            "interaction_id", "status"
        )
    )
    gold = set(
        QueueItem.objects.filter(project=project, interaction_id__in=ids, is_gold=True).values_list(
            "interaction_id", flat=True
        )
    )
    inclusion = {
        row[0]: row[1:]
        for row in Inclusion.objects.filter(interaction_id__in=ids).values_list(
            "interaction_id", "pi", "selected"
        )
    }
    finals = final_labels(project=project, interaction_ids=ids)
    return [
        {
            "interaction": i,
            "queue_status": queued.get(i.pk),
            "gold": i.pk in gold,
            "pi": inclusion.get(i.pk, (None, None))[0],
            "sampled": inclusion.get(i.pk, (None, None))[1],
            "label": finals.get(i.pk),
        }
        for i in interactions
    ]


def interaction_detail(*, project: Project, interaction_id: int) -> dict[str, Any] | None:
    """One interaction with its events, scores, inclusion, queue item and every label version."""
    interaction = Interaction.objects.filter(project=project, pk=interaction_id).first()
    if interaction is None:
        return None
    inclusion = (
        Inclusion.objects.filter(interaction=interaction).select_related("run__strategy").first()
    )
    return {
        "interaction": interaction,
        "events": list(Event.objects.filter(interaction=interaction).order_by("occurred_at", "id")),
        "inclusion": inclusion,
        "queue_item": QueueItem.objects.filter(project=project, interaction=interaction).first(),
        "annotations": list(
            Annotation.objects.filter(interaction=interaction)
            .select_related("annotator")
            .order_by("created_at", "id")
        ),
        "final": final_labels(project=project, interaction_ids=[interaction.pk]).get(
            interaction.pk
        ),
    }
