"""Every page a project member opens, at 1440x900 and on a phone (390x844): no horizontal
overflow, and a screenshot of each under test-artifacts/pages/ to look at."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from labeling.models import Annotation, Assignment, Membership, QueueItem, Role
from tests.browser.conftest import login, screenshot
from tests.factories import InteractionFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}


def test_every_page_fits_the_window(page: Any, live_server: Any) -> None:
    from django.utils import timezone

    project = ProjectFactory(slug="pages", name="Pages bot", guidelines="Be fair.")
    admin = UserFactory(username="ada-admin-with-a-long-name", is_staff=True)
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    now = timezone.now()
    item = None
    for n in range(3):
        item = QueueItem.objects.create(
            project=project,
            interaction=InteractionFactory(
                project=project,
                external_id=f"page-item-{n}-" + "x" * 40,
                response="A long answer with a URL https://example.com/" + "y" * 120,
                scores={"judge_helpfulness": 0.5},
            ),
        )
    assert item is not None
    assignment = Assignment.objects.create(
        queue_item=item,
        annotator=admin,
        status=Assignment.Status.SUBMITTED,
        leased_at=now,
        lease_expires_at=now,
        finished_at=now,
    )
    Annotation.objects.create(
        queue_item=item,
        interaction=item.interaction,
        assignment=assignment,
        annotator=admin,
        values={"quality": 4},
        schema_version=1,
        time_spent_ms=4000,
    )

    def at(name: str, query: str = "", **kwargs: int) -> str:
        return reverse(name, kwargs={"slug": "pages", **kwargs}) + query

    paths = {
        "home": reverse("home"),
        "label": at("annotate"),
        "history": at("label-history", "?period=all"),
        "review": at("review"),
        "disagreements": at("review-disagreements"),
        "gold": at("review-gold"),
        "gold-item": at("review-gold-item", item_id=item.pk),
        "review-labels": at("review-labels", "?show=all"),
        "queues": at("project-queues"),
        "data": at("data-browser"),
        "data-item": at("data-item", interaction_id=item.interaction_id),
        "dashboard": at("project-dashboard"),
        "strategies": at("project-strategies"),
        "alerts": at("project-alerts"),
        "schema": at("project-schema"),
        "members": at("project-members"),
        "tokens": at("project-tokens"),
        "settings": at("project-settings"),
        "exports": at("project-exports"),
        "new-project": reverse("project-new"),
    }
    login(page, live_server, admin)
    # Every stylesheet, script, plot and icon a page asks for loads; the console names each that
    # did not (Chromium asks for /favicon.ico by itself when a page names no icon).
    failed: list[str] = []
    page.on(
        "console",
        lambda message: (
            failed.append(f"{page.url}: {message.text}") if message.type == "error" else None
        ),
    )
    overflowing = []
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        for name, path in paths.items():
            response = page.goto(f"{live_server.url}{path}")
            assert response is not None
            assert response.status == 200, (name, response.status)
            page.wait_for_load_state("networkidle")
            extra = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if extra > 0:
                overflowing.append(f"{name} at {size}: {extra}px too wide")
            screenshot(page, f"pages/{name}-{size}")
    assert overflowing == [], "; ".join(overflowing)
    assert failed == []
    assert page.js_errors == []
