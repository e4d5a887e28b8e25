"""End to end in headless Chromium: an annotator logs in and labels with the keyboard only."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from labeling.models import Annotation, Assignment, Membership, Project, QueueItem, Role
from tests.browser.conftest import login, screenshot
from tests.factories import InteractionFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

SCHEMA: dict[str, Any] = {
    "questions": [
        {
            "key": "quality",
            "type": "rating",
            "prompt": "How good is the response?",
            "required": True,
            "scale": [{"value": v, "label": lbl} for v, lbl in
                      [(1, "unusable"), (2, "poor"), (3, "ok"), (4, "good"), (5, "great")]],
        },
        {"key": "preference", "type": "pairwise", "prompt": "Which response is better?",
         "required": True},
        {"key": "failure_modes", "type": "multi_choice", "prompt": "What went wrong?",
         "options": ["hallucination", "refusal", "incomplete"]},
        {"key": "correction", "type": "text", "prompt": "Corrected response",
         "prefill": "response", "max_length": 60},
    ],
    "target": {"question": "quality", "good": [4, 5]},
}  # fmt: skip


def setup_queue() -> tuple[Project, Any, list[QueueItem]]:
    project = ProjectFactory(
        slug="e2e", name="E2E bot", label_schema=SCHEMA, guidelines="Be strict."
    )
    user = UserFactory(username="annie")
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    specs = [
        ("rate-me", "Use the reset link in Settings.", ""),
        ("fix-me", "The capital of Australia is Sydney.", ""),
        ("compare-me", "Answer A: restart the router.", "Answer B: check the cable first."),
        ("skip-me", "Ich weiss es nicht.", ""),
    ]
    items = []
    for priority, (external_id, response, alt) in zip((4, 3, 2, 1), specs, strict=True):
        interaction = InteractionFactory(
            project=project, external_id=external_id, response=response, alt_response=alt
        )
        items.append(
            QueueItem.objects.create(
                project=project, interaction=interaction, priority=priority, overlap=1
            )
        )
    return project, user, items


def current(page: Any, external_id: str) -> None:
    expect(page.locator("#item")).to_have_attribute("data-external-id", external_id)


def test_annotator_labels_three_items_and_skips_one_with_the_keyboard(
    page: Any, live_server: Any
) -> None:
    project, user, items = setup_queue()
    login(page, live_server, user)
    expect(page.locator(".queues")).to_contain_text("4 left for you")
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "e2e"}))

    # 1. A rating: "4" picks "good", Enter submits.
    current(page, "rate-me")
    expect(page.locator("#responses")).to_contain_text("Use the reset link in Settings.")
    expect(page.locator('fieldset[data-key="preference"]')).to_have_count(0)  # no alt response
    expect(page.locator("fieldset.q.active")).to_have_attribute("data-key", "quality")
    page.keyboard.press("4")
    page.keyboard.press("Enter")

    # 2. A correction through the text question. Submitting without the required rating and with
    # a too-long text fails; nothing typed is lost.
    current(page, "fix-me")
    expect(page.locator("#done-today")).to_have_text("1")
    page.keyboard.press("j")
    page.keyboard.press("j")
    area = page.locator('fieldset[data-key="correction"] textarea')
    expect(area).to_be_focused()
    expect(area).to_have_value("The capital of Australia is Sydney.")
    page.keyboard.press("Control+a")
    page.keyboard.type("The capital of Australia is Canberra, not Sydney, as many people think.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    quality = page.locator('fieldset[data-key="quality"]')
    expect(quality.locator(".q-error")).to_have_text("this question is required")
    expect(quality).to_be_focused()
    page.keyboard.press("2")  # quality: poor; moves on to failure_modes
    expect(page.locator("fieldset.q.active")).to_have_attribute("data-key", "failure_modes")
    page.keyboard.press("1")  # hallucination
    page.keyboard.press("Enter")  # the server refuses the long correction
    correction = page.locator('fieldset[data-key="correction"]')
    expect(correction.locator(".q-error")).to_contain_text("the limit is 60")
    expect(page.locator("#status")).to_contain_text("invalid")
    expect(area).to_have_value(
        "The capital of Australia is Canberra, not Sydney, as many people think."
    )
    expect(area).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("The capital of Australia is Canberra.")
    screenshot(page, "annotate-correction")
    page.keyboard.press("Control+Enter")

    # 3. Pairwise: both responses side by side; "3" rates ok, "2" prefers B.
    current(page, "compare-me")
    expect(page.locator("#responses.pair .response")).to_have_count(2)
    expect(page.locator("#responses")).to_contain_text("Answer B: check the cable first.")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    expect(page.locator("#question-keys")).to_contain_text("B is better")
    screenshot(page, "annotate-shortcuts")
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts")).to_be_hidden()
    # The preference is asked first on a pairwise item, then the rating (about response A).
    expect(page.locator("fieldset.q.active")).to_have_attribute("data-key", "preference")
    page.keyboard.press("2")
    expect(page.locator("fieldset.q.active")).to_have_attribute("data-key", "quality")
    page.keyboard.press("3")
    screenshot(page, "annotate-pairwise")
    page.keyboard.press("Enter")

    # 4. Skip with a reason.
    current(page, "skip-me")
    page.keyboard.press("s")
    expect(page.locator("#skip-reason")).to_be_focused()
    page.keyboard.type("not English")
    page.keyboard.press("Enter")

    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#done-today")).to_have_text("3")
    expect(page.locator("#left")).to_have_text("0")
    screenshot(page, "annotate-empty")
    assert page.js_errors == []

    labels = {
        a.interaction.external_id: a
        for a in Annotation.objects.filter(queue_item__project=project).select_related(
            "interaction"
        )
    }
    assert set(labels) == {"rate-me", "fix-me", "compare-me"}
    assert labels["rate-me"].values == {"quality": 4}
    assert labels["fix-me"].values == {
        "quality": 2,
        "failure_modes": ["hallucination"],
        "correction": "The capital of Australia is Canberra.",
    }
    assert labels["compare-me"].values == {"quality": 3, "preference": "b"}
    assert all(a.time_spent_ms is not None and a.time_spent_ms > 0 for a in labels.values())
    skipped = Assignment.objects.get(queue_item=items[3])
    assert (skipped.status, skipped.skip_reason) == ("skipped", "not English")
    statuses = dict(QueueItem.objects.filter(project=project).values_list("id", "status"))
    assert [statuses[i.pk] for i in items] == ["done", "done", "done", "open"]


def test_content_is_rendered_as_text_not_html(page: Any, live_server: Any) -> None:
    project = ProjectFactory(slug="xss")
    user = UserFactory(username="xavier")
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    payload = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
    QueueItem.objects.create(
        project=project,
        interaction=InteractionFactory(
            project=project,
            response=payload,
            messages=[{"role": "user", "content": payload}],
        ),
    )
    login(page, live_server, user)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "xss"}))
    expect(page.locator("#responses .text")).to_have_text(payload)
    expect(page.locator("#conversation .text")).to_have_text(payload)
    assert page.locator("#item img").count() == 0
    assert page.locator("#item script").count() == 0
    assert page.evaluate("window.__xss") is None
    # The prefilled correction box holds the text too, as text.
    expect(page.locator('fieldset[data-key="correction"] textarea')).to_have_value(payload)


def test_lost_lease_and_empty_queue_messages(page: Any, live_server: Any) -> None:
    import datetime as dt

    from labeling.services.queue import assignment_claim

    project = ProjectFactory(slug="lease", label_schema=SCHEMA)
    slow, fast = UserFactory(username="slow"), UserFactory(username="fast")
    for user in (slow, fast):
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    item = QueueItem.objects.create(
        project=project, interaction=InteractionFactory(project=project, external_id="only")
    )
    login(page, live_server, slow)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "lease"}))
    current(page, "only")
    # Meanwhile the lease runs out and another annotator takes the slot.
    lease = Assignment.objects.get(queue_item=item, annotator=slow)
    taken = assignment_claim(
        project=project, annotator=fast, now=lease.lease_expires_at + dt.timedelta(seconds=1)
    )
    assert taken is not None
    page.keyboard.press("j")
    page.keyboard.press("j")  # quality -> failure_modes -> correction (no pairwise here)
    page.keyboard.press("End")
    page.keyboard.type(" My careful correction.")
    page.keyboard.press("Escape")
    page.keyboard.press("k")
    page.keyboard.press("k")
    page.keyboard.press("5")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("went to another annotator")
    # What was typed is still on the page to copy.
    expect(page.locator('fieldset[data-key="correction"] textarea')).to_have_value(
        item.interaction.response + " My careful correction."
    )
    next_button = page.locator("#status .next-item")
    expect(next_button).to_be_focused()
    screenshot(page, "annotate-lease-lost")
    page.keyboard.press("Enter")
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#empty")).to_contain_text("Nothing left for you")
    assert not Annotation.objects.exists()
