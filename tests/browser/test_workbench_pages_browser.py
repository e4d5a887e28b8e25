"""Pages around the labelling page as a new user meets them (issue 14): the 403 page and the
export form's time range. Real Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
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
    response = page.goto(live_server.url + reverse("review", kwargs={"slug": "closed"}))
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
        "href", reverse("annotate", kwargs={"slug": "closed"})
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
    page.goto(live_server.url + reverse("project-exports", kwargs={"slug": "exp"}))
    page.fill('input[name="since"]', "2026-11-20")
    page.fill('input[name="until"]', "2026-11-01")
    page.locator('[data-testid="export-form"] button[type="submit"]').click()
    field = page.locator('input[name="until"]').locator("xpath=..")
    expect(field).to_contain_text("is not after filters.since")
    screenshot(page, "workbench-export-until-before-since")
    assert not Export.objects.exists()


PAIR_JSON = (
    '{"questions": ['
    '{"key": "quality", "type": "rating", "prompt": "How good?", "required": true,'
    ' "scale": [{"value": 1, "label": "bad"}, {"value": 2, "label": "good"}]},'
    ' {"key": "preference", "type": "pairwise", "prompt": "Which is better?"}],'
    ' "target": {"question": "quality", "good": [2]}}'
)


def test_the_schema_preview_shows_the_keys_the_labelling_page_uses(
    page: Any, live_server: Any
) -> None:
    from labeling.models import Annotation, QueueItem
    from tests.factories import InteractionFactory

    project = ProjectFactory(slug="keys", name="Keys bot")
    admin = UserFactory(username="ada")
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    login(page, live_server, admin)
    page.goto(live_server.url + reverse("project-schema", kwargs={"slug": "keys"}))
    page.locator("#schema-form textarea").fill(PAIR_JSON)
    preview = page.get_by_test_id("schema-preview")
    pairwise = preview.locator('.q[data-key="preference"]')
    # As on a pairwise item: the preference first, required, with the page's keys 1/2/3.
    expect(preview.locator(".q").first).to_have_attribute("data-key", "preference")
    expect(pairwise).to_contain_text("required")
    expect(pairwise.locator("kbd")).to_have_text(["1", "2", "3"])
    expect(preview.locator('.q[data-key="quality"]')).to_contain_text("about Response A")
    screenshot(page, "workbench-schema-preview-pairwise")
    page.get_by_role("button", name="Save schema").click()
    expect(page.locator(".messages")).to_be_visible()

    annotator = UserFactory(username="ann")
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    QueueItem.objects.create(
        project=project,
        interaction=InteractionFactory(project=project, alt_response="The other answer."),
    )
    page.context.clear_cookies()
    login(page, live_server, annotator)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "keys"}))
    first = page.locator("#questions fieldset.q").first
    expect(first).to_have_attribute("data-key", "preference")
    expect(first.locator("kbd")).to_have_text(["1", "2", "3"])
    page.keyboard.press("1")  # the key the preview showed: A is better
    page.keyboard.press("2")  # quality: good
    page.keyboard.press("Enter")
    expect(page.locator("#empty")).to_be_visible()
    assert Annotation.objects.get().values == {"preference": "a", "quality": 2}
    assert page.js_errors == []


def test_the_form_builder_writes_the_schema_from_a_template(page: Any, live_server: Any) -> None:
    from labeling.models import Project

    project = ProjectFactory(slug="build", name="Build bot")
    admin = UserFactory(username="bo")
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    login(page, live_server, admin)
    page.goto(live_server.url + reverse("project-schema", kwargs={"slug": "build"}))
    builder = page.get_by_test_id("schema-builder")
    # Drawn from the stored schema.
    expect(builder.locator(".bq[data-index]")).to_have_count(3)
    builder.locator("#builder-template").select_option(label="Safety taxonomy")
    builder.get_by_role("button", name="Apply template").click()
    expect(builder.locator(".bq[data-index]")).to_have_count(3)
    preview = page.get_by_test_id("schema-preview")
    expect(preview).to_contain_text("Is the response safe?")
    # Add a question, give it a key, a prompt and options, make it required; drop "severity".
    builder.get_by_role("button", name="Add question").click()
    new = builder.locator('.bq[data-index="3"]')
    expect(new.locator('[data-f="key"]')).to_be_focused()
    page.keyboard.type("topic")
    new.locator('[data-f="prompt"]').fill("What is it about?")
    new.locator('[data-f="options"]').fill("billing, login, other")
    new.locator('[data-f="required"]').check()
    builder.get_by_role("button", name="Remove question 3").click()
    expect(preview.locator('.q[data-key="topic"]')).to_contain_text("billing")
    screenshot(page, "workbench-schema-builder")
    page.get_by_role("button", name="Save schema").click()
    expect(page.locator(".messages")).to_contain_text("Schema saved")
    project.refresh_from_db()
    questions = project.label_schema["questions"]
    assert [q["key"] for q in questions] == ["safe", "harm", "topic"]
    assert questions[2]["options"] == ["billing", "login", "other"]
    assert questions[2]["required"] is True
    assert project.label_schema["target"] == {"question": "safe", "good": [True]}
    assert Project.objects.get(pk=project.pk).schema_version >= 1
    assert page.js_errors == []
