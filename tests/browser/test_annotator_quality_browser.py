"""Annotator quality on the review page (issue 14, Build 7), in real Chromium: an implausibly fast
annotator with poor gold accuracy is flagged, with intervals and a few-labels warning."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from labeling.models import Annotation, Assignment, Membership, QueueItem, Role
from tests.browser.conftest import login, screenshot
from tests.factories import InteractionFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser


def test_fast_annotator_with_low_gold_accuracy_is_flagged(page: Any, live_server: Any) -> None:
    from django.utils import timezone

    project = ProjectFactory(slug="qual", name="Quality bot")
    reviewer = UserFactory(username="rhea")
    Membership.objects.create(project=project, user=reviewer, role=Role.REVIEWER)
    speedy, careful = UserFactory(username="speedy"), UserFactory(username="careful")
    now = timezone.now()
    for n in range(12):
        item = QueueItem.objects.create(
            project=project,
            interaction=InteractionFactory(project=project, external_id=f"q-{n}"),
            overlap=2,
            is_gold=True,
            gold_answer={"quality": 5},
        )
        for user, ms, value in ((speedy, 900, 1), (careful, 21_000, 5 if n % 4 else 4)):
            assignment = Assignment.objects.create(
                queue_item=item,
                annotator=user,
                status=Assignment.Status.SUBMITTED,
                leased_at=now,
                lease_expires_at=now,
                finished_at=now,
            )
            Annotation.objects.create(
                queue_item=item,
                interaction=item.interaction,
                assignment=assignment,
                annotator=user,
                values={"quality": value},
                schema_version=1,
                time_spent_ms=ms,
            )
    login(page, live_server, reviewer)
    page.goto(live_server.url + reverse("review", kwargs={"slug": "qual"}))
    table = page.get_by_test_id("annotator-quality")
    fast = table.locator('tr[data-annotator="speedy"]')
    expect(fast).to_contain_text("fast: median 0.9 s per label against 21.0 s for the others")
    expect(fast).to_contain_text("low gold accuracy: 0 of 12")
    expect(fast).to_contain_text("0/12 = 0% [0\u201324%]")
    slow = table.locator('tr[data-annotator="careful"]')
    expect(slow).to_contain_text("9/12 = 75%")
    expect(slow).to_contain_text("none")
    expect(table.locator("tr").nth(1)).to_have_attribute(
        "data-annotator", "speedy"
    )  # flagged first
    screenshot(page, "workbench-annotator-quality")
    assert page.js_errors == []
