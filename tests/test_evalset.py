"""The eval export kind: rows field by field, the manifest's design, and the round trip to the
same estimate from the file alone (the recipe in docs/estimates.md, run verbatim)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.urls import reverse

from labeling.models import Annotation, Export, Project, QueueItem
from labeling.services.exports import export_create, export_run, manifest_path_for
from sampling.evalset import estimate_from_rows
from tests.estimate_fixtures import cell_rates, seed_project
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


ROOT = Path(__file__).resolve().parent.parent


def recipe(doc: str) -> str:
    """The "Recompute the headline estimate" Python block of ``doc``, as the reader copies it."""
    text = (ROOT / doc).read_text()
    start = text.index("```python\nimport json", text.index("## Recompute the headline estimate"))
    body = text[start + len("```python\n") :]
    return body[: body.index("```")]


def recompute_from_file(path: str, doc: str = "README.md") -> tuple[float, float, float]:
    """Run the recipe of ``doc`` verbatim on the exported file (only its file name is swapped)."""
    code = recipe(doc)
    assert '"eval.jsonl"' in code
    namespace: dict[str, Any] = {}
    exec(compile(code.replace('"eval.jsonl"', repr(str(path))), doc, "exec"), namespace)
    return float(namespace["theta"]), float(namespace["low"]), float(namespace["high"])


def test_readme_and_docs_give_the_same_recipe() -> None:
    assert recipe("README.md") == recipe("docs/estimates.md")


def test_rows_field_by_field(project: Project) -> None:
    seeded = seed_project(project, seed=21, n_items=300)
    export, rows = run_eval(project)
    sampled = {it.interaction_id: it for it in seeded.items if it.pi is not None and it.labelled}
    assert len(rows) == len(sampled)
    assert export.rows == len(rows)
    cells = cell_rates(seeded.items)
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
        assert row["response_rate"] == pytest.approx(cells[item.interaction_id])
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
    api = (
        api_as("engineer")
        .get(reverse("sampling_api:estimates", kwargs={"slug": "support-bot"}))
        .json()["groups"][0]
    )
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
        .get(
            reverse("sampling_api:estimates", kwargs={"slug": "support-bot"}),
            {"model_version": "model-b"},
        )
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
        r = client.post(
            reverse("labeling_api:exports", kwargs={"slug": "support-bot"}),
            {"kind": "eval"},
            format="json",
        )
    assert r.status_code == 202, r.content
    detail = client.get(reverse("labeling_api:export", kwargs={"export_id": r.json()["id"]})).json()
    assert detail["status"] == "done"
    assert detail["manifest"]["design"]["runs"]
    assert detail["rows"] > 0


def test_rates_and_manifest_are_as_of_the_snapshot(project: Project, api_as: Any) -> None:
    """Labels arriving between creating and running an export change neither the rows nor the
    response rates nor the manifest's estimates: all read the snapshot's labels."""
    seeded = seed_project(project, seed=27, n_items=500, n_runs=3, mixed_runs=True)
    client = api_as("engineer")
    before = client.get(reverse("sampling_api:estimates", kwargs={"slug": "support-bot"})).json()[
        "groups"
    ][0]
    export = export_create(project=project, kind="eval", enqueue=False)
    late_user = UserFactory()
    late = [it for it in seeded.items if it.selected and not it.labelled and it.pi is not None]
    assert late
    for it in late:
        queue_item = QueueItem.objects.get(interaction_id=it.interaction_id)
        Annotation.objects.create(
            queue_item=queue_item,
            interaction_id=it.interaction_id,
            annotator=late_user,
            values={"quality": 1},
            schema_version=1,
        )
    now = client.get(reverse("sampling_api:estimates", kwargs={"slug": "support-bot"})).json()[
        "groups"
    ][0]
    assert now["n_labels"] > before["n_labels"]
    done = export_run(export_id=export.id)
    assert done is not None
    assert done.status == Export.Status.DONE, done.error
    with open(done.file_path, "rb") as fh:
        rows = [json.loads(line) for line in fh]
    rates = cell_rates(seeded.items)
    internal = dict(project.interactions.values_list("external_id", "id"))
    for row in rows:
        assert row["response_rate"] == pytest.approx(rates[internal[row["interaction_id"]]])
    manifest_estimate = done.manifest["estimates"]["all"]["groups"][0]
    assert manifest_estimate["estimate"] == pytest.approx(before["estimate"], abs=1e-12)
    assert manifest_estimate["n_labels"] == before["n_labels"]
    theta, _, _ = recompute_from_file(done.file_path)
    assert theta == pytest.approx(before["estimate"], abs=1e-12)


@pytest.mark.parametrize(
    "filters",
    [
        {"labels": {"quality": {"gte": 4}}},
        {"min_agreement": 0.8},
        {"annotators": ["someone"]},
        {"include_gold": False},
    ],
)
def test_label_filters_are_refused_for_eval(
    project: Project, api_as: Any, filters: dict[str, Any]
) -> None:
    from labeling.errors import Invalid

    (key,) = filters
    with pytest.raises(Invalid) as info:
        export_create(project=project, kind="eval", filters=filters, enqueue=False)
    assert "not allowed for eval" in str(info.value.errors[f"filters.{key}"])
    r = api_as("engineer").post(
        reverse("labeling_api:exports", kwargs={"slug": "support-bot"}),
        {"kind": "eval", "filters": filters},
        format="json",
    )
    assert r.status_code == 400
    assert "not allowed for eval" in r.json()["errors"][f"filters.{key}"]
    assert not Export.objects.filter(project=project).exists()


def test_snippet_guards_a_design_without_spread(project: Project, tmp_path: Path) -> None:
    """Every pi = 1 makes sum a B^2 = 0: the recipe falls back to lam = 0, no NaN."""
    rows = [
        {"good": g, "f": 0.5, "pi": 1.0, "response_rate": 1.0, "run": 1, "run_population": 4,
         "run_f_total": 2.0, "population": 4, "f_total": 2.0}
        for g in (1.0, 1.0, 0.0, 1.0)
    ]  # fmt: skip
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    theta, low, high = recompute_from_file(str(path))
    assert theta == pytest.approx(0.75)
    assert low == pytest.approx(0.75)
    assert high == pytest.approx(0.75)
    assert estimate_from_rows(rows)["estimate"] == pytest.approx(0.75)
