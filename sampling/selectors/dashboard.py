"""What the dashboard shows, composed from the selectors the API uses (never computed here).

This module only calls other selectors (estimates, reports, queue health, agreement, coverage)
with the dashboard's filters and arranges their answers into sections and plots; the only rows it
reads itself are the proxy model versions and the strategies' segment minimums (configuration,
not statistics). A section with nothing to say yet carries an ``empty`` message that tells the
user what to do next instead of a number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max
from django.utils import timezone

from labeling.models import Annotation, Event, Interaction, Project
from labeling.selectors.agreement import project_agreement
from labeling.selectors.queue import annotator_stats, queue_health
from sampling import plots
from sampling.models import ProxyModel, SamplingRun, SamplingStrategy
from sampling.selectors.coverage import cluster_coverage, label_latency_hours
from sampling.selectors.estimates import domain_data, estimates_compute
from sampling.selectors.reports import bias_report, power_report, regression_report

RANGES: dict[str, int | None] = {"7d": 7, "30d": 30, "90d": 90, "all": None}
# The statistical sections are cached for this long under a key that changes with every new
# label, run, event, schema or strategy change, so a cached page is never stale, only reused.
CACHE_SECONDS = 300
CHOICES_SECONDS = 600


@dataclass(frozen=True)
class DashboardFilters:
    """Time range, model version and segment (``key=value``) chosen on the dashboard."""

    range: str = "30d"
    model_version: str = ""
    segment: str = ""
    # When the filters were read, to the minute: "last 7 days" means the same instant for every
    # section, for the API links under the filters, and for every view within that minute.
    now: dt.datetime = field(default_factory=lambda: _minute(timezone.now()))

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> DashboardFilters:
        chosen = query.get("range", "30d")
        return cls(
            range=chosen if chosen in RANGES else "30d",
            model_version=(query.get("model_version") or "").strip(),
            segment=(query.get("segment") or "").strip() if "=" in query.get("segment", "") else "",
        )

    def since(self) -> dt.datetime | None:
        days = RANGES[self.range]
        return None if days is None else self.now - dt.timedelta(days=days)

    @property
    def segment_filter(self) -> dict[str, list[str]]:
        if not self.segment:
            return {}
        key, _, value = self.segment.partition("=")
        return {key: [value]}

    def api_query(self) -> dict[str, str]:
        """The same filters as API query parameters (what the API would be asked)."""
        params: dict[str, str] = {}
        since = self.since()
        if since is not None:
            params["since"] = since.isoformat()
        if self.model_version:
            params["model_version"] = self.model_version
        if self.segment:
            key, _, value = self.segment.partition("=")
            params[f"segment.{key}"] = value
        return params


@dataclass
class Section:
    """One dashboard panel: its data, plots (inline SVG) and an empty-state message."""

    data: Any = None
    plots: dict[str, str] = field(default_factory=dict)
    empty: str = ""


@dataclass
class Dashboard:
    started: bool  # a sampling run has finished: the estimates have something to work on
    quality: Section
    coverage: Section
    bias: Section
    power: Section
    queue: Section
    proxy: Section


def filter_choices(*, project: Project) -> dict[str, Any]:
    """Model versions and segment values present in the project (for the filter drop-downs).

    Cached for ``CHOICES_SECONDS``: they are only the options of a drop-down (a value seen a few
    minutes late is harmless) and reading distinct JSON values scans the project's interactions.
    """
    key = f"dashboard-choices:{project.pk}:{project.updated_at.timestamp():.6f}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    versions = list(
        Interaction.objects.filter(project=project)
        .exclude(model_version="")
        .values_list("model_version", flat=True)
        .distinct()
        .order_by("model_version")[:100]
    )
    segments: list[str] = []
    for key in project.segment_keys or []:
        values = (
            Interaction.objects.filter(project=project, **{f"segment__{key}__isnull": False})
            .values_list(f"segment__{key}", flat=True)
            .distinct()[:50]
        )
        segments.extend(f"{key}={v}" for v in sorted({str(v) for v in values}))
    choices = {"ranges": list(RANGES), "model_versions": versions, "segments": segments}
    cache.set(key, choices, CHOICES_SECONDS)
    return choices


def _minute(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0)


def data_version(*, project: Project) -> tuple[Any, ...]:
    """Changes whenever something the statistics read changes (labels are append-only: an edit or
    an adjudication is a new row; runs finish; events arrive; schema and strategies are edited)."""
    runs = SamplingRun.objects.filter(project=project, status=SamplingRun.Status.DONE).aggregate(
        n=Count("id"), last=Max("id")
    )
    return (
        Annotation.objects.filter(queue_item__project=project).aggregate(m=Max("id"))["m"],
        Annotation.objects.filter(queue_item__project=project, is_current=True).count(),
        runs["n"],
        runs["last"],
        Event.objects.filter(project=project).aggregate(m=Max("id"))["m"],
        project.schema_version,
        project.updated_at.isoformat() if project.updated_at else None,
        str(SamplingStrategy.objects.filter(project=project).aggregate(m=Max("updated_at"))["m"]),
    )


def dashboard_data(*, project: Project, filters: DashboardFilters) -> Dashboard:
    """Every section of the dashboard for ``project`` under ``filters``.

    Quality, coverage, bias and power (the expensive statistics) come from the cache when nothing
    they read has changed (:func:`data_version`); queue health and the proxy list are always read
    fresh, since leases expire with time.
    """
    key = "dashboard:" + hashlib.sha256(
        repr(
            (project.pk, filters.range, filters.model_version, filters.segment, filters.since(),
             data_version(project=project))
        ).encode()
    ).hexdigest()  # fmt: skip
    statistics = cache.get(key)
    if statistics is None:
        statistics = {
            "started": _no_runs_message(project) is None,
            "quality": _quality(project=project, filters=filters),
            "coverage": _coverage(project=project, filters=filters),
            "bias": _bias(project=project, filters=filters),
            "power": _power(project=project, filters=filters),
        }
        cache.set(key, statistics, CACHE_SECONDS)
    return Dashboard(
        **statistics,
        queue=_queue(project=project, filters=filters),
        proxy=_proxy(project=project),
    )


def estimate_filters(filters: DashboardFilters) -> dict[str, Any]:
    """The dashboard filters in the strategy/estimates filter format."""
    out: dict[str, Any] = {}
    since = filters.since()
    if since is not None:
        out["since"] = since.isoformat()
    if filters.model_version:
        out["model_versions"] = [filters.model_version]
    if filters.segment_filter:
        out["segment"] = filters.segment_filter
    return out


def _week_start(label: str) -> dt.date | None:
    """``2026-W47`` -> the Monday of that ISO week."""
    try:
        year, week = label.split("-W")
        return dt.date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        return None


def _no_runs_message(project: Project) -> str | None:
    if not SamplingRun.objects.filter(project=project, status=SamplingRun.Status.DONE).exists():
        return "Waiting for the first sampling run (see “Getting started” above)."
    return None


def _quality(*, project: Project, filters: DashboardFilters) -> Section:
    if message := _no_runs_message(project):
        return Section(empty=message)
    where = estimate_filters(filters)
    overall = estimates_compute(project=project, by="model_version", filters=where)
    rows = [g for g in overall["groups"] if g["n_labels"]]
    if not rows:
        return Section(
            empty="No labels yet in this range — annotators label the queue (Label page); "
            "the quality estimate appears with the first labels."
        )
    weekly = estimates_compute(project=project, by=["model_version", "week"], filters=where)
    bands: list[plots.Band] = []
    by_version: dict[str, list[dict[str, Any]]] = {}
    for g in weekly["groups"]:
        if g["n_labels"] and g["estimate"] is not None:
            by_version.setdefault(g["group_values"]["model_version"], []).append(g)
    for version, groups in sorted(by_version.items()):
        points = sorted(
            (d, g) for g in groups if (d := _week_start(g["group_values"]["week"])) is not None
        )
        bands.append(
            plots.Band(
                name=version,
                x=[d for d, _ in points],
                y=[g["estimate"] for _, g in points],
                low=[g["ci_low"] for _, g in points],
                high=[g["ci_high"] for _, g in points],
            )
        )
    thumbs: list[tuple[dt.date, float]] = []
    for domain in domain_data(project=project, by=["week"], filters=where):
        week = _week_start(domain.group[0])
        if week is not None and domain.rated:
            thumbs.append((week, 1.0 - domain.thumbs_down / domain.rated))
    thumbs.sort()
    if thumbs:
        bands.append(
            plots.Band(
                name="thumbs-up rate (raters only)",
                x=[w for w, _ in thumbs],
                y=[r for _, r in thumbs],
                dashed=True,
            )
        )
    level = overall["level"]
    regression = regression_report(project=project, filters=where)
    against = {v["model_version"]: v for v in regression["versions"]}
    for row in rows:
        version = against.get(row["group"], {})
        row["difference"] = version.get("difference")
        row["flagged"] = version.get("flagged", False)
    return Section(
        data={
            "method": overall["method"],
            "level_pct": round(100 * level),
            "baseline": regression["baseline"],
            "baseline_chosen_by": regression["baseline_chosen_by"],
            "flagged": [r["group"] for r in rows if r["flagged"]],
            "rows": rows,
            "coverage": overall["coverage"],  # which runs the estimates cover (issue 17)
        },
        plots={"quality": plots.quality_over_time(bands=bands)},
    )


def segment_minimums(*, project: Project) -> dict[str, int]:
    """The largest minimum any active strategy asks for, per segment key."""
    out: dict[str, int] = {}
    for minimums in SamplingStrategy.objects.filter(project=project, active=True).values_list(
        "segment_minimums", flat=True
    ):
        for key, value in (minimums or {}).items():
            out[key] = max(out.get(key, 0), int(value))
    return out


def _coverage(*, project: Project, filters: DashboardFilters) -> Section:
    if message := _no_runs_message(project):
        return Section(empty=message)
    if not project.segment_keys:
        return Section(
            empty="This project has no segment keys: set segment_keys on the project to see "
            "labels against traffic per segment."
        )
    where = estimate_filters(filters)
    minimums = segment_minimums(project=project)
    groups: list[dict[str, Any]] = []
    below: list[dict[str, Any]] = []
    section_plots: dict[str, str] = {}
    for key in project.segment_keys:
        answer = estimates_compute(project=project, by=f"segment.{key}", filters=where)
        rows = answer["groups"]
        labels = sum(g["n_labels"] for g in rows)
        traffic = sum(g["population"] for g in rows)
        names = [f"{key}={g['group']}" for g in rows]
        minimum = minimums.get(key)
        for g, name in zip(rows, names, strict=True):
            row = {
                "group": name,
                "n_labels": g["n_labels"],
                "population": g["population"],
                "label_share": g["n_labels"] / labels if labels else 0.0,
                "traffic_share": g["population"] / traffic if traffic else 0.0,
                "minimum": minimum,
            }
            groups.append(row)
            if minimum is not None and g["n_labels"] < minimum:
                below.append(row)
        if len(rows) > 1:
            section_plots[key] = plots.paired_bars(
                categories=names,
                first=[g["n_labels"] / labels if labels else 0.0 for g in rows],
                second=[g["population"] / traffic if traffic else 0.0 for g in rows],
                first_label="share of labels",
                second_label="share of traffic",
                title=f"Labels vs traffic, by {key}",
            )
            if minimum is not None:
                section_plots[f"{key}-minimum"] = plots.bars_with_minimum(
                    categories=names,
                    values=[g["n_labels"] for g in rows],
                    minimums=[minimum] * len(rows),
                    title=f"Labels per {key} vs the minimum ({minimum})",
                )
    clusters = cluster_coverage(project=project, filters=where)
    clustered = [c for c in clusters if c["cluster"] >= 0][:15]
    if clustered:
        labels_total = sum(c["labels"] for c in clustered)
        traffic_total = sum(c["traffic"] for c in clustered)
        section_plots["clusters"] = plots.paired_bars(
            categories=[f"topic {c['cluster']}" for c in clustered],
            first=[c["labels"] / labels_total if labels_total else 0.0 for c in clustered],
            second=[c["traffic"] / traffic_total if traffic_total else 0.0 for c in clustered],
            first_label="share of labels",
            second_label="share of traffic",
            title="Labels vs traffic, by topic (largest 15)",
        )
    return Section(
        data={"groups": groups, "below": below, "clusters": clusters},
        plots=section_plots,
    )


def _pct(value: float | None) -> str:
    return "\u2013" if value is None else f"{100 * value:.1f}%"


def _bias(*, project: Project, filters: DashboardFilters) -> Section:
    if message := _no_runs_message(project):
        return Section(empty=message)
    report = bias_report(project=project, filters=estimate_filters(filters))
    overall = report["overall"]
    if not overall["rated"] and not overall["n_labels"]:
        return Section(
            empty="No explicit ratings and no labels in this range yet — send thumbs events "
            "with the interactions, and label the queue."
        )
    section_plots: dict[str, str] = {}
    segments: list[dict[str, Any]] = []
    for key, rows in report["segments"].items():
        if len(rows) < 2:  # one value: its shares are 100% and 100%, nothing to compare
            continue
        names = [f"{key}={r['value']}" for r in rows]
        section_plots[f"share-{key}"] = plots.paired_bars(
            categories=names,
            first=[r["share_of_ratings"] for r in rows],
            second=[r["share_of_traffic"] for r in rows],
            first_label="share of explicit ratings",
            second_label="share of traffic",
            title=f"Who rates: ratings vs traffic, by {key}",
        )
        section_plots[f"rates-{key}"] = plots.paired_bars(
            categories=names,
            first=[r["bad_rate"]["estimate"] for r in rows],
            first_low=[r["bad_rate"]["ci_low"] for r in rows],
            first_high=[r["bad_rate"]["ci_high"] for r in rows],
            second=[r["thumbs_down_rate"] for r in rows],
            first_label="unbiased bad rate (interval)",
            second_label="thumbs-down rate among raters",
            title=f"Thumbs-down vs unbiased bad rate, by {key}",
        )
        segments.extend({"name": n, **r} for n, r in zip(names, rows, strict=True))
    raters = report["raters_vs_non_raters"]
    return Section(
        data={
            "report": report,
            "segments": segments,
            "thumbs_down_rate_pct": _pct(overall["thumbs_down_rate"]),
            "bad_rate_pct": _pct(overall["bad_rate"]["estimate"]),
            "bad_rate_interval": (
                _pct(overall["bad_rate"]["ci_low"])
                + " \u2013 "
                + _pct(overall["bad_rate"]["ci_high"])
                if overall["bad_rate"]["estimate"] is not None
                else ""
            ),
            "explicit_rate_pct": _pct(overall["explicit_rate"]),
            "raters_bad_pct": _pct(raters["raters"]["bad_rate"]["estimate"]),
            "non_raters_bad_pct": _pct(raters["non_raters"]["bad_rate"]["estimate"]),
        },
        plots=section_plots,
    )


def _days(value: float | None) -> str:
    if value is None:
        return "never at the current rate (none yet)"
    return f"{value:,.0f} days" if value >= 10 else f"{value:.1f} days"


def window_words(window: dict[str, Any]) -> str:
    """``labels_window`` of the power report in words: "over 5.0 days since Nov 28 09:14"."""
    if not window.get("start"):
        return "no labels yet"
    start = dt.datetime.fromisoformat(window["start"])
    days = window["days"]
    span = f"{days * 24:.1f} hours" if days < 1 else f"{days:.1f} days"
    text = f"over {span} since {start:%b} {start.day} {start:%H:%M} UTC ({window['labels']} labels)"
    if window.get("note"):
        text += f"; {window['note']}"
    return text


def _power(*, project: Project, filters: DashboardFilters) -> Section:
    if message := _no_runs_message(project):
        return Section(empty=message)
    where = estimate_filters(filters)
    report = power_report(project=project, filters=where)
    delta_points = round(100 * report["delta"])
    sentence = (
        f"To detect a {delta_points}-point drop: {report['labels_needed']:,} labels "
        f"({report['labels_needed_uniform']:,} with uniform sampling), "
        f"{_days(report['days_by_explicit_feedback'])} with thumbs alone, "
        f"{_days(report['days_by_labelling'])} with the queue at its current pace."
    )
    latency = label_latency_hours(project=project, filters=where)
    section_plots = {}
    if latency:
        section_plots["latency"] = plots.histogram(
            values=latency,
            title="Label latency: interaction to first label",
            xlabel="hours",
        )
    feedback = report["feedback_latency_hours_median"]
    return Section(
        data={
            "report": report,
            "sentence": sentence,
            "labels_per_day": report["labels_per_day"],
            "labels_window": window_words(report["labels_window"]),
            "ratings_per_day": report["explicit_ratings_per_day"],
            "design_effect": report["design_effect"],
            "feedback_latency": None if feedback is None else round(feedback, 1),
            "label_latency_median": sorted(latency)[len(latency) // 2] if latency else None,
            "labelled": len(latency),
        },
        plots=section_plots,
    )


def _queue(*, project: Project, filters: DashboardFilters) -> Section:
    health = queue_health(project=project)
    if not health["items"]:
        return Section(
            empty="The queue is empty — start a sampling run on the Strategies page to fill it."
        )
    stats = [
        {"key": "backlog", "label": "items waiting for an annotator", "value": health["backlog"]},
        {"key": "leased", "label": "live leases", "value": health["leased"]},
        {
            "key": "expired_leases",
            "label": "leases expired, not yet returned",
            "value": health["expired_leases"],
            "warn": health["expired_leases"] > 0,
        },
        {"key": "skips", "label": "skips", "value": health["skips"]},
        {
            "key": "flagged",
            "label": "flagged after too many skips",
            "value": health["flagged"],
            "warn": health["flagged"] > 0,
        },
        {"key": "done", "label": "items done", "value": health["done"]},
    ]
    annotators = annotator_stats(project=project)
    agreement = project_agreement(project=project)["questions"]
    return Section(
        data={
            "health": health,
            "stats": stats,
            "annotators": annotators,
            "agreement": [q for q in agreement if q["items"]],
        }
    )


def _proxy(*, project: Project) -> Section:
    models = list(
        ProxyModel.objects.filter(project=project, status=ProxyModel.Status.READY).order_by(
            "version"
        )
    )
    if not models:
        return Section(
            empty="No proxy model trained yet — until there are labels of both classes the "
            "sampler scores items with a prior from the signals. Retrain on the Strategies page."
        )
    versions: list[dict[str, Any]] = []
    for m in models:
        metrics = m.metrics or {}
        # Cross-validated metrics when the model was trained; the prior's own when it is one.
        scored = metrics.get("cv") or metrics.get("prior") or {}
        calibration = scored.get("calibration")
        versions.append(
            {
                "version": m.version,
                "kind": m.kind,
                "n_labels": m.n_labels,
                "auc": scored.get("auc"),
                "calibration": calibration.get("ece") if isinstance(calibration, dict) else None,
                "brier": scored.get("brier"),
                "measured_on": "cross-validation" if metrics.get("cv") else "prior",
                "finished_at": m.finished_at,
            }
        )
    if not any(v["auc"] is not None or v["calibration"] is not None for v in versions):
        return Section(data={"versions": list(reversed(versions))})
    chart = plots.lines(
        x=[f"v{v['version']}\n{v['n_labels']} labels" for v in versions],
        series={
            "AUC": [v["auc"] for v in versions],
            "calibration error (ECE)": [v["calibration"] for v in versions],
        },
        title="Proxy model by version",
        ylim=(0, 1),
    )
    return Section(data={"versions": list(reversed(versions))}, plots={"versions": chart})
