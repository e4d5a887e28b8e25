"""Estimates per domain: Inclusion rows and final labels turned into arrays for sampling.estimators.

Population side (``U∩D``): aggregated in SQL per group (count, sum of ``f``, explicit-feedback
counts), so a million considered items never travel to Python. Sample side (``S∩D``): the selected
items with their final labels. Only rows of finished runs count. Rules:

- items whose run recorded no ``pi`` (deterministic mode) are left out of the population and the
  sample, and counted (``excluded``, ``excluded_labels``);
- a selected item without a usable final label (backlog, skipped, tie awaiting adjudication) is
  non-response: each run is one adjustment cell and its respondents' ``pi`` is multiplied by the
  run's weighted response rate (``sampling.estimators.nonresponse_adjust``); the count is reported;
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db.models import Case, Count, F, Q, QuerySet, Sum, Value, When
from django.db.models.expressions import Expression
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncWeek
from django.utils.dateparse import parse_datetime

from labeling.models import Project
from labeling.selectors.labels import final_labels, target_good
from sampling import estimators, intervals
from sampling.models import Inclusion, SamplingRun

NONE_LABEL = "(none)"
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
    selected: int = 0  # selected items with a pi
    nonresponse: int = 0  # selected, no usable label
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
    filters = filters or {}
    versions = filters.get("model_versions") or filters.get("model_version")
    if versions:
        qs = qs.filter(
            interaction__model_version__in=[versions] if isinstance(versions, str) else versions
        )
    for key, values in (filters.get("segment") or {}).items():
        vals = [values] if isinstance(values, str) else list(values)
        qs = qs.filter(**{f"interaction__segment__{key}__in": vals})
    if filters.get("since"):
        qs = qs.filter(interaction__occurred_at__gte=_parse_time(filters["since"], "since"))
    if filters.get("until"):
        qs = qs.filter(interaction__occurred_at__lt=_parse_time(filters["until"], "until"))
    if filters.get("runs"):
        qs = qs.filter(run_id__in=[int(r) for r in filters["runs"]])
    return qs


def run_response_rates(*, project: Project, labelled: set[int]) -> dict[int, float]:
    """Weighted response rate of each run over all its selected items (one cell per run)."""
    rows = list(
        Inclusion.objects.filter(
            project=project,
            run__status=SamplingRun.Status.DONE,
            selected=True,
            pi__isnull=False,
        ).values_list("run_id", "pi", "interaction_id")
    )
    if not rows:
        return {}
    runs = np.array([r[0] for r in rows])
    pis = np.array([r[1] for r in rows], dtype=float)
    responded = np.array([r[2] in labelled for r in rows])
    _, rates = estimators.nonresponse_adjust(pi=pis, responded=responded, cell=runs)
    return {int(k): float(v) for k, v in rates.items()}


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


def labelled_values(
    *, project: Project, interaction_ids: Sequence[int]
) -> dict[int, tuple[float, float | None]]:
    """interaction id -> (y, rating or None) for items whose final label answers the target."""
    schema = project.label_schema or {}
    key = str((schema.get("target") or {}).get("question") or "")
    out: dict[int, tuple[float, float | None]] = {}
    for interaction_id, values in final_labels(
        project=project, interaction_ids=interaction_ids
    ).items():
        y = target_good(schema=schema, values=values)
        if y is None:
            continue
        raw = values.get(key)
        rating = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        out[interaction_id] = (y, rating)
    return out


def domain_data(
    *, project: Project, by: Sequence[str] = (), filters: dict[str, Any] | None = None
) -> list[DomainData]:
    """Per group of ``by`` (one group ``()`` when empty): population aggregates and the sample."""
    exprs = {f"g{i}": _group_expr(name) for i, name in enumerate(by)}
    names = list(exprs)
    base = filtered_inclusions(project=project, filters=filters)
    has_pi, no_pi = Q(pi__isnull=False), Q(pi__isnull=True)
    agg = (
        base.annotate(**exprs)
        .values(*names)
        .annotate(
            n=Count("id", filter=has_pi),
            f_total=Sum("f", filter=has_pi),
            excluded=Count("id", filter=no_pi),
            rated=Count("id", filter=has_pi & Q(interaction__explicit_rating__isnull=False)),
            down=Count("id", filter=has_pi & Q(interaction__explicit_rating__lt=0)),
        )
        .order_by()
    )
    groups: dict[tuple[str, ...], DomainData] = {}
    for row in agg:
        key = tuple(group_label(row[n]) for n in names)
        d = groups.setdefault(key, DomainData(group=key))  # TruncWeek may split one ISO week
        d.population += row["n"]
        d.f_total += float(row["f_total"] or 0.0)
        d.excluded += row["excluded"]
        d.rated += row["rated"]
        d.thumbs_down += row["down"]

    sample = list(
        base.filter(selected=True)
        .annotate(**exprs)
        .values_list("interaction_id", "run_id", "f", "pi", *names)
    )
    labels = labelled_values(project=project, interaction_ids=[r[0] for r in sample])
    rates = run_response_rates(project=project, labelled=set(labels))
    per_group: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for interaction_id, run_id, f, pi, *gvals in sample:
        key = tuple(group_label(v) for v in gvals)
        d = groups.setdefault(key, DomainData(group=key))
        label = labels.get(interaction_id)
        if pi is None:
            d.excluded_labels += label is not None
            continue
        d.selected += 1
        if label is None or rates.get(run_id, 0.0) <= 0:
            d.nonresponse += 1
            continue
        per_group[key].append((interaction_id, label[0], label[1], f, pi * rates[run_id]))
    for key, rows in per_group.items():
        d = groups[key]
        d.interaction_ids = [r[0] for r in rows]
        d.y = np.array([r[1] for r in rows], dtype=float)
        ratings = [r[2] for r in rows]
        d.rating = None if any(v is None for v in ratings) else np.array(ratings, dtype=float)
        d.f = np.array([r[3] for r in rows], dtype=float)
        d.pi = np.array([r[4] for r in rows], dtype=float)
    return [groups[k] for k in sorted(groups)]


def domain_estimate(
    d: DomainData, *, method: str, level: float, target: dict[str, Any]
) -> dict[str, Any]:
    """One group's answer in the API shape of DESIGN.md section 11 (plus extra fields)."""
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
        "warning": e.warning,
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
) -> dict[str, Any]:
    """The estimates answer: ``{"target", "method", "level", "by", "groups": [...]}``.

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
    groups = []
    for d in domain_data(project=project, by=parts, filters=filters):
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
        "groups": groups,
    }
