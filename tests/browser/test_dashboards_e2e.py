"""End to end in headless Chromium: an admin creates a strategy, previews it, runs it and sees the
queue fill; the dashboard shows its plots; every configuration page renders. Screenshots of each
page land in test-artifacts/screenshots/ (look at them)."""

from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from labeling.models import Membership, Project, QueueItem, Role
from labeling.services.queue import assignment_claim, assignment_submit
from sampling.models import SamplingRun, SamplingStrategy
from tests.browser.conftest import ARTIFACTS, login
from tests.factories import InteractionFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "screenshots"


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def seed(n: int = 150) -> tuple[Project, Any, Any]:
    """A project with three weeks of traffic in two tiers and model versions, an admin, an
    annotator and an engineer."""
    project = ProjectFactory(slug="dash-e2e", name="Support bot")
    admin = UserFactory(username="ada-admin")
    annotator = UserFactory(username="ann-annotator")
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    rng = random.Random(11)
    now = timezone.now()
    for i in range(n):
        InteractionFactory(
            project=project,
            occurred_at=now - dt.timedelta(days=rng.randrange(0, 21), hours=2),
            model_version="bot-2026-10" if i % 3 else "bot-2026-11",
            segment={"tier": rng.choice(["free", "free", "pro", "enterprise"]), "locale": "en"},
            explicit_rating=rng.choice([None, None, None, None, 1, -1, -1]),
        )
    return project, admin, annotator


def label_everything(project: Project, annotator: Any) -> int:
    rng = random.Random(5)
    done = 0
    while (assignment := assignment_claim(project=project, annotator=annotator)) is not None:
        assignment_submit(
            assignment_id=assignment.pk,
            annotator=annotator,
            values={"quality": rng.choice([1, 2, 3, 4, 4, 5, 5, 5])},
            time_spent_ms=rng.randrange(4_000, 40_000),
        )
        done += 1
    return done


# The export streams through the ``export_reader`` alias on PostgreSQL: allow every database.
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_admin_configures_runs_and_watches(page: Any, live_server: Any) -> None:
    project, admin, annotator = seed()

    def at(name: str) -> str:
        return live_server.url + reverse(name, kwargs={"slug": project.slug})

    login(page, live_server, admin)

    # The switcher opens and closes with the keyboard and a click elsewhere.
    switcher = page.get_by_test_id("project-switcher")
    switcher.locator("summary").click()
    expect(switcher.get_by_role("link", name="Strategies")).to_be_visible()
    page.keyboard.press("Escape")
    expect(switcher.get_by_role("link", name="Strategies")).to_be_hidden()
    switcher.locator("summary").click()
    page.locator("main").click(position={"x": 5, "y": 5})
    expect(switcher.get_by_role("link", name="Strategies")).to_be_hidden()
    # Two clicks from home: open the switcher, pick the page.
    switcher.locator("summary").click()
    page.get_by_test_id("project-switcher").get_by_role("link", name="Strategies").click()
    page.wait_for_url(at("project-strategies"))
    expect(page.get_by_text("No strategy yet.")).to_be_visible()
    shot(page, "01-strategies-empty")

    # Create a strategy: first a wrong weight (the error shows in place), then preview, then save.
    page.get_by_role("link", name="New strategy").click()
    page.fill("#id_name", "hourly")
    page.fill("#id_batch_size", "40")
    page.fill("#id_segment_minimums", "tier: 10")
    page.fill("#id_weight_random", "0.5")
    expect(page.locator("#weight-sum")).to_have_text("1.30")
    page.get_by_test_id("save").click()
    expect(page.locator('[data-field="weight_random"] .errorlist')).to_contain_text("sum to 1")
    shot(page, "02-strategy-error")
    page.fill("#id_weight_random", "0.2")
    page.get_by_test_id("preview").click()
    preview = page.get_by_test_id("strategy-preview")
    expect(preview).to_be_visible()
    expect(page.get_by_test_id("pool-size")).to_have_text("150")
    expect(preview.get_by_test_id("per-segment")).to_contain_text("tier=pro")
    expect(preview.get_by_test_id("per-component")).to_contain_text("uncertainty")
    assert not SamplingStrategy.objects.filter(project=project).exists()
    shot(page, "03-strategy-preview")
    page.get_by_test_id("save").click()
    page.wait_for_url(at("project-strategies"))
    expect(page.get_by_test_id("strategies")).to_contain_text("hourly")
    expect(page.get_by_test_id("queue-backlog")).to_have_text("0")

    # Run it: the page follows the run through the API and shows the filled queue.
    page.get_by_test_id("run-hourly").click()
    expect(page.get_by_test_id("runs")).to_contain_text("done", timeout=30_000)
    backlog = int(page.get_by_test_id("queue-backlog").inner_text())
    run = SamplingRun.objects.get(project=project)
    assert run.status == SamplingRun.Status.DONE
    assert backlog == QueueItem.objects.filter(project=project).count() > 0
    shot(page, "04-strategies-after-run")

    # Annotators label the queue (their UI has its own browser test); then retrain. Without a
    # broker the retrain runs inside the POST (Celery eager), which under load takes longer than
    # the 15 s action timeout: the click must not wait for the navigation it starts (it used to
    # time out here); the navigation and the result get their own, longer waits. The page may
    # also still be reloading itself after the run: load it fresh first.
    assert label_everything(project, annotator) > 0
    page.goto(at("project-strategies"))
    expect(page.get_by_test_id("retrain")).to_be_enabled()
    with page.expect_navigation(url=at("project-strategies"), timeout=120_000):
        page.get_by_test_id("retrain").click(no_wait_after=True)
    expect(page.locator(".messages")).to_contain_text("Retraining the proxy model", timeout=60_000)
    expect(page.get_by_test_id("proxies")).to_contain_text("ready", timeout=60_000)
    shot(page, "05-strategies-retrained")

    # An export runs with its progress shown, then offers the download.
    page.select_option("#export-kind", "classification")
    page.get_by_test_id("export").click()
    progress = page.locator("#export-progress")
    expect(progress).to_contain_text("done", timeout=30_000)
    expect(progress.get_by_role("link", name="Download")).to_be_visible()
    shot(page, "05b-export-done")

    # The dashboard draws its plots from the labels.
    page.get_by_role("navigation", name=project.name).get_by_role("link", name="Dashboard").click()
    page.wait_for_url(at("project-dashboard"))
    for testid in (
        "plot-quality",
        "plot-coverage-tier",
        "plot-bias-share-tier",
        "plot-power-latency",
    ):
        expect(page.get_by_test_id(testid).locator("svg")).to_be_visible()
    expect(page.get_by_test_id("power-sentence")).to_contain_text("To detect a 5-point drop")
    # Every section opens with one plain sentence computed from the numbers.
    expect(page.get_by_test_id("quality-headline")).to_contain_text("Share of good answers:")
    expect(page.get_by_test_id("power-headline")).to_contain_text("labels/day")
    expect(page.get_by_test_id("bias-headline")).to_contain_text("Thumbs-down")
    expect(page.get_by_test_id("queue-headline")).to_be_visible()
    expect(page.get_by_test_id("monitoring-headline")).to_contain_text("bot-2026-1")
    expect(page.get_by_test_id("quality-table")).to_contain_text("bot-2026-10")
    shot(page, "06-dashboard")
    page.select_option('select[name="model_version"]', "bot-2026-11")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r".*model_version=bot-2026-11.*"))
    expect(page.get_by_test_id("quality-table")).not_to_contain_text("bot-2026-10")
    shot(page, "07-dashboard-filtered")
    assert page.js_errors == []


