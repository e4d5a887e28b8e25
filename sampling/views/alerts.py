"""Page: alert rules and the alerts they raised (admins: need ``configure``).

A rule says which confirmed regressions raise an alert (versions, baseline, per segment, minimum
drop, false-alarm rate, who gets the e-mail); the rules run hourly (``sampling.evaluate_alerts``)
and on "Check now". The same services back the API (``/api/projects/{slug}/alert-rules/``).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from labeling.access import acting_user, project_access
from labeling.forms import SERVICE_ERRORS, attach_errors, error_detail
from sampling.forms import AlertRuleForm
from sampling.selectors.alerts import alert_rule_get, alert_rules, alerts_list
from sampling.services.alerts import alert_rule_create, alert_rule_update, alerts_evaluate

# The service's field names where the form shows them differently.
_FORM_FIELD = {"min_effect": "min_effect_points"}


@login_required
def alerts(request: HttpRequest, slug: str, rule_id: int | None = None) -> HttpResponse:
    """Open and recent alerts, the rules, and a form to add a rule or change the chosen one."""
    project = project_access(user=request.user, slug=slug, need="configure")
    rule = None
    if rule_id is not None:
        rule = alert_rule_get(project=project, rule_id=rule_id)
        if rule is None:
            raise Http404("No such alert rule.")
    keys = list(project.segment_keys or [])
    if request.method == "POST":
        form = AlertRuleForm(request.POST, segment_keys=keys)
        if form.is_valid():
            try:
                if rule is None:
                    saved = alert_rule_create(
                        project=project,
                        data=form.service_data(),
                        created_by=acting_user(request.user),
                    )
                    messages.success(request, f"Alert rule “{saved.name}” added.")
                else:
                    saved = alert_rule_update(rule=rule, data=form.service_data())
                    messages.success(request, f"Alert rule “{saved.name}” saved.")
                return redirect("project-alerts", slug=slug)
            except SERVICE_ERRORS as exc:
                attach_errors(form, error_detail(exc), field_for=_FORM_FIELD.get)
    else:
        initial = AlertRuleForm.initial_for(rule) if rule is not None else None
        form = AlertRuleForm(initial=initial, segment_keys=keys)
    return render(
        request,
        "sampling/alerts.html",
        {
            "project": project,
            "form": form,
            "rule": rule,
            "rules": alert_rules(project=project),
            "open": alerts_list(project=project, open_only=True)[:50],
            "recent": alerts_list(project=project).filter(resolved_at__isnull=False)[:20],
        },
    )


@login_required
@require_POST
def alerts_check(request: HttpRequest, slug: str) -> HttpResponse:
    """Run the project's active rules now (as the hourly task does)."""
    project = project_access(user=request.user, slug=slug, need="configure")
    opened = alerts_evaluate(project=project)
    if opened:
        messages.warning(request, f"{len(opened)} new alert(s): see below.")
    else:
        messages.success(request, "Rules checked: no new confirmed regression.")
    return redirect("project-alerts", slug=slug)
