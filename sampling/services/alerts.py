"""Alert rules and alerts: a confirmed regression becomes one Alert, an email and a webhook event.

:func:`alerts_evaluate` runs a project's active rules through the always-valid monitoring
selector (``sampling.selectors.monitoring``) and, for every comparison whose confidence sequence
lies wholly below ``-min_effect``, makes sure exactly one open :class:`Alert` exists (a partial
unique constraint on rule and comparison key backs this up). A new alert is, in the same
transaction, recorded in the webhooks outbox as ``regression.detected`` for every subscription of
the project that listens to it (``labeling.services.webhooks.webhook_emit``: delivered after
commit, signed, retried); after commit it is emailed (Django's email backend: the console in
development). An open alert whose regression no longer
holds (the versions drifted and the sequence restarted) is resolved, and a later confirmation
opens a new one. The periodic task ``sampling.evaluate_alerts`` calls
:func:`alerts_evaluate_all`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from labeling.errors import Invalid
from labeling.models import Membership, Project, Role
from labeling.services.webhooks import webhook_emit
from sampling.models import Alert, AlertRule
from sampling.selectors.estimates import EstimateQueryError
from sampling.selectors.monitoring import monitoring_report

logger = logging.getLogger(__name__)

WEBHOOK_EVENT = "regression.detected"
RULE_FIELDS = (
    "name", "model_versions", "baseline", "segment_key", "segment_values", "min_effect", "alpha",
    "emails", "active",
)  # fmt: skip


def _strings(value: Any, field: str, errors: dict[str, str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        errors[field] = "a list of strings"
        return []
    return [v.strip() for v in value if v.strip()]


def alert_rule_clean(*, project: Project, data: dict[str, Any]) -> dict[str, Any]:
    """Validated rule fields (Invalid names each bad field)."""
    errors: dict[str, str] = {}
    unknown = sorted(set(data) - set(RULE_FIELDS))
    for key in unknown:
        errors[key] = f"unknown field; known: {', '.join(RULE_FIELDS)}"
    out: dict[str, Any] = {}
    name = str(data.get("name") or "").strip()
    if not name or len(name) > 100:
        errors["name"] = "a name of 1 to 100 characters"
    out["name"] = name
    out["model_versions"] = _strings(data.get("model_versions"), "model_versions", errors)
    out["baseline"] = str(data.get("baseline") or "").strip()
    key = str(data.get("segment_key") or "").strip()
    if key and key not in (project.segment_keys or []):
        known = ", ".join(project.segment_keys or []) or "none"
        errors["segment_key"] = f"unknown segment key {key!r}; known: {known}"
    out["segment_key"] = key
    out["segment_values"] = _strings(data.get("segment_values"), "segment_values", errors)
    if out["segment_values"] and not key:
        errors["segment_values"] = "set segment_key to restrict segment values"
    for field, default, low, high in (("min_effect", 0.0, 0.0, 0.5), ("alpha", 0.05, 0.001, 0.2)):
        raw = data.get(field, default)
        try:
            value = float(default if raw is None else raw)
        except (TypeError, ValueError):
            errors[field] = f"a number in [{low}, {high}]"
            continue
        if not low <= value <= high:
            errors[field] = f"a number in [{low}, {high}]"
        out[field] = value
    emails = _strings(data.get("emails"), "emails", errors)
    if any("@" not in e for e in emails):
        errors["emails"] = "email addresses"
    out["emails"] = emails
    out["active"] = bool(data.get("active", True))
    if errors:
        raise Invalid(errors)
    return out


def alert_rule_create(
    *, project: Project, data: dict[str, Any], created_by: User | None = None
) -> AlertRule:
    clean = alert_rule_clean(project=project, data=data)
    if AlertRule.objects.filter(project=project, name=clean["name"]).exists():
        raise Invalid({"name": f"a rule named {clean['name']!r} exists"})
    return AlertRule.objects.create(project=project, created_by=created_by, **clean)


def alert_rule_update(*, rule: AlertRule, data: dict[str, Any]) -> AlertRule:
    """Change some fields of a rule (the others keep their values)."""
    current = {f: getattr(rule, f) for f in RULE_FIELDS}
    clean = alert_rule_clean(project=rule.project, data={**current, **data})
    if (
        clean["name"] != rule.name
        and AlertRule.objects.filter(project=rule.project, name=clean["name"]).exists()
    ):
        raise Invalid({"name": f"a rule named {clean['name']!r} exists"})
    for field, value in clean.items():
        setattr(rule, field, value)
    rule.save()
    return rule


def _recipients(rule: AlertRule) -> list[str]:
    if rule.emails:
        return list(rule.emails)
    return sorted(
        e
        for e in Membership.objects.filter(project=rule.project, role=Role.ADMIN).values_list(
            "user__email", flat=True
        )
        if e
    )


def _key(row: dict[str, Any], baseline: str) -> str:
    segment = ",".join(f"{k}={v}" for k, v in sorted((row["segment"] or {}).items()))
    return f"{row['model_version']}|{baseline}|{segment}"


def _payload(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.pk,
        "rule": alert.rule.name,
        "project": alert.project.slug,
        "model_version": alert.model_version,
        "baseline": alert.baseline,
        "segment": alert.segment,
        "difference": alert.difference,
        "cs_low": alert.cs_low,
        "cs_high": alert.cs_high,
        "confirmed_on": alert.confirmed_on.isoformat() if alert.confirmed_on else None,
        "sentence": alert.sentence,
        "dashboard": reverse("project-dashboard", args=[alert.project.slug]),
    }


def _announce(alert: Alert) -> None:
    """Inside the alert's transaction: ``regression.detected`` to the project's webhooks (the
    outbox delivers after commit, signed, with retries: docs/webhooks.md)."""
    alert.webhook_deliveries = webhook_emit(alert.project, WEBHOOK_EVENT, _payload(alert))
    if alert.webhook_deliveries:
        alert.save(update_fields=["webhook_deliveries"])


def _email(alert_id: int) -> None:
    alert = Alert.objects.select_related("rule", "project").filter(pk=alert_id).first()
    if alert is None:
        return
    to = _recipients(alert.rule)
    if not to:
        return
    subject = f"[Flywheel] {alert.project.name}: regression in {alert.model_version}"
    url = reverse("project-dashboard", args=[alert.project.slug])
    body = (
        f"{alert.sentence}\n\nRule: {alert.rule.name} (minimum effect "
        f"{100 * alert.rule.min_effect:.0f} points, error rate {alert.rule.alpha:.0%} over every "
        f"daily look).\nDifference {100 * alert.difference:+.1f} points, always-valid interval "
        f"{100 * alert.cs_low:+.1f} to {100 * alert.cs_high:+.1f}.\nDashboard: {url}\n"
    )
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to)
    except Exception:  # a mail server that is down must not undo the alert
        logger.exception("alert %s: email to %s failed", alert.pk, to)
        return
    Alert.objects.filter(pk=alert.pk).update(emailed_to=to)


def _open_alert(rule: AlertRule, row: dict[str, Any], baseline: str) -> Alert | None:
    comparison = row["comparison"]
    key = _key(row, baseline)
    if Alert.objects.filter(rule=rule, key=key, resolved_at__isnull=True).exists():
        return None
    confirmed = comparison["confirmed_on"]
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                project=rule.project,
                rule=rule,
                key=key,
                model_version=row["model_version"],
                baseline=baseline,
                segment=row["segment"] or {},
                difference=comparison["difference"],
                cs_low=comparison["cs_low"],
                cs_high=comparison["cs_high"],
                confirmed_on=dt.date.fromisoformat(confirmed) if confirmed else None,
                sentence=comparison["sentence"],
            )
            _announce(alert)
            alert_id = alert.pk
            transaction.on_commit(lambda: _email(alert_id))
    except IntegrityError:  # another evaluation opened it at the same moment
        return None
    return alert


def alerts_evaluate(*, project: Project, now: dt.datetime | None = None) -> list[Alert]:
    """Run the project's active rules; returns the alerts opened now (none if all were open)."""
    opened: list[Alert] = []
    for rule in AlertRule.objects.filter(project=project, active=True).order_by("id"):
        try:
            report = monitoring_report(
                project=project,
                baseline=rule.baseline or None,
                segment=rule.segment_key or None,
                alpha=rule.alpha,
                min_effect=rule.min_effect,
                now=now,
            )
        except EstimateQueryError as exc:  # e.g. the baseline version is gone
            logger.warning("alert rule %s of %s skipped: %s", rule.pk, project.slug, exc)
            continue
        baseline = report["baseline"]
        if baseline is None:
            continue
        still: set[str] = set()
        for row in report["groups"]:
            comparison = row["comparison"]
            if comparison is None or comparison["verdict"] != "regression":
                continue
            if rule.model_versions and row["model_version"] not in rule.model_versions:
                continue
            value = (row["segment"] or {}).get(rule.segment_key)
            if rule.segment_values and value not in rule.segment_values:
                continue
            still.add(_key(row, baseline))
            alert = _open_alert(rule, row, baseline)
            if alert is not None:
                opened.append(alert)
        Alert.objects.filter(rule=rule, resolved_at__isnull=True).exclude(key__in=still).update(
            resolved_at=now or timezone.now()
        )
    return opened


def alerts_evaluate_all(*, now: dt.datetime | None = None) -> int:
    """Every project with an active rule; returns how many alerts were opened."""
    opened = 0
    for project in Project.objects.filter(alert_rules__active=True).distinct():
        opened += len(alerts_evaluate(project=project, now=now))
    return opened
