"""Configuration pages: strategy form (validation in place, preview, save), schema editor,
members and ingestion tokens (shown once, revocable)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.template.defaultfilters import floatformat
from django.test import Client
from django.urls import reverse

from labeling.models import Project, Role
from sampling.forms import StrategyForm, parse_key_lines
from sampling.models import SamplingStrategy

VALID = {
    "name": "nightly",
    "mode": "probabilistic",
    "weight_uncertainty": "0.6",
    "weight_coverage": "0.2",
    "weight_random": "0.2",
    "uncertainty_measure": "sqrt",
    "batch_size": "120",
    "model_versions": "model-a, model-b",
    "segment_filter": "tier: pro, free",
    "since": "",
    "until": "",
    "segment_minimums": "tier: 25",
    "overlap_fraction": "0.1",
    "overlap_k": "3",
    "holdout_fraction": "0.1",
    "schedule": "0 6 * * *",
    "active": "on",
}


@pytest.fixture
def admin_client(member: Callable[..., Any]) -> Client:
    client = Client()
    client.force_login(member(Role.ADMIN))
    return client


def field_errors(html: str, field: str) -> str:
    """The error list rendered under one form field ('' when none)."""
    block = html.split(f'data-field="{field}"', 1)[1].split('<div class="field', 1)[0]
    return block.split('class="errorlist"', 1)[1] if 'class="errorlist"' in block else ""


def test_parse_key_lines() -> None:
    assert parse_key_lines("tier: pro, enterprise\n\nlocale=de", numbers=False) == {
        "tier": ["pro", "enterprise"],
        "locale": ["de"],
    }
    assert parse_key_lines("tier: 30", numbers=True) == {"tier": 30}
    with pytest.raises(Exception, match="whole number"):
        parse_key_lines("tier: many", numbers=True)


def test_strategy_form_builds_the_api_shape() -> None:
    form = StrategyForm(VALID)
    assert form.is_valid(), form.errors
    data = form.strategy_data()
    assert data["weights"] == {"uncertainty": 0.6, "coverage": 0.2, "random": 0.2}
    assert data["filters"] == {
        "model_versions": ["model-a", "model-b"],
        "segment": {"tier": ["pro", "free"]},
    }
    assert data["segment_minimums"] == {"tier": 25}
    assert data["schedule"] == "0 6 * * *"


@pytest.mark.django_db
def test_admin_creates_a_strategy(project: Project, admin_client: Client) -> None:
    url = reverse("project-strategy-new", args=[project.slug])
    response = admin_client.post(url, {**VALID, "action": "save"})
    assert response.status_code == 302, response.content.decode()[:2000]
    strategy = SamplingStrategy.objects.get(project=project, name="nightly")
    assert strategy.batch_size == 120
    assert strategy.weights["uncertainty"] == pytest.approx(0.6)
    assert strategy.filters["segment"] == {"tier": ["pro", "free"]}
    assert strategy.segment_minimums == {"tier": 25}
    assert strategy.overlap_k == 3
    # Editing shows the stored values and saves changes.
    edit = reverse("project-strategy", args=[project.slug, strategy.pk])
    assert "tier: pro, free" in admin_client.get(edit).content.decode()
    admin_client.post(edit, {**VALID, "batch_size": "77", "action": "save"})
    strategy.refresh_from_db()
    assert strategy.batch_size == 77


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"weight_random": "0.3"}, "weight_random", "sum to 1"),
        (
            {"weight_random": "0.01", "weight_uncertainty": "0.79"},
            "weight_random",
            "at least 0.05",
        ),
        ({"schedule": "every day"}, "schedule", "crontab"),
        ({"segment_minimums": "colour: 3"}, "segment_minimums", "not a segment key"),
        ({"segment_minimums": "tier: lots"}, "segment_minimums", "whole number"),
        ({"overlap_k": "1"}, "overlap_k", "at least 2"),
        ({"batch_size": "0"}, "batch_size", "greater than or equal to 1"),
    ],
)
def test_strategy_errors_are_shown_in_place(
    project: Project, admin_client: Client, change: dict[str, str], field: str, message: str
) -> None:
    url = reverse("project-strategy-new", args=[project.slug])
    response = admin_client.post(url, {**VALID, **change, "action": "save"})
    assert response.status_code == 200
    html = response.content.decode()
    assert message in field_errors(html, field)
    assert not SamplingStrategy.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_duplicate_strategy_name_is_refused(project: Project, admin_client: Client) -> None:
    url = reverse("project-strategy-new", args=[project.slug])
    admin_client.post(url, {**VALID, "action": "save"})
    html = admin_client.post(url, {**VALID, "action": "save"}).content.decode()
    assert "already exists" in field_errors(html, "name")
    assert SamplingStrategy.objects.filter(project=project).count() == 1


@pytest.mark.django_db
def test_schema_editor_rejects_bad_json_and_bad_schemas(
    project: Project, admin_client: Client
) -> None:
    url = reverse("project-schema", args=[project.slug])
    before = dict(project.label_schema)
    html = admin_client.post(url, {"schema": '{"questions": ['}).content.decode()
    assert "not valid JSON" in field_errors(html, "schema")
    bad = '{"questions": [{"key": "q", "type": "rating"}], "target": {"question": "q"}}'
    html = admin_client.post(url, {"schema": bad}).content.decode()
    errors = field_errors(html, "schema")
    assert "questions[0]" in errors  # the message names the question
    nul = json.dumps(before).replace('"key"', '"title": "Q\\u0000", "key"', 1)
    html = admin_client.post(url, {"schema": nul}).content.decode()
    assert "contains the NUL character" in field_errors(html, "schema")
    project.refresh_from_db()
    assert project.label_schema == before


@pytest.mark.django_db
def test_schema_editor_shows_the_current_schema_and_preview_box(
    project: Project, admin_client: Client
) -> None:
    html = admin_client.get(reverse("project-schema", args=[project.slug])).content.decode()
    assert "&quot;failure_modes&quot;" in html
    assert 'data-testid="schema-preview"' in html
    assert "flywheel/schema.js" in html


@pytest.mark.django_db
def test_strategy_preview_shows_the_preview_selector_numbers_without_saving(
    project: Project, admin_client: Client
) -> None:
    from sampling.selectors.strategies import strategy_preview
    from tests.factories import InteractionFactory

    for i in range(30):
        InteractionFactory(project=project, segment={"tier": "pro" if i % 3 else "free"})
    url = reverse("project-strategy-new", args=[project.slug])
    typed = {**VALID, "segment_filter": "", "batch_size": "10"}
    response = admin_client.post(url, {**typed, "action": "preview"})
    assert response.status_code == 200
    html = response.content.decode()
    assert not SamplingStrategy.objects.filter(project=project).exists()
    form = StrategyForm(typed)
    assert form.is_valid()
    expected = strategy_preview(strategy_data=form.strategy_data(), project=project)
    assert f'data-testid="pool-size">{expected["pool_size"]}<' in html
    assert expected["pool_size"] == 30
    assert expected["min_pi"] < 1
    assert f'data-testid="min-pi">{floatformat(expected["min_pi"], "-5")}<' in html
    for name, value in expected["components"].items():
        assert f'<tr data-component="{name}"><td>{name}</td><td class="num">{value:.1f}<' in html
    for row in expected["segments"]["tier"]:
        assert f'data-segment="tier={row["value"]}"' in html
    # The form keeps what was typed, so "save" after a preview saves the same strategy.
    assert 'value="nightly"' in html


@pytest.mark.django_db
def test_preview_errors_are_shown_in_place(project: Project, admin_client: Client) -> None:
    url = reverse("project-strategy-new", args=[project.slug])
    html = admin_client.post(
        url, {**VALID, "weight_random": "0.5", "action": "preview"}
    ).content.decode()
    assert "sum to 1" in field_errors(html, "weight_random")
    assert 'data-testid="strategy-preview"' not in html


@pytest.mark.django_db
def test_valid_schema_is_saved_as_a_new_version(project: Project, admin_client: Client) -> None:
    url = reverse("project-schema", args=[project.slug])
    schema = {
        "questions": [{"key": "ok", "type": "binary", "prompt": "Acceptable?", "required": True}],
        "target": {"question": "ok", "good": [True]},
    }
    import json

    response = admin_client.post(url, {"schema": json.dumps(schema)})
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.label_schema["questions"][0]["key"] == "ok"


@pytest.mark.django_db
def test_token_is_shown_once_and_revocable(project: Project, admin_client: Client) -> None:
    from labeling.auth import hash_key
    from labeling.models import IngestToken

    url = reverse("project-tokens", args=[project.slug])
    created = admin_client.post(url, {"name": "prod-chat"})
    assert created.status_code == 302  # post/redirect/get: a reload cannot create a second one
    response = admin_client.get(created["Location"])
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    key = html.split('class="keybox" id="new-key">', 1)[1].split("<", 1)[0]
    token = IngestToken.objects.get(project=project, name="prod-chat")
    assert token.key_hash == hash_key(key)
    # The key works for ingestion...
    from rest_framework.test import APIClient

    ingest = APIClient()
    ingest.credentials(HTTP_AUTHORIZATION=f"Ingest {key}")
    body = {
        "external_id": "x-1",
        "occurred_at": "2026-11-20T10:00:00Z",
        "messages": [{"role": "user", "content": "hi"}],
        "response": "hello",
    }
    assert ingest.post(
        reverse("labeling_api:interactions", kwargs={"slug": project.slug}), body, format="json"
    )
    # ...and is never shown again.
    assert key not in admin_client.get(url).content.decode()
    revoke = reverse("project-token-revoke", args=[project.slug, token.pk])
    asked = admin_client.post(revoke)
    assert asked.status_code == 200  # a confirmation page first
    token.refresh_from_db()
    assert token.revoked_at is None
    assert admin_client.post(revoke, {"confirm": "1"}).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    again = ingest.post(
        reverse("labeling_api:interactions", kwargs={"slug": project.slug}), body, format="json"
    )
    assert again.status_code == 401
    assert "revoked" in admin_client.get(url).content.decode()


@pytest.mark.django_db
def test_members_page_adds_changes_and_removes(
    project: Project, admin_client: Client, member: Callable[..., Any]
) -> None:
    from labeling.models import Membership
    from tests.factories import UserFactory

    newcomer = UserFactory(username="newcomer")
    url = reverse("project-members", args=[project.slug])
    assert admin_client.post(url, {"username": "newcomer", "role": "annotator"}).status_code == 302
    membership = Membership.objects.get(project=project, user=newcomer)
    assert membership.role == Role.ANNOTATOR
    change = reverse("project-member-change", args=[project.slug, membership.pk])
    admin_client.post(change, {"role": "reviewer"})
    membership.refresh_from_db()
    assert membership.role == Role.REVIEWER
    html = admin_client.post(url, {"username": "nobody", "role": "annotator"}).content.decode()
    assert "No user with this username" in field_errors(html, "username")
    admin_client.post(change, {"remove": "1"})
    assert not Membership.objects.filter(project=project, user=newcomer).exists()


@pytest.mark.django_db
def test_last_admin_cannot_be_removed(project: Project, member: Callable[..., Any]) -> None:
    from labeling.models import Membership

    admin = member(Role.ADMIN)
    client = Client()
    client.force_login(admin)
    membership = Membership.objects.get(project=project, user=admin)
    change = reverse("project-member-change", args=[project.slug, membership.pk])
    asked = client.post(change, {"remove": "1"})
    assert "the only admin" in asked.content.decode()
    response = client.post(change, {"remove": "1", "confirm": "1"}, follow=True)
    assert "at least one admin" in response.content.decode()
    assert Membership.objects.filter(pk=membership.pk).exists()


@pytest.mark.django_db
def test_admin_who_demotes_themself_lands_on_home(
    project: Project, member: Callable[..., Any]
) -> None:
    from labeling.models import Membership

    member(Role.ADMIN)  # another admin keeps the project configurable
    me = member(Role.ADMIN)
    client = Client()
    client.force_login(me)
    mine = Membership.objects.get(project=project, user=me)
    response = client.post(
        reverse("project-member-change", args=[project.slug, mine.pk]),
        {"role": "engineer", "confirm": "1"},
    )
    assert response["Location"] == reverse("home")
    mine.refresh_from_db()
    assert mine.role == Role.ENGINEER
