"""Estimates per domain: Inclusion rows and final labels turned into arrays for sampling.estimators.

Population side (``U∩D``): per group and run, the count and sum of ``f`` come from the population
cells each run writes (``sampling.models.PopulationCell``: run x model version x segment x day),
with the explicit-feedback counts they keep current (moved when a rating event is processed), and
only the partial days at the ends of a ``since``/``until`` that is not a UTC midnight from
Inclusion rows; so an estimate reads
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
import itertools
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
from django.db import connection
from django.db.models import Case, Exists, F, OuterRef, QuerySet, Sum, Value, When
from django.db.models.expressions import Expression
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDate, TruncWeek
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from numpy.typing import NDArray

from labeling.models import Interaction, Project, QueueItem
from labeling.rows import rows_by_ids
from labeling.selectors.labels import final_labels, target_good
from sampling import estimators, intervals
from sampling.models import Inclusion, PopulationCell, SamplingRun
from sampling.selectors import labelled, scans

NONE_LABEL = "(none)"
COVERAGE_RULE = (
    "finished probabilistic runs with at least one usable label; a run with none yet is left "
    "out of the population and the sample until its first label"
)
SIMPLE_GROUPS = ("model_version", "week", "run", "rated")
DAY_US = 86_400_000_000  # microseconds in a day
EPOCH_DAY = dt.date(1970, 1, 1)


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
    # The labelled entries as rows of ``design.items`` (the array path only; empty from the scan),
    # for a caller that adjusts ``pi`` differently (monitoring's looks: each day's rates).
    sample: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


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


class _RunRates:
    """What both designs answer from their run rates."""

    run_rate: dict[int, float]  # run id -> weighted response rate (labelled runs only)

    @property
    def rate(self) -> dict[int, float]:  # the run rates, under their older name
        return self.run_rate

    def covers(self, run_id: int) -> bool:
        return run_id in self.run_rate


@dataclass
class ResponseDesign(_RunRates):
    """The non-response adjustment of the project's finished probabilistic runs.

    Computed once per answer over **every** selected item of every finished run, never over a
    filtered subset: a labelled item outside the query's filters still answered for its run
    (issue 17). Adjustment cells are the run split by model version and then by each segment key
    as far as :func:`sampling.estimators.response_cells` allows (each cell with at least
    ``MIN_CELL_RESPONDENTS`` labels); a respondent's ``pi`` is multiplied by its cell's weighted
    response rate (``item_rate``). ``run_rate`` holds each labelled run's overall rate. A run
    without any usable label is in ``unlabelled_runs`` and is left out of every estimate.

    ``items`` are the selected items with their labels as columns
    (``sampling.selectors.labelled``, as of ``cutoff`` when given); ``cell`` is each item's
    adjustment cell (an index into ``cell_words`` and ``cell_rate``; -1 for items without ``pi``).
    The per-item mappings (``labels``, ``item_rate``, ``item_cell``, ``tied``, ``skipped``) are
    built from them on first use.
    """

    items: labelled.SelectedItems
    cell: NDArray[np.int64]
    cell_words: list[str]
    cell_rate: NDArray[np.float64]
    run_rate: dict[int, float]  # run id -> weighted response rate (labelled runs only)
    unlabelled_runs: set[int]
    run_counts: dict[int, tuple[int, int]] = field(default_factory=dict)  # (selected, labelled)
    cutoff: int | None = None

    @cached_property
    def item_rate_array(self) -> NDArray[np.float64]:
        """Each item's cell rate (NaN for items without ``pi``)."""
        out = np.full(self.items.size, np.nan)
        has = self.cell >= 0
        out[has] = self.cell_rate[self.cell[has]]
        return out

    @cached_property
    def labels(self) -> dict[int, tuple[float, float | None]]:
        """Selected item -> (y, rating or None), for the items with a usable final label."""
        it = self.items
        at = np.flatnonzero(it.labelled)
        return {
            i: (y, r if has else None)
            for i, y, r, has in zip(
                it.interaction_id[at].tolist(),
                it.y[at].tolist(),
                it.rating[at].tolist(),
                it.has_rating[at].tolist(),
                strict=True,
            )
        }

    @cached_property
    def item_rate(self) -> dict[int, float]:  # selected item (with pi) -> its cell's rate
        has = self.cell >= 0
        return dict(
            zip(
                self.items.interaction_id[has].tolist(),
                self.item_rate_array[has].tolist(),
                strict=True,
            )
        )

    @cached_property
    def item_cell(self) -> dict[int, str]:  # selected item (with pi) -> its cell, in words
        has = self.cell >= 0
        words = self.cell_words
        return {
            i: words[c]
            for i, c in zip(
                self.items.interaction_id[has].tolist(), self.cell[has].tolist(), strict=True
            )
        }

    @cached_property
    def tied(self) -> set[int]:  # selected, no usable label, the target answers tie
        return set(self.items.interaction_id[self.items.tied].tolist())

    @cached_property
    def skipped(self) -> set[int]:  # selected, skipped at least once
        return set(self.items.interaction_id[self.items.skipped].tolist())


