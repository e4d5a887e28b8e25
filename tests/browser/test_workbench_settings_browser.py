"""Settings pages as a new user meets them (issue 14): tokens (engineers too, post/redirect/get,
confirm before revoking, long names, copy), confirming an admin's demotion, project settings and
new projects in the UI, choosing gold items with their content and the gold rate. Real Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from labeling.models import IngestToken, Membership, Project, QueueItem, Role
from tests.browser.conftest import login, screenshot
from tests.factories import InteractionFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

LONG_NAME = "production-chat-api-eu-west-" + "x" * 70


def _member(project: Project, username: str, role: str, **extra: Any) -> Any:
    user = UserFactory(username=username, **extra)
    Membership.objects.create(project=project, user=user, role=role)
    return user


def test_an_engineer_creates_copies_and_revokes_a_token(page: Any, live_server: Any) -> None:
    project = ProjectFactory(slug="tok", name="Tok bot")
    engineer = _member(project, "eng", Role.ENGINEER)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    login(page, live_server, engineer)
    page.goto(live_server.url + reverse("project-home", kwargs={"slug": "tok"}))
    page.locator(".subnav").get_by_role("link", name="Tokens").click()
    page.fill("#id_name", LONG_NAME)
    page.get_by_role("button", name="Create token").click()
    key = page.locator("#new-key").inner_text().strip()
    assert key.startswith("fwi_")
    assert page.url == live_server.url + reverse(
        "project-tokens", kwargs={"slug": "tok"}
    )  # redirected after the POST
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == key
    screenshot(page, "workbench-token-created")

    page.reload()  # no second token, and the key is gone
    expect(page.locator("#new-key")).to_have_count(0)
    assert IngestToken.objects.filter(project=project).count() == 1
    # A long name stays inside the card: the Revoke button is not pushed out.
    revoke = page.get_by_role("button", name="Revoke")
    panel = page.locator(".panel").filter(has=revoke)
    button_box, panel_box = revoke.bounding_box(), panel.bounding_box()
    assert button_box["x"] + button_box["width"] <= panel_box["x"] + panel_box["width"]
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")

    revoke.click()
    confirm = page.get_by_test_id("confirm")
    expect(confirm).to_contain_text("gets 401 from now on")
    screenshot(page, "workbench-token-revoke-confirm")
    assert IngestToken.objects.get().revoked_at is None
    confirm.get_by_role("link", name="Cancel").click()
    expect(page.get_by_test_id("tokens")).to_contain_text("active")
    page.get_by_role("button", name="Revoke").click()
    page.get_by_role("button", name=f"Revoke {LONG_NAME}").click()
    expect(page.get_by_test_id("tokens")).to_contain_text("revoked")
    assert IngestToken.objects.get().revoked_at is not None
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    screenshot(page, "workbench-tokens-phone")
    assert page.js_errors == []


def test_demoting_the_last_admin_asks_first_and_is_refused(page: Any, live_server: Any) -> None:
    project = ProjectFactory(slug="adm", name="Adm bot")
    admin = _member(project, "solo", Role.ADMIN)
    login(page, live_server, admin)
    page.goto(live_server.url + reverse("project-members", kwargs={"slug": "adm"}))
    row = page.locator('tr[data-user="solo"]')
    row.get_by_label("Role of solo").select_option("engineer")
    row.get_by_role("button", name="Change").click()
    confirm = page.get_by_test_id("confirm")
    expect(confirm).to_contain_text("solo is the only admin of Adm bot")
    expect(confirm).to_contain_text("This is you")
    screenshot(page, "workbench-demote-confirm")
    confirm.get_by_role("button", name="Make solo engineer").click()
    expect(page.locator(".messages")).to_contain_text("at least one admin")
    assert Membership.objects.get(user=admin).role == Role.ADMIN


def test_project_created_and_configured_in_the_browser(page: Any, live_server: Any) -> None:
    staff = UserFactory(username="staffer", is_staff=True)
    login(page, live_server, staff)
    page.get_by_test_id("new-project").click()
    page.fill("#id_name", "Help desk")
    page.fill("#id_slug", "help-desk")
    page.fill("#id_segment_keys", "tier, locale")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url(live_server.url + reverse("project-settings", kwargs={"slug": "help-desk"}))
    project = Project.objects.get(slug="help-desk")
    assert project.segment_keys == ["tier", "locale"]
    assert Membership.objects.get(project=project, user=staff).role == Role.ADMIN

    page.fill("#id_guidelines", "Rate the last answer only.")
    page.fill("#id_gold_percent", "150")
    page.get_by_role("button", name="Save settings").click()  # the browser refuses it first
    assert page.evaluate("document.querySelector('#id_gold_percent').validationMessage")
    # Past the browser's check, the server refuses it too, on the field, keeping the rest.
    page.evaluate("document.querySelector('[data-testid=project-settings]').noValidate = true")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator('[data-field="gold_percent"] .errorlist')).to_be_visible()
    expect(page.locator("#id_guidelines")).to_have_value("Rate the last answer only.")
    page.fill("#id_lease_minutes", "20")
    page.fill("#id_max_skips", "5")
    page.fill("#id_gold_percent", "7.5")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".messages")).to_contain_text("Settings saved.")
    screenshot(page, "workbench-project-settings")
    project.refresh_from_db()
    assert (project.guidelines, project.lease_seconds, project.max_skips) == (
        "Rate the last answer only.",
        1200,
        5,
    )
    assert project.gold_rate == pytest.approx(0.075)

    # Someone who is not staff cannot create projects, and is told why.
    page.context.clear_cookies()
    login(page, live_server, UserFactory(username="plain"))
    expect(page.get_by_test_id("new-project")).to_have_count(0)
    page.goto(f"{live_server.url}/projects/new/")
    expect(page.get_by_test_id("reason")).to_contain_text("Only staff users can create projects")


def test_a_reviewer_chooses_gold_items_by_their_content(page: Any, live_server: Any) -> None:
    project = ProjectFactory(slug="gold", name="Gold bot")
    reviewer = _member(project, "rita", Role.REVIEWER)
    admin = _member(project, "adam", Role.ADMIN)
    for n, response in enumerate(["Canberra is the capital.", "Sydney is the capital."]):
        QueueItem.objects.create(
            project=project,
            interaction=InteractionFactory(
                project=project,
                external_id=f"cap-{n}",
                messages=[{"role": "user", "content": "What is the capital of Australia?"}],
                response=response,
            ),
        )
    login(page, live_server, reviewer)
    page.goto(live_server.url + reverse("review-gold", kwargs={"slug": "gold"}))
    candidates = page.get_by_test_id("gold-candidates")
    expect(candidates).to_contain_text("Sydney is the capital.")
    expect(candidates).to_contain_text("What is the capital of Australia?")
    expect(page.get_by_test_id("gold-rate")).to_have_count(0)  # a project setting: admins
    page.fill("#gold-q", "Sydney")
    page.keyboard.press("Enter")
    expect(candidates.locator("tr[data-item]")).to_have_count(1)
    candidates.get_by_role("link", name="Make gold…").click()
    expect(page.get_by_test_id("gold-responses")).to_contain_text("Sydney is the capital.")
    form = page.get_by_test_id("gold-form")
    form.get_by_label("1 · unusable").check()
    screenshot(page, "workbench-gold-item")
    form.get_by_role("button", name="Make it gold").click()
    expect(page.locator(".messages")).to_contain_text("cap-1 is now a gold item")
    item = QueueItem.objects.get(interaction__external_id="cap-1")
    assert (item.is_gold, item.gold_answer) == (True, {"quality": 1})
    expect(candidates.locator("tr[data-item]")).to_have_count(1)  # cap-0 is left to choose

    page.context.clear_cookies()
    login(page, live_server, admin)
    page.goto(live_server.url + reverse("review-gold", kwargs={"slug": "gold"}))
    page.fill("#id_gold_percent", "10")
    page.get_by_role("button", name="Save rate").click()
    expect(page.locator(".messages")).to_contain_text("Gold rate is now 10%")
    project.refresh_from_db()
    assert project.gold_rate == pytest.approx(0.1)
    screenshot(page, "workbench-gold-page")
