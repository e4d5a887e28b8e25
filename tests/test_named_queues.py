"""Named queues (issue 14 item 4): routing by strategy and segment, skill tags on memberships,
one queue asked for, blind (default) and open review, the API and the admin page's rules."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from labeling.errors import Forbidden, Invalid, NotFound
from labeling.models import Assignment, Project, Queue, QueueItem, Role
from labeling.selectors.queue import queue_progress
from labeling.services.queue import assignment_claim, assignment_submit, queue_items_enqueue
from labeling.services.queues import member_skills_set, queue_create, queue_delete, queue_update
from tests.conftest import client_for
from tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db


def _queues(project: Project) -> tuple[Queue, Queue]:
    german = queue_create(
        project=project,
        actor=None,
        data={"name": "German", "segment": {"locale": ["de", "at"]}, "skill": "de"},
    )
    safety = queue_create(
        project=project,
        actor=None,
        data={"name": "Safety review", "strategy_ids": [7], "position": 0, "blind": False},
    )
    german.position = 1
    german.save()
    return german, safety


def _enqueue(project: Project, locale: str, strategy_id: int | None = None, **kw: Any) -> int:
    interaction = InteractionFactory(project=project, segment={"locale": locale, "tier": "free"})
    queue_items_enqueue(
        project=project, interaction_ids=[interaction.pk], strategy_id=strategy_id, **kw
    )
    return interaction.pk


def _queue_of(interaction_id: int) -> str:
    item = QueueItem.objects.select_related("queue").get(interaction_id=interaction_id)
    return item.queue.slug if item.queue else "main"


def test_new_items_are_routed_by_strategy_then_segment_in_order(project: Project) -> None:
    german, safety = _queues(project)
    assert (german.slug, safety.slug) == ("german", "safety-review")
    assert _queue_of(_enqueue(project, "de", strategy_id=7)) == "safety-review"  # position 0 first
    assert _queue_of(_enqueue(project, "de", strategy_id=3)) == "german"
    assert _queue_of(_enqueue(project, "at")) == "german"  # a deliberate batch: segment only
    assert _queue_of(_enqueue(project, "en", strategy_id=3)) == "main"
    queue_update(queue=german, actor=None, data={"active": False})
    assert _queue_of(_enqueue(project, "de")) == "main"  # a paused queue takes nothing new
    assert _queue_of(_enqueue(project, "en", queue=german)) == "german"  # asked for explicitly
    moved = queue_delete(queue=german, actor=None)
    assert moved == 3
    assert QueueItem.objects.filter(queue__isnull=True).count() == 5  # all but the safety item


def test_skill_tags_decide_who_labels_a_queue(project: Project, member: Any) -> None:
    _queues(project)
    anna, dieter = member(username="anna"), member(username="dieter")
    member_skills_set(project=project, user=dieter, skills=["DE", "de", "safety"], actor=None)
    de_item = _enqueue(project, "de")
    en_item = _enqueue(project, "en")
    assert queue_progress(project=project, user=anna)["left"] == 1
    assert queue_progress(project=project, user=dieter)["left"] == 2
    assert queue_progress(project=project, user=dieter, queue="german")["left"] == 1
    with pytest.raises(Forbidden):
        assignment_claim(project=project, annotator=anna, queue="german")
    with pytest.raises(NotFound):
        assignment_claim(project=project, annotator=anna, queue="klingon")
    lease = assignment_claim(project=project, annotator=anna)
    assert lease is not None
    assert lease.queue_item.interaction_id == en_item
    assignment_submit(assignment_id=lease.pk, annotator=anna, values={"quality": 3})
    assert assignment_claim(project=project, annotator=anna) is None  # German is not for her
    assert assignment_claim(project=project, annotator=dieter, queue="main") is None
    lease = assignment_claim(project=project, annotator=dieter, queue="german")
    assert lease is not None
    assert lease.queue_item.interaction_id == de_item
    with pytest.raises(Invalid):
        member_skills_set(project=project, user=anna, skills=["no spaces"], actor=None)


def test_blind_by_default_and_open_queues_show_earlier_answers(
    project: Project, member: Any
) -> None:
    german, safety = _queues(project)
    first, second = member(), member()
    for user in (first, second):
        member_skills_set(project=project, user=user, skills=["de"], actor=None)
    _enqueue(project, "de", overlap_by_id=None, default_overlap=2)  # German: blind
    _enqueue(project, "en", strategy_id=7, default_overlap=2)  # Safety review: open
    api1, api2 = client_for(first), client_for(second)
    url = reverse("labeling_api:queue-next", kwargs={"slug": project.slug})
    seen: dict[str, Any] = {}
    for _ in range(2):
        a = api1.post(url).json()
        assert a["earlier_answers"] == []  # nobody answered before
        api1.post(
            reverse("labeling_api:assignment-submit", kwargs={"assignment_id": a["id"]}),
            {"values": {"quality": 2}},
            format="json",
        )
        b = api2.post(url).json()
        seen[b["queue"]["slug"]] = b["earlier_answers"]
        api2.post(
            reverse("labeling_api:assignment-submit", kwargs={"assignment_id": b["id"]}),
            {"values": {"quality": 4}},
            format="json",
        )
    assert seen["german"] == []  # blind
    assert seen["safety-review"] == [{"annotator": first.username, "values": {"quality": 2}}]
    assert german.blind
    assert not safety.blind


def test_queue_api_and_rules(project: Project, member: Any) -> None:
    admin, annotator = member(Role.ADMIN), member(username="ann")
    base = reverse("labeling_api:queues", kwargs={"slug": project.slug})
    created = client_for(admin).post(
        base, {"name": "German", "segment": {"locale": "de"}, "skill": "de"}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["slug"], body["segment"], body["blind"]) == ("german", {"locale": ["de"]}, True)
    again = client_for(admin).post(base, {"name": "German"}, format="json")
    assert again.status_code == 409
    assert client_for(admin).post(base, {"name": "Main"}, format="json").status_code == 400
    assert client_for(annotator).post(base, {"name": "X"}, format="json").status_code == 403
    assert [q["name"] for q in client_for(annotator).get(base).json()] == ["German"]
    detail = reverse("labeling_api:queue", kwargs={"slug": project.slug, "queue_id": body["id"]})
    patched = client_for(admin).patch(detail, {"blind": False}, format="json")
    assert patched.status_code == 200
    assert patched.json()["blind"] is False
    skills = client_for(admin).put(
        reverse("labeling_api:member-skills", kwargs={"slug": project.slug, "username": "ann"}),
        {"skills": ["de"]},
        format="json",
    )
    assert skills.json() == {"skills": ["de"]}
    assert (
        client_for(annotator)
        .post(reverse("labeling_api:queue-next", kwargs={"slug": project.slug}) + "?queue=german")
        .status_code
        == 204
    )
    assert (
        client_for(annotator)
        .post(reverse("labeling_api:queue-next", kwargs={"slug": project.slug}) + "?queue=nope")
        .status_code
        == 404
    )
    assert client_for(admin).delete(detail).status_code == 204
    assert not Queue.objects.exists()
    assert not Assignment.objects.exists()


def test_submit_can_carry_the_next_item_in_one_round_trip(project: Project, member: Any) -> None:
    _queues(project)
    annotator = member(username="nora")
    member_skills_set(project=project, user=annotator, skills=["de"], actor=None)
    first, second = _enqueue(project, "de"), _enqueue(project, "en")
    api = client_for(annotator)
    lease = api.post(
        reverse("labeling_api:queue-next", kwargs={"slug": project.slug}) + "?queue=german"
    ).json()
    assert lease["interaction"]["segment"]["locale"] == "de"
    plain = api.post(
        reverse("labeling_api:assignment-submit", kwargs={"assignment_id": lease["id"]}),
        {"values": {"quality": 3}},
        format="json",
    )
    assert plain.status_code == 201
    assert "next" not in plain.json()  # only when asked for
    again = api.post(reverse("labeling_api:queue-next", kwargs={"slug": project.slug})).json()
    done = api.post(
        reverse("labeling_api:assignment-submit", kwargs={"assignment_id": again["id"]})
        + "?next=1&queue=german",
        {"values": {"quality": 3}},
        format="json",
    )
    assert done.status_code == 201
    assert done.json()["next"] is None  # nothing left in the German queue
    assert {first, second} == set(
        QueueItem.objects.filter(status="done").values_list("interaction_id", flat=True)
    )