@dataclass
class ScanDesign(_RunRates):
    """:class:`ResponseDesign` as :func:`_response_design_scan` computes it, item by item (the
    reference the array path is tested against).

    The non-response adjustment of the project's finished probabilistic runs.

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
    return design_from_items(
        project=project, items=labelled.selected_items(project=project, cutoff=cutoff)
    )


def design_from_items(*, project: Project, items: labelled.SelectedItems) -> ResponseDesign:
    """The response design over ``items``: the same rates, cells and counts as
    :func:`_response_design_scan`, with array operations over the items."""
    segment_keys = list(project.segment_keys or [])
    key_names = ["run", "model_version", *(f"segment.{k}" for k in segment_keys)]
    at = np.flatnonzero(~np.isnan(items.pi))  # the design's rows: selected items with a pi
    pi = items.pi[at]
    responded = items.labelled[at]
    run_values, run_code = np.unique(items.run_id[at], return_inverse=True)
    found = estimators.cell_rates(pi=pi, responded=responded, cell=run_code, cells=run_values.size)
    run_rate = {int(r): float(v) for r, v in zip(run_values, found, strict=True) if v > 0}
    selected_n = np.bincount(run_code, minlength=run_values.size)
    labelled_n = np.bincount(run_code, weights=responded, minlength=run_values.size)
    run_counts = {
        int(r): (int(s), int(c)) for r, s, c in zip(run_values, selected_n, labelled_n, strict=True)
    }
    # The cells' keys: the run, the version's label, each segment key's label (Python's
    # group_label of the value, as the cells always had).
    versions, version_code = _codes([group_label(v or None) for v in items.versions])
    columns: list[tuple[list[str] | NDArray[np.int64], NDArray[np.int64]]] = [
        (run_values, run_code),
        (versions, version_code[items.version[at]]),
    ]
    for key in segment_keys:
        values, code = _codes([group_label(seg.get(key)) for seg in items.segments])
        columns.append((values, code[items.segment[at]]))
    cell_at, paths = estimators.response_cells_coded(
        responded=responded, codes=[code for _, code in columns]
    )
    cell_words = [
        _cell_words(
            tuple(
                "*" if c == estimators.REMAINDER else _plain(values[c])
                for (values, _), c in zip(columns, path, strict=False)
            ),
            key_names,
        )
        for path in paths
    ]
    cell_rate = estimators.cell_rates(pi=pi, responded=responded, cell=cell_at, cells=len(paths))
    cell = np.full(items.size, -1, dtype=np.int64)
    cell[at] = cell_at
    return ResponseDesign(
        items=items,
        cell=cell,
        cell_words=cell_words,
        cell_rate=cell_rate,
        run_rate=run_rate,
        unlabelled_runs=(set(items.done_runs) | set(run_values.tolist())) - set(run_rate),
        run_counts=run_counts,
        cutoff=items.cutoff,
    )


def _codes(values: Sequence[str]) -> tuple[list[str], NDArray[np.int64]]:
    """Distinct values (first seen first) and each value's index among them."""
    index: dict[str, int] = {}
    code = np.array([index.setdefault(v, len(index)) for v in values], dtype=np.int64)
    return list(index), code


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _response_design_scan(*, project: Project, cutoff: int | None = None) -> ScanDesign:
    """The response design computed item by item over every selected row (the reference)."""
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
    return ScanDesign(
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
    (:func:`_population_from_cells`), not from every inclusion.
    """
    rows = _population_from_cells(project=project, by=by, filters=filters, explicit=explicit)
    return _domain_data(project=project, by=by, filters=filters, design=design, population=rows)


def _domain_data_scan(
    *,
    project: Project,
    by: Sequence[str] = (),
    filters: dict[str, Any] | None = None,
    design: ResponseDesign | ScanDesign | None = None,
) -> list[DomainData]:
    """:func:`domain_data` with the population side aggregated from every inclusion (the
    reference the cells are tested against)."""
    base = filtered_inclusions(project=project, filters=filters)
    rows = _population_scan(base, by)
    return _domain_data_rows(
        project=project, by=by, filters=filters, design=design, population=rows
    )


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


@dataclass(frozen=True)
class DaySplit:
    """A filter's ``since``/``until`` as whole UTC days, read from per-day aggregates (the
    population and topic cells), and the partial days at either end, scanned row by row.

    ``first``: the first whole day (None: no lower bound); ``end``: whole days are before it (None:
    no upper bound); ``edges``: the filters of each partial day to scan; ``whole``: the filters
    without the time bounds. ``no_whole_day``: the range lies within two days, scan it all.
    """

    first: dt.date | None
    end: dt.date | None
    edges: list[dict[str, Any]]
    whole: dict[str, Any]

    @property
    def no_whole_day(self) -> bool:
        return self.first is not None and self.end is not None and self.first >= self.end


def day_split(filters: dict[str, Any]) -> DaySplit:
    """``filters``' time range as whole days and partial-day edges (:class:`DaySplit`)."""
    since = _utc(_parse_time(filters["since"], "since")) if filters.get("since") else None
    until = _utc(_parse_time(filters["until"], "until")) if filters.get("until") else None
    first = None if since is None else since.date() + dt.timedelta(days=since.time() != dt.time(0))
    end = None if until is None else until.date()
    bounds = []
    if since is not None and first is not None and _midnight(first) != since:
        bounds.append((since, _midnight(first)))
    if until is not None and end is not None and _midnight(end) != until:
        bounds.append((_midnight(end), until))
    edges = [{**filters, "since": lo.isoformat(), "until": hi.isoformat()} for lo, hi in bounds]
    whole = {k: v for k, v in filters.items() if k not in ("since", "until")}
    return DaySplit(first=first, end=end, edges=edges, whole=whole)


