"""Estimates per domain: Inclusion rows and final labels turned into arrays for sampling.estimators.

Population side (``U∩D``): per group and run, the count and sum of ``f`` come from the population
cells each run writes (``sampling.models.PopulationCell``: run x model version x segment x day),
the explicit-feedback counts from the few rated items, and only the partial days at the ends of a
``since``/``until`` that is not a UTC midnight from Inclusion rows; so an estimate reads
O(runs x cells) rows, never every considered item. Sample side (``S∩D``): the selected
items with their final labels. Only rows of finished runs count. Rules:

- items whose run recorded no ``pi`` (deterministic mode) are left out of the population and the
  sample, and counted (``excluded``, ``excluded_labels``);
- a selected item without a usable final label (backlog, skipped, tie awaiting adjudication) is
  non-response: each run is one adjustment cell and its respondents' ``pi`` is multiplied by the
  run's weighted response rate (``sampling.estimators.nonresponse_adjust``), computed over **all**
  selected items of the run whatever the query's filters (:func:`response_design`); the count is
  reported;
- a finished run none of whose selected items has a usable label yet is left out of the
  population (its ``N`` and ``sum f``) as well as the sample: the estimate covers only runs with at
  least one label, and every answer names the runs it covers and those it leaves out;
- ``y`` is ``target_good`` of the final values (1 good, 0 not); for a rating target the mean rating
  is a second target.

Groups (``by``): ``model_version``, ``segment.<key>``, ``week`` (ISO week of ``occurred_at``),
``run``, ``rated`` (whether the interaction got explicit feedback), and crossings of these given as
a list (``["model_version", "segment.tier"]``). Filters: ``{"model_versions": [...],
"segment": {"tier": ["pro"]}, "since": iso, "until": iso, "runs": [ids]}`` (the strategy format).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from django.db.models import Case, Exists, F, OuterRef, QuerySet, Sum, Value, When
from django.db.models.expressions import Expression
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDate, TruncWeek
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from labeling.models import Interaction, Project, QueueItem
from labeling.selectors.labels import final_labels, target_good
from sampling import estimators, intervals
from sampling.models import Inclusion, PopulationCell, SamplingRun
from sampling.selectors import scans

NONE_LABEL = "(none)"
COVERAGE_RULE = (
    "finished probabilistic runs with at least one usable label; a run with none yet is left "
    "out of the population and the sample until its first label"
)
SIMPLE_GROUPS = ("model_version", "week", "run", "rated")


class EstimateQueryError(ValueError):
    """A bad ``by``/``filters``/``method``/``level``: ``errors`` maps the parameter to a message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class DomainData:
    """Everything the estimators need about one group, plus counts for reports."""

    group: tuple[str, ...]
    population: int = 0  # considered items with a pi
    f_total: float = 0.0
    excluded: int = 0  # considered items without pi (deterministic runs)
    excluded_labels: int = 0  # of which labelled
    rated: int = 0  # considered items with an explicit thumbs rating
    thumbs_down: int = 0
    selected: int = 0  # selected items with a pi (of covered runs)
    nonresponse: int = 0  # selected, no usable label (of covered runs)
    runs: set[int] = field(default_factory=set)  # covered runs with items in this group
    runs_without_labels: set[int] = field(default_factory=set)  # left out: no label yet
    population_without_labels: int = 0  # considered items of those runs (not in population)
    ties: int = 0  # non-response: labelled, but the target is a tie awaiting adjudication
    skipped: int = 0  # non-response: unlabelled and skipped by at least one annotator
    backlog: int = 0  # non-response: no answer to the target yet, never skipped
    # run id -> [selected weight, responded weight, selected count, responded count] in the group
    run_response: dict[int, list[float]] = field(default_factory=dict)
    cells: set[str] = field(default_factory=set)  # adjustment cells of the group's respondents
    response: dict[str, Any] | None = None  # response_summary(), filled by domain_data
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rating: np.ndarray | None = None
    f: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pi: np.ndarray = field(default_factory=lambda: np.zeros(0))  # non-response adjusted
    interaction_ids: list[int] = field(default_factory=list)


def parse_by(by: str | Sequence[str] | None, *, project: Project) -> list[str]:
    """``"model_version,segment.tier"`` -> ``["model_version", "segment.tier"]`` (validated)."""
    if by is None or by == "" or by == "all":
        return []
    parts = [p.strip() for p in (by.split(",") if isinstance(by, str) else by) if p.strip()]
    for part in parts:
        if part in SIMPLE_GROUPS:
            continue
        if part.startswith("segment.") and part[len("segment.") :]:
            continue
        known = ", ".join([*SIMPLE_GROUPS, *(f"segment.{k}" for k in project.segment_keys)])
        raise EstimateQueryError({"by": f"unknown grouping {part!r}; use one of: all, {known}"})
    if len(set(parts)) != len(parts):
        raise EstimateQueryError({"by": "a grouping is repeated"})
    return parts


