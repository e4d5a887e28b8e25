"""Sampling API routes, mounted at ``/api/`` as the ``sampling_api`` namespace.

Same convention as ``labeling/api/urls.py``: ``path()`` only, a trailing slash on every route,
``<project:slug>`` for the project, names without an ``api-`` prefix
(``reverse("sampling_api:estimates", kwargs={"slug": ...})``). No client calls a sampling path
without its slash, so there are no slash-less aliases here.
"""

from __future__ import annotations

from django.urls import path

from sampling.api import alerts, estimates, runs, strategies
from sampling.judges import api as judges

app_name = "sampling_api"

P = "projects/<project:slug>/"

urlpatterns = [
    # strategies and sampling runs
    path(f"{P}strategies/", strategies.StrategyListCreateApi.as_view(), name="strategies"),
    path(
        f"{P}strategies/preview/",
        strategies.StrategyPreviewApi.as_view(),
        name="strategy-preview",
    ),
    path(
        f"{P}strategies/<int:strategy_id>/",
        strategies.StrategyDetailApi.as_view(),
        name="strategy",
    ),
    path(f"{P}sampling-runs/", runs.RunListCreateApi.as_view(), name="runs"),
    path(f"{P}sampling-runs/<int:run_id>/", runs.RunDetailApi.as_view(), name="run"),
    # estimates, reports, monitoring, alerts
    path(f"{P}estimates/", estimates.EstimatesApi.as_view(), name="estimates"),
    path(f"{P}reports/bias/", estimates.BiasReportApi.as_view(), name="report-bias"),
    path(f"{P}reports/power/", estimates.PowerReportApi.as_view(), name="report-power"),
    path(
        f"{P}reports/regression/",
        estimates.RegressionReportApi.as_view(),
        name="report-regression",
    ),
    path(f"{P}monitoring/", estimates.MonitoringApi.as_view(), name="monitoring"),
    path(f"{P}alert-rules/", alerts.AlertRuleListCreateApi.as_view(), name="alert-rules"),
    path(
        f"{P}alert-rules/evaluate/",
        alerts.AlertRuleEvaluateApi.as_view(),
        name="alert-rules-evaluate",
    ),
    path(
        f"{P}alert-rules/<int:rule_id>/",
        alerts.AlertRuleDetailApi.as_view(),
        name="alert-rule",
    ),
    path(f"{P}alerts/", alerts.AlertListApi.as_view(), name="alerts"),
    # LLM judges
    path(f"{P}judges/", judges.JudgeListCreateApi.as_view(), name="judges"),
    path(f"{P}judges/<int:judge_id>/", judges.JudgeDetailApi.as_view(), name="judge"),
    path(
        f"{P}judges/<int:judge_id>/results/",
        judges.JudgeResultsApi.as_view(),
        name="judge-results",
    ),
    path(
        f"{P}judges/<int:judge_id>/test/",
        judges.JudgeTestConnectionApi.as_view(),
        name="judge-test",
    ),
    path(f"{P}judges/<int:judge_id>/run/", judges.JudgeRunApi.as_view(), name="judge-run"),
    path(
        f"{P}judges/<int:judge_id>/calibration/",
        judges.JudgeCalibrationApi.as_view(),
        name="judge-calibration",
    ),
]
