"""Comments, flags and label review (issue 14 item 3) and suggestions (item 6) in real Chromium.

The annotator works with the keyboard only: C comments or flags, Enter submits, R opens a label a
reviewer sent back (with the note), Enter saves the change. The reviewer uses the review page's
forms. Screenshots at 1440x900 and 390x844 go to test-artifacts/ and no page is wider than its
window.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from labeling.models import Annotation, ItemComment, Membership, QueueItem, Role
from tests.browser.conftest import PASSWORD, login, screenshot
from tests.factories import InteractionFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}


def _member(project: Any, username: str, role: str = Role.ANNOTATOR) -> Any:
    user = UserFactory(username=username)
    Membership.objects.create(project=project, user=user, role=role)
    return user


def _item(project: Any, external_id: str, priority: int = 0, **fields: Any) -> QueueItem:
    return QueueItem.objects.create(
        project=project,
        interaction=InteractionFactory(project=project, external_id=external_id, **fields),
        priority=priority,
    )


def _fits(page: Any, name: str) -> None:
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(100)
        extra = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert extra <= 0, f"{name} at {size} is {extra}px too wide"
        screenshot(page, f"{name}-{size}")
    page.set_viewport_size({"width": 1440, "height": 900})


def test_flag_reject_with_a_note_and_the_annotator_revises_with_the_keyboard(
    chromium: Any, page: Any, live_server: Any
) -> None:
    project = ProjectFactory(slug="revue", name="Revue")
    annotator = _member(project, "anna")
    reviewer = _member(project, "rita", Role.REVIEWER)
    _item(project, "leaky", priority=2, response="Call our CEO at +1 555 0100, she will refund.")
    _item(project, "plain", priority=1)

    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, live_server, annotator)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "revue"}))
    expect(page.locator("#item")).to_have_attribute("data-external-id", "leaky")
    page.keyboard.press("C")
    expect(page.locator("#comment-body")).to_be_focused()
    page.keyboard.type("It gives out a phone number")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # tick "Flag for a reviewer"
    expect(page.locator("#comment-flag")).to_be_checked()
    screenshot(page, "review-comment-dialog")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("Flagged for a reviewer.")
    expect(page.locator("#comment-dialog")).to_be_hidden()
    flag = ItemComment.objects.get()
    assert (flag.is_flag, flag.body, flag.author) == (
        True,
        "It gives out a phone number",
        annotator,
    )
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    expect(page.locator("#item")).to_have_attribute("data-external-id", "plain")
    label = Annotation.objects.get(interaction__external_id="leaky")

    # The reviewer sees the flag, rejects the label with a note and resolves the flag.
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    rpage = context.new_page()
    errors: list[str] = []
    rpage.on("pageerror", lambda exc: errors.append(str(exc)))
    login(rpage, live_server, reviewer, PASSWORD)
    rpage.goto(live_server.url + reverse("review-labels", kwargs={"slug": "revue"}))
    card = rpage.locator(f"#item-{label.queue_item_id}")
    expect(card.locator("[data-testid=comment]")).to_contain_text("It gives out a phone number")
    expect(card.locator(".badge.bad").first).to_have_text("flagged")
    _fits(rpage, "review-labels")
    card.locator(f"#note-{label.pk}").fill("A phone number is unsafe: quality 2 at most.")
    card.get_by_role("button", name="Reject and send back").click()
    expect(rpage.locator(".messages")).to_contain_text("Sent back")
    label.refresh_from_db()
    assert label.review_status == "rejected"
    rpage.goto(live_server.url + reverse("review-labels", kwargs={"slug": "revue"}) + "?show=flags")
    rpage.locator(f"#item-{label.queue_item_id}").get_by_role("button", name="Resolve flag").click()
    rpage.goto(
        live_server.url + reverse("review-labels", kwargs={"slug": "revue"}) + "?show=rejected"
    )
    card = rpage.locator(f"#item-{label.queue_item_id}")
    expect(card.locator(".badge.ok")).to_contain_text("flag resolved by rita")
    expect(card.locator(".note")).to_contain_text("A phone number is unsafe")
    assert errors == []
    context.close()

    # Back to the annotator: the label came back with the note; R opens it, Enter saves.
    page.reload()
    expect(page.locator("#item")).to_have_attribute("data-external-id", "plain")
    expect(page.locator("#returned")).to_be_visible()
    expect(page.locator("#returned")).to_contain_text("1 of your labels was sent back")
    page.keyboard.press("R")
    expect(page.locator("#item")).to_have_attribute("data-external-id", "leaky")
    expect(page.locator("#item")).to_have_attribute("data-mode", "revise")
    expect(page.locator("#status")).to_contain_text("A phone number is unsafe: quality 2 at most.")
    _fits(page, "review-revise")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("#returned")).to_be_hidden()
    new = Annotation.objects.get(interaction__external_id="leaky", is_current=True)
    assert (new.version, new.values["quality"], new.review_status) == (2, 2, "")
    expect(page.locator("#item")).to_have_attribute("data-external-id", "plain")
    assert page.js_errors == []


def test_a_suggestion_is_shown_only_when_switched_on_and_recorded(
    page: Any, live_server: Any
) -> None:
    project = ProjectFactory(
        slug="hint", name="Hint", primary_judge="judge_helpfulness", show_suggestions=True
    )
    annotator = _member(project, "hugo")
    _item(project, "scored", priority=1, scores={"judge_helpfulness": 0.82})
    _item(project, "unscored")
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, live_server, annotator)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "hint"}))
    expect(page.locator("#item")).to_have_attribute("data-external-id", "scored")
    expect(page.locator("#suggestion")).to_be_visible()
    expect(page.locator("#suggestion")).to_contain_text(
        "judge_helpfulness scored this response 0.82"
    )
    _fits(page, "suggestion-label")
    page.keyboard.press("5")
    page.keyboard.press("Enter")
    expect(page.locator("#item")).to_have_attribute("data-external-id", "unscored")
    expect(page.locator("#suggestion")).to_be_hidden()
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    expect(page.locator("#empty")).to_be_visible()
    saw = dict(Annotation.objects.values_list("interaction__external_id", "saw_suggestion"))
    assert saw == {"scored": True, "unscored": False}
    assert page.js_errors == []
