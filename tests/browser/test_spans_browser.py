"""Span highlights in real Chromium, keyboard only (issue 14 item 5): Shift+arrows select in the
response's read-only box, a label's key marks the selection, the preview shows the marks, Enter
submits; offsets arrive as code points of the exact text (an emoji before the spans proves the
UTF-16 mapping). Screenshots at 1440x900 and 390x844 without horizontal overflow."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from labeling.models import Annotation, Membership, QueueItem, Role
from labeling.schema import schema_validate, text_sha256
from tests.browser.conftest import login, screenshot
from tests.factories import InteractionFactory, ProjectFactory, UserFactory
from tests.test_spans import SCHEMA, TEXT

pytestmark = pytest.mark.browser


def test_marking_spans_with_the_keyboard(page: Any, live_server: Any) -> None:
    project = ProjectFactory(slug="spans", name="Spans", label_schema=schema_validate(SCHEMA))
    user = UserFactory(username="sam")
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    QueueItem.objects.create(
        project=project, interaction=InteractionFactory(project=project, response=TEXT)
    )
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, live_server, user)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "spans"}))
    expect(page.locator("#item")).to_be_visible()
    page.keyboard.press("2")  # quality 2; the spans box gets the focus
    box = page.locator("textarea.span-source")
    expect(box).to_be_focused()
    page.keyboard.press("Home")
    for _ in range(7):
        page.keyboard.press("ArrowRight")
    for _ in range(4):
        page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("1")  # name
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    for _ in range(8):
        page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("2")  # phone
    preview = page.locator(".span-preview")
    expect(preview.locator("mark")).to_have_text(["Anna", "555 0100"])
    expect(page.locator(".span-list li")).to_have_count(2)
    for size, (width, height) in {"desktop": (1440, 900), "phone": (390, 844)}.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(100)
        extra = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert extra <= 0, f"spans at {size} is {extra}px too wide"
        screenshot(page, f"spans-label-{size}")
    page.set_viewport_size({"width": 1440, "height": 900})
    box.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#empty")).to_be_visible()
    values = Annotation.objects.get().values
    assert values["quality"] == 2
    assert values["pii"] == {
        "text_sha256": text_sha256(TEXT),
        "spans": [
            {"start": 7, "end": 11, "label": "name", "text": "Anna"},
            {"start": 15, "end": 23, "label": "phone", "text": "555 0100"},
        ],
    }
    assert page.js_errors == []
