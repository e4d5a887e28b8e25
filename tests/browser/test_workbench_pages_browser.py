"""Pages around the labelling page as a new user meets them (issue 14): the 403 page and the
export form's time range. Real Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from labeling.models import Export, Membership, Role
from tests.browser.conftest import login, screenshot
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.browser


def test_the_403_page_says_why_and_where_to_go(page: Any, live_server: Any) -> None:
    project = ProjectFactory(slug="closed", name="Closed bot")
    user = UserFactory(username="anna")
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    login(page, live_server, user)
    response = page.goto(f"{live_server.url}/p/closed/review/")
    assert response is not None
    assert response.status == 403
    forbidden = page.locator('[data-testid="forbidden"]')
    expect(forbidden.locator('[data-testid="reason"]')).to_have_text(
        "Your role (annotator) cannot review in this project."
    )
    expect(forbidden).to_contain_text("whose role in Closed bot is annotator")
    # The usual navigation is there, and the pages the role may open are offered.
    expect(page.locator(".topbar .brand")).to_be_visible()
    expect(forbidden.get_by_role("link", name="Label")).to_have_attribute(
        "href", "/p/closed/label/"
    )
    screenshot(page, "workbench-403")
    forbidden.get_by_role("link", name="Back to your projects").click()
    page.wait_for_url(f"{live_server.url}/")


def test_an_export_whose_until_is_before_its_since_is_refused_on_the_form(
    page: Any, live_server: Any
) -> None:
    project = ProjectFactory(slug="exp", name="Exp bot")
    user = UserFactory(username="eng")
    Membership.objects.create(project=project, user=user, role=Role.ENGINEER)
    login(page, live_server, user)
    page.goto(f"{live_server.url}/p/exp/exports/")
    page.fill('input[name="since"]', "2026-11-20")
    page.fill('input[name="until"]', "2026-11-01")
    page.locator('[data-testid="export-form"] button[type="submit"]').click()
    field = page.locator('input[name="until"]').locator("xpath=..")
    expect(field).to_contain_text("is not after filters.since")
    screenshot(page, "workbench-export-until-before-since")
    assert not Export.objects.exists()
