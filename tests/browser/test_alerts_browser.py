"""The Alerts page in a real browser: an admin adds a rule (a bad e-mail gets a field error first),
checks the rules now and sees the confirmed regression in the open alerts; the page fits a phone.
Screenshots under test-artifacts/alerts-*.png."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from labeling.models import Project, Role
from sampling.models import Alert, AlertRule
from tests.browser.conftest import login, screenshot
from tests.monitoring_fixtures import seed_daily

pytestmark = pytest.mark.browser


@pytest.mark.django_db(transaction=True)
def test_an_admin_adds_an_alert_rule_and_sees_the_alert(
    page: Any, live_server: Any, project: Project, member: Callable[..., Any]
) -> None:
    from playwright.sync_api import expect

    seed_daily(project, days=20, per_day=40, p_good={"stable": 0.85, "canary": 0.55})
    admin = member(Role.ADMIN, username="ada")
    login(page, live_server, admin)
    page.goto(live_server.url + reverse("project-alerts", kwargs={"slug": project.slug}))
    expect(page.get_by_text("No rules yet.")).to_be_visible()
    form = page.get_by_test_id("alert-rule-form")
    form.locator("input[name=name]").fill("canary watch")
    form.locator("input[name=baseline]").fill("stable")
    form.locator("input[name=min_effect_points]").fill("2")
    form.locator("input[name=emails]").fill("not-an-address")
    page.get_by_test_id("save-rule").click()
    expect(form.get_by_text("email addresses")).to_be_visible()  # on the field, nothing saved
    assert not AlertRule.objects.exists()
    form.locator("input[name=emails]").fill("lead@example.com")
    page.get_by_test_id("save-rule").click()
    rules = page.get_by_test_id("alert-rules")
    expect(rules).to_contain_text("canary watch")
    expect(rules).to_contain_text("lead@example.com")
    page.get_by_test_id("check-now").click()
    expect(page.get_by_test_id("open-alerts")).to_contain_text("points worse than stable")
    assert Alert.objects.get().rule.name == "canary watch"
    for name, (width, height) in {"desktop": (1440, 900), "phone": (390, 844)}.items():
        page.set_viewport_size({"width": width, "height": height})
        page.reload()
        extra = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert extra <= 0, f"{name}: {extra}px too wide"
        screenshot(page, f"alerts-{name}")
