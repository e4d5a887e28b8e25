"""Reports built on the estimators: feedback selection bias, power and latency, regression.

Each report reads the same domain data as the estimates API (``sampling.selectors.estimates``),
so its numbers agree with ``GET /estimates``. The population is every item the probabilistic runs
considered (``U``); explicit-feedback counts are over that population too, so the explicit rates
and the unbiased rates describe the same interactions.
"""

from __future__ import annotations

import datetime as dt
import math
from statistics import median
from typing import Any

from django.utils import timezone
from scipy.stats import norm

from labeling.models import Event, EventType, Project
from sampling import estimators, intervals, sequential
from sampling.selectors.estimates import (
    DomainData,
    EstimateQueryError,
    domain_data,
    domain_estimate,
    occurred_span,
    target_info,
)
from sampling.selectors.monitoring import first_label_dates


def _bad(row: dict[str, Any]) -> dict[str, Any]:
    """The estimate of the bad rate (1 - share good) with its interval."""
    if row["estimate"] is None:
        return {"estimate": None, "ci_low": None, "ci_high": None, "se": None,
                "n_labels": row.get("n_labels", 0), "display": row.get("display")}  # fmt: skip
    return {
        "estimate": 1.0 - row["estimate"],
        "ci_low": 1.0 - row["ci_high"],
        "ci_high": 1.0 - row["ci_low"],
        "se": row["se"],
        "n_labels": row.get("n_labels", 0),
        "display": None,
    }


def _diff(a: dict[str, Any], b: dict[str, Any], z: float) -> dict[str, Any]:
    """a - b for estimates of disjoint domains (independent under Poisson sampling).

    The interval is MOVER from the two sides' own intervals (``sampling.intervals``), so a
    difference of small cells is as honest as the cells; the usual ``± z se`` for normal ones.
    """
    if a["estimate"] is None or b["estimate"] is None:
        n = min(int(a.get("n_labels") or 0), int(b.get("n_labels") or 0))
        return {"estimate": None, "ci_low": None, "ci_high": None, "se": None,
                "display": intervals.not_enough_text(n)}  # fmt: skip
    se = math.sqrt(a["se"] ** 2 + b["se"] ** 2)
    if a.get("ci_low") is None or b.get("ci_low") is None:
        est = a["estimate"] - b["estimate"]
        return {"estimate": est, "ci_low": est - z * se, "ci_high": est + z * se, "se": se,
                "display": None}  # fmt: skip
    est, low, high = intervals.mover_difference(
        a=a["estimate"], a_low=a["ci_low"], a_high=a["ci_high"],
        b=b["estimate"], b_low=b["ci_low"], b_high=b["ci_high"],
    )  # fmt: skip
    return {"estimate": est, "ci_low": low, "ci_high": high, "se": se, "display": None}


def _explicit_row(d: DomainData, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "population": d.population,
        "rated": d.rated,
        "explicit_rate": d.rated / d.population if d.population else None,
        "thumbs_down": d.thumbs_down,
        "thumbs_down_rate": d.thumbs_down / d.rated if d.rated else None,
        "bad_rate": _bad(row),
        "n_labels": row["n_labels"],
        "warning": row["warning"],
    }