def _group_expr(name: str) -> Expression | F:
    if name == "model_version":
        return F("interaction__model_version")
    if name == "day":  # internal: the UTC date (the daily looks of monitoring)
        return TruncDate("interaction__occurred_at")
    if name == "week":
        return TruncWeek("interaction__occurred_at")
    if name == "run":
        return F("run_id")
    if name == "rated":
        return Case(
            When(interaction__explicit_rating__isnull=True, then=Value("no")),
            default=Value("yes"),
        )
    return KeyTextTransform(name[len("segment.") :], "interaction__segment")


def group_label(value: Any) -> str:
    """A group value as shown in the API: ISO week for dates, ``(none)`` for missing."""
    if value is None or value == "":
        return NONE_LABEL
    if isinstance(value, dt.datetime | dt.date):
        year, week, _ = value.isocalendar()
        return f"{year}-W{week:02d}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_time(value: Any, key: str) -> dt.datetime:
    parsed = parse_datetime(str(value)) if value else None
    if parsed is None:
        raise EstimateQueryError({f"filters.{key}": f"not an ISO 8601 datetime: {value!r}"})
    return parsed


def filtered_inclusions(*, project: Project, filters: dict[str, Any] | None) -> QuerySet[Inclusion]:
    """Inclusion rows of the project's finished runs that match ``filters``."""
    qs = Inclusion.objects.filter(project=project, run__status=SamplingRun.Status.DONE)
    qs = _filter_cells(qs, filters, through="interaction__")
    filters = filters or {}
    if filters.get("since"):
        qs = qs.filter(interaction__occurred_at__gte=_parse_time(filters["since"], "since"))
    if filters.get("until"):
        qs = qs.filter(interaction__occurred_at__lt=_parse_time(filters["until"], "until"))
    return qs


_Q = TypeVar("_Q", bound=QuerySet[Any])


def _filter_cells(qs: _Q, filters: dict[str, Any] | None, *, through: str) -> _Q:
    """The filters other than time, on Inclusion rows (``through="interaction__"``) or on
    PopulationCell rows (``through=""``): the same lookups on the same values, so both select
    the same items."""
    filters = filters or {}
    versions = filters.get("model_versions") or filters.get("model_version")
    if versions:
        qs = qs.filter(
            **{f"{through}model_version__in": [versions] if isinstance(versions, str) else versions}
        )
    for key, values in (filters.get("segment") or {}).items():
        vals = [values] if isinstance(values, str) else list(values)
        qs = qs.filter(**{f"{through}segment__{key}__in": vals})
    if filters.get("runs"):
        qs = qs.filter(run_id__in=[int(r) for r in filters["runs"]])
    return qs


@dataclass
class ResponseDesign:
    """The non-response adjustment of the project's finished probabilistic runs.

    Computed once per answer over **every** selected item of every finished run, never over a
    filtered subset: a labelled item outside the query's filters still answered for its run
    (issue 17). Adjustment cells are the run split by model version and then by each segment key
    as far as :func:`sampling.estimators.response_cells` allows (each cell with at least
    ``MIN_CELL_RESPONDENTS`` labels); a respondent's ``pi`` is multiplied by its cell's weighted
    response rate (``item_rate``). ``labels`` holds the usable final labels of the project's items
    (as of ``cutoff`` when given); ``tied`` the labelled items whose target is unresolved (a tie
    awaiting adjudication); ``run_rate`` each labelled run's overall rate. A run without any usable
    label is in ``unlabelled_runs`` and is left out of every estimate.
    """

    labels: dict[int, tuple[float, float | None]]
    run_rate: dict[int, float]  # run id -> weighted response rate (labelled runs only)
    unlabelled_runs: set[int]
    item_rate: dict[int, float] = field(default_factory=dict)  # selected item -> its cell's rate
    item_cell: dict[int, str] = field(default_factory=dict)  # selected item -> its cell, in words
    tied: set[int] = field(default_factory=set)
    skipped: set[int] = field(default_factory=set)  # selected, unlabelled, skipped at least once
    run_counts: dict[int, tuple[int, int]] = field(default_factory=dict)  # (selected, labelled)
    cutoff: int | None = None

    @property
    def rate(self) -> dict[int, float]:  # the run rates, under their older name
        return self.run_rate

    def covers(self, run_id: int) -> bool:
        return run_id in self.run_rate