def _population_from_cells(
    *, project: Project, by: Sequence[str], filters: dict[str, Any] | None, explicit: bool = True
) -> PopulationRows:
    """The same numbers as :func:`_population_scan` over ``filtered_inclusions``, read from
    O(runs x cells) rows.

    Whole days inside ``since``/``until`` come from the population cells (count, sum of ``f``,
    excluded, and the current explicit ratings the processing of rating events keeps in them: a
    grouping by ``rated`` splits each cell into its rated and unrated items); the partial days at
    either end, if a bound is not a UTC midnight, from the Inclusion rows of that part of a day.
    """
    filters = dict(filters or {})
    split = day_split(filters)
    out: PopulationRows = {}
    if split.no_whole_day:
        # No whole day in between (within two days): scan the rows of the interval.
        rows = _scan_rows(project=project, filters=filters, by=by)
        return rows if explicit or "rated" in by else _without_ratings(rows)
    for part in split.edges:
        _add(out, _scan_rows(project=project, filters=part, by=by))
    whole = dict(split.whole)
    if split.first is not None:
        whole["since"] = _midnight(split.first).isoformat()
    if split.end is not None:
        whole["until"] = _midnight(split.end).isoformat()
    _add(out, _cells(project=project, by=by, filters=whole, first=split.first, end=split.end))
    if not explicit and "rated" not in by:
        return _without_ratings(out)  # the partial days' scan counted some: leave all out
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
        .annotate(
            n=Sum("n"),
            f_total=Sum("f_total"),
            excluded=Sum("excluded"),
            rated=Sum("rated"),
            down=Sum("down"),
            rated_f=Sum("rated_f"),
            rated_excluded=Sum("rated_excluded"),
        )
        .order_by()
    )
    at = list(by).index("rated") if "rated" in by else None
    out: PopulationRows = {}
    for row in agg:
        key = _labels(by, row, names)  # a day's label is its ISO week (or the day itself)
        run_id = int(row["run_id"])
        n, f_total, excluded = (
            int(row["n"] or 0),
            float(row["f_total"] or 0.0),
            int(row["excluded"] or 0),
        )
        rated, down = int(row["rated"] or 0), int(row["down"] or 0)
        rated_f, rated_excluded = float(row["rated_f"] or 0.0), int(row["rated_excluded"] or 0)
        if at is not None:  # the cells' items split by whether they are rated now
            yes = out.setdefault(((*key[:at], "yes", *key[at + 1 :]), run_id), Population())
            yes.n += rated
            yes.f_total += rated_f
            yes.excluded += rated_excluded
            yes.rated += rated
            yes.down += down
            n, f_total, excluded = n - rated, f_total - rated_f, excluded - rated_excluded
            rated = down = 0
        p = out.setdefault((key, run_id), Population())
        p.n += n
        p.f_total += f_total
        p.excluded += excluded
        p.rated += rated
        p.down += down
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
    groups = _population_groups(population, design)
    items = design.items
    at = np.flatnonzero(_sample_mask(project=project, items=items, filters=filters))
    labels, code = _group_codes(project=project, items=items, at=at, by=by)
    order = np.argsort(code, kind="stable")  # by group, each in interaction id order
    at, code = at[order], code[order]
    bounds: list[int] = (
        np.flatnonzero(np.r_[True, code[1:] != code[:-1], True]).tolist() if at.size else []
    )
    covered = np.array(sorted(design.run_rate), dtype=np.int64)
    rate = design.item_rate_array
    for start, stop in itertools.pairwise(bounds):
        key = labels[int(code[start])]
        d = groups.setdefault(key, DomainData(group=key))
        rows = at[start:stop]
        has_pi = ~np.isnan(items.pi[rows])
        d.excluded_labels += int((items.labelled[rows] & ~has_pi).sum())
        rows = rows[has_pi & np.isin(items.run_id[rows], covered)]  # covered runs only
        if not rows.size:
            continue
        got = items.labelled[rows]
        d.selected += int(rows.size)
        missing = rows[~got]
        d.nonresponse += int(missing.size)
        tied = items.tied[missing]
        d.ties += int(tied.sum())
        d.skipped += int((~tied & items.skipped[missing]).sum())
        d.backlog += int((~tied & ~items.skipped[missing]).sum())
        # Per run: the weights summed one by one in item order (as the row loop did).
        weight = 1 / items.pi[rows]
        runs, first, run_code = np.unique(
            items.run_id[rows], return_index=True, return_inverse=True
        )
        sel_w = np.bincount(run_code, weights=weight, minlength=runs.size)
        resp_w = np.bincount(run_code, weights=np.where(got, weight, 0.0), minlength=runs.size)
        sel_n = np.bincount(run_code, minlength=runs.size)
        resp_n = np.bincount(run_code, weights=got, minlength=runs.size)
        for i in np.argsort(first).tolist():  # runs in the order the items name them
            run_id = int(runs[i])
            d.run_response[run_id] = [
                float(sel_w[i]),
                float(resp_w[i]),
                int(sel_n[i]),
                int(resp_n[i]),
            ]
        sample = rows[got]
        if not sample.size:
            continue
        d.cells.update(design.cell_words[c] for c in np.unique(design.cell[sample]).tolist())
        d.interaction_ids = items.interaction_id[sample].tolist()
        d.y = items.y[sample].astype(float)
        d.rating = items.rating[sample].astype(float) if items.has_rating[sample].all() else None
        d.f = items.f[sample].astype(float)
        d.pi = items.pi[sample] * rate[sample]
        d.sample = sample
    for d in groups.values():
        d.response = response_summary(d, design)
    return [groups[k] for k in sorted(groups)]


