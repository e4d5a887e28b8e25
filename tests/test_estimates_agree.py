"""Property: the API, the reports, the dashboard and the eval export give the same number for the
same domain, over random layouts of runs, model versions, segments and weeks (issue 17).

Each example builds a fresh project: 1-4 finished runs (sometimes one with nothing labelled yet,
sometimes a deterministic one), items spread over runs, versions, tiers and weeks at random,
non-response that differs by version, overlap labels. Then for every model version and every tier
it compares the estimates API (filtered and grouped), the regression and bias reports, the
dashboard's quality table and the eval export (its manifest and a recompute from its rows).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from labeling.models import Annotation, Interaction, Project, QueueItem, Role
from labeling.services.exports import export_create, export_run
from sampling.evalset import estimate_from_rows
from sampling.models import Inclusion, SamplingRun
from sampling.selectors.dashboard import DashboardFilters, dashboard_data
from sampling.selectors.reports import bias_report, regression_report
from sampling.services.population import population_cells_rebuild
from tests.conftest import client_for
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

BASE = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)
VERSIONS = ["v1", "v2", "v3"]
TIERS = ["free", "pro"]

_counter = iter(range(10**6))


@st.composite
def layouts(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "seed": draw(st.integers(0, 10**6)),
        "items": draw(st.integers(80, 260)),
        "runs": draw(st.integers(1, 4)),
        "versions": draw(st.integers(1, 3)),
        "weeks": draw(st.integers(1, 3)),
        "unlabelled_run": draw(st.booleans()),
        "deterministic": draw(st.booleans()),
        "nonresponse": [draw(st.floats(0.0, 0.5)) for _ in VERSIONS],
        "bad": [draw(st.floats(0.05, 0.6)) for _ in VERSIONS],
    }


def build(layout: dict[str, Any]) -> Project:
    rng = np.random.default_rng(layout["seed"])
    project = ProjectFactory(slug=f"agree-{next(_counter)}")
    users = [UserFactory(), UserFactory()]
    n_runs = layout["runs"] + int(layout["unlabelled_run"])
    runs = [
        SamplingRun.objects.create(project=project, status=SamplingRun.Status.DONE, pool_size=0)
        for _ in range(n_runs)
    ]
    det = (
        SamplingRun.objects.create(
            project=project, status=SamplingRun.Status.DONE, deterministic=True
        )
        if layout["deterministic"]
        else None
    )
    total = layout["items"]
    version = rng.integers(layout["versions"], size=total)
    tier = rng.integers(2, size=total)
    week = rng.integers(layout["weeks"], size=total)
    bad = rng.random(total) < np.array(layout["bad"])[version]
    f = np.clip(np.where(bad, 0.4, 0.75) + rng.normal(0, 0.2, total), 0.02, 0.98)
    run_of = rng.integers(n_runs, size=total)
    interactions = Interaction.objects.bulk_create(
        [
            Interaction(
                project=project,
                external_id=f"x-{i}",
                occurred_at=BASE + dt.timedelta(days=7 * int(week[i]), hours=i % 24),
                model_version=VERSIONS[version[i]],
                messages=[{"role": "user", "content": "q"}],
                response="a",
                segment={"tier": TIERS[tier[i]], "locale": "en"},
                explicit_rating=-1 if bad[i] and rng.random() < 0.3 else None,
            )
            for i in range(total)
        ]
    )
    inclusions, labelled = [], []
    for i, inter in enumerate(interactions):
        deterministic = det is not None and rng.random() < 0.1
        run = det if deterministic else runs[run_of[i]]
        pi = None if deterministic else float(min(1.0, 0.15 + 0.6 * np.sqrt(f[i] * (1 - f[i]))))
        selected = bool(rng.random() < (pi or 0.5))
        inclusions.append(
            Inclusion(
                run=run,
                project=project,
                interaction=inter,
                f=float(f[i]),
                pi=pi,
                selected=selected,
                holdout=selected and rng.random() < 0.1,
            )
        )
        answered = rng.random() >= layout["nonresponse"][version[i]]
        last_run_empty = layout["unlabelled_run"] and run == runs[-1]
        if selected and answered and not last_run_empty:
            labelled.append(i)
    Inclusion.objects.bulk_create(inclusions)
    population_cells_rebuild(project=project)
    queue = QueueItem.objects.bulk_create(
        [
            QueueItem(project=project, interaction=interactions[i], sampling_run_id=inc.run_id)
            for i, inc in enumerate(inclusions)
            if inc.selected
        ]
    )
    by_interaction = {q.interaction_id: q for q in queue}
    annotations = []
    for i in labelled:
        q = by_interaction[interactions[i].id]
        for user in users[: 2 if rng.random() < 0.3 else 1]:
            annotations.append(
                Annotation(
                    queue_item=q,
                    interaction=interactions[i],
                    annotator=user,
                    values={"quality": 2 if bad[i] else 5},
                    schema_version=1,
                )
            )
    Annotation.objects.bulk_create(annotations)
    return project


def number(group: dict[str, Any]) -> float | None:
    """A cell's estimate, or its provisional one when withheld for too few labels."""
    if group.get("estimate") is not None:
        return float(group["estimate"])
    provisional = group.get("provisional") or {}
    return provisional.get("estimate")


