"""Comments and flags on items, reviewers accepting or rejecting labels (a rejected label goes back
to its annotator with the note), and suggestions recorded on the annotation (issue 14, items 3
and 6)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from labeling.errors import Conflict, Invalid, NotFound
from labeling.models import Annotation, AuditLog, ItemComment, Project, QueueItem, Role
from labeling.selectors.queue import queue_progress
from labeling.selectors.review import items_to_review, review_counts, suggestion_for
from labeling.services.annotations import annotation_adjudicate, annotation_edit
from labeling.services.queue import assignment_claim, assignment_submit
from labeling.services.review import annotation_review, comment_add, comment_resolve
from tests.conftest import client_for
from tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db


def _labelled(project: Project, annotator: Any, external_id: str = "r-1", quality: int = 4):
    item = QueueItem.objects.create(
        project=project,
        interaction=InteractionFactory(project=project, external_id=external_id),
        overlap=1,
    )
    assignment = assignment_claim(project=project, annotator=annotator)
    assert assignment is not None
    assert assignment.queue_item_id == item.pk
    return item, assignment_submit(
        assignment_id=assignment.pk, annotator=annotator, values={"quality": quality}
    )


def test_a_rejected_label_goes_back_to_its_annotator_until_they_change_it(
    project: Project, member: Any
) -> None:
    annotator, reviewer = member(Role.ANNOTATOR), member(Role.REVIEWER)
    _, label = _labelled(project, annotator)
    with pytest.raises(Invalid) as exc:
        annotation_review(
            annotation_id=label.pk, project=project, reviewer=reviewer, decision="reject"
        )
    assert "note" in exc.value.errors
    annotation_review(
        annotation_id=label.pk,
        project=project,
        reviewer=reviewer,
        decision="reject",
        note="It invents a refund policy: quality 2.",
    )
    label.refresh_from_db()
    assert (label.review_status, label.reviewed_by) == ("rejected", reviewer)
    assert queue_progress(project=project, user=annotator)["returned"] == 1
    assert AuditLog.objects.filter(action="annotation.rejected").count() == 1

    rows = client_for(annotator).get(
        reverse("labeling_api:my-labels", kwargs={"slug": project.slug}) + "?returned=1"
    )
    assert rows.status_code == 200
    (row,) = rows.json()["results"]
    assert row["review"]["status"] == "rejected"
    assert row["review"]["note"] == "It invents a refund policy: quality 2."
    assert row["review"]["reviewer"] == reviewer.username

    new = annotation_edit(annotation_id=label.pk, actor=annotator, values={"quality": 2})
    assert new.review_status == ""  # the new version awaits a fresh look
    assert queue_progress(project=project, user=annotator)["returned"] == 0
    # The decision was about the old version: reviewing it again is refused.
    with pytest.raises(Conflict):
        annotation_review(
            annotation_id=label.pk, project=project, reviewer=reviewer, decision="accept"
        )
    annotation_review(annotation_id=new.pk, project=project, reviewer=reviewer, decision="accept")
    assert Annotation.objects.get(pk=new.pk).review_status == "accepted"


def test_an_adjudicated_item_cannot_be_rejected_and_other_projects_are_not_found(
    project: Project, other_project: Project, member: Any
) -> None:
    annotator, reviewer = member(Role.ANNOTATOR), member(Role.REVIEWER)
    item, label = _labelled(project, annotator)
    with pytest.raises(NotFound):
        annotation_review(
            annotation_id=label.pk, project=other_project, reviewer=reviewer, decision="accept"
        )
    annotation_adjudicate(queue_item=item, reviewer=reviewer, values={"quality": 3})
    with pytest.raises(Conflict):
        annotation_review(
            annotation_id=label.pk, project=project, reviewer=reviewer, decision="reject", note="x"
        )


def test_comments_and_flags_annotators_only_on_their_items_reviewers_see_all(
    project: Project, member: Any
) -> None:
    annotator, other, reviewer = member(), member(), member(Role.REVIEWER)
    item, _ = _labelled(project, annotator)
    with pytest.raises(NotFound):
        comment_add(queue_item=item, author=other, body="not mine", reviewer=False)
    with pytest.raises(Invalid):
        comment_add(queue_item=item, author=annotator, body="  ", reviewer=False)
    flag = comment_add(
        queue_item=item, author=annotator, body="Leaks a phone number", flag=True, reviewer=False
    )
    comment_add(queue_item=item, author=reviewer, body="Looking", reviewer=True)
    assert [i.pk for i in items_to_review(project=project, which="flags")] == [item.pk]
    counts = review_counts(project=project)
    assert counts["flags"] == 1
    assert counts["comments"] == 1
    assert counts["unreviewed"] == 1

    url = reverse("labeling_api:item-comments", kwargs={"slug": project.slug, "item_id": item.pk})
    assert [c["body"] for c in client_for(reviewer).get(url).json()] == [
        "Leaks a phone number",
        "Looking",
    ]
    assert [c["body"] for c in client_for(annotator).get(url).json()] == ["Leaks a phone number"]
    answer = client_for(annotator).post(url, {"body": "also rude", "flag": False}, format="json")
    assert answer.status_code == 201
    assert answer.json()["is_flag"] is False
    assert client_for(other).post(url, {"body": "hi"}, format="json").status_code == 404

    comment_resolve(comment_id=flag.pk, project=project, actor=reviewer)
    assert ItemComment.objects.get(pk=flag.pk).resolved_by == reviewer
    assert list(items_to_review(project=project, which="flags")) == []


def test_review_api_rejects_with_a_note_and_annotators_may_not_review(
    project: Project, member: Any
) -> None:
    annotator, reviewer = member(), member(Role.REVIEWER)
    _, label = _labelled(project, annotator)
    url = reverse(
        "labeling_api:annotation-review", kwargs={"slug": project.slug, "annotation_id": label.pk}
    )
    assert client_for(annotator).post(url, {"decision": "accept"}).status_code == 403
    missing = client_for(reviewer).post(url, {"decision": "reject"}, format="json")
    assert missing.status_code == 400
    assert "note" in missing.json()["errors"]
    done = client_for(reviewer).post(url, {"decision": "reject", "note": "no"}, format="json")
    assert done.status_code == 200
    assert done.json()["review_status"] == "rejected"


def test_suggestions_are_off_by_default_and_recorded_when_shown(
    project: Project, member: Any
) -> None:
    annotator = member()
    project.primary_judge = "judge_helpfulness"
    project.save()
    scored = {"judge_helpfulness": 0.82}
    QueueItem.objects.create(
        project=project,
        interaction=InteractionFactory(project=project, external_id="s-1", scores=scored),
    )
    api = client_for(annotator)
    first = api.post(reverse("labeling_api:queue-next", kwargs={"slug": project.slug})).json()
    assert first["suggestion"] is None  # off by default
    api.post(
        reverse("labeling_api:assignment-submit", kwargs={"assignment_id": first["id"]}),
        {"values": {"quality": 4}},
        format="json",
    )
    assert Annotation.objects.get().saw_suggestion is False

    admin = member(Role.ADMIN)
    patched = client_for(admin).patch(
        reverse("labeling_api:project", kwargs={"slug": project.slug}),
        {"show_suggestions": True},
        format="json",
    )
    assert patched.status_code == 200
    assert patched.json()["show_suggestions"] is True
    project.refresh_from_db()
    QueueItem.objects.create(
        project=project,
        interaction=InteractionFactory(project=project, external_id="s-2", scores=scored),
    )
    QueueItem.objects.create(
        project=project, interaction=InteractionFactory(project=project, external_id="s-3")
    )
    second = api.post(reverse("labeling_api:queue-next", kwargs={"slug": project.slug})).json()
    assert second["suggestion"] == {"source": "judge", "name": "judge_helpfulness", "score": 0.82}
    api.post(
        reverse("labeling_api:assignment-submit", kwargs={"assignment_id": second["id"]}),
        {"values": {"quality": 5}},
        format="json",
    )
    third = api.post(reverse("labeling_api:queue-next", kwargs={"slug": project.slug})).json()
    assert third["suggestion"] is None  # no score for this one: nothing shown
    api.post(
        reverse("labeling_api:assignment-submit", kwargs={"assignment_id": third["id"]}),
        {"values": {"quality": 5}},
        format="json",
    )
    saw = dict(Annotation.objects.values_list("interaction__external_id", "saw_suggestion"))
    assert saw == {"s-1": False, "s-2": True, "s-3": False}
    edited = annotation_edit(
        annotation_id=Annotation.objects.get(interaction__external_id="s-2").pk,
        actor=annotator,
        values={"quality": 3},
    )
    assert edited.saw_suggestion is True
    bogus = InteractionFactory(project=project, scores={"judge_helpfulness": True})
    assert suggestion_for(project=project, interaction=bogus) is None