def _cell_words(path: tuple[Any, ...], keys: Sequence[str]) -> str:
    parts = [f"run {path[0]}"]
    for name, value in zip(keys[1:], path[1:], strict=False):
        parts.append(f"{name}={'other' if value == '*' else value}")
    return " / ".join(parts)


_shared_designs: ContextVar[dict[tuple[int, int | None], ResponseDesign] | None] = ContextVar(
    "shared_designs", default=None
)


@contextmanager
def shared_design() -> Iterator[None]:
    """Within this block every :func:`response_design` of the same project and cutoff is
    computed once and reused: a page that asks many selectors (the dashboard) reads the labels
    once, and all its numbers rest on the same snapshot of them."""
    token = _shared_designs.set({})
    try:
        yield
    finally:
        _shared_designs.reset(token)


def response_design(*, project: Project, cutoff: int | None = None) -> ResponseDesign:
    """Labels and response cells of all selected items of the project's finished runs."""
    memo = _shared_designs.get()
    if memo is None:
        return _response_design(project=project, cutoff=cutoff)
    key = (project.pk, cutoff)
    if key not in memo:
        memo[key] = _response_design(project=project, cutoff=cutoff)
    return memo[key]


def _response_design(*, project: Project, cutoff: int | None = None) -> ResponseDesign:
    segment_keys = list(project.segment_keys or [])
    rows = list(
        Inclusion.objects.filter(
            project=project,
            run__status=SamplingRun.Status.DONE,
            selected=True,
            pi__isnull=False,
        )
        .order_by("interaction_id")
        .values_list(
            "run_id", "pi", "interaction_id", "interaction__model_version", "interaction__segment"
        )
    )
    done_runs = set(
        SamplingRun.objects.filter(
            project=project, status=SamplingRun.Status.DONE, deterministic=False
        ).values_list("id", flat=True)
    )
    labels, tied = _labels_and_ties(project=project, cutoff=cutoff)
    skipped = set(
        QueueItem.objects.filter(project=project, skip_count__gt=0).values_list(
            "interaction_id", flat=True
        )
    )
    key_names = ["run", "model_version", *(f"segment.{k}" for k in segment_keys)]
    run_rates: dict[int, float] = {}
    item_rate: dict[int, float] = {}
    item_cell: dict[int, str] = {}
    run_counts: dict[int, tuple[int, int]] = {}
    if rows:
        pis = np.array([r[1] for r in rows], dtype=float)
        responded = np.array([r[2] in labels for r in rows])
        runs = np.array([r[0] for r in rows])
        _, found = estimators.nonresponse_adjust(pi=pis, responded=responded, cell=runs)
        run_rates = {int(k): float(v) for k, v in found.items() if v > 0}
        segments = [r[4] if isinstance(r[4], dict) else {} for r in rows]
        keys: list[list[Any]] = [
            [r[0] for r in rows],
            [r[3] or NONE_LABEL for r in rows],
            *([group_label(seg.get(k)) for seg in segments] for k in segment_keys),
        ]
        paths = estimators.response_cells(responded=responded, keys=keys)
        index = {p: i for i, p in enumerate(dict.fromkeys(paths))}
        cell_ids = np.array([index[p] for p in paths])
        _, cell_rates = estimators.nonresponse_adjust(pi=pis, responded=responded, cell=cell_ids)
        for run_id in set(runs.tolist()):
            in_run = runs == run_id
            run_counts[int(run_id)] = (int(in_run.sum()), int((in_run & responded).sum()))
        for row, path, cell_id in zip(rows, paths, cell_ids, strict=True):
            item_rate[row[2]] = float(cell_rates[int(cell_id)])
            item_cell[row[2]] = _cell_words(path, key_names)
    return ResponseDesign(
        labels=labels,
        run_rate=run_rates,
        unlabelled_runs=(done_runs | {int(r[0]) for r in rows}) - set(run_rates),
        item_rate=item_rate,
        item_cell=item_cell,
        tied=tied - set(labels),
        skipped=skipped,
        run_counts=run_counts,
        cutoff=cutoff,
    )


def run_response_rates(*, project: Project, cutoff: int | None = None) -> dict[int, float]:
    """Weighted response rate of each labelled run over all its selected items.

    Runs without a usable label are absent (they are left out of the estimates).
    """
    return dict(response_design(project=project, cutoff=cutoff).run_rate)


