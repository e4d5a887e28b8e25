"""Always-valid monitoring: a confidence sequence per model version (and segment), and a
sequential comparison of each version against a baseline (docs/estimates.md, "Monitoring").

A person may look at the numbers every day; a fixed-sample 95% interval looked at daily for 90 days
flags a difference that is not there about 30% of the time. Here every look is a point of a
*confidence sequence* (``sampling.sequential``: the asymptotic confidence sequence of
Waudby-Smith et al. 2024 applied to the PPI++ estimator with the recorded inclusion
probabilities), which holds its level at every look at once, so a daily look costs nothing.

**Looks.** One look per calendar day (UTC), from the first day of traffic in the domain to today.
At each day the look sees what was known then: the labels whose first annotation was made by that
day (the sample), each adjustment cell's response rate as of that day (:func:`_rates_by_look`:
the labels known then over the selected items that had occurred by then), and the considered
interactions that occurred by that day of the runs that had a usable label by then (the
population: count and sum of ``f``). The estimate at the last look is the PPI++ estimate of the
estimates API for the same domain (up to the superpopulation term in its variance, see
``sampling.sequential.RunningPPI.value``).

**Comparison.** Each version against the baseline in the same segment: the difference of the two
running estimates with the confidence sequence for a difference; the bounds are intersected over
the looks, so once a regression is confirmed it stays confirmed (unless the sequence empties,
which means the versions drifted; the tube then restarts). ``verdict`` is ``regression`` when the
whole interval lies below ``-min_effect``, ``improvement`` when above ``+min_effect``,
``no_change_confirmed`` otherwise, ``not_enough_labels`` when either side is below the minimum
effective sample size of ``sampling.intervals`` (the same rule as every other number).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import BigIntegerField, Func, Min, Q
from django.utils import timezone
from numpy.typing import NDArray

from labeling.models import Annotation, Project
from sampling import intervals, sequential
from sampling.selectors import scans
from sampling.selectors.estimates import (
    EstimateQueryError,
    ResponseDesign,
    domain_data,
    population_rows,
    response_design,
)
from sampling.selectors.labelled import EPOCH

REGRESSION_FIELDS = ("baseline", "difference", "cs_low", "cs_high", "confirmed_on", "sentence")
MAX_LOOKS = 400  # days of daily looks kept (the older traffic still counts from the first look)


class EpochMicroseconds(Func):
    """A timestamp as integer microseconds since the epoch, computed by PostgreSQL (exact:
    ``EXTRACT`` gives a numeric); saves parsing a date's text per row."""

    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"
    output_field = BigIntegerField()


def first_label_dates(*, project: Project) -> dict[int, dt.datetime]:
    """Interaction id -> when its first current annotation was made (when its label was known).

    Read once per page inside ``scans.shared_scans()`` (monitoring and the power report both
    need it); the answer is shared, so callers must not change it."""
    return _first_dates(project)[0]


def first_labelled_dates(*, project: Project) -> dict[int, dt.datetime]:
    """Interaction id -> when its first current annotation of kind ``label`` was made (what the
    label latency measures). Read with :func:`first_label_dates`, once per page inside
    ``scans.shared_scans()``; callers must not change it."""
    return _first_dates(project)[1]


def _first_dates(project: Project) -> tuple[dict[int, dt.datetime], dict[int, dt.datetime]]:
    """Both first dates of every interaction with a current annotation, in one read."""

    def read() -> tuple[dict[int, dt.datetime], dict[int, dt.datetime]]:
        first: Any = Min("created_at")
        label: Any = Min("created_at", filter=Q(kind=Annotation.Kind.LABEL))
        postgres = connection.vendor == "postgresql"
        if postgres:  # as integer microseconds: no text to parse per date
            first, label = EpochMicroseconds(first), EpochMicroseconds(label)
        rows = (
            Annotation.objects.filter(queue_item__project=project, is_current=True)
            .values("interaction_id")
            .annotate(first=first, label=label)
            .values_list("interaction_id", "first", "label")
            .order_by()
        )
        anything: dict[int, dt.datetime] = {}
        labels: dict[int, dt.datetime] = {}
        for i, a, b in rows:
            if a is not None:
                anything[int(i)] = EPOCH + dt.timedelta(microseconds=a) if postgres else a
            if b is not None:
                labels[int(i)] = EPOCH + dt.timedelta(microseconds=b) if postgres else b
        return anything, labels

    return scans.shared(("first_dates", project.pk), read)


