"""The eval export kind: rows field by field, the manifest's design, and the round trip to the
same estimate from the file alone (the recipe in docs/estimates.md, run verbatim)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labeling.models import Annotation, Export, Project
from labeling.services.exports import export_create, export_run, manifest_path_for
from sampling.evalset import estimate_from_rows
from tests.estimate_fixtures import response_rates, seed_project
from tests.factories import InteractionFactory, QueueItemFactory, UserFactory


@pytest.fixture(autouse=True)
def export_root(settings: Any, tmp_path: Path) -> Path:
    settings.EXPORT_ROOT = tmp_path / "exports"
    return settings.EXPORT_ROOT


def run_eval(project: Project, **params: Any) -> tuple[Export, list[dict[str, Any]]]:
    export = export_create(project=project, kind="eval", enqueue=False, **params)
    done = export_run(export_id=export.id)
    assert done is not None
    assert done.status == Export.Status.DONE, done.error
    with open(done.file_path, "rb") as fh:
        return done, [json.loads(line) for line in fh]


def recompute_from_file(path: str) -> tuple[float, float, float]:
    """The recipe of docs/estimates.md ("Recompute the headline estimate"), verbatim."""
    import json

    import numpy as np

    with open(path) as fh:
        rows = [json.loads(line) for line in fh]
    rows = [r for r in rows if r["good"] is not None]
    runs = {r["run"]: (r["run_population"], r["run_f_total"]) for r in rows}
    N = sum(n for n, _ in runs.values())
    F = sum(t for _, t in runs.values())
    y = np.array([r["good"] for r in rows])
    f = np.array([r["f"] for r in rows])
    pi = np.array([r["pi"] * r["response_rate"] for r in rows])  # non-response adjusted
    w, a = 1 / pi, (1 - pi) / pi**2
    ry, rf = (w * y).sum() / w.sum(), (w * f).sum() / w.sum()
    A, B = y - ry, f - rf
    lam = float(np.clip((a * A * B).sum() / (a * B * B).sum(), 0, 1))
    theta = lam * F / N + ry - lam * rf
    se = np.sqrt((a * (A - lam * B) ** 2).sum()) / w.sum()
    return theta, theta - 1.96 * se, theta + 1.96 * se


def test_rows_field_by_field(project: Project) -> None:
    seeded = seed_project(project, seed=21, n_items=300)
    export, rows = run_eval(project)
    sampled = {it.interaction_id: it for it in seeded.items if it.pi is not None and it.labelled}
    assert len(rows) == len(sampled)
    assert export.rows == len(rows)
    rates = response_rates(seeded.items)
    ids = [r["interaction_id"] for r in rows]
    assert ids == sorted(ids, key=lambda e: int(e.rsplit("-", 1)[1]))
    assert any(r["holdout"] for r in rows)  # eval-only holdout belongs in an eval set
    overlap = next(r for r in rows if r["n_annotations"] == 2)
    assert len(overlap["annotators"]) == 2
    assert overlap["agreement"] == 1.0
    internal = dict(project.interactions.values_list("external_id", "id"))
    for row in rows:
        item = sampled[internal[row["interaction_id"]]]
        assert row["pi"] == pytest.approx(item.pi)
        assert row["weight"] == pytest.approx(1 / item.pi)
        assert row["f"] == pytest.approx(item.f)
        assert row["run"] == item.run_id
        assert row["response_rate"] == pytest.approx(rates[item.run_id])
        assert row["good"] == (1.0 if item.good else 0.0)
        assert row["rating"] == item.rating
        assert row["label"] == {"quality": item.rating}
        assert row["model_version"] == item.model_version
        assert row["segment"]["tier"] == item.tier
        assert row["holdout"] == item.holdout
        assert row["messages"][0]["role"] == "user"
        assert row["response"].startswith("answer ")
        assert row["run_population"] == sum(
            1 for it in seeded.items if it.run_id == item.run_id and it.pi is not None
        )
    det_labelled = sum(1 for it in seeded.items if it.pi is None and it.labelled)
    assert export.manifest["skipped"]["no_pi"] == det_labelled


def test_manifest_holds_design_and_estimates(project: Project) -> None:
    seeded = seed_project(project, seed=22)
    export, _ = run_eval(project)
    manifest = json.loads(manifest_path_for(Path(export.file_path)).read_text())
    assert manifest["kind"] == "eval"
    assert manifest["training"] is False
    runs = {r["id"]: r for r in manifest["design"]["runs"]}
    assert set(runs) == {r.id for r in seeded.runs}
    det = next(r for r in runs.values() if r["deterministic"])
    assert det["population_in_filters"] == 0
    assert manifest["design"]["deterministic_runs_excluded"] == 1
    assert set(manifest["design"]["pool_sizes"]) == {str(i) for i in runs}
    headline = manifest["estimates"]["all"]["groups"][0]
    assert headline["method"] == "ppi_pp"
    assert {g["group"] for g in manifest["estimates"]["model_version"]["groups"]} == {
        "model-a",
        "model-b",
    }


def test_round_trip_to_the_same_estimate(project: Project, api_as: Any) -> None:
    seed_project(project, seed=23, n_items=500)
    export, rows = run_eval(project)
    api = api_as("engineer").get("/api/projects/support-bot/estimates/").json()["groups"][0]
    manifest_estimate = export.manifest["estimates"]["all"]["groups"][0]
    theta, low, high = recompute_from_file(export.file_path)
    assert theta == pytest.approx(api["estimate"], abs=1e-12)
    # The recipe rounds z to 1.96.
    assert low == pytest.approx(api["ci_low"], abs=1e-4)
    assert high == pytest.approx(api["ci_high"], abs=1e-4)
    assert manifest_estimate["estimate"] == pytest.approx(api["estimate"], abs=1e-12)
    assert estimate_from_rows(rows)["estimate"] == pytest.approx(theta, abs=1e-12)


def test_filtered_export_round_trips_to_the_domain(project: Project, api_as: Any) -> None:
    seed_project(project, seed=24, n_items=500)
    export, rows = run_eval(project, filters={"model_versions": ["model-b"]})
    assert {r["model_version"] for r in rows} == {"model-b"}
    api = (
        api_as("engineer")
        .get("/api/projects/support-bot/estimates/", {"model_version": "model-b"})
        .json()["groups"][0]
    )
    theta, _, _ = recompute_from_file(export.file_path)
    assert theta == pytest.approx(api["estimate"], abs=1e-12)


def test_unsampled_labels_are_left_out(project: Project) -> None:
    seed_project(project, seed=25, n_items=100, deterministic_items=0)
    manual = QueueItemFactory(interaction=InteractionFactory(project=project))
    Annotation.objects.create(
        queue_item=manual,
        interaction=manual.interaction,
        annotator=UserFactory(),
        values={"quality": 5},
        schema_version=1,
    )
    export, rows = run_eval(project)
    assert manual.interaction.external_id not in {r["interaction_id"] for r in rows}
    assert export.manifest["skipped"]["not_sampled"] == 1
    assert np.isfinite(estimate_from_rows(rows)["estimate"])


def test_eval_export_through_the_api(
    project: Project, api_as: Any, django_capture_on_commit_callbacks: Any
) -> None:
    seed_project(project, seed=26, n_items=150)
    client = api_as("engineer")
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/api/projects/support-bot/exports/", {"kind": "eval"}, format="json")
    assert r.status_code == 202, r.content
    detail = client.get(f"/api/exports/{r.json()['id']}/").json()
    assert detail["status"] == "done"
    assert detail["manifest"]["design"]["runs"]
    assert detail["rows"] > 0