def _population_groups(
    population: PopulationRows, design: ResponseDesign | ScanDesign
) -> dict[tuple[str, ...], DomainData]:
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
    return groups


_JSON_WORDS = ("true", "false", "null")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _plain_key(key: str) -> bool:
    """A segment key the array path reads as the database does (one JSON key, not a path or an
    array index)."""
    return bool(_PLAIN_KEY.fullmatch(key)) and "__" not in key


def selected_mask(
    *, project: Project, items: labelled.SelectedItems, filters: dict[str, Any] | None
) -> NDArray[np.bool_]:
    """Which of the selected ``items`` match ``filters`` (the rows of
    ``filtered_inclusions(filters).filter(selected=True)``)."""
    return _sample_mask(project=project, items=items, filters=filters)


def _sample_mask(
    *, project: Project, items: labelled.SelectedItems, filters: dict[str, Any] | None
) -> NDArray[np.bool_]:
    """Which selected items match ``filters``: the lookups of :func:`filtered_inclusions` on the
    item columns. Filter values other than strings, the strings SQLite matches with JSON's
    literals (``"true"`` matches ``true`` there), and a segment key that is a path are left to the
    database."""
    filters = filters or {}
    mask = np.ones(items.size, dtype=bool)
    versions = filters.get("model_versions") or filters.get("model_version")
    segment = filters.get("segment") or {}
    wanted = {
        key: [values] if isinstance(values, str) else list(values)
        for key, values in segment.items()
    }
    if versions:
        versions = [versions] if isinstance(versions, str) else list(versions)
    if not all(isinstance(v, str) for v in versions or []) or not all(
        _plain_key(key) and all(isinstance(v, str) and v not in _JSON_WORDS for v in values)
        for key, values in wanted.items()
    ):
        ids = filtered_inclusions(project=project, filters=filters).filter(selected=True)
        found = np.array(sorted(ids.values_list("interaction_id", flat=True)), dtype=np.int64)
        return np.isin(items.interaction_id, found)
    if versions:
        allowed = [i for i, v in enumerate(items.versions) if v in set(versions)]
        mask &= np.isin(items.version, allowed)
    for key, values in wanted.items():
        allowed = [
            i
            for i, seg in enumerate(items.segments)
            if isinstance(seg.get(key), str) and seg[key] in values
        ]
        mask &= np.isin(items.segment, allowed)
    if filters.get("runs"):
        mask &= np.isin(items.run_id, [int(r) for r in filters["runs"]])
    if filters.get("since"):
        since = labelled.microseconds(_utc(_parse_time(filters["since"], "since")))
        mask &= items.occurred_us >= since
    if filters.get("until"):
        until = labelled.microseconds(_utc(_parse_time(filters["until"], "until")))
        mask &= items.occurred_us < until
    return mask