def _first_label_dates(project: Project) -> dict[int, dt.datetime]:
    rows = (
        Annotation.objects.filter(queue_item__project=project, is_current=True)
        .values("interaction_id")
        .annotate(first=Min("created_at"))
        .values_list("interaction_id", "first")
        .order_by()
    )
    return {int(i): first for i, first in rows if first is not None}


@dataclass
class Series:
    """One group's daily looks."""

    group: tuple[str, ...]
    days: list[dt.date]
    estimates: list[float | None] = field(default_factory=list)
    variances: list[float | None] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    kish: list[float] = field(default_factory=list)
    population: list[int] = field(default_factory=list)


def _day(moment: dt.datetime | dt.date) -> dt.date:
    if isinstance(moment, dt.datetime):
        return moment.astimezone(dt.UTC).date()
    return moment


def group_series(
    *,
    project: Project,
    by: list[str],
    filters: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
    design: ResponseDesign | None = None,
) -> list[Series]:
    """Daily looks of the running PPI++ estimate for every group of ``by``.

    Each look uses what was known that day (module docstring, "Looks"): the labels first made by
    then, each cell's response rate as of then (:func:`_rates_by_look`), and the traffic of the
    runs that had a usable label by then, as the estimates API leaves a run without labels out.
    """
    now = now or timezone.now()
    design = design or response_design(project=project)
    domains = domain_data(project=project, by=by, filters=filters, design=design, explicit=False)
    covered = {r for d in domains for r in d.runs}
    # group -> run -> day -> [traffic, sum of f]
    population: dict[tuple[str, ...], dict[int, dict[dt.date, list[float]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    rows = population_rows(project=project, by=[*by, "day"], filters=filters, explicit=False)
    for (key, run_id), p in sorted(rows.items()):
        if run_id not in covered or not p.n:
            continue
        cell = population[key[:-1]][run_id].setdefault(dt.date.fromisoformat(key[-1]), [0.0, 0.0])
        cell[0] += p.n
        cell[1] += p.f_total
    if not population:
        return []
    today = _day(now)
    first = min(min(days) for runs in population.values() for days in runs.values())
    first = max(first, today - dt.timedelta(days=MAX_LOOKS - 1))
    days = [first + dt.timedelta(days=i) for i in range((today - first).days + 1)]
    labelled_on = first_label_dates(project=project)
    rates, run_start, label_look = _rates_by_look(
        design=design, labelled_on=labelled_on, first=first, looks=len(days)
    )
    cells = int(rates.shape[0])
    items = design.items
    out = []
    for d in domains:
        if d.group not in population:
            continue
        # The traffic each look adds: a day's traffic at its look, but a run's traffic only from
        # the look at which the run has its first usable label (then all of it up to that day).
        add_n = np.zeros(len(days))
        add_f = np.zeros(len(days))
        for run_id, per_day in population[d.group].items():
            start = run_start.get(run_id)
            if start is None:
                continue
            for day, (n, f_total) in per_day.items():
                look = max(_look(day, first, len(days)), start)
                add_n[look] += n
                add_f[look] += f_total
        by_look: dict[int, list[int]] = defaultdict(list)
        for index, look in enumerate(label_look[d.sample].tolist()):
            by_look[look].append(index)
        raw_pi = items.pi[d.sample]
        cell = design.cell[d.sample]
        running = sequential.CellRunningPPI(cells=cells)
        series = Series(group=d.group, days=days)
        seen = 0
        for look in range(len(days)):
            idx = by_look.get(look, [])
            running.add(
                y=d.y[idx],
                f=d.f[idx],
                pi=raw_pi[idx],
                cell=cell[idx],
                population=add_n[look],
                f_total=add_f[look],
            )
            seen += int(add_n[look])
            view = running.at(rates[:, look])
            theta, var = sequential.look(view)
            labels = int(view.n_labels)
            ok = labels > 0 and bool(np.isfinite(theta)) and bool(np.isfinite(var))
            series.estimates.append(float(np.clip(theta, 0.0, 1.0)) if ok else None)
            series.variances.append(float(var) if ok else None)
            series.labels.append(labels)
            series.kish.append(float(view.kish()))
            series.population.append(seen)
        out.append(series)
    return out


_DAY_US = 86_400_000_000


def _look(day: dt.date, first: dt.date, looks: int) -> int:
    """The look that first sees ``day``: before the first look counts at the first, after the
    last (traffic stamped up to a day ahead) at the last."""
    return min(max((day - first).days, 0), looks - 1)


def _rates_by_look(
    *,
    design: ResponseDesign,
    labelled_on: dict[int, dt.datetime],
    first: dt.date,
    looks: int,
) -> tuple[NDArray[np.float64], dict[int, int], NDArray[np.int64]]:
    """Each adjustment cell's weighted response rate at each look (``cells x looks``), the look
    at which each labelled run has its first usable label, and each item's label look (the first
    look that knows its label; -1 for items without one).

    At a look, a cell's rate is ``sum 1/pi`` over its items labelled by then over ``sum 1/pi`` over
    its selected items that had occurred by then (the selection the traffic of that day stood
    for). At the last look the rates are the estimates API's (``design.cell_rate``). The cells
    are today's (they depend on label counts only, never on a label's value).
    """
    items = design.items
    cells = int(design.cell_rate.size)
    at = np.flatnonzero(~np.isnan(items.pi) & (design.cell >= 0))
    weight = 1 / items.pi[at]
    cell = design.cell[at]
    first_day = (first - EPOCH.date()).days
    occurred = np.clip(items.occurred_us[at] // _DAY_US - first_day, 0, looks - 1)
    responded = items.labelled[at]
    rows = at[responded]
    label_look = np.array(
        [
            _look(_day(when), first, looks) if (when := labelled_on.get(int(i))) else looks - 1
            for i in items.interaction_id[rows].tolist()
        ],
        dtype=np.int64,
    )
    # A labelled item had occurred by its label (an interaction stamped ahead of the clock).
    occurred[responded] = np.minimum(occurred[responded], label_look)
    selected = np.zeros((cells, looks))
    np.add.at(selected, (cell, occurred), weight)
    labelled = np.zeros((cells, looks))
    np.add.at(labelled, (cell[responded], label_look), weight[responded])
    total = np.cumsum(selected, axis=1)
    rates = np.divide(np.cumsum(labelled, axis=1), total, out=np.zeros_like(total), where=total > 0)
    run_start: dict[int, int] = {}
    for run_id, look in zip(items.run_id[rows].tolist(), label_look.tolist(), strict=True):
        if look < run_start.get(run_id, looks):
            run_start[int(run_id)] = int(look)
    item_look = np.full(items.size, -1, dtype=np.int64)
    item_look[rows] = label_look
    return np.minimum(rates, 1.0), run_start, item_look


def _points(value: float) -> str:
    return f"{abs(100 * value):.0f}"


def _sentence(
    *, version: str, baseline: str, verdict: str, diff: float | None, low: float | None,
    high: float | None, confirmed_on: dt.date | None, labels: int, where: str,
) -> str:  # fmt: skip
    if verdict == "not_enough_labels":
        return (
            f"Not enough labels yet to compare {version} with {baseline}{where} "
            f"({intervals.not_enough_text(labels)})."
        )
    if diff is None or low is None or high is None:
        return f"No labels yet to compare {version} with {baseline}{where}."
    spread = _points((high - low) / 2)
    on = f", confirmed on {confirmed_on:%b} {confirmed_on.day}" if confirmed_on else ""
    if verdict == "regression":
        return f"{version} is {_points(diff)} points worse than {baseline}{where} (±{spread}){on}."
    if verdict == "improvement":
        return f"{version} is {_points(diff)} points better than {baseline}{where} (±{spread}){on}."
    direction = "worse" if diff < 0 else "better"
    return (
        f"No change confirmed yet between {version} and {baseline}{where}: {_points(diff)} "
        f"points {direction} so far, anywhere from {100 * low:+.0f} to {100 * high:+.0f}."
    )


def compare(
    *,
    new: Series,
    base: Series,
    alpha: float,
    min_effect: float = 0.0,
) -> dict[str, Any]:
    """The sequential comparison of two groups' daily looks (``new - base``)."""
    estimates: list[float | None] = []
    variances: list[float | None] = []
    for a, va, b, vb in zip(
        new.estimates, new.variances, base.estimates, base.variances, strict=True
    ):
        if a is None or b is None or va is None or vb is None:
            estimates.append(None)
            variances.append(None)
            continue
        look_diff, look_var, _ = sequential.comparison(new=(a, va), base=(b, vb), alpha=alpha)
        estimates.append(float(look_diff))
        variances.append(float(look_var))
    looks = sequential.running_sequence(
        estimates=estimates, variances=variances, alpha=alpha, arms=2, bounds=(-1.0, 1.0)
    )
    confirmed_on: dt.date | None = None
    state = "no_change_confirmed"
    for day, look in zip(new.days, looks, strict=True):
        if look.estimate is None or look.low is None or look.high is None:
            continue
        now_state = (
            "regression"
            if look.high < -min_effect
            else "improvement"
            if look.low > min_effect
            else "no_change_confirmed"
        )
        if now_state != state:
            confirmed_on = day if now_state != "no_change_confirmed" else None
            state = now_state
    last = looks[-1] if looks else None
    enough = bool(
        new.kish
        and base.kish
        and new.kish[-1] >= intervals.MIN_EFFECTIVE_LABELS
        and base.kish[-1] >= intervals.MIN_EFFECTIVE_LABELS
    )
    verdict = state if enough else "not_enough_labels"
    diff = last.estimate if last and enough else None
    low = last.low if last and enough and last.estimate is not None else None
    high = last.high if last and enough and last.estimate is not None else None
    z = float(intervals.z_for(1 - alpha))
    fixed = None
    if last and enough and last.estimate is not None and last.var is not None:
        half = z * float(np.sqrt(last.var))
        fixed = {"low": last.estimate - half, "high": last.estimate + half}
    return {
        "difference": diff,
        "cs_low": low,
        "cs_high": high,
        "fixed_interval": fixed,
        "verdict": verdict,
        "confirmed_on": confirmed_on.isoformat() if confirmed_on and enough else None,
        "min_effect": min_effect,
        "n_labels": new.labels[-1] if new.labels else 0,
        "baseline_n_labels": base.labels[-1] if base.labels else 0,
        "display": None
        if enough
        else intervals.not_enough_text(min(new.labels[-1:] + base.labels[-1:] or [0])),
        "series": [
            {
                "day": day.isoformat(),
                "difference": look.estimate,
                "low": look.low,
                "high": look.high,
            }
            for day, look in zip(new.days, looks, strict=True)
            if look.estimate is not None
        ],
        "_confirmed_on_date": confirmed_on if enough else None,
    }


def _share_rows(series: Series, alpha: float) -> dict[str, Any]:
    looks = sequential.running_sequence(
        estimates=series.estimates, variances=series.variances, alpha=alpha, arms=1
    )
    last = looks[-1] if looks else None
    n = series.labels[-1] if series.labels else 0
    enough = bool(series.kish) and series.kish[-1] >= intervals.MIN_EFFECTIVE_LABELS
    status = "ok" if enough else ("no_labels" if n == 0 else "not_enough_labels")
    return {
        "estimate": last.estimate if last and enough else None,
        "cs_low": last.low if last and enough and last.estimate is not None else None,
        "cs_high": last.high if last and enough and last.estimate is not None else None,
        "n_labels": n,
        "population": series.population[-1] if series.population else 0,
        "status": status,
        "display": None if enough else intervals.not_enough_text(n),
        "series": [
            {
                "day": day.isoformat(),
                "estimate": look.estimate,
                "low": look.low,
                "high": look.high,
                "n_labels": labels,
            }
            for day, look, labels in zip(series.days, looks, series.labels, strict=True)
            if look.estimate is not None
        ],
    }


def monitoring_report(
    *,
    project: Project,
    baseline: str | None = None,
    segment: str | None = None,
    filters: dict[str, Any] | None = None,
    alpha: float = sequential.DEFAULT_ALPHA,
    min_effect: float = 0.0,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Confidence sequences per model version (per ``segment`` value too when given) and each
    version's sequential comparison with ``baseline`` (default: the largest population).

    ``segment`` is a segment key (``tier``); comparisons are then within each segment value.
    """
    if not 0 < alpha < 0.5:
        raise EstimateQueryError({"alpha": f"must lie in (0, 0.5), got {alpha}"})
    if not 0 <= min_effect < 1:
        raise EstimateQueryError({"min_effect": f"must lie in [0, 1), got {min_effect}"})
    if segment and segment not in (project.segment_keys or []):
        known = ", ".join(project.segment_keys or []) or "none"
        raise EstimateQueryError({"segment": f"unknown segment key {segment!r}; known: {known}"})
    by = ["model_version", *([f"segment.{segment}"] if segment else [])]
    all_series = group_series(project=project, by=by, filters=filters, now=now)
    totals: dict[str, int] = defaultdict(int)
    for s in all_series:
        totals[s.group[0]] += s.population[-1] if s.population else 0
    versions = sorted(totals)
    chosen_by = "request"
    if baseline is None:
        baseline = max(versions, key=lambda v: (totals[v], v)) if versions else None
        chosen_by = "largest population"
    elif baseline not in versions:
        raise EstimateQueryError(
            {"baseline": f"unknown model version {baseline!r}; known: {', '.join(versions)}"}
        )
    base_of = {s.group[1:]: s for s in all_series if s.group[0] == baseline}
    groups = []
    for s in all_series:
        where = f" for {segment}={s.group[1]}" if segment else ""
        row: dict[str, Any] = {
            "model_version": s.group[0],
            "segment": {segment: s.group[1]} if segment else None,
            **_share_rows(s, alpha),
            "comparison": None,
        }
        base = base_of.get(s.group[1:])
        if s.group[0] != baseline and base is not None and baseline is not None:
            c = compare(new=s, base=base, alpha=alpha, min_effect=min_effect)
            confirmed = c.pop("_confirmed_on_date")
            c["baseline"] = baseline
            c["sentence"] = _sentence(
                version=s.group[0], baseline=baseline, verdict=c["verdict"],
                diff=c["difference"], low=c["cs_low"], high=c["cs_high"],
                confirmed_on=confirmed, labels=min(c["n_labels"], c["baseline_n_labels"]),
                where=where,
            )  # fmt: skip
            row["comparison"] = c
        groups.append(row)
    days = all_series[0].days if all_series else []
    return {
        "method": "ppi_pp",
        "alpha": alpha,
        "level": 1 - alpha,
        "min_effect": min_effect,
        "baseline": baseline,
        "baseline_chosen_by": chosen_by if baseline else None,
        "segment": segment or None,
        "filters": filters or {},
        "looks": {
            "every": "day",
            "first": days[0].isoformat() if days else None,
            "last": days[-1].isoformat() if days else None,
            "count": len(days),
        },
        "regressions": [
            {
                "model_version": g["model_version"],
                "segment": g["segment"],
                **{k: g["comparison"][k] for k in REGRESSION_FIELDS},
            }
            for g in groups
            if g["comparison"] and g["comparison"]["verdict"] == "regression"
        ],
        "groups": groups,
    }