def test_config_pages_render_and_work(page: Any, live_server: Any) -> None:
    project, admin, _annotator = seed(n=20)
    UserFactory(username="eve-engineer")

    def at(name: str) -> str:
        return live_server.url + reverse(name, kwargs={"slug": project.slug})

    login(page, live_server, admin)

    page.goto(at("project-dashboard"))
    expect(page.get_by_test_id("getting-started")).to_be_visible()
    shot(page, "10-dashboard-empty")

    page.goto(at("project-members"))
    page.fill("#id_username", "eve-engineer")
    page.select_option("#id_role", "engineer")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_test_id("members")).to_contain_text("eve-engineer")
    shot(page, "11-members")

    page.goto(at("project-tokens"))
    page.fill("#id_name", "prod-chat-api")
    page.get_by_role("button", name="Create token").click()
    key = page.locator("#new-key").inner_text()
    assert key.startswith("fwi_")
    shot(page, "12-token-created")
    page.goto(at("project-tokens"))  # a plain visit never shows the key again
    expect(page.locator("#new-key")).to_have_count(0)
    assert key not in page.content()
    page.get_by_role("button", name="Revoke").click()
    page.get_by_role("button", name="Revoke prod-chat-api").click()  # the confirmation page
    expect(page.get_by_test_id("tokens")).to_contain_text("revoked")
    shot(page, "13-token-revoked")

    page.goto(at("project-schema"))
    preview = page.get_by_test_id("schema-preview")
    expect(preview).to_contain_text("How good is the response?")
    textarea = page.locator("#schema-form textarea")
    textarea.fill(
        '{"questions": [{"key": "ok", "type": "binary", "prompt": "Is it acceptable?"},'
        ' {"key": "why", "type": "single_choice", "prompt": "Why?", "options": ["facts", "tone"]}],'
        ' "target": {"question": "ok", "good": [true]}}'
    )
    expect(preview).to_contain_text("Is it acceptable?")
    expect(preview).to_contain_text("tone")
    shot(page, "14-schema-live-preview")
    textarea.fill('{"questions": [{"key": "q", "type": "rating"}], "target": {"question": "q"}}')
    page.get_by_role("button", name="Save schema").click()
    expect(page.locator('[data-field="schema"] .errorlist')).to_contain_text("questions[0]")
    shot(page, "15-schema-error")
    assert page.js_errors == []
