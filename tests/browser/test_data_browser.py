"""The data browser in real Chromium (issue 14, Build 2): search and filter interactions, open one
with its events, scores, inclusion and labels, queue a selection as a deliberate batch."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from labeling.models import AuditLog, Event, Membership, QueueItem, Role
from labeling.services.annotations import annotation_adjudicate  # noqa: F401
from sampling.models import Inclusion, SamplingRun, SamplingStrategy
from tests.browser.conftest import login, screenshot
from tests.factories import InteractionFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser


def test_search_filter_open_and_queue_a_deliberate_batch(page: Any, live_server: Any) -> None:
    project = ProjectFactory(slug="data", name="Data bot")
    admin = UserFactory(username="dana")
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    now = timezone.now()
    rows = [
        ("refund-1", "How do I get a refund?", "Refunds take 5 days.", "v1", "pro", 0.9, 0.2),
        ("refund-2", "Refund for my order", "I cannot help with refunds.", "v2", "free", 0.2, 0.8),
        ("login-1", "I cannot log in", "Reset your password in Settings.", "v2", "pro", 0.6, 0.5),
    ]
    made = {}
    for n, (ext, prompt, response, version, tier, judge, proxy) in enumerate(rows):
        made[ext] = InteractionFactory(
            project=project,
            external_id=ext,
            messages=[{"role": "user", "content": prompt}],
            response=response,
            model_version=version,
            segment={"tier": tier},
            scores={"judge_helpfulness": judge},
            proxy_score=proxy,
            signals={"thumbs_down": 1} if ext == "refund-2" else {},
            occurred_at=now - dt.timedelta(hours=n + 1),
        )
    Event.objects.create(
        project=project,
        interaction=made["refund-2"],
        external_id="refund-2",
        type="thumbs_down",
        occurred_at=now,
    )
    strategy = SamplingStrategy.objects.create(project=project, name="wave")
    run = SamplingRun.objects.create(project=project, strategy=strategy, status="done")
    Inclusion.objects.create(
        run=run, project=project, interaction=made["login-1"], f=0.5, pi=0.25, selected=True
    )
    QueueItem.objects.create(project=project, interaction=made["login-1"], sampling_run_id=run.pk)

    login(page, live_server, admin)
    page.goto(live_server.url + reverse("project-home", kwargs={"slug": "data"}))
    page.locator(".subnav").get_by_role("link", name="Data").click()
    results = page.get_by_test_id("data-results")
    expect(results.locator("tr[data-external-id]")).to_have_count(3)
    page.fill('input[name="q"]', "refund")
    page.keyboard.press("Enter")
    expect(results.locator("tr[data-external-id]")).to_have_count(2)
    page.select_option('select[name="judge"]', "judge_helpfulness")
    page.fill('input[name="judge_max"]', "0.5")
    page.get_by_role("button", name="Filter").click()
    expect(results.locator("tr[data-external-id]")).to_have_count(1)
    expect(results.locator("tr[data-external-id]")).to_have_attribute(
        "data-external-id", "refund-2"
    )
    page.goto(
        live_server.url
        + reverse("data-browser", kwargs={"slug": "data"})
        + "?signal=thumbs_down&segment=tier%3Dfree"
    )
    expect(results.locator("tr[data-external-id]")).to_have_count(1)
    page.goto(live_server.url + reverse("data-browser", kwargs={"slug": "data"}) + "?proxy_min=abc")
    expect(page.get_by_test_id("filter-error")).to_contain_text("proxy_min: must be a number")

    # Open the sampled one: its inclusion (f, pi) and queue status are shown.
    page.goto(
        live_server.url + reverse("data-browser", kwargs={"slug": "data"}) + "?model_version=v2"
    )
    expect(results.locator("tr[data-external-id]")).to_have_count(2)
    results.get_by_role("link", name="login-1").click()
    expect(page.get_by_test_id("inclusion")).to_contain_text("pi = 0.2500")
    expect(page.get_by_test_id("inclusion")).to_contain_text(f"run #{run.pk} (wave)")
    screenshot(page, "workbench-data-item")
    page.go_back()

    # Queue the two refund items as a deliberate batch with 2 annotators each.
    page.goto(live_server.url + reverse("data-browser", kwargs={"slug": "data"}) + "?q=refund")
    for ext in ("refund-1", "refund-2"):
        results.get_by_label(f"Choose {ext}").check()
    page.fill('input[name="overlap"]', "2")
    screenshot(page, "workbench-data-browser")
    page.get_by_role("button", name="Add to the queue as a deliberate batch").click()
    expect(page.locator(".messages")).to_contain_text("2 added to the queue as a deliberate batch")
    queued = QueueItem.objects.filter(interaction__external_id__startswith="refund")
    assert sorted((q.interaction.external_id, q.overlap, q.sampling_run_id) for q in queued) == [
        ("refund-1", 2, None),
        ("refund-2", 2, None),
    ]
    assert not Inclusion.objects.filter(interaction__external_id__startswith="refund").exists()
    assert AuditLog.objects.filter(action="queue.deliberate_batch").count() == 1
    expect(results.locator('tr[data-external-id="refund-1"]')).to_contain_text("deliberate")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    assert page.js_errors == []
