"""Sampling strategy writes and the one validation every caller (API, config pages, admin) shares.

Errors are keyed by location (``weights.random``, ``filters.since``) and say what is wrong, e.g.
``{"weights.random": ["must be at least 0.05 so every item keeps a chance of being picked"]}``.
"""

from __future__ import annotations

import math
from typing import Any

from celery.schedules import crontab
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils.dateparse import parse_datetime

from labeling.errors import Invalid
from labeling.models import Project
from sampling.design import COMPONENTS, MIN_RANDOM_WEIGHT, UNCERTAINTY_MEASURES
from sampling.models import SamplingStrategy

MAX_BATCH_SIZE = 100_000
MAX_OVERLAP_K = 20
FILTER_KEYS = ("model_versions", "segment", "since", "until")
FIELDS = (
    "name",
    "mode",
    "weights",
    "uncertainty_measure",
    "batch_size",
    "filters",
    "segment_minimums",
    "overlap_fraction",
    "overlap_k",
    "holdout_fraction",
    "schedule",
    "active",
)
# The strategy the demo (and a project with no strategy) starts from.
DEFAULT_STRATEGY: dict[str, Any] = {
    "name": "default",
    "mode": SamplingStrategy.Mode.PROBABILISTIC,
    "weights": {"uncertainty": 0.6, "coverage": 0.2, "random": 0.2},
    "uncertainty_measure": "sqrt",
    "batch_size": 200,
    "filters": {},
    "segment_minimums": {},
    "overlap_fraction": 0.1,
    "overlap_k": 2,
    "holdout_fraction": 0.1,
    "schedule": None,
    "active": True,
}