def bias_report(
    *,
    project: Project,
    filters: dict[str, Any] | None = None,
    method: str | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """Explicit thumbs against the unbiased bad rate, overall and per segment; raters against
    non-raters; each segment's share of explicit ratings against its share of traffic.

    ``thumbs_down_rate`` is thumbs-down among the interactions that got an explicit rating (what a
    team that reads only thumbs sees); ``gap`` is that rate minus the unbiased bad rate.
    """
    method_name = estimators.method_normalise(method)
    target = target_info(project)
    z = estimators.z_value(level)

    def rows(by: list[str]) -> list[tuple[DomainData, dict[str, Any]]]:
        return [
            (d, domain_estimate(d, method=method_name, level=level, target=target))
            for d in domain_data(project=project, by=by, filters=filters)
        ]

    def estimate_of(d: DomainData) -> dict[str, Any]:
        return domain_estimate(d, method=method_name, level=level, target=target)

    overall_rows = rows([])
    d_all = overall_rows[0][0] if overall_rows else DomainData(group=())
    overall = _explicit_row(d_all, estimate_of(d_all))
    overall["gap"] = _gap(overall)

    segments: dict[str, list[dict[str, Any]]] = {}
    for key in project.segment_keys:
        seg_rows = rows([f"segment.{key}"])
        total_rated = sum(d.rated for d, _ in seg_rows)
        total_pop = sum(d.population for d, _ in seg_rows)
        out = []
        for d, r in seg_rows:
            item = {"value": d.group[0], **_explicit_row(d, r)}
            item["gap"] = _gap(item)
            item["share_of_ratings"] = d.rated / total_rated if total_rated else None
            item["share_of_traffic"] = d.population / total_pop if total_pop else None
            out.append(item)
        segments[key] = out

    by_rated = {d.group[0]: d for d in domain_data(project=project, by=["rated"], filters=filters)}
    rater_rows: dict[str, dict[str, Any]] = {}
    for name, key in (("raters", "yes"), ("non_raters", "no")):
        d = by_rated.get(key, DomainData(group=(key,)))
        r = estimate_of(d)
        rater_rows[name] = {
            "population": d.population,
            "n_labels": r["n_labels"],
            "bad_rate": _bad(r),
            "warning": r["warning"],
        }
    rater_rows["difference"] = _diff(
        rater_rows["raters"]["bad_rate"], rater_rows["non_raters"]["bad_rate"], z
    )
    return {
        "target": target,
        "method": method_name,
        "level": level,
        "overall": overall,
        "segments": segments,
        "raters_vs_non_raters": rater_rows,
    }


def _gap(row: dict[str, Any]) -> float | None:
    bad = row["bad_rate"]["estimate"]
    if row["thumbs_down_rate"] is None or bad is None:
        return None
    return row["thumbs_down_rate"] - bad


def labels_needed(
    *, p: float, delta: float, alpha: float = 0.05, power: float = 0.8, design_effect: float = 1.0
) -> int:
    """Labels per period for a two-sided two-proportion test to detect ``p`` -> ``p - delta``.

    ``n = (z_{1-alpha/2} + z_{power})^2 (p1 q1 + p2 q2) / delta^2``, times the design effect
    (variance of the estimator over that of a uniform sample of the same size).
    """
    if not 0 < delta < 1:
        raise ValueError("delta must lie in (0, 1)")
    p1 = min(max(p, 0.0), 1.0)
    p2 = min(max(p1 - delta, 0.0), 1.0)
    if p2 == p1:  # at the boundary: test the change upwards instead
        p2 = min(p1 + delta, 1.0)
    spread = p1 * (1 - p1) + p2 * (1 - p2)
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    return max(1, math.ceil(design_effect * z**2 * spread / delta**2))


def power_report(
    *,
    project: Project,
    delta: float = 0.05,
    alpha: float = 0.05,
    power: float = 0.8,
    filters: dict[str, Any] | None = None,
    method: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Labels needed to detect a change ``delta`` and the days that takes by thumbs or labels.

    The design effect is ``n_labels / ess`` of the current overall estimate (below 1 when the
    proxy and the design save labels). Explicit ratings per day are measured over the time span of
    the considered interactions; labelling throughput over ``labels_window`` (first label to now,
    at most the last 7 days, never less than one day in the divisor: :func:`label_window`),
    counting only the labels that enter this estimate, in the same domain: one per sampled item of
    the filtered domain with a usable label, dated by its first annotation.
    Feedback latency: median hours from an interaction to its
    explicit rating event.
    """
    method_name = estimators.method_normalise(method)
    target = target_info(project)
    data = domain_data(project=project, by=[], filters=filters)
    d = data[0] if data else DomainData(group=())
    row = domain_estimate(d, method=method_name, level=1 - alpha, target=target)
    p = row["estimate"] if row["estimate"] is not None else 0.5
    deff = row["n_labels"] / row["ess"] if row["ess"] else 1.0
    n_uniform = labels_needed(p=p, delta=delta, alpha=alpha, power=power)
    n_design = labels_needed(p=p, delta=delta, alpha=alpha, power=power, design_effect=deff)

    first, last = occurred_span(project=project, filters=filters)
    days_span = 1.0
    if first and last:
        days_span = max(1.0, (last - first).total_seconds() / 86400)
    ratings_per_day = d.rated / days_span if d.rated else 0.0

    now = now or timezone.now()
    # Only labels that enter this estimate: one per sampled item of the domain with a usable
    # label (not overlap duplicates, gold, manual or deterministic items), dated by its first
    # current annotation.
    in_estimate = set(d.interaction_ids)
    dated = [
        first
        for interaction_id, first in first_label_dates(project=project).items()
        if interaction_id in in_estimate
    ]
    window = label_window(dated=dated, now=now)
    labels_per_day = window["labels"] / window["rate_days"] if window["labels"] else 0.0
    # Always-valid monitoring (sampling.sequential): the day the confidence sequence of a
    # comparison of two versions, labels split evenly, confirms a change of delta (the expected
    # difference crosses the boundary; the median first crossing comes a little earlier).
    traffic_per_day = d.population / days_span if d.population else None
    days_to_detect = sequential.days_to_detect(
        p=p,
        delta=delta,
        labels_per_day=labels_per_day,
        design_effect=deff,
        alpha=alpha,
        traffic_per_day=traffic_per_day / 2 if traffic_per_day else None,
    )

    return {
        "target": target,
        "method": method_name,
        "delta": delta,
        "alpha": alpha,
        "power": power,
        "current_estimate": row["estimate"],
        "n_labels": row["n_labels"],
        "design_effect": deff,
        "labels_needed_uniform": n_uniform,
        "labels_needed": n_design,
        "explicit_ratings_per_day": ratings_per_day,
        "labels_per_day": labels_per_day,
        "labels_window": window,
        "days_by_explicit_feedback": n_uniform / ratings_per_day if ratings_per_day else None,
        "days_by_labelling": n_design / labels_per_day if labels_per_day else None,
        "traffic_per_day": traffic_per_day,
        "days_to_detect": days_to_detect,
        "days_to_detect_sentence": days_to_detect_sentence(
            labels_per_day=labels_per_day, delta=delta, days=days_to_detect
        ),
        "feedback_latency_hours_median": _feedback_latency_hours(project=project),
        "notes": (
            "labels_needed is per period compared (before/after); explicit feedback also needs "
            "labels_needed_uniform ratings and stays biased by who clicks (see the bias report)."
        ),
    }


def days_to_detect_sentence(*, labels_per_day: float, delta: float, days: int | None) -> str:
    """ "At 120 labels/day you will see a 5-point change in about 9 days" (or why not)."""
    points = round(100 * delta)
    if labels_per_day <= 0:
        return (
            f"No labels in the last 7 days: a {points}-point change cannot be seen until "
            "annotators label the queue."
        )
    rate = f"{labels_per_day:,.0f}" if labels_per_day >= 10 else f"{labels_per_day:.1f}"
    if days is None:
        return (
            f"At {rate} labels/day a {points}-point change would take more than ten years to "
            "confirm: label faster or watch for a larger change."
        )
    return (
        f"At {rate} labels/day you will see a {points}-point change in about {days} "
        f"day{'s' if days != 1 else ''} (watching daily, false alarms held at "
        "the chosen level)."
    )


LABEL_WINDOW_MAX_DAYS = 7.0
LABEL_WINDOW_MIN_DAYS = 1.0


def label_window(*, dated: list[dt.datetime], now: dt.datetime) -> dict[str, Any]:
    """The window labels per day are measured over: from the first label to ``now``, at most the
    last 7 days. The rate divides by at least one day, so labels made in the last minutes are
    never extrapolated to a day (38 labels in the first hour read 38 per day, not 912); ``note``
    says so while the window is younger than a day.
    """
    if not dated:
        return {"start": None, "end": now.isoformat(), "days": 0.0, "rate_days": 1.0,
                "labels": 0, "note": "no labels yet"}  # fmt: skip
    start = max(min(dated), now - dt.timedelta(days=LABEL_WINDOW_MAX_DAYS))
    days = max((now - start).total_seconds() / 86400, 0.0)
    labels = sum(1 for first in dated if first >= start)
    note = None
    if days < LABEL_WINDOW_MIN_DAYS:
        hours = days * 24
        note = (
            f"labelling began {hours:.1f} hours ago: the {labels} labels so far are counted "
            "as one day's work until a full day has passed"
        )
    return {
        "start": start.isoformat(),
        "end": now.isoformat(),
        "days": days,
        "rate_days": max(days, LABEL_WINDOW_MIN_DAYS),
        "labels": labels,
        "note": note,
    }


def _feedback_latency_hours(*, project: Project, limit: int = 20_000) -> float | None:
    rows = Event.objects.filter(
        project=project,
        type__in=[EventType.THUMBS_UP, EventType.THUMBS_DOWN],
        interaction__isnull=False,
    ).values_list("occurred_at", "interaction__occurred_at")[:limit]
    delays = [(a - b).total_seconds() / 3600 for a, b in rows if a and b]
    return float(median(delays)) if delays else None


def regression_report(
    *,
    project: Project,
    baseline: str | None = None,
    filters: dict[str, Any] | None = None,
    method: str | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """Per model version: estimate, difference to ``baseline`` with its interval, flag.

    A version is flagged when the whole interval of its difference lies below zero. Without a
    baseline the version with the largest population is used (and named).
    """
    method_name = estimators.method_normalise(method)
    target = target_info(project)
    z = estimators.z_value(level)
    rows = [
        (d.group[0], d, domain_estimate(d, method=method_name, level=level, target=target))
        for d in domain_data(project=project, by=["model_version"], filters=filters)
    ]
    versions = [v for v, _, _ in rows]
    if baseline is None:
        if not rows:
            return {
                "target": target,
                "method": method_name,
                "level": level,
                "baseline": None,
                "baseline_chosen_by": None,
                "versions": [],
            }
        baseline = max(rows, key=lambda r: r[1].population)[0]
        chosen_by = "largest population"
    elif baseline not in versions:
        raise EstimateQueryError(
            {"baseline": f"unknown model version {baseline!r}; known: {', '.join(versions)}"}
        )
    else:
        chosen_by = "request"
    base_row = next(r for v, _, r in rows if v == baseline)
    out = []
    for version, d, r in rows:
        diff = _diff(r, base_row, z) if version != baseline else None
        out.append(
            {
                "model_version": version,
                "estimate": r["estimate"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "n_labels": r["n_labels"],
                "population": d.population,
                "warning": r["warning"],
                "difference": diff,
                "flagged": bool(diff and diff["ci_high"] is not None and diff["ci_high"] < 0),
            }
        )
    return {
        "target": target,
        "method": method_name,
        "level": level,
        "baseline": baseline,
        "baseline_chosen_by": chosen_by,
        "versions": out,
    }