def target_info(project: Project) -> dict[str, Any]:
    """The target question, what counts as good and whether a mean rating is reported too."""
    schema = project.label_schema or {}
    target = dict(schema.get("target") or {})
    question = next(
        (q for q in schema.get("questions", []) if q.get("key") == target.get("question")), None
    )
    qtype = question.get("type") if question else None
    info: dict[str, Any] = {
        "question": target.get("question"),
        "good": target.get("good"),
        "type": qtype,
        "measure": "share_good",
    }
    if qtype == "rating":
        scale = [float(s["value"]) for s in question.get("scale", [])] if question else []
        info["rating_scale"] = [min(scale), max(scale)] if scale else None
    return info


def _labels_and_ties(
    *, project: Project, cutoff: int | None
) -> tuple[dict[int, tuple[float, float | None]], set[int]]:
    """Usable labels (as :func:`labelled_values`) and the items whose target answers tie."""
    finals = final_labels(project=project, cutoff=cutoff)
    usable = _usable_values(project=project, finals=finals)
    key = str(((project.label_schema or {}).get("target") or {}).get("question") or "")
    # final_values keeps the key with None when the annotators' answers tie
    return usable, {i for i, v in finals.items() if key in v and v[key] is None}


def labelled_values(
    *,
    project: Project,
    interaction_ids: Sequence[int] | None = None,
    cutoff: int | None = None,
) -> dict[int, tuple[float, float | None]]:
    """interaction id -> (y, rating or None) for items whose final label answers the target.

    ``interaction_ids=None``: every labelled interaction of the project; ``cutoff``: labels as of
    an export snapshot (``labeling.selectors.labels.final_labels``).
    """
    finals = final_labels(project=project, interaction_ids=interaction_ids, cutoff=cutoff)
    return _usable_values(project=project, finals=finals)


def _usable_values(
    *, project: Project, finals: dict[int, dict[str, Any]]
) -> dict[int, tuple[float, float | None]]:
    schema = project.label_schema or {}
    key = str((schema.get("target") or {}).get("question") or "")
    out: dict[int, tuple[float, float | None]] = {}
    for interaction_id, values in finals.items():
        y = target_good(schema=schema, values=values)
        if y is None:
            continue
        raw = values.get(key)
        rating = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        out[interaction_id] = (y, rating)
    return out


@dataclass
class Population:
    """The population side of one group within one run."""

    n: int = 0  # considered items with a pi
    f_total: float = 0.0
    excluded: int = 0  # considered items without pi
    rated: int = 0  # with pi and an explicit rating
    down: int = 0  # with pi and a thumbs-down


PopulationRows = dict[tuple[tuple[str, ...], int], Population]  # (group, run) -> population


def domain_data(
    *,
    project: Project,
    by: Sequence[str] = (),
    filters: dict[str, Any] | None = None,
    design: ResponseDesign | None = None,
    explicit: bool = True,
) -> list[DomainData]:
    """Per group of ``by`` (one group ``()`` when empty): population aggregates and the sample.

    ``explicit=False`` skips counting explicit ratings (``rated`` and ``thumbs_down`` stay 0
    unless ``by`` has ``rated``, which reads them anyway) for callers that do not show them: it
    saves the read of the rated interactions.

    ``design`` (default: computed now from the current labels) supplies the labels and response
    rates; pass one built with an export's ``cutoff`` to get the numbers as of that snapshot.
    Items of runs without any usable label are left out (counted in
    ``population_without_labels``). The population side comes from the runs' population cells
    and the explicitly rated items (:func:`_population_from_cells`), not from every inclusion.
    """
    rows = _population_from_cells(project=project, by=by, filters=filters, explicit=explicit)
    return _domain_data(project=project, by=by, filters=filters, design=design, population=rows)


def _domain_data_scan(
    *,
    project: Project,
    by: Sequence[str] = (),
    filters: dict[str, Any] | None = None,
    design: ResponseDesign | None = None,
) -> list[DomainData]:
    """:func:`domain_data` with the population side aggregated from every inclusion (the
    reference the cells are tested against)."""
    base = filtered_inclusions(project=project, filters=filters)
    rows = _population_scan(base, by)
    return _domain_data(project=project, by=by, filters=filters, design=design, population=rows)


def _population_scan(base: QuerySet[Inclusion], by: Sequence[str]) -> PopulationRows:
    """Population per group and run, aggregated over the Inclusion rows of ``base``."""
    exprs = {f"g{i}": _group_expr(name) for i, name in enumerate(by)}
    names = list(exprs)
    agg = (
        base.annotate(**exprs)
        .values(*names, "run_id")
        .annotate(**scans.population_aggregates())
        .order_by()
    )
    out: PopulationRows = {}
    for row in agg:
        _accumulate(out, _labels(by, row, names), row)  # TruncWeek may split one ISO week
    return out


