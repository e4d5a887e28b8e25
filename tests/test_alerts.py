"""Alert rules: a confirmed regression opens exactly one alert, emailed and sent to the project's
webhooks as regression.detected; rules filter by version and segment; the API, the pages and the
periodic task."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from labeling.models import Project, Role, WebhookDelivery
from labeling.services.webhooks import webhook_subscription_create
from sampling.models import Alert, AlertRule
from sampling.services.alerts import alert_rule_create, alerts_evaluate
from tests.factories import MembershipFactory, UserFactory
from tests.monitoring_fixtures import seed_daily

RULES = reverse("sampling_api:alert-rules", kwargs={"slug": "support-bot"})


@pytest.fixture
def regressed(project: Project):
    return seed_daily(project, days=20, per_day=40, p_good={"stable": 0.85, "canary": 0.55})


def _subscribe(project: Project) -> None:
    webhook_subscription_create(
        project=project,
        url="http://127.0.0.1:9/flywheel",  # nothing listens there: no network
        events=["regression.detected"],
    )


def test_a_confirmed_regression_opens_one_alert(
    project, regressed, django_capture_on_commit_callbacks
) -> None:
    admin = UserFactory(email="lead@example.com")
    MembershipFactory(project=project, user=admin, role=Role.ADMIN)
    _subscribe(project)
    rule = alert_rule_create(project=project, data={"name": "canary", "baseline": "stable"})
    with django_capture_on_commit_callbacks(execute=True):
        opened = alerts_evaluate(project=project)
    assert len(opened) == 1
    alert = opened[0]
    assert alert.rule == rule
    assert alert.model_version == "canary"
    assert alert.baseline == "stable"
    assert alert.cs_high < 0
    assert alert.confirmed_on is not None
    assert alert.sentence.startswith("canary is ")
    assert "points worse than stable" in alert.sentence
    # Emailed to the project's admins.
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["lead@example.com"]
    assert "regression in canary" in mail.outbox[0].subject
    assert alert.sentence in mail.outbox[0].body
    assert Alert.objects.get(pk=alert.pk).emailed_to == ["lead@example.com"]
    # One delivery of regression.detected, in the webhooks outbox.
    delivery = WebhookDelivery.objects.get(project=project)
    assert delivery.event == "regression.detected"
    assert delivery.payload["data"]["alert_id"] == alert.pk
    assert delivery.payload["data"]["sentence"] == alert.sentence
    assert delivery.payload["data"]["model_version"] == "canary"
    assert Alert.objects.get(pk=alert.pk).webhook_deliveries == 1
    # Evaluating again (the hourly task) finds the same regression: nothing new.
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate(project=project) == []
    assert Alert.objects.filter(project=project).count() == 1
    assert len(mail.outbox) == 1
    assert WebhookDelivery.objects.filter(project=project).count() == 1


def test_no_regression_no_alert(project, django_capture_on_commit_callbacks) -> None:
    seed_daily(project, days=20, per_day=40, p_good={"stable": 0.8, "canary": 0.8}, seed=2)
    _subscribe(project)
    alert_rule_create(project=project, data={"name": "all", "baseline": "stable"})
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate(project=project) == []
    assert not Alert.objects.exists()
    assert mail.outbox == []
    assert not WebhookDelivery.objects.exists()


def test_rules_filter_versions_and_segments(project, django_capture_on_commit_callbacks) -> None:
    seed_daily(
        project,
        days=30,
        per_day=60,
        p_good={"stable": 0.8, "canary": 0.8},
        p_good_pro={"canary": 0.3},
        seed=3,
    )
    data = {"baseline": "stable", "segment_key": "tier"}
    alert_rule_create(project=project, data={"name": "other", "model_versions": ["x"], **data})
    alert_rule_create(
        project=project, data={"name": "free only", "segment_values": ["free"], **data}
    )
    pro = alert_rule_create(
        project=project, data={"name": "pro", "segment_values": ["pro"], **data}
    )
    # A whole-version rule: the drop in pro (30% of traffic) may or may not show overall; the
    # per-segment rule must see it.
    with django_capture_on_commit_callbacks(execute=True):
        opened = alerts_evaluate(project=project)
    assert [(a.rule, a.segment) for a in opened] == [(pro, {"tier": "pro"})]
    assert "for tier=pro" in opened[0].sentence


def test_an_alert_is_resolved_when_its_regression_no_longer_holds(project, regressed) -> None:
    rule = alert_rule_create(project=project, data={"name": "canary", "baseline": "stable"})
    stale = Alert.objects.create(
        project=project, rule=rule, key="gone|stable|", model_version="gone", baseline="stable",
        difference=-0.1, cs_low=-0.2, cs_high=-0.01, sentence="old",
    )  # fmt: skip
    opened = alerts_evaluate(project=project)
    stale.refresh_from_db()
    assert stale.resolved_at is not None
    assert len(opened) == 1
    assert opened[0].resolved_at is None


def test_rule_validation_and_api(project, regressed, api_as) -> None:
    admin = api_as("admin")
    r = admin.post(
        RULES,
        {"name": "pro canary", "baseline": "stable", "segment_key": "tier", "min_effect": 0.02},
        format="json",
    )
    assert r.status_code == 201, r.content
    rule_id = r.json()["id"]
    r = admin.post(RULES, {"name": "bad", "segment_key": "colour", "alpha": 2}, format="json")
    assert r.status_code == 400
    errors = r.json()["errors"]
    assert "colour" in errors["segment_key"]
    assert "alpha" in errors
    assert admin.post(RULES, {"name": "pro canary"}, format="json").status_code == 400
    assert api_as("engineer").post(RULES, {"name": "x"}, format="json").status_code == 403
    assert api_as("engineer").get(RULES).json()["results"][0]["name"] == "pro canary"
    r = admin.patch(f"{RULES}{rule_id}/", {"segment_key": "", "min_effect": 0}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["segment_key"] == ""
    r = admin.post(RULES + "evaluate/")
    assert r.status_code == 200
    assert [a["model_version"] for a in r.json()["opened"]] == ["canary"]
    assert admin.post(RULES + "evaluate/").json()["opened"] == []
    alerts = (
        api_as("reviewer")
        .get(reverse("sampling_api:alerts", kwargs={"slug": "support-bot"}), {"open": 1})
        .json()
    )
    assert alerts["count"] == 1
    assert alerts["results"][0]["rule"] == "pro canary"
    assert (
        api_as("annotator")
        .get(reverse("sampling_api:alerts", kwargs={"slug": "support-bot"}))
        .status_code
        == 403
    )


def test_the_periodic_task_evaluates_every_project_with_rules(project, regressed) -> None:
    from sampling.tasks.alerts import evaluate_alerts

    AlertRule.objects.create(project=project, name="r", baseline="stable")
    assert evaluate_alerts() == 1
    assert evaluate_alerts() == 0
    assert evaluate_alerts(project.pk) == 0
    assert Alert.objects.filter(project=project, resolved_at__isnull=True).count() == 1


def test_open_alerts_show_on_project_pages_and_the_project_list(project, regressed, member) -> None:
    from django.test import Client

    AlertRule.objects.create(project=project, name="canary watch", baseline="stable")
    alerts_evaluate(project=project)
    sentence = Alert.objects.get().sentence
    engineer, annotator = member(Role.ENGINEER), member(Role.ANNOTATOR)
    client = Client()
    client.force_login(engineer)
    dashboard = client.get(
        reverse("project-dashboard", kwargs={"slug": "support-bot"})
    ).content.decode()
    banner = dashboard.split('data-testid="alert-banner"', 1)[1].split("</div>", 1)[0]
    assert sentence in banner
    assert "canary watch" in banner
    home = client.get("/", follow=True).content.decode()
    assert 'data-testid="alert-count">1 confirmed regression<' in home
    client.force_login(annotator)  # annotators do not read estimates: no banner
    assert (
        "alert-banner"
        not in client.get(
            reverse("project-home", kwargs={"slug": "support-bot"}), follow=True
        ).content.decode()
    )


# --- The Alerts page (admins) ------------------------------------------------------------------
PAGE = reverse("project-alerts", kwargs={"slug": "support-bot"})


def _page_client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def test_the_alerts_page_adds_a_rule_and_checks_it(
    project, regressed, member, django_capture_on_commit_callbacks
) -> None:
    project.segment_keys = ["tier"]
    project.save(update_fields=["segment_keys"])
    client = _page_client(member(Role.ADMIN))
    empty = client.get(PAGE).content.decode()
    assert "No rules yet." in empty
    assert "No open alert." in empty
    answer = client.post(
        PAGE,
        {
            "name": "canary watch",
            "model_versions": "canary",
            "baseline": "stable",
            "segment_key": "",
            "segment_values": "",
            "min_effect_points": "2",
            "alpha": "0.05",
            "emails": "lead@example.com, oncall@example.com",
            "active": "on",
        },
    )
    assert answer.status_code == 302
    rule = AlertRule.objects.get(project=project)
    assert (rule.name, rule.model_versions, rule.baseline) == ("canary watch", ["canary"], "stable")
    assert rule.min_effect == pytest.approx(0.02)
    assert rule.emails == ["lead@example.com", "oncall@example.com"]
    with django_capture_on_commit_callbacks(execute=True):  # the e-mail goes after commit
        client.post(f"{PAGE}check/")
    checked = client.get(PAGE).content.decode()
    alert = Alert.objects.get(project=project)
    table = checked.split('data-testid="open-alerts"', 1)[1].split("</table>", 1)[0]
    assert alert.sentence in table
    assert "lead@example.com, oncall@example.com" in table
    # Changing the rule keeps its alert; the form starts from the rule's values.
    edit = client.get(f"{PAGE}rules/{rule.pk}/").content.decode()
    assert 'value="canary watch"' in edit
    assert 'value="2.0"' in edit
    client.post(
        f"{PAGE}rules/{rule.pk}/",
        {"name": "canary watch", "baseline": "stable", "min_effect_points": "3", "alpha": "0.01"},
    )
    rule.refresh_from_db()
    assert (rule.min_effect, rule.alpha, rule.active) == (pytest.approx(0.03), 0.01, False)


def test_the_alerts_page_puts_errors_on_their_fields(project, member) -> None:
    project.segment_keys = ["tier"]
    project.save(update_fields=["segment_keys"])
    client = _page_client(member(Role.ADMIN))
    AlertRule.objects.create(project=project, name="taken")
    answer = client.post(
        PAGE,
        {
            "name": "taken",
            "segment_key": "tier",
            "segment_values": "pro",
            "min_effect_points": "80",
            "alpha": "0.05",
            "emails": "not-an-address",
        },
    )
    assert answer.status_code == 200
    form = answer.context["form"]
    assert "min_effect_points" in form.errors  # the form's own range: at most 50 points
    answer = client.post(
        PAGE,
        {"name": "taken", "min_effect_points": "1", "alpha": "0.05", "emails": "a@example.com"},
    )
    errors = answer.context["form"].errors
    assert "a rule named 'taken' exists" in " ".join(errors["name"])
    assert AlertRule.objects.filter(project=project).count() == 1
    answer = client.post(
        PAGE, {"name": "fresh", "min_effect_points": "1", "alpha": "0.05", "emails": "nobody"}
    )
    assert "email addresses" in " ".join(answer.context["form"].errors["emails"])
    assert AlertRule.objects.filter(project=project).count() == 1


def test_only_admins_open_the_alerts_page(project, member) -> None:
    for role, status in ((Role.ENGINEER, 403), (Role.ANNOTATOR, 403), (Role.ADMIN, 200)):
        assert _page_client(member(role)).get(PAGE).status_code == status, role
