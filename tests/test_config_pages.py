"""Configuration pages: strategy form (validation in place, preview, save), schema editor,
members and ingestion tokens (shown once, revocable)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
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
    project.refresh_from_db()
    assert project.label_schema == before


@pytest.mark.django_db
def test_schema_editor_shows_the_current_schema_and_preview_box(
    project: Project, admin_client: Client
) -> None:
    html = admin_client.get(reverse("project-schema", args=[project.slug])).content.decode()
    assert "&quot;failure_modes&quot;" in html
    assert 'data-testid="schema-preview"' in html
    assert "flywheel/config.js" in html
