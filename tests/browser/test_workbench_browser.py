"""The labelling page as a new user meets it (issue 14, "found when tried as a new user would"):
pairwise answers, looking without leasing, the done-today counter, long multi-turn items, Markdown,
drafts that survive a reload. Real Chromium, keyboard only where an annotator would use it."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from labeling.models import Annotation, Assignment, Membership, Project, QueueItem, Role
from labeling.schema import DEFAULT_SCHEMA, schema_validate
from tests.browser.conftest import login, screenshot
from tests.factories import InteractionFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

# As a new user would write it: the pairwise question after the rating, with no "required".
PAIR_SCHEMA: dict[str, Any] = {
    "questions": [
        {"key": "quality", "type": "rating", "prompt": "How good is the response?",
         "required": True,
         "scale": [{"value": v, "label": lbl} for v, lbl in
                   [(1, "unusable"), (2, "poor"), (3, "ok"), (4, "good"), (5, "great")]]},
        {"key": "preference", "type": "pairwise", "prompt": "Which response is better?",
         "shortcuts": ["a", "b", "t"]},
    ],
    "target": {"question": "quality", "good": [4, 5]},
}  # fmt: skip


def _project(slug: str, schema: dict[str, Any] | None = None, **extra: Any) -> Project:
    return ProjectFactory(
        slug=slug,
        name=slug.title(),
        label_schema=schema_validate(schema or DEFAULT_SCHEMA),
        **extra,
    )


def _member(project: Project, username: str, role: str = Role.ANNOTATOR) -> Any:
    user = UserFactory(username=username)
    Membership.objects.create(project=project, user=user, role=role)
    return user


def _item(project: Project, external_id: str, priority: int = 0, **fields: Any) -> QueueItem:
    interaction = InteractionFactory(project=project, external_id=external_id, **fields)
    return QueueItem.objects.create(
        project=project, interaction=interaction, priority=priority, overlap=1
    )


def current(page: Any, external_id: str) -> None:
    expect(page.locator("#item")).to_have_attribute("data-external-id", external_id)


def no_horizontal_overflow(page: Any) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"page is {overflow}px wider than the window"


def test_pairwise_question_comes_first_is_required_and_uses_the_schema_shortcuts(
    page: Any, live_server: Any
) -> None:
    project = _project("pair", PAIR_SCHEMA)
    user = _member(project, "paula")
    _item(project, "compare-me", response="Restart the router.", alt_response="Check the cable.")
    login(page, live_server, user)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "pair"}))
    current(page, "compare-me")

    # The preference is asked first; the rating says which response it is about.
    questions = page.locator("#questions fieldset.q")
    expect(questions.nth(0)).to_have_attribute("data-key", "preference")
    expect(page.locator("fieldset.q.active")).to_have_attribute("data-key", "preference")
    expect(questions.nth(0).locator(".req")).to_have_count(1)  # required without saying so
    expect(questions.nth(1).locator("legend")).to_contain_text("about Response A")
    # The keys shown are the schema's keys, and they work; the help lists the same ones.
    expect(questions.nth(0).locator("kbd")).to_have_text(["a", "b", "t"])
    page.keyboard.press("?")
    expect(page.locator("#question-keys")).to_contain_text("a A is better")
    page.keyboard.press("Escape")

    # A rating alone is refused in the browser: the preference is required.
    page.keyboard.press("j")
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    preference = page.locator('fieldset[data-key="preference"]')
    expect(preference.locator(".q-error")).to_have_text("this question is required")
    expect(preference).to_be_focused()
    assert not Annotation.objects.exists()
    page.keyboard.press("b")
    screenshot(page, "workbench-pairwise")
    page.keyboard.press("Enter")
    expect(page.locator("#empty")).to_be_visible()
    annotation = Annotation.objects.get()
    assert annotation.values == {"quality": 4, "preference": "b"}
    assert page.js_errors == []


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.ADMIN])
def test_a_reviewer_or_admin_looking_takes_no_lease(page: Any, live_server: Any, role: str) -> None:
    project = _project("look", PAIR_SCHEMA)
    user = _member(project, f"looker-{role}", role=role)
    item = _item(project, "wanted")
    login(page, live_server, user)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "look"}))
    start = page.locator("#start")
    expect(start).to_be_visible()
    expect(start).to_contain_text(f"as a {role}")
    expect(page.locator("#start-button")).to_be_focused()
    screenshot(page, f"workbench-look-{role}")
    page.reload()
    expect(start).to_be_visible()
    assert not Assignment.objects.exists()  # looking (twice) leased nothing
    item.refresh_from_db()
    assert item.leased_count == 0

    page.keyboard.press("Enter")  # a deliberate start takes the item
    current(page, "wanted")
    expect(start).to_be_hidden()
    assert Assignment.objects.get().annotator == user
    # Coming back while holding the lease resumes it without asking again.
    page.reload()
    current(page, "wanted")
    expect(start).to_have_count(0)
    assert Assignment.objects.count() == 1


def test_done_today_counts_every_submit_and_the_header_says_who_and_what(
    page: Any, live_server: Any
) -> None:
    project = _project("count")
    user = _member(project, "annotator")
    for n in range(4):
        _item(project, f"item-{n}", priority=10 - n)
    login(page, live_server, user)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "count"}))
    who = page.locator('[data-testid="who"]')
    expect(who).to_have_text("Signed in as annotator · role here: annotator")
    for n in range(3):
        current(page, f"item-{n}")
        # Answer at keyboard speed: the count must never lag behind what was submitted.
        page.keyboard.press("3")
        page.keyboard.press("Enter")
        current(page, f"item-{n + 1}")
        expect(page.locator("#done-today")).to_have_text(str(n + 1))
        expect(page.locator("#left")).to_have_text(str(3 - n))
    page.wait_for_timeout(300)  # a late progress answer would land here
    expect(page.locator("#done-today")).to_have_text("3")
    page.reload()
    expect(page.locator("#done-today")).to_have_text("3")
    assert Annotation.objects.count() == 3


LONG_RESPONSE = (
    "## Steps\n\n1. Open **Settings**.\n2. Choose *Security*.\n\n"
    "```python\nprint('<b>not bold</b>')\n```\n\nSee [the docs](https://example.com/help).\n\n"
    + ("A long paragraph of the response that goes on and on. " * 2800)
)


def test_long_multiturn_item_fits_the_window_and_renders_markdown(
    page: Any, live_server: Any
) -> None:
    assert len(LONG_RESPONSE) > 150_000
    project = _project("long", guidelines="Judge the last answer.")
    user = _member(project, "lena")
    messages = []
    for turn in range(4):
        messages.append({"role": "user", "content": f"Question {turn}: " + "why? " * 120})
        messages.append({"role": "assistant", "content": f"Answer {turn}: " + "because. " * 120})
    messages.append({"role": "user", "content": "And **finally**, how do I reset it?"})
    _item(project, "long-one", messages=messages, response=LONG_RESPONSE)
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, live_server, user)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "long"}))
    current(page, "long-one")

    # The response and the Submit button are on the first screen; the page stays short.
    response = page.locator("#responses .response")
    submit = page.locator("#submit")
    assert response.bounding_box()["y"] < 900
    box = submit.bounding_box()
    assert box["y"] + box["height"] <= 900, box
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 2000, height
    expect(page.locator("#conversation .earlier summary")).to_have_text("7 earlier messages")
    # Markdown: structure, not raw text; HTML in code stays text; links are safe.
    text = response.locator(".text")
    expect(text.locator(".md-h")).to_have_text("Steps")
    expect(text.locator("ol li")).to_have_count(2)
    expect(text.locator("strong").first).to_have_text("Settings")
    expect(text.locator("pre code")).to_have_text("print('<b>not bold</b>')")
    assert text.locator("b").count() == 0
    link = text.locator("a")
    expect(link).to_have_attribute("href", "https://example.com/help")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(page.locator("#conversation").locator("strong")).to_have_text("finally")
    screenshot(page, "workbench-long-1440")
    no_horizontal_overflow(page)

    more = page.locator("#responses .more")
    expect(more).to_contain_text("Show all of the response")
    more.click()
    assert page.evaluate("document.documentElement.scrollHeight") > 10_000
    more.click()  # "Show less"
    assert page.evaluate("document.documentElement.scrollHeight") < 2000

    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(100)
    no_horizontal_overflow(page)
    screenshot(page, "workbench-long-phone")
    assert page.js_errors == []


XSS_CORPUS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2">',
    "[click](javascript:window.__xss=3)",
    "[data](data:text/html,<script>window.__xss=4</script>)",
    "**<svg onload=window.__xss=5>**",
    "`<iframe src=javascript:window.__xss=6>`",
    "```\n</code></pre><img src=x onerror=window.__xss=7>\n```",
    '> <a href="javascript:window.__xss=8">quoted</a>',
    "- [x](JaVaScRiPt:window.__xss=9)",
    'https://example.com/"onmouseover="window.__xss=10',
    "<style>body{display:none}</style>",
]


def test_markdown_xss_corpus_stays_inert(page: Any, live_server: Any) -> None:
    project = _project("xss-md")
    user = _member(project, "xena")
    corpus = "\n\n".join(XSS_CORPUS)
    _item(project, "xss", messages=[{"role": "user", "content": corpus}], response=corpus)
    login(page, live_server, user)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "xss-md"}))
    current(page, "xss")
    item = page.locator("#item")
    for tag in ("script", "img", "svg", "iframe", "style"):
        assert item.locator(tag).count() == 0, tag
    hrefs = item.locator("a").evaluate_all("(links) => links.map((a) => [a.href, a.rel])")
    assert hrefs, "the plain https URL should still be a link"
    for href, rel in hrefs:
        assert href.startswith("https://"), href
        assert rel == "noopener noreferrer nofollow"
    for link in item.locator("a").all():
        link.hover()
    assert page.evaluate("window.__xss") is None
    expect(page.locator("#responses .text")).to_contain_text("<script>window.__xss=1</script>")
    assert page.js_errors == []


def test_a_reload_keeps_the_answers_chosen_so_far(page: Any, live_server: Any) -> None:
    project = _project("draft")
    user = _member(project, "dora")
    _item(project, "first", priority=2, response="The capital is Sydney.")
    _item(project, "second", priority=1)
    login(page, live_server, user)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "draft"}))
    current(page, "first")
    page.keyboard.press("2")  # quality: poor -> failure modes
    page.keyboard.press("1")  # hallucination
    page.keyboard.press("j")
    area = page.locator('fieldset[data-key="correction"] textarea')
    expect(area).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("The capital is Canberra.")
    assignment_id = Assignment.objects.get().pk
    page.reload()
    current(page, "first")
    expect(page.locator("#status")).to_contain_text("Restored the answers")
    expect(page.locator('fieldset[data-key="quality"] input').nth(1)).to_be_checked()
    expect(page.locator('fieldset[data-key="failure_modes"] input').nth(0)).to_be_checked()
    expect(area).to_have_value("The capital is Canberra.")
    screenshot(page, "workbench-draft-restored")
    page.keyboard.press("Enter")
    current(page, "second")
    assert Annotation.objects.get().values == {
        "quality": 2,
        "failure_modes": ["hallucination"],
        "correction": "The capital is Canberra.",
    }
    # The draft of a submitted item is gone; the new item starts empty.
    assert page.evaluate(f"localStorage.getItem('flywheel-draft:draft:{assignment_id}')") is None
    expect(page.locator('fieldset[data-key="quality"] input:checked')).to_have_count(0)
    assert Assignment.objects.count() == 2


def test_go_back_one_item_change_the_answer_and_see_the_history(
    page: Any, live_server: Any
) -> None:
    from labeling.services.annotations import annotation_adjudicate

    project = _project("undo")
    user = _member(project, "una")
    items = [_item(project, f"u-{n}", priority=10 - n) for n in range(4)]
    login(page, live_server, user)
    page.goto(live_server.url + reverse("annotate", kwargs={"slug": "undo"}))
    for n, key in enumerate(("2", "3")):
        current(page, f"u-{n}")
        page.keyboard.press(key)
        page.keyboard.press("Enter")
    current(page, "u-2")
    page.keyboard.press("5")  # started on u-2, then remembered a mistake on u-1
    page.keyboard.press("Backspace")
    current(page, "u-1")
    expect(page.locator("#item")).to_have_attribute("data-mode", "edit")
    expect(page.locator("#status")).to_contain_text("Editing your answer to u-1")
    quality = page.locator('fieldset[data-key="quality"] input')
    expect(quality.nth(2)).to_be_checked()  # the 3 submitted
    page.keyboard.press("Backspace")  # further back
    current(page, "u-0")
    expect(quality.nth(1)).to_be_checked()
    page.keyboard.press("Backspace")  # nothing before the first
    expect(page.locator("#status")).to_contain_text("Nothing earlier")
    page.keyboard.press("Escape")
    current(page, "u-2")  # back on the leased item, the 5 still chosen (the draft)
    expect(page.locator("#item")).to_have_attribute("data-mode", "label")
    expect(quality.nth(4)).to_be_checked()
    page.keyboard.press("Backspace")
    current(page, "u-1")
    page.keyboard.press("1")  # unusable after all
    screenshot(page, "workbench-undo-edit")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("Changed your answer to u-1")
    current(page, "u-2")
    expect(page.locator("#done-today")).to_have_text("2")  # an edit is not another label

    first = Annotation.objects.get(interaction__external_id="u-1", version=1)
    changed = Annotation.objects.get(interaction__external_id="u-1", is_current=True)
    assert (first.values, first.is_current) == ({"quality": 3}, False)
    assert (changed.values, changed.version, changed.supersedes_id) == ({"quality": 1}, 2, first.pk)

    # An adjudicated item can be looked at but no longer changed.
    reviewer = UserFactory(username="rev")
    Membership.objects.create(project=project, user=reviewer, role=Role.REVIEWER)
    annotation_adjudicate(queue_item=items[0], reviewer=reviewer, values={"quality": 4})
    page.goto(live_server.url + reverse("label-history", kwargs={"slug": "undo"}) + "?period=today")
    history = page.get_by_test_id("history")
    expect(history.locator("tr[data-annotation]")).to_have_count(2)
    expect(history.locator("tr").filter(has_text="u-0")).to_contain_text("adjudicated")
    row = history.locator("tr").filter(has_text="u-1")
    expect(row).to_contain_text("version 2")
    screenshot(page, "workbench-history")
    row.get_by_role("link", name="Change").click()
    current(page, "u-1")
    expect(quality.nth(0)).to_be_checked()
    page.keyboard.press("Escape")
    current(page, "u-2")
    expect(page.locator("#item")).to_have_attribute("data-mode", "label")
    page.keyboard.press("Backspace")
    current(page, "u-1")
    page.keyboard.press("Backspace")
    current(page, "u-0")
    expect(page.locator("#status")).to_contain_text("adjudicated by a reviewer")
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("can no longer be changed")
    assert Annotation.objects.get(interaction__external_id="u-0", annotator=user).values == {
        "quality": 2
    }
    assert page.js_errors == []
