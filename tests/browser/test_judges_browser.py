"""The dashboard's "Judges vs humans" panel in a real browser: a calibrated judge's agreement, its
share of good next to the unbiased estimate, the power sentence; fits a desktop and a phone
window (screenshots under test-artifacts/judges/)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse

from labeling.models import Membership, Role
from sampling.judges.calibration_report import judges_calibrate
from tests.browser.conftest import login, screenshot
from tests.factories import ProjectFactory, UserFactory
from tests.judge_server import StubJudge
from tests.test_judges_trust import judged_project

pytestmark = pytest.mark.browser


@pytest.fixture
def stub() -> Iterator[StubJudge]:
    server = StubJudge().start()
    yield server
    server.stop()


def test_the_judges_panel_shows_agreement_and_fits(page: Any, live_server: Any, stub) -> None:
    project = ProjectFactory(slug="support-bot", name="Support bot")
    reviewer = UserFactory(username="rita-reviewer")
    Membership.objects.create(project=project, user=reviewer, role=Role.REVIEWER)
    judged_project(project, stub, informative=True)
    judges_calibrate(project_id=project.pk)
    login(page, live_server, reviewer)
    for name, (width, height) in {"desktop": (1440, 900), "phone": (390, 844)}.items():
        page.set_viewport_size({"width": width, "height": height})
        page.goto(live_server.url + reverse("project-dashboard", kwargs={"slug": "support-bot"}))
        panel = page.get_by_test_id("judges-panel")
        panel.scroll_into_view_if_needed()
        assert "Judges vs humans" in panel.inner_text()
        assert "labels instead of" in page.get_by_test_id("judge-power").inner_text()
        assert page.get_by_test_id("judge-r2").inner_text().strip()
        # labelled outside any sampling run: no unbiased estimate, and the panel says why
        assert (
            "needs labels of a sampling run" in page.get_by_test_id("judge-unbiased").inner_text()
        )
        extra = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert extra <= 0, f"{name}: {extra}px too wide"
        screenshot(page, f"judges/dashboard-panel-{name}")
        panel.screenshot(path=str(screenshot(page, f"judges/panel-{name}")))
    assert page.js_errors == []  # type: ignore[attr-defined]
