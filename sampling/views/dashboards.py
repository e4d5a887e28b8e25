"""Pages: the project dashboard (need ``read``).

Every number shown comes from ``sampling.selectors.dashboard``, which only composes the selectors
the API uses; ``sampling.views.dashboard_presenter`` puts those numbers into sentences, formatted
numbers and plots (drawn by ``sampling.plots``).
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from labeling.access import project_access
from sampling.judges.selectors import judges_dashboard
from sampling.selectors.dashboard import DashboardFilters, dashboard_data, filter_choices
from sampling.views.dashboard_presenter import dashboard_plot, dashboard_present


@login_required
def dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_access(user=request.user, slug=slug, need="read")
    filters = DashboardFilters.from_query(request.GET)
    raw = dashboard_data(project=project, filters=filters)
    if raw.now is not None:  # statistics from the cache: the range they were computed for
        filters = replace(filters, now=raw.now)
    data = dashboard_present(raw)
    query = urlencode(filters.api_query())

    def api(name: str) -> str:
        return reverse(name, kwargs={"slug": slug})

    api_links = {
        "estimates": f"{api('sampling_api:estimates')}?by=model_version&{query}".rstrip("&"),
        "bias report": f"{api('sampling_api:report-bias')}?{query}".rstrip("?"),
        "power report": f"{api('sampling_api:report-power')}?{query}".rstrip("?"),
        "regression report": f"{api('sampling_api:report-regression')}?{query}".rstrip("?"),
        "queue health": api("labeling_api:queue-health"),
        "agreement": api("labeling_api:agreement"),
    }
    return render(
        request,
        "sampling/dashboard.html",
        {
            "project": project,
            "filters": filters,
            "choices": filter_choices(project=project),
            "data": data,
            "api_links": api_links,
            "plot_query": urlencode(
                {
                    "range": filters.range,
                    "model_version": filters.model_version,
                    "segment": filters.segment,
                }
            ),
            "judges_panel": judges_dashboard(project=project),
        },
    )


@login_required
@require_GET
def dashboard_plot_svg(request: HttpRequest, slug: str, section: str, name: str) -> HttpResponse:
    """One plot of the dashboard as SVG, for the same filters (the page fetches each plot after
    it has answered). 204 when the section has no such plot under these filters."""
    project = project_access(user=request.user, slug=slug, need="read")
    filters = DashboardFilters.from_query(request.GET)
    svg = dashboard_plot(project=project, filters=filters, section=section, name=name)
    if svg is None:
        return HttpResponse(status=204)
    response = HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
    response["Cache-Control"] = "private, max-age=60"
    return response
