"""Deleting interactions from code (a retention script, the shell) keeps the per-run aggregates
true: each deleted considered interaction leaves its run's population cell and topic cell in the
deleting transaction, so the cells equal a rebuild from the inclusions that remain, the estimates
equal the plain scan, and the cached selected items are read again. Deleting a project does not
walk its interactions one by one (its cells go with it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from labeling.models import Interaction, Project
from sampling.models import Inclusion, PopulationCell, SelectedItem, TopicCell
from sampling.selectors import labelled
from sampling.services.topic_cells import topic_cells_rebuild
from tests.factories import ProjectFactory
from tests.test_population_cells import build
from tests.test_rating_cells import _assert_cells_current, _assert_estimates
from tests.test_topic_cells import _assert_same as _assert_topic_coverage
from tests.test_topic_cells import _cell_rows as _topic_rows
from tests.test_topic_cells import _cluster_some


def _assert_topic_cells_current(project: Project, context: Any) -> None:
    moved = _topic_rows(project)
    topic_cells_rebuild(project=project)
    assert _topic_rows(project) == moved, context


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
@pytest.mark.parametrize("seed", range(70, 78))
def test_deleted_interactions_leave_their_cells(seed: int) -> None:
    project = build(seed)
    rng = np.random.default_rng(seed)
    _cluster_some(project, rng, share=float(rng.choice([0.0, 0.5, 1.0])))
    topic_cells_rebuild(project=project)
    before = labelled.selected_items(project=project).size  # cached from here on
    ids = list(Interaction.objects.filter(project=project).values_list("id", flat=True))
    considered = set(
        Inclusion.objects.filter(project=project).values_list("interaction_id", flat=True)
    )
    chosen = [i for i in ids if rng.random() < 0.3]
    if chosen:  # one through the instance, the rest through a queryset (the admin's bulk action)
        Interaction.objects.get(pk=chosen[0]).delete()
        Interaction.objects.filter(pk__in=chosen[1:]).delete()
    project.refresh_from_db()  # as the next request reads it (its updated_at was touched)
    _assert_cells_current(project, (seed, "deleted"))
    _assert_topic_cells_current(project, (seed, "deleted"))
    _assert_estimates(project, (seed, "deleted"))
    _assert_topic_coverage(project, (seed, "deleted"))
    after = labelled.selected_items(project=project)
    assert after.size == SelectedItem.objects.filter(project=project, run__status="done").count()
    assert not set(after.interaction_id.tolist()) & set(chosen)
    if set(chosen) & set(SelectedItem.objects.values_list("interaction_id", flat=True)):
        pytest.fail("a deleted interaction kept its selected-items row")
    assert after.size <= before
    if not considered & set(chosen):
        return
    # Every considered interaction gone: no cell of this project counts anything.
    Interaction.objects.filter(project=project).delete()
    assert not PopulationCell.objects.filter(project=project).exists()
    assert not TopicCell.objects.filter(project=project, n__gt=0).exists()


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
def test_deleting_a_project_does_not_take_its_interactions_out_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sampling.services import population

    project = build(71)
    calls: list[Any] = []
    monkeypatch.setattr(population, "population_cells_forget", lambda **kw: calls.append(kw))
    assert PopulationCell.objects.filter(project=project).exists()
    Project.objects.filter(pk=project.pk).delete()
    assert calls == []
    assert not PopulationCell.objects.filter(project_id=project.pk).exists()
    assert not Interaction.objects.filter(project_id=project.pk).exists()
    other = build(72)
    other.delete()  # the instance's delete too
    assert calls == []


@pytest.mark.django_db
def test_deleting_an_interaction_no_run_considered_changes_no_cell() -> None:
    project = ProjectFactory(slug="lone")
    from tests.factories import InteractionFactory

    interaction = InteractionFactory(project=project)
    interaction.delete()
    assert not PopulationCell.objects.filter(project=project).exists()


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:DateTimeField Interaction.occurred_at received a naive")
def test_the_admin_deletes_a_considered_interaction_with_its_inclusions(admin_client: Any) -> None:
    """A privacy request, from the admin: the delete page lists the interaction's inclusions and
    takes them with it (the cells move in the same transaction), one by one or with the bulk
    action. An inclusion alone still cannot be deleted from its own pages."""
    from django.urls import reverse

    project = build(73)
    considered = list(
        Inclusion.objects.filter(project=project)
        .order_by("interaction_id")
        .values_list("interaction_id", flat=True)
        .distinct()
    )
    assert len(considered) >= 3
    one, *rest = considered[:3]
    page = reverse("admin:labeling_interaction_delete", args=[one])
    confirm = admin_client.get(page)
    assert confirm.status_code == 200
    text = confirm.content.decode()
    assert "Inclusion" in text or "inclusion" in text
    assert "permission to delete" not in text
    done = admin_client.post(page, {"post": "yes"})
    assert done.status_code == 302, done.content[:500]
    bulk = admin_client.post(
        reverse("admin:labeling_interaction_changelist"),
        {"action": "delete_selected", "_selected_action": rest, "post": "yes"},
    )
    assert bulk.status_code == 302, bulk.content[:500]
    gone = [one, *rest]
    assert not Interaction.objects.filter(pk__in=gone).exists()
    assert not Inclusion.objects.filter(interaction_id__in=gone).exists()
    project.refresh_from_db()
    _assert_cells_current(project, "admin")
    _assert_estimates(project, "admin")
    inclusion = Inclusion.objects.filter(project=project).first()
    assert inclusion is not None
    own = admin_client.get(reverse("admin:sampling_inclusion_delete", args=[inclusion.pk]))
    assert own.status_code == 403
    listed = admin_client.post(
        reverse("admin:sampling_inclusion_changelist"),
        {"action": "delete_selected", "_selected_action": [inclusion.pk], "post": "yes"},
    )
    assert listed.status_code in (200, 302, 403)
    assert Inclusion.objects.filter(pk=inclusion.pk).exists()
