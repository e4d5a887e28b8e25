"""The webhooks pages in a real browser: subscribe a URL (a bad one gets a field error), copy the
secret shown once, send a test, watch failures and the auto-disable reason in the delivery log,
switch it on again; both pages fit a phone. Screenshots under test-artifacts/webhooks-*.png."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from labeling.models import Project, Role, WebhookSubscription
from labeling.services.webhooks import webhook_emit
from tests.browser.conftest import login, screenshot
from tests.test_webhooks import doc_verify
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.browser


def no_overflow(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


@pytest.mark.django_db(transaction=True)
def test_webhooks_pages(
    page: Any, live_server: Any, project: Project, member: Callable[..., Any], settings: Any
) -> None:
    from playwright.sync_api import expect

    settings.FLYWHEEL = {
        **settings.FLYWHEEL,
        "WEBHOOK_DISABLE_AFTER_FAILURES": 3,
        "WEBHOOK_DISABLE_AFTER_S": 0,
    }
    receiver = Receiver().start()
    try:
        admin = member(Role.ADMIN, username="ada")
        login(page, live_server, admin)
        page.goto(live_server.url + reverse("project-webhooks", kwargs={"slug": project.slug}))
        expect(page.locator(".subnav a", has_text="Webhooks")).to_have_count(1)
        expect(page.get_by_text("No webhooks yet.")).to_be_visible()

        # A bad URL: the error is on the field, nothing is created.
        page.fill("#id_url", "ftp://hooks.example.com/x")
        page.get_by_label("export.ready").check()
        page.get_by_role("button", name="Create webhook").click()
        error = page.locator('[data-field="url"] .errorlist')
        expect(error).to_contain_text("must start with http:// or https://")
        screenshot(page, "webhooks-bad-url")
        assert not WebhookSubscription.objects.exists()

        page.fill("#id_url", receiver.url)
        for event in ("label.submitted", "item.completed", "export.ready"):
            page.get_by_label(event).check()
        page.fill("#id_description", "CI retraining trigger")
        page.get_by_role("button", name="Create webhook").click()
        secret_box = page.locator("#new-secret")
        expect(secret_box).to_contain_text("whsec_")
        secret = secret_box.inner_text().strip()
        screenshot(page, "webhooks-created-secret-once")

        page.get_by_test_id("send-test").click()
        expect(page.get_by_text("Test delivered: HTTP 200")).to_be_visible()
        expect(page.locator("#new-secret")).to_have_count(0)  # shown once only
        row = page.locator('[data-testid="deliveries"] tbody tr').first
        expect(row).to_have_attribute("data-status", "delivered")
        seen = receiver.requests[-1]
        assert doc_verify()(secret, seen.headers, seen.body)

        # The receiver breaks: attempts fail, then the subscription switches itself off.
        receiver.default = "fail"
        for n in range(3):
            webhook_emit(project, "export.ready", {"export_id": n})
        page.reload()
        expect(page.get_by_test_id("disabled-reason")).to_contain_text("3 failed attempts in a row")
        expect(page.get_by_test_id("pending")).to_have_text("3")
        expect(
            page.locator('[data-testid="deliveries"] tbody tr[data-status="pending"]')
        ).to_have_count(3)
        expect(page.locator('[data-testid="deliveries"]')).to_contain_text("HTTP 500")
        screenshot(page, "webhooks-auto-disabled-log")

        page.set_viewport_size({"width": 390, "height": 844})
        assert no_overflow(page), "the webhook page overflows on a phone"
        screenshot(page, "webhooks-phone")
        page.set_viewport_size({"width": 1280, "height": 900})

        # Fixed: switch it on again; the waiting deliveries go out.
        receiver.default = "ok"
        page.get_by_test_id("enable").click()
        expect(page.get_by_text("Webhook switched on")).to_be_visible()
        page.reload()
        expect(page.get_by_test_id("delivered")).to_have_text("4")
        expect(page.get_by_test_id("pending")).to_have_text("0")

        page.goto(live_server.url + reverse("project-webhooks", kwargs={"slug": project.slug}))
        listing = page.locator('[data-testid="webhooks"]')
        expect(listing).to_contain_text("CI retraining trigger")
        expect(listing.locator(".badge.ok")).to_have_text("active")
        screenshot(page, "webhooks-list")
        page.set_viewport_size({"width": 390, "height": 844})
        assert no_overflow(page), "the webhooks list overflows on a phone"
        assert page.js_errors == []
    finally:
        receiver.stop()