def _accumulate(out: PopulationRows, key: tuple[str, ...], row: dict[str, Any]) -> None:
    """Add an aggregated row (``scans.population_aggregates``) to its group and run."""
    p = out.setdefault((key, int(row["run_id"])), Population())
    p.n += row["n"]
    p.f_total += float(row["f_total"] or 0.0)
    p.excluded += row["excluded"]
    p.rated += row["rated_n"]
    p.down += row["down"]


def _labels(by: Sequence[str], row: dict[str, Any], names: list[str]) -> tuple[str, ...]:
    return tuple(
        _day_label(row[n]) if name == "day" else group_label(row[n])
        for name, n in zip(by, names, strict=True)
    )


def _day_label(value: Any) -> str:
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).date()
    return value.isoformat() if isinstance(value, dt.date) else NONE_LABEL


def population_rows(
    *, project: Project, by: Sequence[str], filters: dict[str, Any] | None, explicit: bool = True
) -> PopulationRows:
    """The population side per (group, run): :func:`_population_from_cells`. Besides the
    groupings of :func:`parse_by`, ``"day"`` groups by the UTC date (``YYYY-MM-DD``)."""
    return _population_from_cells(project=project, by=by, filters=filters, explicit=explicit)


def occurred_span(
    *, project: Project, filters: dict[str, Any] | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """First and last ``occurred_at`` of the considered items under ``filters`` (what
    ``filtered_inclusions(...).aggregate(Min, Max)`` gives), reading the rows of the first and the
    last day only: the days come from :func:`population_rows`."""
    rows = population_rows(project=project, by=["day"], filters=filters, explicit=False)
    days = sorted({key[0] for key, _ in rows})
    if not days:
        return None, None
    filters = dict(filters or {})
    since = _utc(_parse_time(filters["since"], "since")) if filters.get("since") else None
    until = _utc(_parse_time(filters["until"], "until")) if filters.get("until") else None

    # The considered items of the day (as filtered_inclusions selects them), walked from the
    # interactions' time index: the first one found ends the read.
    considered = Inclusion.objects.filter(
        project=project, run__status=SamplingRun.Status.DONE, interaction=OuterRef("pk")
    )
    if filters.get("runs"):
        considered = considered.filter(run_id__in=[int(r) for r in filters["runs"]])
    cells = {k: v for k, v in filters.items() if k != "runs"}
    items = _filter_cells(Interaction.objects.filter(project=project), cells, through="")

    def edge(day: str, *, last: bool) -> dt.datetime | None:
        low = _midnight(dt.date.fromisoformat(day))
        high = low + dt.timedelta(days=1)
        return (
            items.filter(
                occurred_at__gte=max(low, since) if since else low,
                occurred_at__lt=min(high, until) if until else high,
            )
            .filter(Exists(considered))
            .order_by("-occurred_at" if last else "occurred_at")
            .values_list("occurred_at", flat=True)
            .first()
        )

    return edge(days[0], last=False), edge(days[-1], last=True)


def _utc(value: dt.datetime) -> dt.datetime:
    """An aware UTC datetime (a naive filter time is UTC, as the database compares it)."""
    if timezone.is_naive(value):
        return timezone.make_aware(value, dt.UTC)
    return value.astimezone(dt.UTC)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)


def _population_from_cells(
    *, project: Project, by: Sequence[str], filters: dict[str, Any] | None, explicit: bool = True
) -> PopulationRows:
    """The same numbers as :func:`_population_scan` over ``filtered_inclusions``, read from
    O(runs x cells) rows.

    Whole days inside ``since``/``until`` come from the population cells (count, sum of ``f``,
    excluded); explicit ratings, which change after a run, from the rated items only (they are
    moved from the ``rated=no`` to the ``rated=yes`` group when grouping by ``rated``); the
    partial days at either end, if a bound is not a UTC midnight, from the Inclusion rows of that
    part of a day.
    """
    filters = dict(filters or {})
    since = _utc(_parse_time(filters["since"], "since")) if filters.get("since") else None
    until = _utc(_parse_time(filters["until"], "until")) if filters.get("until") else None
    first = None if since is None else since.date() + dt.timedelta(days=since.time() != dt.time(0))
    end = None if until is None else until.date()  # cells of days before ``end``
    out: PopulationRows = {}
    if first is not None and end is not None and first >= end:
        # No whole day in between (within two days): scan the rows of the interval.
        rows = _scan_rows(project=project, filters=filters, by=by)
        return rows if explicit or "rated" in by else _without_ratings(rows)
    edges = []
    if since is not None and first is not None and _midnight(first) != since:
        edges.append((since, _midnight(first)))
    if until is not None and end is not None and _midnight(end) != until:
        edges.append((_midnight(end), until))
    for low, high in edges:
        part = {**filters, "since": low.isoformat(), "until": high.isoformat()}
        _add(out, _scan_rows(project=project, filters=part, by=by))
    whole = {k: v for k, v in filters.items() if k not in ("since", "until")}
    if first is not None:
        whole["since"] = _midnight(first).isoformat()
    if end is not None:
        whole["until"] = _midnight(end).isoformat()
    _add(out, _cells(project=project, by=by, filters=whole, first=first, end=end))
    if not explicit and "rated" not in by:
        return _without_ratings(out)  # the partial days' scan counted some: leave all out
    for (key, run_id), p in _scan_rows(project=project, filters=whole, by=by, rated=True).items():
        target = out.setdefault((key, run_id), Population())
        target.rated += p.rated
        target.down += p.down
        if "rated" in by:  # the cells counted them as not rated: move them
            target.n += p.n
            target.f_total += p.f_total
            target.excluded += p.excluded
            at = list(by).index("rated")
            unrated = out.setdefault(((*key[:at], "no", *key[at + 1 :]), run_id), Population())
            unrated.n -= p.n
            unrated.f_total -= p.f_total
            unrated.excluded -= p.excluded
    return {k: p for k, p in out.items() if p.n or p.excluded}