def crontab_parse(expression: str) -> crontab:
    """A 5-field crontab (``minute hour day-of-month month day-of-week``) as a Celery schedule."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError("must have 5 fields: minute hour day-of-month month day-of-week")
    minute, hour, day_of_month, month_of_year, day_of_week = parts
    return crontab(
        minute=minute,
        hour=hour,
        day_of_week=day_of_week,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _check_fraction(data: dict, key: str, errors: dict[str, list[str]], *, below_one: bool) -> None:
    value = _number(data.get(key))
    if value is None or value < 0 or value > 1 or (below_one and value >= 1):
        upper = "below 1" if below_one else "at most 1"
        errors[key] = [f"must be a number from 0 to {upper}"]


def _check_weights(weights: Any, errors: dict[str, list[str]]) -> None:
    if not isinstance(weights, dict):
        errors["weights"] = [
            'must be an object like {"uncertainty": 0.6, "coverage": 0.2, "random": 0.2}'
        ]
        return
    for key in weights:
        if key not in COMPONENTS:
            errors[f"weights.{key}"] = [f"unknown component; use {', '.join(COMPONENTS)}"]
    values: dict[str, float] = {}
    for key in COMPONENTS:
        value = _number(weights.get(key, 0.0))
        if value is None or value < 0:
            errors[f"weights.{key}"] = ["must be a number >= 0"]
        else:
            values[key] = value
    if "random" in values and values["random"] < MIN_RANDOM_WEIGHT:
        errors["weights.random"] = [
            f"must be at least {MIN_RANDOM_WEIGHT} so every item keeps a chance of being picked "
            "(the estimates need pi > 0 everywhere)"
        ]
    if len(values) == len(COMPONENTS) and abs(sum(values.values()) - 1.0) > 1e-6:
        errors["weights"] = [f"must sum to 1 (they sum to {sum(values.values()):.4g})"]


def _check_filters(filters: Any, project: Project, errors: dict[str, list[str]]) -> None:
    if not isinstance(filters, dict):
        errors["filters"] = ["must be an object with model_versions, segment, since, until"]
        return
    for key in filters:
        if key not in FILTER_KEYS:
            errors[f"filters.{key}"] = [f"unknown filter; use {', '.join(FILTER_KEYS)}"]
    versions = filters.get("model_versions")
    if versions is not None and (
        not isinstance(versions, list) or not all(isinstance(v, str) for v in versions)
    ):
        errors["filters.model_versions"] = ["must be a list of model version strings"]
    segment = filters.get("segment")
    if segment is not None:
        if not isinstance(segment, dict):
            errors["filters.segment"] = ['must be an object like {"tier": ["pro"]}']
        else:
            for key, values in segment.items():
                if (
                    not isinstance(values, list)
                    or not values
                    or not all(isinstance(v, str | int | float | bool) for v in values)
                ):
                    errors[f"filters.segment.{key}"] = ["must be a non-empty list of values"]
    bounds = {}
    for key in ("since", "until"):
        value = filters.get(key)
        if value in (None, ""):
            continue
        parsed = parse_datetime(value) if isinstance(value, str) else None
        if parsed is None:
            errors[f"filters.{key}"] = ["must be an ISO 8601 date-time, e.g. 2026-11-20T00:00:00Z"]
        elif parsed.tzinfo is None:
            errors[f"filters.{key}"] = ["must include a time zone (e.g. Z or +01:00)"]
        else:
            bounds[key] = parsed
    if len(bounds) == 2 and bounds["since"] >= bounds["until"]:
        errors["filters.until"] = ["must be later than filters.since"]


def _check_minimums(minimums: Any, project: Project, errors: dict[str, list[str]]) -> None:
    if not isinstance(minimums, dict):
        errors["segment_minimums"] = ['must be an object like {"tier": 30}']
        return
    for key, value in minimums.items():
        if project.segment_keys and key not in project.segment_keys:
            errors[f"segment_minimums.{key}"] = [
                f"not a segment key of this project ({', '.join(project.segment_keys)})"
            ]
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            errors[f"segment_minimums.{key}"] = ["must be a whole number >= 0"]


def strategy_validate(
    *,
    data: dict[str, Any],
    project: Project,
    instance: SamplingStrategy | None = None,
    check_name: bool = True,
) -> dict[str, Any]:
    """Return the full, normalised strategy fields or raise Invalid naming each problem.

    ``data`` may be partial when ``instance`` is given (PATCH): missing fields keep their values.
    Unknown fields are rejected, so a typo never silently does nothing. ``check_name=False`` (a
    preview) skips the name checks.
    """
    if not isinstance(data, dict):
        raise Invalid({"non_field_errors": ["must be a JSON object"]})
    base = (
        {field: getattr(instance, field) for field in FIELDS}
        if instance is not None
        else dict(DEFAULT_STRATEGY, name="")
    )
    errors: dict[str, list[str]] = {}
    for key in data:
        if key not in FIELDS and key not in ("id", "created_at", "updated_at"):
            errors[key] = [f"unknown field; strategies have {', '.join(FIELDS)}"]
    merged = {**base, **{k: v for k, v in data.items() if k in FIELDS}}
    if "weights" in data and isinstance(data["weights"], dict):
        merged["weights"] = {
            k: data["weights"].get(k, 0.0) for k in {*COMPONENTS, *data["weights"]}
        }

    name = merged["name"]
    if not check_name:
        merged["name"] = str(name or "")
    elif not isinstance(name, str) or not name.strip():
        errors["name"] = ["is required"]
    elif len(name) > 100:
        errors["name"] = ["must be at most 100 characters"]
    else:
        merged["name"] = name.strip()
        clash = SamplingStrategy.objects.filter(project=project, name=merged["name"])
        if instance is not None:
            clash = clash.exclude(pk=instance.pk)
        if clash.exists():
            errors["name"] = [f"a strategy named {merged['name']!r} already exists in this project"]
    if merged["mode"] not in SamplingStrategy.Mode.values:
        errors["mode"] = [f"must be one of {', '.join(SamplingStrategy.Mode.values)}"]
    _check_weights(merged["weights"], errors)
    if merged["uncertainty_measure"] not in UNCERTAINTY_MEASURES:
        errors["uncertainty_measure"] = [f"must be one of {', '.join(UNCERTAINTY_MEASURES)}"]
    batch = merged["batch_size"]
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH_SIZE:
        errors["batch_size"] = [f"must be a whole number from 1 to {MAX_BATCH_SIZE}"]
    _check_filters(merged["filters"] if merged["filters"] is not None else {}, project, errors)
    merged["filters"] = merged["filters"] or {}
    _check_minimums(
        merged["segment_minimums"] if merged["segment_minimums"] is not None else {},
        project,
        errors,
    )
    merged["segment_minimums"] = merged["segment_minimums"] or {}
    _check_fraction(merged, "overlap_fraction", errors, below_one=False)
    _check_fraction(merged, "holdout_fraction", errors, below_one=True)
    k = merged["overlap_k"]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_OVERLAP_K:
        errors["overlap_k"] = [f"must be a whole number from 1 to {MAX_OVERLAP_K}"]
    elif (_number(merged["overlap_fraction"]) or 0) > 0 and k < 2:
        errors["overlap_k"] = ["must be at least 2 when overlap_fraction > 0 (agreement needs 2)"]
    schedule = merged["schedule"]
    if schedule in ("", None):
        merged["schedule"] = None
    elif not isinstance(schedule, str):
        errors["schedule"] = ['must be a crontab string like "0 * * * *" or null']
    else:
        try:
            crontab_parse(schedule)
        except (ValueError, TypeError) as exc:
            errors["schedule"] = [f"invalid crontab: {exc}"]
    if not isinstance(merged["active"], bool):
        errors["active"] = ["must be true or false"]
    if errors:
        raise Invalid(errors)
    merged["weights"] = {k: float(merged["weights"].get(k, 0.0)) for k in COMPONENTS}
    for key in ("overlap_fraction", "holdout_fraction"):
        merged[key] = float(merged[key])
    return merged


@transaction.atomic
def strategy_create(
    *, project: Project, data: dict[str, Any], user: User | None = None
) -> SamplingStrategy:
    cleaned = strategy_validate(data=data, project=project)
    try:
        with transaction.atomic():
            return SamplingStrategy.objects.create(
                project=project,
                created_by=user if getattr(user, "pk", None) else None,
                **cleaned,
            )
    except IntegrityError:  # a concurrent create with the same name
        raise Invalid(
            {"name": [f"a strategy named {cleaned['name']!r} already exists in this project"]}
        ) from None


@transaction.atomic
def strategy_update(*, strategy: SamplingStrategy, data: dict[str, Any]) -> SamplingStrategy:
    cleaned = strategy_validate(data=data, project=strategy.project, instance=strategy)
    for key, value in cleaned.items():
        setattr(strategy, key, value)
    try:
        with transaction.atomic():
            strategy.save(update_fields=[*FIELDS, "updated_at"])
    except IntegrityError:
        raise Invalid(
            {"name": [f"a strategy named {cleaned['name']!r} already exists in this project"]}
        ) from None
    return strategy


@transaction.atomic
def strategy_ensure_default(*, project: Project) -> SamplingStrategy:
    """The project's "default" strategy, created with DEFAULT_STRATEGY if it does not exist."""
    strategy = SamplingStrategy.objects.filter(project=project, name="default").first()
    if strategy is not None:
        return strategy
    return strategy_create(project=project, data=dict(DEFAULT_STRATEGY))


def strategy_snapshot(strategy: SamplingStrategy) -> dict[str, Any]:
    """The strategy's settings as a run records them (later edits do not change a run)."""
    return {"id": strategy.pk, **{field: getattr(strategy, field) for field in FIELDS}}
