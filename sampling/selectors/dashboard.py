"""What the dashboard shows, composed from the selectors the API uses (never computed here).

This module only calls other selectors (estimates, reports, queue health, agreement, proxy
models) with the dashboard's filters and arranges their answers into sections. A section whose
source selector is not installed, or has nothing to say yet, carries an ``empty`` message that
tells the user what to do next instead of a number.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from labeling.models import Interaction, Project

RANGES: dict[str, int | None] = {"7d": 7, "30d": 30, "90d": 90, "all": None}


def optional(module: str, name: str) -> Callable[..., Any] | None:
    """A selector from another area, or None when that area has not shipped it."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


@dataclass(frozen=True)
class DashboardFilters:
    """Time range, model version and segment (``key=value``) chosen on the dashboard."""

    range: str = "30d"
    model_version: str = ""
    segment: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> DashboardFilters:
        chosen = query.get("range", "30d")
        return cls(
            range=chosen if chosen in RANGES else "30d",
            model_version=(query.get("model_version") or "").strip(),
            segment=(query.get("segment") or "").strip() if "=" in query.get("segment", "") else "",
        )

    def since(self, now: dt.datetime | None = None) -> dt.datetime | None:
        days = RANGES[self.range]
        return None if days is None else (now or timezone.now()) - dt.timedelta(days=days)

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
            params["since"] = since.date().isoformat()
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
    quality: Section
    coverage: Section
    bias: Section
    power: Section
    queue: Section
    proxy: Section


def filter_choices(*, project: Project) -> dict[str, Any]:
    """Model versions and segment values present in the project (for the filter drop-downs)."""
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
    return {"ranges": list(RANGES), "model_versions": versions, "segments": segments}


def dashboard_data(*, project: Project, filters: DashboardFilters) -> Dashboard:
    """Every section of the dashboard for ``project`` under ``filters``."""
    return Dashboard(
        quality=_quality(project=project, filters=filters),
        coverage=_coverage(project=project, filters=filters),
        bias=_bias(project=project, filters=filters),
        power=_power(project=project, filters=filters),
        queue=_queue(project=project, filters=filters),
        proxy=_proxy(project=project),
    )


NOT_YET = "This report is not available in this installation yet."


def _quality(*, project: Project, filters: DashboardFilters) -> Section:
    return Section(empty=NOT_YET)


def _coverage(*, project: Project, filters: DashboardFilters) -> Section:
    return Section(empty=NOT_YET)


def _bias(*, project: Project, filters: DashboardFilters) -> Section:
    return Section(empty=NOT_YET)


def _power(*, project: Project, filters: DashboardFilters) -> Section:
    return Section(empty=NOT_YET)


def _queue(*, project: Project, filters: DashboardFilters) -> Section:
    return Section(empty=NOT_YET)


def _proxy(*, project: Project) -> Section:
    return Section(empty=NOT_YET)