def _group_codes(
    *, project: Project, items: labelled.SelectedItems, at: NDArray[np.int64], by: Sequence[str]
) -> tuple[list[tuple[str, ...]], NDArray[np.int64]]:
    """The group of each item ``at`` under ``by``, labelled as :func:`_group_expr` read from the
    database labels it: the distinct group keys and each item's index among them."""
    if not by:
        return [()], np.zeros(at.size, dtype=np.int64)
    columns = [_group_column(project=project, items=items, at=at, name=name) for name in by]
    codes = np.stack([code for _, code in columns], axis=1)
    distinct, code = np.unique(codes, axis=0, return_inverse=True)
    keys = [
        tuple(values[c] for (values, _), c in zip(columns, row, strict=True))
        for row in distinct.tolist()
    ]
    return keys, code.reshape(-1).astype(np.int64)


def _group_column(
    *, project: Project, items: labelled.SelectedItems, at: NDArray[np.int64], name: str
) -> tuple[list[str], NDArray[np.int64]]:
    """One grouping's label of each item ``at``: the distinct labels and each item's index."""
    if name == "model_version":
        labels, code = _codes([group_label(v) for v in items.versions])
        return labels, code[items.version[at]]
    if name in ("week", "day"):  # a date's label is its ISO week (as TruncDate's was)
        days, code = np.unique(items.occurred_us[at] // DAY_US, return_inverse=True)
        labels, relabel = _codes(
            [group_label(EPOCH_DAY + dt.timedelta(days=d)) for d in days.tolist()]
        )
        return labels, relabel[code]
    if name == "run":
        runs, code = np.unique(items.run_id[at], return_inverse=True)
        return [str(r) for r in runs.tolist()], code
    if name == "rated":
        rated = rated_now(items=items)[at]
        return ["no", "yes"], rated.astype(np.int64)
    key = name[len("segment.") :]
    labels, code = _codes(_segment_labels(items=items, key=key))
    return labels, code[items.segment[at]]


def rated_now(*, items: labelled.SelectedItems) -> NDArray[np.bool_]:
    """Which of the selected ``items`` have an explicit rating now (read fresh: ratings change
    after a run), looked up by primary key: one probe per selected item instead of reading every
    rated interaction of the project (``labelled.rated_ids``, the same answer)."""
    if not items.size:
        return np.zeros(0, dtype=bool)
    with connection.cursor() as cursor:
        rows = rows_by_ids(
            cursor,
            f"SELECT id FROM {Interaction._meta.db_table} ",
            "id",
            items.interaction_id.tolist(),
            also="explicit_rating IS NOT NULL",
        )
    found = np.array([int(r[0]) for r in rows], dtype=np.int64)
    return np.isin(items.interaction_id, found)


def _segment_labels(*, items: labelled.SelectedItems, key: str) -> list[str]:
    """The label of ``segment.<key>`` for each segment object of ``items``, as the database
    renders the key's text (``->>``, ``JSON_EXTRACT``): strings and integers are read here; other
    values (null, booleans, decimals, objects), which each database writes its own way (SQLite
    writes ``null``, ``true``), are read from the database for one item of each segment object."""
    out: list[str | None] = []
    for seg in items.segments:
        value = seg.get(key)
        if not _plain_key(key):
            out.append(None)
        elif key not in seg:
            out.append(NONE_LABEL)
        elif isinstance(value, str):
            out.append(group_label(value))
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
            out.append(str(value))
        else:  # null, booleans, decimals, objects: as the database writes them
            out.append(None)
    ask = [i for i, label in enumerate(out) if label is None]
    if ask:
        first = {
            int(s): int(i)
            for s, i in zip(*np.unique(items.segment, return_index=True), strict=True)
        }
        ids = {int(items.interaction_id[first[s]]): s for s in ask if s in first}
        for pk, text in (
            Interaction.objects.filter(pk__in=list(ids))
            .annotate(text=KeyTextTransform(key, "segment"))
            .values_list("pk", "text")
        ):
            out[ids[pk]] = group_label(text)
    return [label if label is not None else NONE_LABEL for label in out]


def _domain_data_rows(
    *,
    project: Project,
    by: Sequence[str],
    filters: dict[str, Any] | None,
    design: ResponseDesign | ScanDesign | None,
    population: PopulationRows,
) -> list[DomainData]:
    """:func:`_domain_data` with the sample read row by row from the database (the reference)."""
    design = design or response_design(project=project)
    exprs = {f"g{i}": _group_expr(name) for i, name in enumerate(by)}
    names = list(exprs)
    base = filtered_inclusions(project=project, filters=filters)
    groups = _population_groups(population, design)

    sample = list(
        base.filter(selected=True)
        .annotate(**exprs)
        .order_by("interaction_id")  # the order of the array path
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


def response_summary(d: DomainData, design: ResponseDesign | ScanDesign) -> dict[str, Any]:
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
