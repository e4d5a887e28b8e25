"""Annotation history (edits make versions), adjudication versions, schema changes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from labeling.models import Annotation, AuditLog, LabelSchemaVersion, Project, Role
from labeling.schema import DEFAULT_SCHEMA, SchemaError
from labeling.selectors.labels import final_labels
from labeling.services.annotations import annotation_adjudicate
from labeling.services.queue import assignment_claim, assignment_submit
from labeling.services.schemas import schema_change
from tests.conftest import client_for
from tests.factories import QueueItemFactory

pytestmark = pytest.mark.django_db


def labelled(project: Project, user: Any, values: dict[str, Any]) -> Annotation:
    QueueItemFactory(interaction__project=project)
    lease = assignment_claim(project=project, annotator=user)
    assert lease is not None
    return assignment_submit(assignment_id=lease.pk, annotator=user, values=values)


def test_edit_makes_a_new_version_and_keeps_history(
    project: Project, member: Callable[..., Any]
) -> None:
    user = member()
    first = labelled(project, user, {"quality": 2})
    client = client_for(user)
    response = client.post(
        reverse("labeling_api:annotation-edit", kwargs={"annotation_id": first.pk}),
        {"values": {"quality": 4}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["version"], body["supersedes"], body["is_current"]) == (2, first.pk, True)
    first.refresh_from_db()
    assert first.is_current is False
    assert first.values == {"quality": 2}  # never overwritten
    audit = AuditLog.objects.get(action="annotation.edited")
    assert audit.data == {"supersedes": first.pk, "before": {"quality": 2}, "after": {"quality": 4}}
    assert final_labels(project=project)[first.interaction_id]["quality"] == 4.0
    # Editing the old version is refused; the history lists both versions.
    stale = client.post(
        reverse("labeling_api:annotation-edit", kwargs={"annotation_id": first.pk}),
        {"values": {"quality": 1}},
        format="json",
    )
    assert stale.status_code == 409
    history = client.get(
        reverse(
            "labeling_api:annotation-history",
            kwargs={"slug": "support-bot", "item_id": first.queue_item_id},
        )
    )
    assert [(r["version"], r["is_current"]) for r in history.json()["results"]] == [
        (1, False),
        (2, True),
    ]


def test_edit_validates_and_is_scoped_to_the_author(
    project: Project, member: Callable[..., Any]
) -> None:
    author, other = member(), member()
    annotation = labelled(project, author, {"quality": 2})
    url = reverse("labeling_api:annotation-edit", kwargs={"annotation_id": annotation.pk})
    assert client_for(other).post(url, {"values": {"quality": 1}}, format="json").status_code == 404
    bad = client_for(author).post(url, {"values": {"quality": 0}}, format="json")
    assert bad.status_code == 400
    assert "quality" in bad.json()["errors"]["values"]
    assert Annotation.objects.count() == 1
    # Another annotator cannot read the author's history of the item either.
    history = reverse(
        "labeling_api:annotation-history",
        kwargs={"slug": "support-bot", "item_id": annotation.queue_item_id},
    )
    assert client_for(other).get(history).status_code == 404
    reviewer = client_for(member(Role.REVIEWER))
    assert reviewer.get(history).json()["count"] == 1


def test_second_adjudication_supersedes_the_first(
    project: Project, member: Callable[..., Any]
) -> None:
    annotation = labelled(project, member(), {"quality": 2})
    r1, r2 = member(Role.REVIEWER), member(Role.REVIEWER)
    first = annotation_adjudicate(
        queue_item=annotation.queue_item, reviewer=r1, values={"quality": 3}
    )
    second = annotation_adjudicate(
        queue_item=annotation.queue_item, reviewer=r2, values={"quality": 5}
    )
    first.refresh_from_db()
    assert (first.is_current, second.version, second.supersedes_id) == (False, 2, first.pk)
    assert final_labels(project=project)[annotation.interaction_id]["quality"] == 5
    assert AuditLog.objects.filter(action="annotation.adjudicated").count() == 2


def test_schema_change_versions_only_once_labels_exist(
    project: Project, member: Callable[..., Any]
) -> None:
    admin = member(Role.ADMIN)
    changed = copy.deepcopy(DEFAULT_SCHEMA)
    changed["questions"][0]["prompt"] = "Rate the answer"
    project = schema_change(project=project, schema=changed, actor=admin)
    assert project.schema_version == 1  # nothing labelled yet: replaced in place
    assert (
        LabelSchemaVersion.objects.get(project=project, version=1).schema["questions"][0]["prompt"]
        == "Rate the answer"
    )
    annotation = labelled(project, member(), {"quality": 3})
    assert annotation.schema_version == 1
    changed["questions"][1]["options"].append("off-topic")
    project = schema_change(project=project, schema=changed, actor=admin)
    assert project.schema_version == 2
    versions = dict(
        LabelSchemaVersion.objects.filter(project=project).values_list("version", "schema")
    )
    assert set(versions) == {1, 2}
    assert "off-topic" not in versions[1]["questions"][1]["options"]
    assert "off-topic" in versions[2]["questions"][1]["options"]
    annotation.refresh_from_db()
    assert annotation.schema_version == 1  # old annotations keep theirs
    # The same schema again is a no-op; an invalid one is refused with located errors.
    assert schema_change(project=project, schema=changed, actor=admin).schema_version == 2
    broken = copy.deepcopy(changed)
    broken["questions"][0]["scale"] = []
    with pytest.raises(SchemaError) as info:
        schema_change(project=project, schema=broken, actor=admin)
    assert "questions[0].scale" in info.value.errors
    project.refresh_from_db()
    assert project.schema_version == 2
