"""The strategies and sampling-runs API: shapes, validation messages, permissions, 202 runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test.utils import override_settings
from django.urls import reverse

from labeling.models import Project, Role
from sampling.models import Inclusion, SamplingRun, SamplingStrategy
from tests.factories import ProjectFactory
from tests.sampling_fixtures import seed_interactions

STRATEGY = {
    "name": "weekly",
    "weights": {"uncertainty": 0.6, "coverage": 0.2, "random": 0.2},
    "batch_size": 30,
    "filters": {"model_versions": ["model-a"], "segment": {"tier": ["pro", "free"]}},
    "segment_minimums": {"tier": 10},
    "overlap_fraction": 0.1,
    "overlap_k": 3,
    "holdout_fraction": 0.1,
    "schedule": None,
    "active": True,
}


@pytest.fixture(autouse=True)
def _model_root(tmp_path: Path):
    with override_settings(MODEL_ROOT=tmp_path / "models"):
        yield


def _url(project: Project, name: str, **kwargs: object) -> str:
    return reverse(f"sampling_api:{name}", kwargs={"slug": project.slug, **kwargs})


def test_create_read_list_and_patch_a_strategy(project: Project, api_as) -> None:
    admin = api_as(Role.ADMIN)
    created = admin.post(_url(project, "strategies"), STRATEGY, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    for key, value in STRATEGY.items():
        assert body[key] == value, key
    assert body["mode"] == "probabilistic"
    detail = admin.get(_url(project, "strategy", strategy_id=body["id"]))
    assert detail.status_code == 200
    assert detail.json()["name"] == "weekly"
    listing = admin.get(_url(project, "strategies")).json()
    assert listing["count"] == 1
    assert listing["results"][0]["id"] == body["id"]
    patched = admin.patch(
        _url(project, "strategy", strategy_id=body["id"]),
        {"batch_size": 50, "weights": {"uncertainty": 0.5, "random": 0.5}},
        format="json",
    )
    assert patched.status_code == 200, patched.json()
    assert patched.json()["batch_size"] == 50
    assert patched.json()["weights"] == {"uncertainty": 0.5, "coverage": 0.0, "random": 0.5}
    assert patched.json()["filters"] == STRATEGY["filters"]  # untouched


@pytest.mark.parametrize(
    ("change", "location", "words"),
    [
        (
            {"weights": {"uncertainty": 0.97, "coverage": 0.0, "random": 0.03}},
            "weights.random",
            "0.05",
        ),
        ({"weights": {"uncertainty": 0.6, "coverage": 0.6, "random": 0.2}}, "weights", "sum to 1"),
        (
            {"weights": {"uncertainty": 0.8, "random": 0.2, "diversity": 0.0}},
            "weights.diversity",
            "unknown",
        ),
        ({"batch_size": 0}, "batch_size", "from 1"),
        ({"filters": {"since": "yesterday"}}, "filters.since", "ISO 8601"),
        (
            {"filters": {"since": "2026-11-20T00:00:00Z", "until": "2026-11-19T00:00:00Z"}},
            "filters.until",
            "later",
        ),
        ({"filters": {"segment": {"tier": "pro"}}}, "filters.segment.tier", "list"),
        ({"segment_minimums": {"country": 5}}, "segment_minimums.country", "segment key"),
        ({"overlap_fraction": 1.5}, "overlap_fraction", "0 to"),
        ({"overlap_k": 1}, "overlap_k", "at least 2"),
        ({"holdout_fraction": 1.0}, "holdout_fraction", "below 1"),
        ({"schedule": "every hour"}, "schedule", "5 fields"),
        ({"schedule": "61 * * * *"}, "schedule", "invalid crontab"),
        ({"uncertainty_measure": "vibes"}, "uncertainty_measure", "entropy"),
        ({"mode": "greedy"}, "mode", "deterministic"),
        ({"name": ""}, "name", "required"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_validation_names_the_field_and_the_problem(
    project: Project, api_as, change: dict, location: str, words: str
) -> None:
    response = api_as(Role.ADMIN).post(
        _url(project, "strategies"), {**STRATEGY, **change}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["detail"]
    assert location in body["errors"], body
    assert words in " ".join(body["errors"][location]), body
    assert not SamplingStrategy.objects.exists()


def test_duplicate_names_are_rejected(project: Project, api_as) -> None:
    admin = api_as(Role.ADMIN)
    assert admin.post(_url(project, "strategies"), STRATEGY, format="json").status_code == 201
    again = admin.post(_url(project, "strategies"), STRATEGY, format="json")
    assert again.status_code == 400
    assert "already exists" in again.json()["errors"]["name"][0]


def test_permissions(project: Project, other_project: Project, api_as) -> None:
    for role in (Role.ANNOTATOR, Role.REVIEWER, Role.ENGINEER):
        response = api_as(role).post(_url(project, "strategies"), STRATEGY, format="json")
        assert response.status_code == 403, role
    assert api_as(Role.ANNOTATOR).get(_url(project, "strategies")).status_code == 403
    assert api_as(Role.ENGINEER).get(_url(project, "strategies")).status_code == 200
    strategy = SamplingStrategy.objects.create(
        project=project, name="x", weights=STRATEGY["weights"]
    )
    outsider = api_as(Role.ADMIN, project=other_project)
    assert outsider.get(_url(project, "strategies")).status_code == 404
    assert outsider.get(_url(project, "strategy", strategy_id=strategy.pk)).status_code == 404
    assert outsider.post(_url(project, "runs"), {"strategy": strategy.pk}).status_code == 404
    # another project's strategy id through one's own project: 404 / 400, never the object
    assert outsider.get(_url(other_project, "strategy", strategy_id=strategy.pk)).status_code == 404
    response = outsider.post(_url(other_project, "runs"), {"strategy": strategy.pk}, format="json")
    assert response.status_code == 400
    assert "strategy" in response.json()["errors"]
    assert (
        api_as(Role.ENGINEER).post(_url(project, "runs"), {"strategy": strategy.pk}).status_code
        == 403
    )


def test_start_and_follow_a_run(
    project: Project, api_as, django_capture_on_commit_callbacks
) -> None:
    seed_interactions(project, 150)
    admin = api_as(Role.ADMIN)
    strategy_id = admin.post(
        _url(project, "strategies"), {**STRATEGY, "filters": {}}, format="json"
    ).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        started = admin.post(_url(project, "runs"), {"strategy": strategy_id}, format="json")
    assert started.status_code == 202
    assert set(started.json()) == {"id", "status"}
    assert started.json()["status"] == "pending"
    detail = api_as(Role.ENGINEER).get(_url(project, "run", run_id=started.json()["id"]))
    assert detail.status_code == 200
    run = detail.json()
    assert run["status"] == "done"
    assert run["pool_size"] == 150
    assert run["expected_size"] == pytest.approx(30)
    assert run["selected_count"] == Inclusion.objects.filter(selected=True).count()
    for key in ("holdout_count", "proxy_model", "started_at", "finished_at", "error"):
        assert key in run
    listing = admin.get(_url(project, "runs")).json()
    assert listing["results"][0]["id"] == run["id"]


def test_run_of_unknown_strategy_is_a_400(project: Project, api_as) -> None:
    response = api_as(Role.ADMIN).post(_url(project, "runs"), {"strategy": 999}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["strategy"]
    assert not SamplingRun.objects.exists()


def test_preview_endpoint_writes_nothing(project: Project, api_as) -> None:
    seed_interactions(project, 80)
    response = api_as(Role.ADMIN).post(
        _url(project, "strategy-preview"), {**STRATEGY, "filters": {}}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["pool_size"] == 80
    assert body["expected_size"] == pytest.approx(30)
    assert {s["value"] for s in body["segments"]["tier"]} <= {"free", "pro"}
    assert not SamplingStrategy.objects.exists()
    assert not Inclusion.objects.exists()


def test_sample_command(project: Project) -> None:
    from django.core.management import call_command

    seed_interactions(project, 40)
    SamplingStrategy.objects.create(
        project=project, name="default", weights=STRATEGY["weights"], batch_size=10
    )
    call_command("sample", project=project.slug, strategy="default", seed=5)
    run = SamplingRun.objects.get(project=project)
    assert run.status == SamplingRun.Status.DONE
    assert run.seed == 5
    assert Inclusion.objects.filter(run=run).count() == 40


def test_other_projects_runs_are_invisible(project: Project, api_as) -> None:
    other = ProjectFactory(slug="third")
    run = SamplingRun.objects.create(project=other)
    assert api_as(Role.ADMIN).get(_url(project, "run", run_id=run.pk)).status_code == 404
