"""Named queues in real Chromium (issue 14 item 4): an admin adds a queue routed by segment with a
skill tag and gives a member the skill on the Queues page; the annotator with the skill picks the
queue and labels with the keyboard; an open queue shows a later annotator the earlier answers.
Screenshots at 1440x900 and 390x844, no page wider than its window."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from labeling.models import Annotation, Membership, Queue, QueueItem, Role
from labeling.services.queue import assignment_claim, assignment_submit, queue_items_enqueue
from tests.browser.conftest import login, screenshot
from tests.factories import InteractionFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}


def _member(project: Any, username: str, role: str = Role.ANNOTATOR) -> Any:
    user = UserFactory(username=username)
    Membership.objects.create(project=project, user=user, role=role)
    return user


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


def _enqueue(project: Any, external_id: str, locale: str, overlap: int = 1) -> None:
    interaction = InteractionFactory(
        project=project, external_id=external_id, segment={"locale": locale}
    )
    queue_items_enqueue(project=project, interaction_ids=[interaction.pk], default_overlap=overlap)


def test_admin_routes_german_items_to_a_skill_queue_and_only_skilled_annotators_get_them(
    chromium: Any, page: Any, live_server: Any
) -> None:
    project = ProjectFactory(slug="multi", name="Multi")
    admin = _member(project, "ada", Role.ADMIN)
    dieter = _member(project, "dieter")
    _member(project, "emma")
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, live_server, admin)
    page.goto(live_server.url + reverse("project-queues", kwargs={"slug": "multi"}))
    form = page.locator("[data-testid=queue-new]")
    form.get_by_label("Name").fill("German")
    form.get_by_label("Segment rule").fill("locale=de,at")
    form.get_by_label("Skill tag").fill("de")
    form.get_by_role("button", name="Add queue").click()
    expect(page.locator(".messages")).to_contain_text("Queue 'German' created.")
    page.locator("#skills-dieter").fill("de safety")
    page.locator("#skills-dieter").press("Enter")
    expect(page.locator(".messages")).to_contain_text("Skills of dieter saved.")
    queue = Queue.objects.get()
    assert (queue.segment, queue.skill, queue.blind) == ({"locale": ["de", "at"]}, "de", True)
    assert Membership.objects.get(user=dieter).skills == ["de", "safety"]

    _enqueue(project, "hallo", "de")
    _enqueue(project, "hello", "en")
    page.goto(live_server.url + reverse("project-queues", kwargs={"slug": "multi"}))
    expect(page.locator("tr[data-queue=german]")).to_contain_text("de")
    _fits(page, "queues-page")

    # Dieter chooses the German queue and labels with the keyboard.
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    dpage = context.new_page()
    login(dpage, live_server, dieter)
    dpage.goto(live_server.url + reverse("annotate", kwargs={"slug": "multi"}))
    picker = dpage.locator(".queue-picker")
    expect(picker).to_contain_text("German")
    picker.get_by_role("link", name="German").click()
    expect(dpage.locator("#item")).to_have_attribute("data-external-id", "hallo")
    expect(dpage.locator("#item")).to_have_attribute("data-queue", "german")
    expect(dpage.locator("#item-meta")).to_contain_text("queue German")
    expect(dpage.locator("#left")).to_have_text("1")
    _fits(dpage, "queues-label")
    dpage.keyboard.press("4")
    dpage.keyboard.press("Enter")
    expect(dpage.locator("#empty")).to_be_visible()  # the English item is in the main queue
    context.close()
    assert Annotation.objects.get().interaction.external_id == "hallo"
    # Emma has no "de" skill: only the English item is hers.
    emma_lease = assignment_claim(
        project=project, annotator=Membership.objects.get(user__username="emma").user
    )
    assert emma_lease is not None
    assert emma_lease.queue_item.interaction.external_id == "hello"


def test_an_open_queue_shows_the_earlier_answers_and_a_blind_one_does_not(
    page: Any, live_server: Any
) -> None:
    project = ProjectFactory(slug="openq", name="Open q")
    first = _member(project, "first")
    later = _member(project, "later")
    Queue.objects.create(project=project, name="Second opinion", slug="second-opinion",
                         segment={"locale": ["en"]}, blind=False)  # fmt: skip
    _enqueue(project, "open-item", "en", overlap=2)
    _enqueue(project, "blind-item", "fr", overlap=2)
    for _ in range(2):
        lease = assignment_claim(project=project, annotator=first)
        assert lease is not None
        assignment_submit(assignment_id=lease.pk, annotator=first, values={"quality": 2})
    open_item = QueueItem.objects.get(interaction__external_id="open-item")
    open_item.priority = 5
    open_item.save()
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, live_server, later)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "openq"}))
    expect(page.locator("#item")).to_have_attribute("data-external-id", "open-item")
    earlier = page.locator("#earlier")
    expect(earlier).to_be_visible()
    expect(earlier).to_contain_text("first: How good is the response? 2")
    _fits(page, "queues-open-review")
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    expect(page.locator("#item")).to_have_attribute("data-external-id", "blind-item")
    expect(earlier).to_be_hidden()  # the main queue is blind
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    expect(page.locator("#empty")).to_be_visible()
    assert page.js_errors == []
