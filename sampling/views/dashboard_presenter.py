"""The dashboard's presentation: turns the numbers of ``sampling.selectors.dashboard`` into what
the page shows — a headline sentence per section, formatted numbers, plots to draw
(``sampling.plots``) and, for a section with nothing to show yet, a message that tells the user
what to do next. It computes no statistic and reads no row; :func:`dashboard_plot` draws one plot
as SVG for the page to fetch after it has answered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache

from labeling.models import Project
from sampling import plots
from sampling.selectors.dashboard import (
    CACHE_SECONDS,
    SECTIONS,
    DashboardData,
    DashboardFilters,
    SectionData,
    dashboard_data,
)

NO_RUNS = "Waiting for the first sampling run (see “Getting started” above)."
# What a section without numbers says instead (by the selector's ``missing`` code).
EMPTY = {
    "no_runs": NO_RUNS,
    "no_labels": (
        "No labels yet in this range — annotators label the queue (Label page); "
        "the quality estimate appears with the first labels."
    ),
    "one_version": (
        "Only one model version has labelled traffic in this range: monitoring compares a new "
        "version with the baseline once both have labels. Send model_version with each "
        "interaction and label both versions' items."
    ),
    "no_version": (
        "No model version has labelled traffic in this range: monitoring compares a new "
        "version with the baseline once both have labels. Send model_version with each "
        "interaction and label both versions' items."
    ),
    "no_segment_keys": (
        "This project has no segment keys: set segment_keys on the project to see "
        "labels against traffic per segment."
    ),
    "no_ratings_or_labels": (
        "No explicit ratings and no labels in this range yet — send thumbs events "
        "with the interactions, and label the queue."
    ),
    "empty_queue": ("The queue is empty — start a sampling run on the Strategies page to fill it."),
    "no_proxy": (
        "No proxy model trained yet — until there are labels of both classes the "
        "sampler scores items with a prior from the signals. Retrain on the Strategies page."
    ),
}


@dataclass
class Section:
    """One dashboard panel as shown: its data, plots (drawn later) and an empty-state message."""

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


def dashboard_present(data: DashboardData) -> Dashboard:
    """Every section of the dashboard as the page shows it."""
    return Dashboard(
        started=data.started,
        quality=_present(data.quality, _quality),
        monitoring=_present(data.monitoring, _monitoring),
        coverage=_present(data.coverage, _coverage),
        bias=_present(data.bias, _bias),
        power=_present(data.power, _power),
        queue=_present(data.queue, _queue),
        proxy=_present(data.proxy, _proxy),
    )


def dashboard_plot(
    *, project: Project, filters: DashboardFilters, section: str, name: str
) -> str | None:
    """The SVG of one plot of the dashboard under ``filters`` (None when there is no such plot),
    drawn from the same (cached) sections as the page and cached itself under the same key."""
    if section not in SECTIONS:
        return None
    shown = dashboard_present(dashboard_data(project=project, filters=filters))
    plot = getattr(shown, section).plots.get(name)
    if plot is None:
        return None
    key = "dashboard-plot:" + hashlib.sha256(repr((section, name, plot)).encode()).hexdigest()
    svg = cache.get(key)
    if svg is None:
        svg = plots.render(plot)
        cache.set(key, svg, CACHE_SECONDS)
    return str(svg)


def _present(section: SectionData, present: Any) -> Section:
    if section.data is None:
        return Section(empty=EMPTY[section.missing])
    shown: Section = present(section.data)
    return shown


# --- numbers in words ---------------------------------------------------------------------------


def _pts(value: float) -> str:
    return f"{100 * value:.0f}%"


def _pct(value: float | None) -> str:
    return "\u2013" if value is None else f"{100 * value:.1f}%"


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


# --- headlines ----------------------------------------------------------------------------------


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


# --- sections -----------------------------------------------------------------------------------


def _quality(data: dict[str, Any]) -> Section:
    bands = [
        plots.Band(
            name=version,
            x=[week for week, *_ in points],
            y=[estimate for _, estimate, _, _ in points],
            low=[low for _, _, low, _ in points],
            high=[high for *_, high in points],
        )
        for version, points in data["weekly"].items()
    ]
    if data["thumbs_up"]:
        bands.append(
            plots.Band(
                name="thumbs-up rate (raters only)",
                x=[w for w, _ in data["thumbs_up"]],
                y=[r for _, r in data["thumbs_up"]],
                dashed=True,
            )
        )
    level_pct = round(100 * data["level"])
    return Section(
        data={
            "headline": quality_headline(rows=data["rows"], level_pct=level_pct),
            "withheld_weeks": data["withheld_weeks"],
            "method": data["method"],
            "level_pct": level_pct,
            "baseline": data["baseline"],
            "baseline_chosen_by": data["baseline_chosen_by"],
            "flagged": data["flagged"],
            "rows": data["rows"],
            "coverage": data["coverage"],
        },
        plots={"quality": plots.later("quality_over_time", bands=bands)},
    )


def _monitoring(data: dict[str, Any]) -> Section:
    """Always-valid comparisons of each version with the baseline, as sentences and a plot."""
    rows = []
    for g in data["rows"]:
        c = dict(g["comparison"])
        if c["difference"] is not None:
            c["difference_text"] = f"{100 * c['difference']:+.1f} points"
            c["interval_text"] = f"{100 * c['cs_low']:+.1f} to {100 * c['cs_high']:+.1f}"
        rows.append({**g, "comparison": c})
    bands = [
        plots.Band(
            name=f"{g['model_version']} \u2212 {data['baseline']}",
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
    sentences = list(data["alert_sentences"]) + [g["comparison"]["sentence"] for g in rows]
    return Section(
        data={
            "headline": sentences[0],
            "sentences": sentences[1:],
            "baseline": data["baseline"],
            "baseline_chosen_by": data["baseline_chosen_by"],
            "level_pct": round(100 * data["level"]),
            "rows": rows,
        },
        plots=section_plots,
    )


def _coverage(data: dict[str, Any]) -> Section:
    section_plots: dict[str, plots.Plot] = {}
    for segment in data["segments"]:
        key, minimum, rows = segment["key"], segment["minimum"], segment["rows"]
        if len(rows) < 2:
            continue
        names = [r["group"] for r in rows]
        section_plots[key] = plots.later(
            "paired_bars",
            categories=names,
            first=[r["label_share"] for r in rows],
            second=[r["traffic_share"] for r in rows],
            first_label="share of labels",
            second_label="share of traffic",
            title=f"Labels vs traffic, by {key}",
        )
        if minimum is not None:
            section_plots[f"{key}-minimum"] = plots.later(
                "bars_with_minimum",
                categories=names,
                values=[r["n_labels"] for r in rows],
                minimums=[minimum] * len(rows),
                title=f"Labels per {key} vs the minimum ({minimum})",
            )
    clustered = [c for c in data["clusters"] if c["cluster"] >= 0][:15]
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
            "headline": coverage_headline(groups=data["groups"], below=data["below"]),
            "groups": data["groups"],
            "below": data["below"],
            "clusters": data["clusters"],
        },
        plots=section_plots,
    )


def _bias(data: dict[str, Any]) -> Section:
    report = data["report"]
    overall = report["overall"]
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


def _power(data: dict[str, Any]) -> Section:
    report = data["report"]
    latency = data["latency"]
    delta_points = round(100 * report["delta"])
    sentence = (
        f"To detect a {delta_points}-point drop: {report['labels_needed']:,} labels "
        f"({report['labels_needed_uniform']:,} with uniform sampling), "
        f"{_days(report['days_by_explicit_feedback'])} with thumbs alone, "
        f"{_days(report['days_by_labelling'])} with the queue at its current pace."
    )
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


def _queue(data: dict[str, Any]) -> Section:
    health = data["health"]
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
    return Section(
        data={
            "headline": queue_headline(health=health, annotators=data["annotators"]),
            "health": health,
            "stats": stats,
            "annotators": data["annotators"],
            "agreement": data["agreement"],
        }
    )


def _proxy(data: dict[str, Any]) -> Section:
    versions = data["versions"]
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
