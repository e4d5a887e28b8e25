"""The numbers the dashboard shows, composed from the selectors the API uses (never computed here).

This module only calls other selectors (estimates, reports, queue health, agreement, coverage)
with the dashboard's filters and arranges their answers into sections of data; the only rows it
reads itself are the proxy model versions and the strategies' segment minimums (configuration,
not statistics). A section with nothing to show yet carries ``missing``, a reason code. Words,
formatted numbers and plots are the presenter's (``sampling.views.dashboard_presenter``), which
turns these sections into what the page shows.
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
from sampling.models import PopulationCell, ProxyModel, SamplingRun, SamplingStrategy
from sampling.selectors.alerts import open_alerts
from sampling.selectors.coverage import cluster_coverage, label_latency_hours
from sampling.selectors.estimates import domain_data, estimates_compute, shared_design
from sampling.selectors.monitoring import monitoring_report
from sampling.selectors.reports import bias_report, power_report, regression_report
from sampling.selectors.scans import shared_scans

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
        """The start of the range: UTC midnight ``days`` days before today (issue 16). Whole
        days are what the population aggregates hold (per run x version x segment x day), so a
        range that starts at a midnight is read from them alone; one that started at ``now``
        minus ``days`` would need a scan of the partial first day's rows (~1/30 of the traffic
        of "last 30 days", about a second at a million interactions)."""
        days = RANGES[self.range]
        if days is None:
            return None
        start = self.now.astimezone(dt.UTC) - dt.timedelta(days=days)
        return start.replace(hour=0, minute=0, second=0, microsecond=0)

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


@dataclass(frozen=True)
class SectionData:
    """One dashboard panel's numbers (``data``), or why there are none yet (``missing``: a reason
    code such as ``"no_runs"``, put into words by the presenter)."""

    data: dict[str, Any] | None = None
    missing: str = ""


@dataclass
class DashboardData:
    started: bool  # a sampling run has finished: the estimates have something to work on
    quality: SectionData
    monitoring: SectionData
    coverage: SectionData
    bias: SectionData
    power: SectionData
    queue: SectionData
    proxy: SectionData
    # The end of the time range the statistics describe (``DashboardFilters.now`` when they were
    # computed; a cached answer keeps its own): the page states this range and links the API to it.
    now: dt.datetime | None = None


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
        # A new proxy rescores the pool and reassigns the topic clusters coverage counts.
        ProxyModel.objects.filter(project=project, status=ProxyModel.Status.READY).aggregate(
            m=Max("id")
        )["m"],
    )


def dashboard_data(*, project: Project, filters: DashboardFilters) -> DashboardData:
    """Every section of the dashboard for ``project`` under ``filters``.

    Quality, coverage, bias and power (the expensive statistics) come from the cache when nothing
    they read has changed (:func:`data_version`); queue health and the proxy list are always read
    fresh, since leases expire with time.

    The cache key is the project, the chosen filters and the data version, not the clock: a
    cached answer was computed for the time range ending at its own ``now`` (at most
    ``CACHE_SECONDS`` ago), which it carries (``DashboardData.now``) so that the page and its API
    links state that range. A page that takes longer than a minute to compute is thus reused
    like any other; any new label, run, event or configuration change makes a new key.
    """
    key = "dashboard:" + hashlib.sha256(
        repr(
            (project.pk, filters.range, filters.model_version, filters.segment,
             data_version(project=project))
        ).encode()
    ).hexdigest()  # fmt: skip
    cached = cache.get(key)
    if cached is None or abs((filters.now - cached["now"]).total_seconds()) > CACHE_SECONDS:
        # One read of the labels and of each population scan for every section.
        with shared_design(), shared_scans():
            cached = {
                "now": filters.now,
                "statistics": _statistics(project=project, filters=filters),
                # Agreement reads only labels (in the data version): cached with the statistics.
                "agreement": _agreement(project=project),
            }
        cache.set(key, cached, CACHE_SECONDS)
    return DashboardData(
        **cached["statistics"],
        queue=_queue(project=project, filters=filters, agreement=cached.get("agreement")),
        proxy=_proxy(project=project),
        now=cached["now"],
    )


def _statistics(*, project: Project, filters: DashboardFilters) -> dict[str, Any]:
    return {
        "started": _has_runs(project),
        "quality": _quality(project=project, filters=filters),
        "monitoring": _monitoring(project=project, filters=filters),
        "coverage": _coverage(project=project, filters=filters),
        "bias": _bias(project=project, filters=filters),
        "power": _power(project=project, filters=filters),
    }


SECTIONS = ("quality", "monitoring", "coverage", "bias", "power", "queue", "proxy")


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


def _has_runs(project: Project) -> bool:
    return SamplingRun.objects.filter(project=project, status=SamplingRun.Status.DONE).exists()


NO_RUNS = SectionData(missing="no_runs")


def _quality(*, project: Project, filters: DashboardFilters) -> SectionData:
    """Per model version: the share of good answers with its interval (``rows``, with the
    regression report's ``difference`` and ``flagged``), weekly estimates per version
    (``weekly``: version -> [(Monday, estimate, ci_low, ci_high)]) and the weekly thumbs-up rate
    among raters (``thumbs_up``: [(Monday, rate)])."""
    if not _has_runs(project):
        return NO_RUNS
    where = estimate_filters(filters)
    overall = estimates_compute(project=project, by="model_version", filters=where)
    rows = [g for g in overall["groups"] if g["n_labels"]]
    if not rows:
        return SectionData(missing="no_labels")
    weekly_answer = estimates_compute(project=project, by=["model_version", "week"], filters=where)
    by_version: dict[str, list[dict[str, Any]]] = {}
    withheld = 0
    for g in weekly_answer["groups"]:
        if g["n_labels"] and g["estimate"] is not None:
            by_version.setdefault(g["group_values"]["model_version"], []).append(g)
        elif g["n_labels"]:
            withheld += 1
    weekly: dict[str, list[tuple[dt.date, float, float | None, float | None]]] = {}
    for version, groups in sorted(by_version.items()):
        points = sorted(
            ((d, g) for g in groups if (d := _week_start(g["group_values"]["week"])) is not None),
            key=lambda point: point[0],
        )
        weekly[version] = [(d, g["estimate"], g["ci_low"], g["ci_high"]) for d, g in points]
    thumbs: list[tuple[dt.date, float]] = []
    for domain in domain_data(project=project, by=["week"], filters=where):
        week = _week_start(domain.group[0])
        if week is not None and domain.rated:
            thumbs.append((week, 1.0 - domain.thumbs_down / domain.rated))
    thumbs.sort()
    regression = regression_report(project=project, filters=where)
    against = {v["model_version"]: v for v in regression["versions"]}
    for row in rows:
        version = against.get(row["group"], {})
        row["difference"] = version.get("difference")
        row["flagged"] = version.get("flagged", False)
    return SectionData(
        data={
            "rows": rows,
            "withheld_weeks": withheld,
            "method": overall["method"],
            "level": overall["level"],
            "baseline": regression["baseline"],
            "baseline_chosen_by": regression["baseline_chosen_by"],
            "flagged": [r["group"] for r in rows if r["flagged"]],
            "coverage": overall["coverage"],  # which runs the estimates cover (issue 17)
            "weekly": weekly,
            "thumbs_up": thumbs,
        }
    )


VERDICT_ORDER = {
    "regression": 0,
    "improvement": 1,
    "no_change_confirmed": 2,
    "not_enough_labels": 3,
}


def _monitoring(*, project: Project, filters: DashboardFilters) -> SectionData:
    """Always-valid comparisons of each version with the baseline (``rows``, regressions first)
    and the sentences of the open alerts (confirmed regressions in a segment)."""
    if not _has_runs(project):
        return NO_RUNS
    where = {k: v for k, v in estimate_filters(filters).items() if k != "model_versions"}
    report = monitoring_report(project=project, filters=where)
    rows = [g for g in report["groups"] if g["comparison"] is not None]
    if filters.model_version:
        rows = [g for g in rows if g["model_version"] == filters.model_version]
    if not rows:
        versions = len({g["model_version"] for g in report["groups"]})
        return SectionData(missing="one_version" if versions == 1 else "no_version")
    rows.sort(key=lambda g: (VERDICT_ORDER[g["comparison"]["verdict"]], g["model_version"]))
    return SectionData(
        data={
            "baseline": report["baseline"],
            "baseline_chosen_by": report["baseline_chosen_by"],
            "level": report["level"],
            "rows": rows,
            # Regressions confirmed in a segment by the alert rules lead: a version can look
            # fine overall and be worse where it matters.
            "alert_sentences": [a.sentence for a in open_alerts(project=project)],
        }
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


def _coverage(*, project: Project, filters: DashboardFilters) -> SectionData:
    """Labels against traffic per segment value (``groups``; ``below``: under the strategies'
    minimum; ``segments``: the same rows per segment key with its minimum) and per topic cluster
    (``clusters``)."""
    if not _has_runs(project):
        return NO_RUNS
    if not project.segment_keys:
        return SectionData(missing="no_segment_keys")
    where = estimate_filters(filters)
    minimums = segment_minimums(project=project)
    groups: list[dict[str, Any]] = []
    below: list[dict[str, Any]] = []
    segments: list[dict[str, Any]] = []
    for key in project.segment_keys:
        answer = estimates_compute(project=project, by=f"segment.{key}", filters=where)
        rows = answer["groups"]
        labels = sum(g["n_labels"] for g in rows)
        traffic = sum(g["population"] for g in rows)
        minimum = minimums.get(key)
        key_rows = []
        for g in rows:
            row = {
                "group": f"{key}={g['group']}",
                "n_labels": g["n_labels"],
                "population": g["population"],
                "label_share": g["n_labels"] / labels if labels else 0.0,
                "traffic_share": g["population"] / traffic if traffic else 0.0,
                "minimum": minimum,
            }
            key_rows.append(row)
            if minimum is not None and g["n_labels"] < minimum:
                below.append(row)
        groups.extend(key_rows)
        segments.append({"key": key, "minimum": minimum, "rows": key_rows})
    return SectionData(
        data={
            "groups": groups,
            "below": below,
            "segments": segments,
            "clusters": cluster_coverage(project=project, filters=where),
        }
    )


def _bias(*, project: Project, filters: DashboardFilters) -> SectionData:
    """The bias report (what users say against the labels) under the dashboard's filters."""
    if not _has_runs(project):
        return NO_RUNS
    report = bias_report(project=project, filters=estimate_filters(filters))
    overall = report["overall"]
    if not overall["rated"] and not overall["n_labels"]:
        return SectionData(missing="no_ratings_or_labels")
    return SectionData(data={"report": report})


def _power(*, project: Project, filters: DashboardFilters) -> SectionData:
    """The power report and each labelled interaction's label latency in hours (``latency``)."""
    if not _has_runs(project):
        return NO_RUNS
    where = estimate_filters(filters)
    return SectionData(
        data={
            "report": power_report(project=project, filters=where),
            "latency": label_latency_hours(project=project, filters=where),
        }
    )


def _agreement(*, project: Project) -> list[dict[str, Any]]:
    """Agreement of the questions with overlapping labels."""
    return [q for q in project_agreement(project=project)["questions"] if q["items"]]


def _queue(
    *,
    project: Project,
    filters: DashboardFilters,
    agreement: list[dict[str, Any]] | None = None,
) -> SectionData:
    """Queue health and annotator stats (read fresh: leases expire with time) and agreement of
    the questions with overlapping labels (``agreement``: as cached with the statistics, which
    share its key; read now when not given)."""
    health = queue_health(project=project)
    if not health["items"]:
        return SectionData(missing="empty_queue")
    return SectionData(
        data={
            "health": health,
            "annotators": annotator_stats(project=project),
            "agreement": _agreement(project=project) if agreement is None else agreement,
        }
    )


def _proxy(*, project: Project) -> SectionData:
    """Every ready proxy model version, oldest first, with its measured accuracy (``versions``)."""
    models = list(
        ProxyModel.objects.filter(project=project, status=ProxyModel.Status.READY).order_by(
            "version"
        )
    )
    if not models:
        return SectionData(missing="no_proxy")
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
    return SectionData(data={"versions": versions})