def eval_export(project: Project, filters: dict[str, Any]) -> tuple[dict[str, Any], list]:
    export = export_create(project=project, kind="eval", filters=filters, enqueue=False)
    done = export_run(export_id=export.id)
    assert done is not None
    assert done.error == ""
    with open(done.file_path, "rb") as fh:
        rows = [json.loads(line) for line in fh]
    return done.manifest, rows


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(layout=layouts())
def test_every_surface_gives_the_same_number(
    layout: dict[str, Any], settings: Any, tmp_path: Path
) -> None:
    settings.EXPORT_ROOT = tmp_path / "exports"
    project = build(layout)
    engineer = UserFactory()
    MembershipFactory(project=project, user=engineer, role=Role.ENGINEER)
    api = client_for(engineer)
    url = reverse("sampling_api:estimates", kwargs={"slug": project.slug})
    grouped = {g["group"]: g for g in api.get(url, {"by": "model_version"}).json()["groups"]}
    regression = {v["model_version"]: v for v in regression_report(project=project)["versions"]}
    checked_slow = False
    for version, g in grouped.items():
        filtered = api.get(url, {"model_version": version}).json()
        (f_group,) = filtered["groups"]
        assert number(f_group) == pytest.approx(number(g), abs=1e-9), version
        assert f_group["population"] == g["population"]
        assert f_group["runs"] == g["runs"]
        assert regression[version]["population"] == g["population"]
        if regression[version]["estimate"] is not None:
            assert regression[version]["estimate"] == pytest.approx(number(g), abs=1e-9)
        if number(g) is None:
            continue
        assert g["ci_low"] is None or g["ci_low"] <= g["estimate"] <= g["ci_high"]
        if checked_slow:  # the dashboard and an export once per layout (they take seconds)
            continue
        checked_slow = True
        board = dashboard_data(
            project=project, filters=DashboardFilters(range="all", model_version=version)
        )
        rows = {r["group"]: r for r in (board.quality.data or {}).get("rows", [])}
        if version in rows:
            assert number(rows[version]) == pytest.approx(number(g), abs=1e-9)
        manifest, rows_out = eval_export(project, {"model_versions": [version]})
        (m_group,) = manifest["estimates"]["all"]["groups"]
        assert number(m_group) == pytest.approx(number(g), abs=1e-9)
        assert manifest["design"]["coverage"]["runs"] == filtered["coverage"]["runs"]
        recomputed = estimate_from_rows(rows_out)
        assert recomputed["estimate"] == pytest.approx(number(g), abs=1e-9)
        assert {r["population"] for r in rows_out} == {g["population"]}
    tiers = {g["group"]: g for g in api.get(url, {"by": "segment.tier"}).json()["groups"]}
    bias = {r["value"]: r for r in bias_report(project=project)["segments"]["tier"]}
    for tier, g in tiers.items():
        assert bias[tier]["population"] == g["population"]
        if g["estimate"] is not None and bias[tier]["bad_rate"]["estimate"] is not None:
            assert bias[tier]["bad_rate"]["estimate"] == pytest.approx(1 - g["estimate"], abs=1e-9)
