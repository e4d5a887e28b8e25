"""Queue semantics through the API: claim, submit, skip, leases, overlap, gold, permissions."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from labeling import hooks
from labeling.models import Annotation, Assignment, AuditLog, Project, QueueItem, Role
from labeling.selectors.queue import annotator_stats, gold_scores, queue_health, queue_progress
from labeling.services.gold import gold_set
from labeling.services.queue import assignment_claim, assignments_expire, queue_items_enqueue
from labeling.tasks.queue import expire_leases
from tests.conftest import client_for
from tests.factories import InteractionFactory, QueueItemFactory

pytestmark = pytest.mark.django_db


def items(project: Project, n: int, **kwargs: Any) -> list[QueueItem]:
    return [QueueItemFactory(interaction__project=project, **kwargs) for _ in range(n)]


def next_item(client: APIClient, slug: str = "support-bot") -> Any:
    return client.post(reverse("labeling_api:queue-next", kwargs={"slug": slug}))


def submit(client: APIClient, assignment_id: int, values: dict[str, Any], **extra: Any) -> Any:
    return client.post(
        reverse("labeling_api:assignment-submit", kwargs={"assignment_id": assignment_id}),
        {"values": values, **extra},
        format="json",
    )


def test_next_returns_the_design_shape(project: Project, member: Callable[..., Any]) -> None:
    item = items(project, 1)[0]
    client = client_for(member())
    response = next_item(client)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"id", "interaction", "schema", "lease_expires_at"}
    assert set(body["interaction"]) >= {
        "external_id",
        "messages",
        "response",
        "alt_response",
        "model_version",
        "segment",
    }
    assert body["interaction"]["external_id"] == item.interaction.external_id
    # The schema comes normalised, with the shortcuts the page uses.
    assert body["schema"]["questions"][0]["shortcuts"] == ["1", "2", "3", "4", "5"]
    assignment = Assignment.objects.get(pk=body["id"])
    assert assignment.queue_item_id == item.pk
    assert assignment.lease_expires_at - assignment.leased_at == dt.timedelta(seconds=600)


def test_same_lease_is_returned_until_finished(project: Project, member: Callable) -> None:
    items(project, 3)
    client = client_for(member())
    first = next_item(client).json()["id"]
    assert next_item(client).json()["id"] == first
    assert Assignment.objects.count() == 1
    assert QueueItem.objects.filter(leased_count=1).count() == 1


def test_submit_records_annotation_and_moves_on(
    project: Project, member: Callable, django_capture_on_commit_callbacks: Callable
) -> None:
    items(project, 2)
    fired: list[dict[str, Any]] = []
    hooks.connect("labels_submitted", lambda **kw: fired.append(kw))
    client = client_for(member())
    first = next_item(client).json()
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(client, first["id"], {"quality": 4}, time_spent_ms=5300)
    assert response.status_code == 201, response.json()
    annotation = Annotation.objects.get()
    assert annotation.values == {"quality": 4}
    assert annotation.time_spent_ms == 5300
    assert annotation.schema_version == project.schema_version
    assert {"project_id": project.pk, "count": 1} in fired
    item = QueueItem.objects.get(pk=annotation.queue_item_id)
    assert (item.status, item.done_count, item.leased_count) == ("done", 1, 0)
    second = next_item(client).json()
    assert second["id"] != first["id"]
    # Submitting twice is refused; nothing is overwritten.
    again = submit(client, first["id"], {"quality": 1})
    assert again.status_code == 409
    assert Annotation.objects.get(pk=annotation.pk).values == {"quality": 4}


def test_invalid_submission_names_the_question(project: Project, member: Callable) -> None:
    items(project, 1)
    client = client_for(member())
    assignment = next_item(client).json()["id"]
    response = submit(client, assignment, {"quality": 9, "failure_modes": ["nope"]})
    assert response.status_code == 400
    body = response.json()
    assert "invalid" in body["detail"]
    assert "out of range" in body["errors"]["values"]["quality"]
    assert "unknown option" in body["errors"]["values"]["failure_modes"]
    missing = submit(client, assignment, {})
    assert missing.json()["errors"]["values"]["quality"] == "this question is required"
    assert not Annotation.objects.exists()
    # The lease is still there: the annotator fixes the answer and submits.
    assert submit(client, assignment, {"quality": 2}).status_code == 201


def test_empty_queue_is_204(project: Project, member: Callable) -> None:
    client = client_for(member())
    assert next_item(client).status_code == 204


def test_overlap_gives_an_item_to_k_different_annotators(
    project: Project, member: Callable
) -> None:
    item = items(project, 1, overlap=2)[0]
    a, b, c = (client_for(member()) for _ in range(3))
    ids = [next_item(x).json()["id"] for x in (a, b)]
    assert next_item(c).status_code == 204  # both slots are leased
    assert submit(a, ids[0], {"quality": 3}).status_code == 201
    assert next_item(a).status_code == 204  # never the same item twice
    assert submit(b, ids[1], {"quality": 5}).status_code == 201
    item.refresh_from_db()
    assert (item.done_count, item.status) == (2, "done")
    assert next_item(c).status_code == 204


def test_priority_then_age_order(project: Project, member: Callable) -> None:
    low, high, high_later = (
        QueueItemFactory(interaction__project=project, priority=p) for p in (0.1, 0.9, 0.9)
    )
    client = client_for(member())
    order = []
    for _ in range(3):
        body = next_item(client).json()
        order.append(body["interaction"]["external_id"])
        submit(client, body["id"], {"quality": 3})
    assert order == [x.interaction.external_id for x in (high, high_later, low)]


def test_skip_gives_item_to_someone_else_and_flags_after_max(
    project: Project, member: Callable
) -> None:
    project.max_skips = 2
    project.save()
    item = items(project, 1)[0]
    a, b, c = (client_for(member()) for _ in range(3))
    first = next_item(a).json()["id"]
    response = a.post(
        reverse("labeling_api:assignment-skip", kwargs={"assignment_id": first}),
        {"reason": "not English"},
        format="json",
    )
    assert response.status_code == 200
    assert Assignment.objects.get(pk=first).skip_reason == "not English"
    assert next_item(a).status_code == 204  # the skipper does not get it back
    second = next_item(b).json()["id"]
    item.refresh_from_db()
    assert (item.status, item.leased_count, item.skip_count) == ("open", 1, 1)
    b.post(
        reverse("labeling_api:assignment-skip", kwargs={"assignment_id": second}),
        {"reason": "unclear"},
        format="json",
    )
    item.refresh_from_db()
    assert (item.status, item.skip_count, item.leased_count) == ("flagged", 2, 0)
    assert next_item(c).status_code == 204
    assert AuditLog.objects.filter(action="queue_item.flagged", object_id=str(item.pk)).exists()
    assert queue_health(project=project)["flagged"] == 1
    # A reviewer puts it back.
    reviewer = client_for(member(Role.REVIEWER))
    assert (
        reviewer.post(
            reverse("labeling_api:item-reopen", kwargs={"slug": "support-bot", "item_id": item.pk})
        ).status_code
        == 200
    )
    assert next_item(c).status_code == 200


def test_lease_expiry_returns_item_to_the_queue(project: Project, member: Callable) -> None:
    item = items(project, 1)[0]
    slow, fast = member(), member()
    mine = assignment_claim(project=project, annotator=slow)
    assert mine is not None
    later = timezone.now() + dt.timedelta(seconds=project.lease_seconds + 1)
    # The periodic task (eager in tests) returns it.
    Assignment.objects.filter(pk=mine.pk).update(lease_expires_at=timezone.now())
    assert expire_leases.delay().get() == 1
    assert expire_leases.delay().get() == 0  # idempotent
    item.refresh_from_db()
    assert item.leased_count == 0
    other = assignment_claim(project=project, annotator=fast, now=later)
    assert other is not None
    assert other.queue_item_id == item.pk
    # The slow annotator's lease went to someone else: a clear 409, nothing saved.
    response = submit(client_for(slow), mine.pk, {"quality": 3})
    assert response.status_code == 409
    assert "expired" in response.json()["detail"]
    assert not Annotation.objects.exists()


def test_lazy_expiry_at_claim_and_late_submit_when_slot_is_free(
    project: Project, member: Callable
) -> None:
    item = items(project, 1)[0]
    slow, fast = member(), member()
    mine = assignment_claim(project=project, annotator=slow)
    assert mine is not None
    # Nobody else claimed yet: a late submit is still accepted.
    response = submit(client_for(slow), mine.pk, {"quality": 3})
    assert response.status_code == 201
    item.refresh_from_db()
    assert (item.done_count, item.leased_count, item.status) == (1, 0, "done")
    # A second item: expired leases are returned by the next claim itself.
    other = items(project, 1)[0]
    lease = assignment_claim(project=project, annotator=slow)
    assert lease is not None
    assert lease.queue_item_id == other.pk
    taken = assignment_claim(
        project=project, annotator=fast, now=lease.lease_expires_at + dt.timedelta(seconds=1)
    )
    assert taken is not None
    assert taken.queue_item_id == other.pk
    assert Assignment.objects.get(pk=lease.pk).status == "expired"


def test_own_expired_lease_can_be_taken_again(project: Project, member: Callable) -> None:
    items(project, 1)
    user = member()
    lease = assignment_claim(project=project, annotator=user)
    assert lease is not None
    again = assignment_claim(
        project=project, annotator=user, now=lease.lease_expires_at + dt.timedelta(seconds=5)
    )
    assert again is not None
    assert again.pk == lease.pk
    assert again.status == "leased"
    assert again.lease_expires_at > lease.lease_expires_at
    assert QueueItem.objects.get().leased_count == 1


def test_gold_items_are_mixed_in_and_scored(project: Project, member: Callable) -> None:
    project.gold_rate = 0.5
    project.save()
    regular = items(project, 20)
    gold = items(project, 4)
    reviewer = member(Role.REVIEWER)
    for g in gold:
        gold_set(queue_item=g, actor=reviewer, answer={"quality": 5}, overlap=2)
    assert QueueItem.objects.filter(is_gold=True, overlap=2).count() == 4
    user = member()
    rng = random.Random(7)
    served = []
    for _ in range(10):
        lease = assignment_claim(project=project, annotator=user, rng=rng)
        assert lease is not None
        served.append(lease.queue_item_id)
        from labeling.services.queue import assignment_submit

        item = QueueItem.objects.get(pk=lease.queue_item_id)
        assignment_submit(
            assignment_id=lease.pk, annotator=user, values={"quality": 5 if item.pk % 2 else 2}
        )
    gold_ids = {g.pk for g in gold}
    n_gold = sum(1 for s in served if s in gold_ids)
    assert 1 <= n_gold <= 4  # mixed in, not all first, not never
    assert len(set(served)) == 10
    expected_correct = sum(1 for s in served if s in gold_ids and s % 2)
    score = gold_scores(project=project)[user.pk]
    assert score == {"answered": n_gold, "correct": expected_correct}
    stats = {row["annotator_id"]: row for row in annotator_stats(project=project)}
    assert stats[user.pk]["gold_accuracy"] == round(expected_correct / n_gold, 3)
    assert stats[user.pk]["submitted"] == 10
    del regular


def test_gold_api_requires_reviewer(project: Project, member: Callable) -> None:
    item = items(project, 1)[0]
    annotator = client_for(member())
    url = reverse("labeling_api:gold", kwargs={"slug": "support-bot", "item_id": item.pk})
    assert annotator.post(url, {"answer": {"quality": 5}}, format="json").status_code == 403
    reviewer = client_for(member(Role.REVIEWER))
    bad = reviewer.post(url, {"answer": {"quality": 7}}, format="json")
    assert bad.status_code == 400
    assert "out of range" in bad.json()["errors"]["answer"]["quality"]
    ok = reviewer.post(url, {"answer": {"quality": 5}, "overlap": 3}, format="json")
    assert ok.status_code == 200
    assert ok.json()["gold_answer"] == {"quality": 5}
    listing = reviewer.get(reverse("labeling_api:gold-list", kwargs={"slug": "support-bot"})).json()
    assert listing["count"] == 1
    assert reviewer.delete(url).json()["is_gold"] is False
    assert AuditLog.objects.filter(action__startswith="gold.").count() == 2


def test_permissions_scope_queues_and_assignments(
    project: Project, other_project: Project, member: Callable
) -> None:
    items(project, 2)
    items(other_project, 1)
    alice = member()
    bob = member()
    engineer = client_for(member(Role.ENGINEER))
    a = client_for(alice)
    # Another project's queue: 404, as if it did not exist.
    assert next_item(a, "other-bot").status_code == 404
    assert (
        a.get(reverse("labeling_api:queue-progress", kwargs={"slug": "other-bot"})).status_code
        == 404
    )
    # Engineers read data but do not label.
    assert next_item(engineer).status_code == 403
    assignment = next_item(a).json()["id"]
    b = client_for(bob)
    # Someone else's assignment: 404 for submit and skip.
    assert submit(b, assignment, {"quality": 3}).status_code == 404
    assert (
        b.post(
            reverse("labeling_api:assignment-skip", kwargs={"assignment_id": assignment}),
            {},
            format="json",
        ).status_code
        == 404
    )
    assert APIClient().post(
        reverse("labeling_api:queue-next", kwargs={"slug": "support-bot"})
    ).status_code in (401, 403)
    # Annotators cannot see agreement, health or disagreements.
    assert (
        a.get(reverse("labeling_api:agreement", kwargs={"slug": "support-bot"})).status_code == 403
    )
    assert (
        a.get(reverse("labeling_api:disagreements", kwargs={"slug": "support-bot"})).status_code
        == 403
    )
    assert (
        engineer.get(reverse("labeling_api:agreement", kwargs={"slug": "support-bot"})).status_code
        == 200
    )


def test_progress_and_health(project: Project, member: Callable) -> None:
    items(project, 3)
    user = member()
    client = client_for(user)
    body = next_item(client).json()
    submit(client, body["id"], {"quality": 3})
    progress = client.get(
        reverse("labeling_api:queue-progress", kwargs={"slug": "support-bot"})
    ).json()
    assert progress == {"done_today": 1, "done_total": 1, "left": 2, "returned": 0}
    next_item(client)
    # The item on the annotator's screen (their live lease) is still left to do.
    assert queue_progress(project=project, user=user)["left"] == 2
    health = queue_health(project=project)
    assert health["backlog"] == 1
    assert health["leased"] == 1
    assert health["done"] == 1
    later = timezone.now() + dt.timedelta(hours=1)
    assert queue_health(project=project, now=later)["expired_leases"] == 1
    assignments_expire(project=project, now=later)
    assert queue_health(project=project, now=later)["expired_leases"] == 0
    reviewer = client_for(member(Role.REVIEWER))
    stats = reviewer.get(
        reverse("labeling_api:queue-health", kwargs={"slug": "support-bot"})
    ).json()
    assert stats["health"]["done"] == 1
    assert stats["annotators"][0]["submitted"] == 1


def test_pairwise_question_needs_alt_response(project: Project, member: Callable) -> None:
    schema = {
        "questions": [
            {"key": "preference", "type": "pairwise", "required": True},
            {"key": "quality", "type": "rating", "scale": [{"value": 0, "label": "bad"},
                                                            {"value": 1, "label": "good"}]},
        ],
        "target": {"question": "preference", "good": ["a"]},
    }  # fmt: skip
    project.label_schema = schema
    project.save()
    plain = InteractionFactory(project=project)
    paired = InteractionFactory(project=project, alt_response="Another answer.")
    queue_items_enqueue(
        project=project,
        interaction_ids=[plain.pk, paired.pk],
        priority_by_id={plain.pk: 1.0, paired.pk: 0.5},
    )
    client = client_for(member())
    first = next_item(client).json()
    assert first["interaction"]["alt_response"] is None
    # Without an alternative the required pairwise question does not apply.
    assert submit(client, first["id"], {"quality": 1}).status_code == 201
    second = next_item(client).json()
    assert second["interaction"]["alt_response"] == "Another answer."
    assert submit(client, second["id"], {"quality": 1}).status_code == 400
    assert submit(client, second["id"], {"preference": "b"}).status_code == 201


def test_removed_member_cannot_finish_their_assignment(project: Project, member: Callable) -> None:
    items(project, 1)
    user = member()
    client = client_for(user)
    assignment = next_item(client).json()["id"]
    project.memberships.filter(user=user).delete()
    assert submit(client, assignment, {"quality": 3}).status_code == 404
    engineer_user = member(Role.ENGINEER)
    project.memberships.filter(user=engineer_user).update(role=Role.ANNOTATOR)
    lease = next_item(client_for(engineer_user)).status_code
    assert lease == 204  # the only item is still leased to the removed member until it expires
    assert not Annotation.objects.exists()


def test_ids_beyond_the_integer_range_are_404(project: Project, member: Callable) -> None:
    client = client_for(member(Role.REVIEWER))
    huge = 10**20
    assert submit(client, huge, {"quality": 3}).status_code == 404
    assert (
        client.post(
            reverse("labeling_api:assignment-skip", kwargs={"assignment_id": huge}),
            {},
            format="json",
        ).status_code
        == 404
    )
    assert (
        client.post(
            reverse("labeling_api:annotation-edit", kwargs={"annotation_id": huge}),
            {"values": {}},
            format="json",
        ).status_code
        == 404
    )
    url = reverse("labeling_api:gold", kwargs={"slug": "support-bot", "item_id": huge})
    assert client.post(url, {"answer": {"quality": 5}}, format="json").status_code == 404
