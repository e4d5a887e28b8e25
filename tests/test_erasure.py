"""Erasure by external id (a privacy request), through the API and ``manage.py erase``: the
interactions go with their labels (edited ones too), queue items, events and sampling records,
events of ids that never arrived go too, the runs' cells move at once (estimates equal the plain
scan), it is audited, admins only, and bad input is a 400 naming the entry."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.models import RestrictedError
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Annotation, AuditLog, Event, Interaction, Project, QueueItem
from labeling.services.annotations import annotation_edit
from sampling.models import Inclusion, SelectedItem
from tests.conftest import client_for
from tests.factories import MembershipFactory, ProjectFactory, QueueItemFactory, UserFactory
from tests.test_population_cells import build
from tests.test_rating_cells import _assert_cells_current, _assert_estimates


def erase_url(project: Project) -> str:
    return reverse("labeling_api:interactions-erase", kwargs={"slug": project.slug})


def edited_label(project: Project, external_id: str) -> Annotation:
    """An interaction with a label and an edit of it (a version that supersedes the first)."""
    item = QueueItemFactory(interaction__project=project, interaction__external_id=external_id)
    user = UserFactory()
    first = Annotation.objects.create(
        queue_item=item,
        interaction=item.interaction,
        annotator=user,
        values={"quality": 3},
        schema_version=1,
    )
    return annotation_edit(annotation_id=first.pk, actor=user, values={"quality": 5})


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
def test_erase_takes_everything_about_the_ids_and_moves_the_cells() -> None:
    project = build(74)
    admin = UserFactory()
    MembershipFactory(project=project, user=admin, role="admin")
    considered = list(
        Inclusion.objects.filter(project=project, selected=True)
        .order_by("interaction_id")
        .values_list("interaction__external_id", flat=True)[:3]
    )
    assert len(considered) == 3
    newest = edited_label(project, "edited-1")
    assert newest.supersedes_id is not None
    Event.objects.create(
        project=project, external_id="never-arrived", type="copy", occurred_at=newest.created_at
    )
    pks = list(
        Interaction.objects.filter(
            project=project, external_id__in=[*considered, "edited-1"]
        ).values_list("id", flat=True)
    )
    assert SelectedItem.objects.filter(interaction_id__in=pks).exists()
    body = {"external_ids": [*considered, "edited-1", "never-arrived", "unknown-9", "edited-1"]}
    response = client_for(admin).post(erase_url(project), body, format="json")
    assert response.status_code == 200, response.content[:300]
    result = response.json()
    assert result["erased"] == 4
    assert result["labels_erased"] >= 2  # the label and its edit
    assert result["events_erased"] == 1
    assert result["not_found"] == ["never-arrived", "unknown-9"]
    gone = [*considered, "edited-1"]
    assert not Interaction.objects.filter(project=project, external_id__in=gone).exists()
    assert not Annotation.objects.filter(interaction__external_id__in=gone).exists()
    assert not QueueItem.objects.filter(interaction__external_id__in=gone).exists()
    assert not Event.objects.filter(project=project, external_id__in=[*gone, "never-arrived"])
    assert not Inclusion.objects.filter(interaction__external_id__in=gone).exists()
    assert not SelectedItem.objects.filter(interaction_id__in=pks).exists()
    project.refresh_from_db()
    _assert_cells_current(project, "erased")
    _assert_estimates(project, "erased")
    [log] = AuditLog.objects.filter(project=project, action="interactions.erase")
    assert log.actor == admin
    assert log.data["erased"] == 4
    assert sorted(log.data["external_ids"]) == sorted(gone)


def test_only_admins_erase(
    project: Project, api_as: Callable[..., APIClient], ingest_client: APIClient
) -> None:
    edited_label(project, "keep-1")
    body = {"external_ids": ["keep-1"]}
    for role in ("engineer", "reviewer", "annotator"):
        assert api_as(role).post(erase_url(project), body, format="json").status_code == 403
    assert ingest_client.post(erase_url(project), body, format="json").status_code == 403
    assert APIClient().post(erase_url(project), body, format="json").status_code in (401, 403)
    other = ProjectFactory(slug="elsewhere")
    assert api_as("admin", other).post(erase_url(project), body, format="json").status_code in (
        403,
        404,
    )
    assert Interaction.objects.filter(external_id="keep-1").exists()
    assert not AuditLog.objects.filter(action="interactions.erase").exists()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "external_ids"),
        ({"external_ids": []}, "external_ids"),
        ({"external_ids": "keep-1"}, "external_ids"),
        ({"external_ids": ["ok", ""]}, "external_ids"),
        ({"external_ids": ["ok", "x" * 201]}, "external_ids"),
        ({"external_ids": ["ok", "bad\x00"]}, "external_ids[1]"),
        ({"external_ids": [f"id-{i}" for i in range(10_001)]}, "external_ids"),
    ],
)
def test_bad_erasure_requests_name_the_field_and_erase_nothing(
    project: Project, api_as: Callable[..., APIClient], body: Any, where: str
) -> None:
    edited_label(project, "ok")
    response = api_as("admin").post(erase_url(project), body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert where in response.json()["errors"], response.json()
    assert Interaction.objects.filter(external_id="ok").exists()


def test_an_edited_label_goes_with_its_interaction_but_not_alone(project: Project) -> None:
    """The edit chain (a version supersedes the one before) no longer blocks deleting the
    interaction (it did: PROTECT); deleting an old version alone is still refused."""
    newest = edited_label(project, "chain")
    with pytest.raises(RestrictedError):
        Annotation.objects.get(pk=newest.supersedes_id).delete()
    Interaction.objects.get(external_id="chain").delete()
    assert not Annotation.objects.exists()
    edited_label(project, "chain-2")
    Project.objects.filter(pk=project.pk).delete()  # a whole project with edited labels
    assert not Annotation.objects.exists()


def test_the_erase_command(project: Project, tmp_path: Path) -> None:
    edited_label(project, "cli-1")
    edited_label(project, "cli-2")
    ids = tmp_path / "ids.txt"
    ids.write_text("cli-1\n\n  cli-2  \nnope\n")
    out = StringIO()
    call_command("erase", str(ids), project=project.slug, stdout=out)
    text = out.getvalue()
    assert "erased 2 interactions" in text
    assert "1 ids not found" in text
    assert "not found: nope" in text
    assert not Interaction.objects.filter(project=project).exists()
    with pytest.raises(CommandError, match="No project"):
        call_command("erase", str(ids), project="nope")
    with pytest.raises(CommandError, match="No such file"):
        call_command("erase", str(tmp_path / "missing.txt"), project=project.slug)
    bad = tmp_path / "bad.txt"
    bad.write_text("fine\n" + "y" * 201 + "\n")
    with pytest.raises(CommandError, match="line 2"):
        call_command("erase", str(bad), project=project.slug)


def test_an_admin_erases_one_interaction_from_its_page(
    project: Project, member: Callable[..., Any]
) -> None:
    from django.test import Client

    newest = edited_label(project, "page-1")
    interaction = newest.interaction
    admin, reviewer = Client(), Client()
    admin.force_login(member("admin"))
    reviewer.force_login(member("reviewer"))
    item = reverse("data-item", kwargs={"slug": project.slug, "interaction_id": interaction.pk})
    page = reverse("data-erase", kwargs={"slug": project.slug, "interaction_id": interaction.pk})
    assert page in admin.get(item).content.decode()
    assert page not in reviewer.get(item).content.decode()
    assert reviewer.get(page).status_code == 403
    assert reviewer.post(page).status_code == 403
    ask = admin.get(page).content.decode()
    assert "Erase <code>page-1</code>?" in ask
    assert "2 labels (every version)" in ask
    done = admin.post(page, follow=True)
    assert done.redirect_chain[-1][0] == reverse("data-browser", kwargs={"slug": project.slug})
    assert "Erased page-1 with 2 labels and everything else" in done.content.decode()
    assert not Interaction.objects.filter(pk=interaction.pk).exists()
    assert AuditLog.objects.filter(action="interactions.erase").count() == 1
    assert admin.get(page).status_code == 404
