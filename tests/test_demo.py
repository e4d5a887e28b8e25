"""The demo loader: realistic rows through the ingestion service, idempotent."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

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