def _scan_rows(
    *, project: Project, filters: dict[str, Any], by: Sequence[str], rated: bool = False
) -> PopulationRows:
    """:func:`_population_scan` of ``filtered_inclusions(filters)`` (its rated items only with
    ``rated``). Inside ``scans.shared_scans()`` (the dashboard) the rows are read once per
    filters and kind at the finest grain and regrouped here for ``by``."""
    base = filtered_inclusions(project=project, filters=filters)
    if rated:
        base = base.filter(interaction__explicit_rating__isnull=False)
    keys = list(project.segment_keys or [])
    fine = scans.fine_rows(base, memo_key=(project.pk, rated, filters), by=by, segment_keys=keys)
    if fine is None:
        return _population_scan(base, by)
    names = [scans.fine_field(name, keys) or "" for name in by]  # each one is carried
    out: PopulationRows = {}
    for row in fine:
        _accumulate(out, _labels(by, row, names), row)
    return out


def _without_ratings(rows: PopulationRows) -> PopulationRows:
    for p in rows.values():
        p.rated = p.down = 0
    return rows


def _cells(
    *,
    project: Project,
    by: Sequence[str],
    filters: dict[str, Any],
    first: dt.date | None,
    end: dt.date | None,
) -> PopulationRows:
    qs = PopulationCell.objects.filter(project=project, run__status=SamplingRun.Status.DONE)
    qs = _filter_cells(qs, filters, through="")
    if first is not None:
        qs = qs.filter(day__gte=first)
    if end is not None:
        qs = qs.filter(day__lt=end)
    exprs = {f"g{i}": _cell_group_expr(name) for i, name in enumerate(by)}
    names = list(exprs)
    agg = (
        qs.annotate(**exprs)
        .values(*names, "run_id")
        .annotate(n=Sum("n"), f_total=Sum("f_total"), excluded=Sum("excluded"))
        .order_by()
    )
    out: PopulationRows = {}
    for row in agg:
        key = _labels(by, row, names)  # a day's label is its ISO week (or the day itself)
        p = out.setdefault((key, int(row["run_id"])), Population())
        p.n += int(row["n"] or 0)
        p.f_total += float(row["f_total"] or 0.0)
        p.excluded += int(row["excluded"] or 0)
    return out


def _cell_group_expr(name: str) -> Expression | F:
    """:func:`_group_expr` on PopulationCell rows (every cell is ``rated=no``)."""
    if name == "model_version":
        return F("model_version")
    if name in ("week", "day"):
        return F("day")
    if name == "run":
        return F("run_id")
    if name == "rated":
        return Value("no")
    return KeyTextTransform(name[len("segment.") :], "segment")


def _add(out: PopulationRows, rows: PopulationRows) -> None:
    for key, p in rows.items():
        target = out.setdefault(key, Population())
        target.n += p.n
        target.f_total += p.f_total
        target.excluded += p.excluded
        target.rated += p.rated
        target.down += p.down


