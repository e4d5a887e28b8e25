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

from labeling.models import Annotation, Event, Project
from labeling.selectors.agreement import project_agreement
from labeling.selectors.queue import annotator_stats, queue_health
from sampling import plots
from sampling.models import PopulationCell, ProxyModel, SamplingRun, SamplingStrategy
from sampling.selectors.alerts import open_alerts
from sampling.selectors.coverage import cluster_coverage, label_latency_hours
from sampling.selectors.estimates import domain_data, estimates_compute, shared_design
from sampling.selectors.monitoring import monitoring_report
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
    plots: dict[str, plots.Plot] = field(default_factory=dict)
    empty: str = ""


@dataclass
class Dashboard:
    started: bool  # a sampling run has finished: the estimates have something to work on
    quality: Section
    monitoring: Section
    coverage: Section
    bias: Section
    power: Section
    queue: Section
    proxy: Section


def filter_choices(*, project: Project) -> dict[str, Any]:
    """Model versions and segment values of the project's considered traffic (for the filter
    drop-downs; an arrival no run has considered yet shows from the next run on).

    Cached for ``CHOICES_SECONDS``: they are only the options of a drop-down (a value seen a few
    minutes late is harmless).
    """
    key = f"dashboard-choices:{project.pk}:{project.updated_at.timestamp():.6f}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    # From the population cells (issue 16): the versions and values of the traffic the runs
    # considered, which is all the statistics can show, read from O(runs x cells) rows.
    cells = PopulationCell.objects.filter(project=project)
    versions = list(
        cells.exclude(model_version="")
        .values_list("model_version", flat=True)
        .distinct()
        .order_by("model_version")[:100]
    )
    segments: list[str] = []
    for key in project.segment_keys or []:
        values = (
            cells.filter(**{f"segment__{key}__isnull": False})
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
        # Open alerts lead the monitoring section.
        tuple(a.pk for a in open_alerts(project=project)),
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
        with shared_design():  # one read of the labels for every section
            statistics = _statistics(project=project, filters=filters)
        cache.set(key, statistics, CACHE_SECONDS)
    return Dashboard(
        **statistics,
        queue=_queue(project=project, filters=filters),
        proxy=_proxy(project=project),
    )


def _statistics(*, project: Project, filters: DashboardFilters) -> dict[str, Any]:
    return {
        "started": _no_runs_message(project) is None,
        "quality": _quality(project=project, filters=filters),
        "monitoring": _monitoring(project=project, filters=filters),
        "coverage": _coverage(project=project, filters=filters),
        "bias": _bias(project=project, filters=filters),
        "power": _power(project=project, filters=filters),
    }


SECTIONS = ("quality", "monitoring", "coverage", "bias", "power", "queue", "proxy")


def dashboard_plot(
    *, project: Project, filters: DashboardFilters, section: str, name: str
) -> str | None:
    """The SVG of one plot of the dashboard under ``filters`` (None when there is no such plot),
    drawn from the same (cached) sections as the page and cached itself under the same key."""
    if section not in SECTIONS:
        return None
    plot = getattr(dashboard_data(project=project, filters=filters), section).plots.get(name)
    if plot is None:
        return None
    key = "dashboard-plot:" + hashlib.sha256(repr((section, name, plot)).encode()).hexdigest()
    svg = cache.get(key)
    if svg is None:
        svg = plots.render(plot)
        cache.set(key, svg, CACHE_SECONDS)
    return str(svg)


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
    withheld = 0
    for g in weekly["groups"]:
        if g["n_labels"] and g["estimate"] is not None:
            by_version.setdefault(g["group_values"]["model_version"], []).append(g)
        elif g["n_labels"]:
            withheld += 1
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
            "headline": quality_headline(rows=rows, level_pct=round(100 * level)),
            "withheld_weeks": withheld,
            "method": overall["method"],
            "level_pct": round(100 * level),
            "baseline": regression["baseline"],
            "baseline_chosen_by": regression["baseline_chosen_by"],
            "flagged": [r["group"] for r in rows if r["flagged"]],
            "rows": rows,
            "coverage": overall["coverage"],  # which runs the estimates cover (issue 17)
        },
        plots={"quality": plots.later("quality_over_time", bands=bands)},
    )


def _pts(value: float) -> str:
    return f"{100 * value:.0f}%"


def quality_headline(*, rows: list[dict[str, Any]], level_pct: int) -> str:
    """One sentence: each version's share of good answers with its interval, or why not."""
    shown = [r for r in rows if r["estimate"] is not None]
    if not shown:
        n = sum(r["n_labels"] for r in rows)
        return (
            f"Not enough labels yet to say how good the answers are ({n} so far): label the "
            "queue and the share of good answers appears here."
        )
    parts = [
        f"{r['group']} {_pts(r['estimate'])} ({_pts(r['ci_low'])}\u2013{_pts(r['ci_high'])}, "
        f"{r['n_labels']} labels)"
        for r in sorted(shown, key=lambda r: -r["n_labels"])[:3]
    ]
    return f"Share of good answers: {'; '.join(parts)} ({level_pct}% intervals)."


