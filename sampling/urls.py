"""Sampling pages (configuration, dashboards, the data browser, alerts, judges), at the site root.

Same convention as ``labeling/urls.py``: ``path()`` only, a trailing slash on every route (the
dashboard's plots end in ``.svg`` instead: they name a file), ``<project:slug>`` for the
project, global page names.
"""

from __future__ import annotations

from django.urls import path

from sampling.judges import views as judges
from sampling.views import alerts, config, dashboards, data

P = "p/<project:slug>/"

urlpatterns = [
    # strategies, runs, retrains
    path(f"{P}retrain/", config.retrain, name="project-retrain"),
    path(f"{P}strategies/", config.strategies, name="project-strategies"),
    path(f"{P}strategies/new/", config.strategy_edit, name="project-strategy-new"),
    path(f"{P}strategies/<int:strategy_id>/", config.strategy_edit, name="project-strategy"),
    # dashboard and data browser
    path(f"{P}dashboard/", dashboards.dashboard, name="project-dashboard"),
    path(
        f"{P}dashboard/plots/<slug:section>/<slug:name>.svg",
        dashboards.dashboard_plot_svg,
        name="project-dashboard-plot",
    ),
    path(f"{P}data/", data.data_browser, name="data-browser"),
    path(f"{P}data/enqueue/", data.data_enqueue, name="data-enqueue"),
    path(f"{P}data/<int:interaction_id>/", data.data_item, name="data-item"),
    path(f"{P}data/<int:interaction_id>/erase/", data.data_erase, name="data-erase"),
    # alerts
    path(f"{P}alerts/", alerts.alerts, name="project-alerts"),
    path(f"{P}alerts/check/", alerts.alerts_check, name="project-alerts-check"),
    path(f"{P}alerts/rules/<int:rule_id>/", alerts.alerts, name="project-alert-rule"),
    # LLM judges
    path(f"{P}judges/", judges.judges, name="project-judges"),
    path(f"{P}judges/new/", judges.judge_edit, name="project-judge-new"),
    path(f"{P}judges/<int:judge_id>/", judges.judge_edit, name="project-judge"),
    path(f"{P}judges/<int:judge_id>/action/", judges.judge_action, name="project-judge-action"),
    path(f"{P}judges/<int:judge_id>/trust/", judges.judge_trust, name="project-judge-trust"),
]