def _domain_data(
    *,
    project: Project,
    by: Sequence[str],
    filters: dict[str, Any] | None,
    design: ResponseDesign | None,
    population: PopulationRows,
) -> list[DomainData]:
    design = design or response_design(project=project)
    exprs = {f"g{i}": _group_expr(name) for i, name in enumerate(by)}
    names = list(exprs)
    base = filtered_inclusions(project=project, filters=filters)
    groups: dict[tuple[str, ...], DomainData] = {}
    for (key, run_id), row in sorted(population.items()):
        d = groups.setdefault(key, DomainData(group=key))
        d.excluded += row.excluded
        if not row.n:
            continue
        if not design.covers(run_id):
            d.population_without_labels += row.n
            d.runs_without_labels.add(run_id)
            continue
        d.runs.add(run_id)
        d.population += row.n
        d.f_total += row.f_total
        d.rated += row.rated
        d.thumbs_down += row.down

    sample = list(
        base.filter(selected=True)
        .annotate(**exprs)
        .values_list("interaction_id", "run_id", "f", "pi", *names)
    )
    labels = design.labels
    per_group: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for interaction_id, run_id, f, pi, *gvals in sample:
        key = tuple(group_label(v) for v in gvals)
        d = groups.setdefault(key, DomainData(group=key))
        label = labels.get(interaction_id)
        if pi is None:
            d.excluded_labels += label is not None
            continue
        if not design.covers(run_id):
            continue  # a run without labels: outside the estimate altogether
        d.selected += 1
        tally = d.run_response.setdefault(run_id, [0.0, 0.0, 0, 0])
        tally[0] += 1 / pi
        tally[2] += 1
        if label is None:
            d.nonresponse += 1
            if interaction_id in design.tied:
                d.ties += 1
            elif interaction_id in design.skipped:
                d.skipped += 1
            else:
                d.backlog += 1
            continue
        tally[1] += 1 / pi
        tally[3] += 1
        d.cells.add(design.item_cell[interaction_id])
        per_group[key].append(
            (interaction_id, label[0], label[1], f, pi * design.item_rate[interaction_id])
        )
    for key, rows in per_group.items():
        d = groups[key]
        d.interaction_ids = [r[0] for r in rows]
        d.y = np.array([r[1] for r in rows], dtype=float)
        ratings = [r[2] for r in rows]
        d.rating = None if any(v is None for v in ratings) else np.array(ratings, dtype=float)
        d.f = np.array([r[3] for r in rows], dtype=float)
        d.pi = np.array([r[4] for r in rows], dtype=float)
    for d in groups.values():
        d.response = response_summary(d, design)
    return [groups[k] for k in sorted(groups)]


def response_summary(d: DomainData, design: ResponseDesign) -> dict[str, Any]:
    """The group's non-response: counts by kind, its response rate per run against the run's,
    and a warning when they differ (non-response is then not random across domains)."""
    by_run = []
    differing = []
    for run_id, (sel_w, resp_w, sel_n, resp_n) in sorted(d.run_response.items()):
        run_rate = design.run_rate.get(run_id)
        rate = resp_w / sel_w if sel_w else None
        by_run.append({"run": run_id, "rate": rate, "run_rate": run_rate, "selected": int(sel_n)})
        run_sel, run_resp = design.run_counts.get(run_id, (0, 0))
        if _rates_differ(int(resp_n), int(sel_n), run_resp, run_sel):
            differing.append(f"run {run_id}: {rate:.0%} here, {run_rate:.0%} in the run")
    weights = list(d.run_response.values())
    total_sel = sum(t[0] for t in weights)
    warning = None
    if differing:
        warning = (
            "response rate differs from the run's (" + "; ".join(differing) + "): non-response "
            "is adjusted within cells of run x model version x segment where each holds at least "
            f"{estimators.MIN_CELL_RESPONDENTS} labels, and assumed random within each cell"
        )
    return {
        "rate": sum(t[1] for t in weights) / total_sel if total_sel else None,
        "ties": d.ties,
        "skipped": d.skipped,
        "backlog": d.backlog,
        "by_run": by_run,
        "cells": sorted(d.cells),
        "warning": warning,
    }


def _rates_differ(resp: int, sel: int, run_resp: int, run_sel: int) -> bool:
    """Two-proportion z-test (|z| > 1.96) of the group's response share against the rest of its
    run, with at least 10 selected items on each side and a gap of at least 5 points."""
    rest_sel, rest_resp = run_sel - sel, run_resp - resp
    if sel < 10 or rest_sel < 10:
        return False
    p_in, p_out = resp / sel, rest_resp / rest_sel
    pooled = run_resp / run_sel
    spread = pooled * (1 - pooled) * (1 / sel + 1 / rest_sel)
    if spread <= 0 or abs(p_in - p_out) < 0.05:
        return False
    return abs(p_in - p_out) / spread**0.5 > 1.96


EMPTY_RESPONSE: dict[str, Any] = {
    "rate": None,
    "ties": 0,
    "skipped": 0,
    "backlog": 0,
    "by_run": [],
    "cells": [],
    "warning": None,
}