def _monitoring(*, project: Project, filters: DashboardFilters) -> Section:
    """Always-valid comparisons of each version with the baseline, as sentences and a plot."""
    if message := _no_runs_message(project):
        return Section(empty=message)
    where = {k: v for k, v in estimate_filters(filters).items() if k != "model_versions"}
    report = monitoring_report(project=project, filters=where)
    rows = [g for g in report["groups"] if g["comparison"] is not None]
    if filters.model_version:
        rows = [g for g in rows if g["model_version"] == filters.model_version]
    if not rows:
        versions = len({g["model_version"] for g in report["groups"]})
        why = (
            "Only one model version has labelled traffic in this range"
            if versions == 1
            else "No model version has labelled traffic in this range"
        )
        return Section(
            empty=f"{why}: monitoring compares a new version with the baseline once both have "
            "labels. Send model_version with each interaction and label both versions' items."
        )
    for g in rows:
        c = g["comparison"]
        if c["difference"] is not None:
            c["difference_text"] = f"{100 * c['difference']:+.1f} points"
            c["interval_text"] = f"{100 * c['cs_low']:+.1f} to {100 * c['cs_high']:+.1f}"
    order = {"regression": 0, "improvement": 1, "no_change_confirmed": 2, "not_enough_labels": 3}
    rows.sort(key=lambda g: (order[g["comparison"]["verdict"]], g["model_version"]))
    bands = [
        plots.Band(
            name=f"{g['model_version']} \u2212 {report['baseline']}",
            x=[dt.date.fromisoformat(p["day"]) for p in g["comparison"]["series"]],
            y=[p["difference"] for p in g["comparison"]["series"]],
            low=[p["low"] for p in g["comparison"]["series"]],
            high=[p["high"] for p in g["comparison"]["series"]],
        )
        for g in rows
        if g["comparison"]["series"]
    ]
    section_plots: dict[str, plots.Plot] = {}
    if bands:
        section_plots["differences"] = plots.later("difference_over_time", bands=bands)
    # Regressions confirmed in a segment by the alert rules lead: a version can look fine
    # overall and be worse where it matters.
    sentences = [a.sentence for a in open_alerts(project=project)]
    sentences += [g["comparison"]["sentence"] for g in rows]
    return Section(
        data={
            "headline": sentences[0],
            "sentences": sentences[1:],
            "baseline": report["baseline"],
            "baseline_chosen_by": report["baseline_chosen_by"],
            "level_pct": round(100 * report["level"]),
            "rows": rows,
        },
        plots=section_plots,
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
    section_plots: dict[str, plots.Plot] = {}
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
            section_plots[key] = plots.later(
                "paired_bars",
                categories=names,
                first=[g["n_labels"] / labels if labels else 0.0 for g in rows],
                second=[g["population"] / traffic if traffic else 0.0 for g in rows],
                first_label="share of labels",
                second_label="share of traffic",
                title=f"Labels vs traffic, by {key}",
            )
            if minimum is not None:
                section_plots[f"{key}-minimum"] = plots.later(
                    "bars_with_minimum",
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
        section_plots["clusters"] = plots.later(
            "paired_bars",
            categories=[f"topic {c['cluster']}" for c in clustered],
            first=[c["labels"] / labels_total if labels_total else 0.0 for c in clustered],
            second=[c["traffic"] / traffic_total if traffic_total else 0.0 for c in clustered],
            first_label="share of labels",
            second_label="share of traffic",
            title="Labels vs traffic, by topic (largest 15)",
        )
    return Section(
        data={
            "headline": coverage_headline(groups=groups, below=below),
            "groups": groups,
            "below": below,
            "clusters": clusters,
        },
        plots=section_plots,
    )


def coverage_headline(*, groups: list[dict[str, Any]], below: list[dict[str, Any]]) -> str:
    """The segment whose share of labels is furthest from its share of traffic, in words."""
    if below:
        b = below[0]
        more = f" and {len(below) - 1} more" if len(below) > 1 else ""
        return (
            f"{b['group']} has {b['n_labels']} labels of the {b['minimum']} wanted{more}: the "
            "next runs' coverage weight favours it."
        )
    if not groups:
        return "No segments to compare yet."
    worst = max(groups, key=lambda g: abs(g["label_share"] - g["traffic_share"]))
    gap = abs(worst["label_share"] - worst["traffic_share"])
    if gap < 0.05:
        return "Labels follow traffic within 5 points in every segment."
    return (
        f"{worst['group']} gets {_pts(worst['label_share'])} of the labels for "
        f"{_pts(worst['traffic_share'])} of the traffic; the estimates reweight for it."
    )


def bias_headline(overall: dict[str, Any]) -> str:
    """ "Thumbs-down overstates the bad rate by 19 points: only unhappy users click it"."""
    bad = overall["bad_rate"]
    thumbs = overall["thumbs_down_rate"]
    if thumbs is None:
        return (
            "No explicit ratings in this range: send thumbs events to compare what users say "
            "with the labels."
        )
    if bad["estimate"] is None:
        return (
            f"{_pts(thumbs)} of ratings are thumbs-down, but there are not enough labels yet to "
            f"check that against the real bad rate ({bad.get('display') or 'no labels'})."
        )
    gap = thumbs - bad["estimate"]
    points = f"{abs(100 * gap):.0f} points"
    real = f"{_pts(bad['estimate'])} ({_pts(bad['ci_low'])}\u2013{_pts(bad['ci_high'])})"
    if thumbs > bad["ci_high"]:
        return (
            f"Thumbs-down overstates the bad rate by {points}: {_pts(thumbs)} of ratings are "
            f"thumbs-down, but {real} of answers are bad. Mostly unhappy users click."
        )
    if thumbs < bad["ci_low"]:
        return (
            f"Thumbs-down understates the bad rate by {points}: {_pts(thumbs)} of ratings are "
            f"thumbs-down, but {real} of answers are bad. Unhappy users stay silent."
        )
    return f"Thumbs-down ({_pts(thumbs)}) agrees with the real bad rate {real} within its interval."


def queue_headline(*, health: dict[str, Any], annotators: list[dict[str, Any]]) -> str:
    recent = sum(int(a.get("last_24h") or 0) for a in annotators)
    backlog = int(health["backlog"])
    if backlog == 0:
        return "Nothing waits for an annotator: start a sampling run to pick the next items."
    pace = (
        f"annotators labelled {recent} in the last 24 hours, about {backlog / recent:.1f} "
        "days of work at that pace"
        if recent
        else "nobody labelled in the last 24 hours"
    )
    return f"{backlog} items wait for an annotator; {pace}."


def proxy_headline(latest: dict[str, Any]) -> str:
    auc = latest.get("auc")
    if auc is None:
        return (
            f"The proxy model v{latest['version']} ({latest['kind']}) has no measured accuracy "
            "yet: it is a prior from the signals until there are labels of both classes."
        )
    return (
        f"The proxy model v{latest['version']} (trained on {latest['n_labels']} labels) ranks a "
        f"good answer above a bad one {100 * auc:.0f}% of the time; sampling leans on it, the "
        "estimates correct for its mistakes."
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
    section_plots: dict[str, plots.Plot] = {}
    segments: list[dict[str, Any]] = []
    for key, rows in report["segments"].items():
        if len(rows) < 2:  # one value: its shares are 100% and 100%, nothing to compare
            continue
        names = [f"{key}={r['value']}" for r in rows]
        section_plots[f"share-{key}"] = plots.later(
            "paired_bars",
            categories=names,
            first=[r["share_of_ratings"] for r in rows],
            second=[r["share_of_traffic"] for r in rows],
            first_label="share of explicit ratings",
            second_label="share of traffic",
            title=f"Who rates: ratings vs traffic, by {key}",
        )
        section_plots[f"rates-{key}"] = plots.later(
            "paired_bars",
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
    warnings = [f"overall: {overall['warning']}"] if overall.get("warning") else []
    warnings += [f"{s['name']}: {s['warning']}" for s in segments if s.get("warning")]
    return Section(
        data={
            "headline": bias_headline(overall),
            "warnings": warnings,
            "bad_rate_display": overall["bad_rate"].get("display"),
            "raters_warning": raters["raters"]["warning"],
            "non_raters_warning": raters["non_raters"]["warning"],
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
            "raters_bad_pct": _pct_or_why(raters["raters"]["bad_rate"]),
            "non_raters_bad_pct": _pct_or_why(raters["non_raters"]["bad_rate"]),
        },
        plots=section_plots,
    )


def _pct_or_why(row: dict[str, Any]) -> str:
    """A rate as a percentage, or the reason there is none ("not enough labels (n = 8)")."""
    if row.get("estimate") is None:
        return row.get("display") or "\u2013"
    return _pct(row["estimate"])


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
        section_plots["latency"] = plots.later(
            "histogram",
            values=latency,
            title="Label latency: interaction to first label",
            xlabel="hours",
        )
    feedback = report["feedback_latency_hours_median"]
    return Section(
        data={
            "headline": report["days_to_detect_sentence"],
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
            "headline": queue_headline(health=health, annotators=annotators),
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
    headline = proxy_headline(versions[-1])
    if not any(v["auc"] is not None or v["calibration"] is not None for v in versions):
        return Section(data={"headline": headline, "versions": list(reversed(versions))})
    chart = plots.later(
        "lines",
        x=[f"v{v['version']}\n{v['n_labels']} labels" for v in versions],
        series={
            "AUC": [v["auc"] for v in versions],
            "calibration error (ECE)": [v["calibration"] for v in versions],
        },
        title="Proxy model by version",
        ylim=(0, 1),
    )
    return Section(
        data={"headline": headline, "versions": list(reversed(versions))},
        plots={"versions": chart},
    )
