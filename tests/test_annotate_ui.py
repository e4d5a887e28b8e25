"""Server-rendered pages: labelling shell, home queues, reviewer pages; escaping of content."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from labeling.models import Annotation, Project, QueueItem, Role
from labeling.services.queue import assignment_claim, assignment_submit
from tests.factories import InteractionFactory, QueueItemFactory

pytestmark = pytest.mark.django_db

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


def browser_as(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_labelling_page_renders_config_and_progress(
    project: Project, member: Callable[..., Any]
) -> None:
    project.guidelines = "Rate <b>helpfulness</b> first."
    project.save()
    QueueItemFactory(interaction__project=project)
    response = browser_as(member()).get(reverse("annotate", kwargs={"slug": "support-bot"}))
    assert response.status_code == 200
    html = response.content.decode()
    assert "annotate.js" in html
    assert "Rate &lt;b&gt;helpfulness&lt;/b&gt; first." in html  # guidelines are escaped
    config = json.loads(
        html.split('id="annotate-config" type="application/json">')[1].split("<")[0]
    )
    assert config["nextUrl"] == reverse("labeling_api:queue-next", kwargs={"slug": "support-bot"})
    assert config["submitUrl"] == reverse(
        "labeling_api:assignment-submit", kwargs={"assignment_id": 0}
    )
    assert response.context["progress"]["left"] == 1


def test_pages_are_scoped_to_members(
    project: Project, other_project: Project, member: Callable[..., Any]
) -> None:
    annotator = browser_as(member())
    assert annotator.get(reverse("annotate", kwargs={"slug": "other-bot"})).status_code == 404
    assert annotator.get(reverse("review", kwargs={"slug": "support-bot"})).status_code == 403
    assert annotator.get(reverse("review", kwargs={"slug": "other-bot"})).status_code == 404
    assert (
        Client().get(reverse("annotate", kwargs={"slug": "support-bot"})).status_code == 302
    )  # to the login page


def test_home_lists_my_queues_with_counts(
    project: Project, other_project: Project, member: Callable[..., Any]
) -> None:
    for _ in range(3):
        QueueItemFactory(interaction__project=project)
    QueueItemFactory(interaction__project=other_project)
    user = member()
    lease = assignment_claim(project=project, annotator=user)
    assert lease is not None
    assignment_submit(assignment_id=lease.pk, annotator=user, values={"quality": 3})
    response = browser_as(user).get("/")
    queues = response.context["queues"]
    assert [(q["project"].slug, q["left"], q["done_today"]) for q in queues] == [
        ("support-bot", 2, 1)
    ]
    html = response.content.decode()
    assert "My queues" in html
    assert reverse("annotate", kwargs={"slug": "support-bot"}) in html
    assert reverse("annotate", kwargs={"slug": "other-bot"}) not in html


def disputed_item(project: Project, member: Callable[..., Any], **interaction: Any) -> QueueItem:
    item = QueueItemFactory(
        interaction=InteractionFactory(project=project, **interaction), overlap=2
    )
    for quality in (1, 5):
        user = member()
        lease = assignment_claim(project=project, annotator=user)
        assert lease is not None
        assignment_submit(assignment_id=lease.pk, annotator=user, values={"quality": quality})
    return item


def test_reviewer_pages_escape_content(project: Project, member: Callable[..., Any]) -> None:
    disputed_item(
        project,
        member,
        response=XSS,
        alt_response="",
        messages=[{"role": "user", "content": XSS}],
    )
    reviewer = browser_as(member(Role.REVIEWER))
    html = reviewer.get(
        reverse("review-disagreements", kwargs={"slug": "support-bot"})
    ).content.decode()
    assert "<script>window.__xss" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html


def test_adjudication_form_records_the_answer(project: Project, member: Callable[..., Any]) -> None:
    item = disputed_item(project, member)
    reviewer = browser_as(member(Role.REVIEWER))
    bad = reviewer.post(
        reverse("review-disagreements", kwargs={"slug": "support-bot"}),
        {"item": item.pk, "quality": "9"},
    )
    assert bad.status_code == 200
    assert "out of range" in bad.content.decode()
    response = reviewer.post(
        reverse("review-disagreements", kwargs={"slug": "support-bot"}),
        {"item": item.pk, "quality": "4", "note": "Checked the docs"},
    )
    assert response.status_code == 302
    adjudication = Annotation.objects.get(kind=Annotation.Kind.ADJUDICATION)
    assert adjudication.values == {"quality": 4}
    page = reviewer.get(
        reverse("review-disagreements", kwargs={"slug": "support-bot"})
    ).content.decode()
    assert "No open disagreements" in page


def test_gold_form_sets_and_clears(project: Project, member: Callable[..., Any]) -> None:
    item = QueueItemFactory(interaction__project=project)
    reviewer = browser_as(member(Role.REVIEWER))
    response = reviewer.post(
        reverse("review-gold", kwargs={"slug": "support-bot"}),
        {
            "item": item.interaction.external_id,
            "quality": "5",
            "failure_modes": ["tone"],
            "overlap": "3",
        },
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.is_gold, item.gold_answer, item.overlap) == (
        True,
        {"quality": 5, "failure_modes": ["tone"]},
        3,
    )
    missing = reviewer.post(
        reverse("review-gold", kwargs={"slug": "support-bot"}), {"item": "nope", "quality": "5"}
    )
    assert "No queued item" in missing.content.decode()
    reviewer.post(
        reverse("review-gold", kwargs={"slug": "support-bot"}),
        {"item": str(item.pk), "action": "clear"},
    )
    item.refresh_from_db()
    assert item.is_gold is False
    health = reviewer.get(reverse("review", kwargs={"slug": "support-bot"}))
    assert health.status_code == 200
    assert health.context["health"]["items"] == 1


def test_gold_page_lists_answers_as_json(project: Project, member: Callable[..., Any]) -> None:
    from labeling.services.gold import gold_set

    reviewer_user = member(Role.REVIEWER)
    item = QueueItemFactory(interaction__project=project)
    gold_set(queue_item=item, actor=reviewer_user, answer={"quality": 5, "correction": "<b>x</b>"})
    html = (
        browser_as(reviewer_user)
        .get(reverse("review-gold", kwargs={"slug": "support-bot"}))
        .content.decode()
    )
    assert (
        "{&quot;quality&quot;: 5, &quot;correction&quot;: &quot;&lt;b&gt;x&lt;/b&gt;&quot;}" in html
    )