def coverage_note(d: DomainData) -> str | None:
    """Plain words for the runs a group's estimate leaves out, or None."""
    if not d.runs_without_labels:
        return None
    runs = ", ".join(str(r) for r in sorted(d.runs_without_labels))
    return (
        f"{d.population_without_labels} considered items of run(s) {runs} are not covered: "
        "those runs have no labels yet"
    )


def domain_estimate(
    d: DomainData, *, method: str, level: float, target: dict[str, Any]
) -> dict[str, Any]:
    """One group's answer in the API shape of docs/api.md (plus extra fields)."""
    e = estimators.estimate(
        y=d.y,
        f=d.f,
        pi=d.pi,
        population=d.population,
        f_total=d.f_total,
        method=method,
        level=level,
        binary=True,
    )
    out: dict[str, Any] = {
        "estimate": e.estimate,
        "ci_low": e.ci_low,
        "ci_high": e.ci_high,
        "se": e.se,
        "method": e.method,
        "lam": e.lam,
        "n_labels": e.n_labels,
        "population": d.population,
        "ess": e.ess,
        "kish_ess": e.kish_ess,
        "selected": d.selected,
        "nonresponse": d.nonresponse,
        "excluded": d.excluded,
        "excluded_labels": d.excluded_labels,
        "runs": sorted(d.runs),
        "runs_without_labels": sorted(d.runs_without_labels),
        "population_without_labels": d.population_without_labels,
        "coverage_note": coverage_note(d),
        "response": d.response or EMPTY_RESPONSE,
        "note": e.note,
        "warning": "; ".join(w for w in (e.warning, (d.response or EMPTY_RESPONSE)["warning"]) if w)
        or None,
        "interval": e.interval,
        "enough_labels": e.enough_labels,
    }
    out = intervals.withhold_if_too_few(out)
    if target.get("type") == "rating" and target.get("rating_scale"):
        low, high = target["rating_scale"]
        rating = d.rating if d.rating is not None else np.zeros(0)
        # The proxy predicts P(good), not a rating: lam may scale it up to the scale's range.
        r = estimators.estimate(
            y=rating,
            f=d.f[: rating.size],
            pi=d.pi[: rating.size],
            population=d.population,
            f_total=d.f_total,
            method=method,
            level=level,
            binary=False,
            lam_bounds=(0.0, float(high - low)),
        )
        out["rating"] = {
            "estimate": r.estimate,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "se": r.se,
            "n_labels": r.n_labels,
            "warning": r.warning,
            "enough_labels": e.enough_labels,  # same labels and weights as the share
        }
        out["rating"] = intervals.withhold_if_too_few(out["rating"])
    return out


def estimates_compute(
    *,
    project: Project,
    by: str | Sequence[str] | None = None,
    method: str | None = None,
    level: float = 0.95,
    filters: dict[str, Any] | None = None,
    design: ResponseDesign | None = None,
) -> dict[str, Any]:
    """The estimates answer: ``{"target", "method", "level", "by", "coverage", "groups": [...]}``.

    ``coverage`` names the finished runs the estimates cover and those left out (no labels yet).
    Raises EstimateQueryError for an unknown grouping, method or level.
    """
    parts = parse_by(by, project=project)
    try:
        method_name = estimators.method_normalise(method)
    except ValueError as exc:
        raise EstimateQueryError({"method": str(exc)}) from None
    if not 0.5 <= level < 1:
        raise EstimateQueryError({"level": f"must lie in [0.5, 1), got {level}"})
    target = target_info(project)
    design = design or response_design(project=project)
    groups = []
    # The answer shows no explicit-rating counts: skip reading the rated interactions.
    domains = domain_data(project=project, by=parts, filters=filters, design=design, explicit=False)
    for d in domains:
        row = {
            "group": " / ".join(d.group) if parts else "all",
            "group_values": dict(zip(parts, d.group, strict=True)),
            **domain_estimate(d, method=method_name, level=level, target=target),
        }
        groups.append(row)
    if not groups and not parts:
        groups.append(
            {
                "group": "all",
                "group_values": {},
                **domain_estimate(
                    DomainData(group=()), method=method_name, level=level, target=target
                ),
            }
        )
    return {
        "target": target,
        "method": method_name,
        "level": level,
        "by": parts,
        "filters": filters or {},
        "coverage": {
            "rule": COVERAGE_RULE,
            "runs": sorted({r for d in domains for r in d.runs}),
            "runs_without_labels": sorted({r for d in domains for r in d.runs_without_labels}),
            "population_without_labels": sum(d.population_without_labels for d in domains),
        },
        "groups": groups,
    }
