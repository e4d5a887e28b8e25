"""The demo loader: realistic rows through the ingestion service, idempotent."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from labeling import hooks
from labeling.demo import DEMO_SCHEMA, DEMO_USERS, split_dialogue
from labeling.models import Event, Interaction, Membership, Project
from labeling.schema import schema_validate


def test_split_dialogue() -> None:
    text = "\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: bye?\n\nAssistant: Goodbye!"
    messages, response = split_dialogue(text)  # type: ignore[misc]
    assert messages == [
        {"role": "user", "content": "hi there"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye?"},
    ]
    assert response == "Goodbye!"
    assert split_dialogue("\n\nHuman: only a question\n\nAssistant: ") is None


def test_demo_schema_is_valid() -> None:
    schema_validate(DEMO_SCHEMA)


@pytest.mark.django_db(transaction=True)
def test_load_demo_is_idempotent() -> None:
    fired: list[int] = []

    def on_loaded(project_id: int) -> None:
        fired.append(project_id)

    hooks.connect("demo_loaded", on_loaded)
    try:
        out = StringIO()
        call_command("load_demo", "--limit", "60", stdout=out)
        project = Project.objects.get(slug="support-bot")
        n = Interaction.objects.filter(project=project).count()
        events = Event.objects.filter(project=project).count()
        assert 55 <= n <= 60
        assert events > 0
        assert fired == [project.pk]
        for username, _, password in DEMO_USERS:
            assert username in out.getvalue()
            assert password in out.getvalue()
            assert get_user_model().objects.get(username=username).check_password(password)
        assert Membership.objects.filter(project=project).count() == len(DEMO_USERS) - 1
        sample = Interaction.objects.filter(project=project).first()
        assert sample is not None
        assert sample.metadata["simulated"] is True
        assert sample.metadata["truth"] in ("chosen", "rejected")
        assert set(sample.segment) == {"tier", "locale", "surface"}
        assert sample.messages[0]["role"] == "user"
        assert sample.processed_at is not None
        assert "judge_harmless" in sample.scores

        call_command("load_demo", "--limit", "60", stdout=StringIO())
        assert Interaction.objects.filter(project=project).count() == n
        assert Event.objects.filter(project=project).count() == events
        assert Project.objects.filter(slug="support-bot").count() == 1
        assert get_user_model().objects.count() == len(DEMO_USERS)
        assert fired == [project.pk]  # nothing new: no second demo run
    finally:
        hooks._receivers["demo_loaded"].remove(on_loaded)


@pytest.mark.django_db(transaction=True)
def test_the_demo_tells_its_story() -> None:
    """The whole demo: weeks of runs with late labels, part of the queue waiting, part of the pool
    unsampled, and the new version's mobile regression confirmed and alerted on first login."""
    from django.test import Client

    from labeling.models import Annotation, QueueItem
    from sampling.models import Alert, Inclusion, SamplingRun

    call_command("load_demo", stdout=StringIO())
    project = Project.objects.get(slug="support-bot")
    runs = SamplingRun.objects.filter(project=project, status=SamplingRun.Status.DONE)
    assert runs.count() == 5  # weekly over 33 days
    labels = Annotation.objects.filter(queue_item__project=project)
    assert labels.count() > 600
    days = {a.date() for a in labels.values_list("created_at", flat=True)}
    assert len(days) > 25  # labels arrived over weeks, not all at load time
    waiting = QueueItem.objects.filter(project=project, status=QueueItem.Status.OPEN).count()
    assert waiting > 50  # annotators have work
    considered = Inclusion.objects.filter(project=project).values("interaction_id")
    unsampled = Interaction.objects.filter(project=project).exclude(id__in=considered).count()
    assert unsampled > 50  # a new strategy's preview and run have a pool
    alert = Alert.objects.get(project=project, resolved_at__isnull=True)
    assert alert.model_version == "support-bot-2026-11"
    assert alert.baseline == "support-bot-2026-10"
    assert alert.segment == {"surface": "mobile"}
    assert alert.cs_high < 0
    # Labels of the true answers: the estimate covers the simulated truth.
    client = Client()
    client.login(username="manager", password="manager-demo")
    html = client.get(reverse("project-dashboard", kwargs={"slug": "support-bot"})).content.decode()
    assert alert.sentence in html
    assert 'data-testid="monitoring-headline">' + alert.sentence in html
    for testid in ("quality-headline", "bias-headline", "power-headline", "coverage-headline"):
        assert f'data-testid="{testid}">' in html
    # A second load adds nothing.
    call_command("load_demo", stdout=StringIO())
    assert SamplingRun.objects.filter(project=project).count() == 5
    assert Alert.objects.filter(project=project).count() == 1
