"""Issue 17: response rates over whole runs, runs without labels, estimates inside their interval.

Fixtures here mix model versions, tiers and weeks inside each run (``mixed_runs=True``), the
layout that hid the filtered-response-rate bug when each version had its own run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.urls import reverse

from labeling.models import Interaction, Project, QueueItem
from sampling import estimators as est
from sampling.models import Inclusion
from sampling.selectors.estimates import estimates_compute
from sampling.selectors.reports import bias_report, power_report, regression_report
from sampling.services.population import population_cells_rebuild
from tests.estimate_fixtures import (
    BASE_TIME,
    arrays,
    cell_rates,
    make_run,
    response_rates,
    seed_project,
)

URL = reverse("sampling_api:estimates", kwargs={"slug": "support-bot"})
METHODS = ["ppi_pp", "ppi", "hajek", "ht"]


def _expected(items: list[Any], domain: list[Any], method: str) -> est.Estimate:
    """The estimate of ``domain`` with response rates taken over whole runs' cells."""
    y, f, pi, n_pop, f_total = arrays(domain, item_rates=cell_rates(items))
    return est.estimate(y=y, f=f, pi=pi, population=n_pop, f_total=f_total, method=method)


@pytest.mark.parametrize("method", METHODS)
def test_filtered_estimate_uses_response_rates_of_whole_runs(
    project: Project, api_as: Any, method: str
) -> None:
    """A version filter must not turn the other version's labels into non-response."""
    seeded = seed_project(
        project,
        seed=41,
        n_items=900,
        n_runs=3,
        mixed_runs=True,
        nonresponse_by_version={"model-a": 0.05, "model-b": 0.3},
    )
    client = api_as("engineer")
    filtered = client.get(URL, {"model_version": "model-b", "method": method}).json()["groups"][0]
    grouped = {
        g["group"]: g
        for g in client.get(URL, {"by": "model_version", "method": method}).json()["groups"]
    }
    domain = [it for it in seeded.items if it.model_version == "model-b"]
    exp = _expected(seeded.items, domain, method)
    for answer in (filtered, grouped["model-b"]):
        assert answer["estimate"] == pytest.approx(exp.estimate, abs=1e-12)
        assert answer["ci_low"] == pytest.approx(exp.ci_low, abs=1e-12)
        assert answer["ci_high"] == pytest.approx(exp.ci_high, abs=1e-12)
        assert answer["ci_low"] <= answer["estimate"] <= answer["ci_high"]
    # Each run mixes both versions, so the filtered rate differs from the whole-run rate.
    for run in seeded.runs:
        if not run.deterministic:
            assert {it.model_version for it in seeded.items if it.run_id == run.id} == {
                "model-a",
                "model-b",
            }


def _add_unlabelled_run(project: Project, *, items: int = 800, selected: int = 60) -> int:
    run = make_run(project, pool_size=items)
    interactions = Interaction.objects.bulk_create(
        [
            Interaction(
                project=project,
                external_id=f"late-{i}",
                occurred_at=BASE_TIME,
                model_version="model-a" if i % 2 else "model-b",
                messages=[{"role": "user", "content": "q"}],
                response="a",
                segment={"tier": "free", "locale": "en"},
            )
            for i in range(items)
        ]
    )
    Inclusion.objects.bulk_create(
        [
            Inclusion(
                run=run, project=project, interaction=inter, f=0.1, pi=0.075, selected=i < selected
            )
            for i, inter in enumerate(interactions)
        ]
    )
    population_cells_rebuild(project=project)
    QueueItem.objects.bulk_create(
        [
            QueueItem(project=project, interaction=inter, sampling_run_id=run.id)
            for inter in interactions[:selected]
        ]
    )
    return run.id


@pytest.mark.parametrize("by", ["", "model_version", "segment.tier"])
def test_a_run_without_labels_stays_out_of_the_population(
    project: Project, api_as: Any, by: str
) -> None:
    seed_project(project, seed=42, n_items=600, n_runs=3, mixed_runs=True)
    client = api_as("engineer")
    before = {m: client.get(URL, {"method": m, "by": by}).json() for m in METHODS}
    bias_before = bias_report(project=project)["overall"]
    new_run = _add_unlabelled_run(project)
    for method in METHODS:
        after = client.get(URL, {"method": method, "by": by}).json()
        assert len(after["groups"]) == len(before[method]["groups"])
        for old, new in zip(before[method]["groups"], after["groups"], strict=True):
            for key in ("estimate", "ci_low", "ci_high", "population", "n_labels", "nonresponse"):
                # equal up to the last bit of a float sum taken in another order (PostgreSQL)
                expected = old[key] if old[key] is None else pytest.approx(old[key], rel=1e-12)
                assert new[key] == expected, (method, key)
            if new["group"] == "pro":  # the new run holds only free-tier items
                assert new["runs_without_labels"] == []
                assert new["coverage_note"] is None
                continue
            assert new["runs_without_labels"] == [new_run]
            assert new["coverage_note"]
            assert str(new_run) in new["coverage_note"]
        assert after["coverage"]["runs_without_labels"] == [new_run]
        assert new_run not in after["coverage"]["runs"]
        assert after["coverage"]["population_without_labels"] == 800
    # The reports apply the same rule: the explicit-feedback population does not move either.
    bias_after = bias_report(project=project)["overall"]
    assert bias_after["population"] == bias_before["population"]
    assert bias_after["bad_rate"] == bias_before["bad_rate"]


def test_the_first_label_brings_the_run_in(project: Project, api_as: Any) -> None:
    from labeling.models import Annotation
    from tests.factories import UserFactory

    seed_project(project, seed=43, n_items=300, mixed_runs=True)
    new_run = _add_unlabelled_run(project, items=200, selected=20)
    before = estimates_compute(project=project)
    item = QueueItem.objects.filter(sampling_run_id=new_run).first()
    assert item is not None
    Annotation.objects.create(
        queue_item=item,
        interaction=item.interaction,
        annotator=UserFactory(),
        values={"quality": 5},
        schema_version=1,
    )
    after = estimates_compute(project=project)
    assert new_run in after["coverage"]["runs"]
    assert after["groups"][0]["population"] == before["groups"][0]["population"] + 200
    assert after["groups"][0]["nonresponse"] == before["groups"][0]["nonresponse"] + 19


def test_reports_use_the_same_domain_rule(project: Project) -> None:
    seeded = seed_project(project, seed=44, n_items=600, n_runs=3, mixed_runs=True)
    _add_unlabelled_run(project)
    rates = response_rates(seeded.items)
    for version in ("model-a", "model-b"):
        domain = [it for it in seeded.items if it.model_version == version]
        exp = _expected(seeded.items, domain, "ppi_pp")
        row = next(
            v for v in regression_report(project=project)["versions"]
            if v["model_version"] == version
        )  # fmt: skip
        assert row["estimate"] == pytest.approx(exp.estimate, abs=1e-12)
        assert row["population"] == exp.population
    power = power_report(project=project, filters={"model_versions": ["model-a"]})
    domain = [it for it in seeded.items if it.model_version == "model-a"]
    assert power["current_estimate"] == pytest.approx(
        _expected(seeded.items, domain, "ppi_pp").estimate, abs=1e-12
    )
    assert rates  # every seeded run has labels


@pytest.mark.parametrize("method", METHODS)
def test_point_estimate_never_outside_its_interval(method: str) -> None:
    """HT with sum(1/pi) far above N: the raw estimate is 1.5; report 1 inside [low, 1]."""
    y = np.ones(40)
    pi = np.full(40, 0.1)  # sum(1/pi) = 400 > N = 267
    e = est.estimate(y=y, f=np.full(40, 0.5), pi=pi, population=267, f_total=133.5, method=method)
    assert e.estimate is not None
    assert e.ci_low is not None
    assert e.ci_high is not None
    assert 0.0 <= e.ci_low <= e.estimate <= e.ci_high <= 1.0
    if method == "ht":
        assert e.estimate == 1.0
        assert e.note is not None
        assert "clipped" in e.note
    low = est.estimate(y=np.zeros(40), f=np.full(40, 0.9), pi=pi, population=267,
                       f_total=240.0, method=method)  # fmt: skip
    assert low.ci_low is not None
    assert low.estimate is not None
    assert low.ci_high is not None
    assert 0.0 <= low.ci_low <= low.estimate <= low.ci_high <= 1.0


def test_combined_estimate_inside_its_interval() -> None:
    a = est.estimate(y=np.ones(40), f=np.zeros(40), pi=np.full(40, 0.1), population=300,
                     f_total=0.0, method="ht")  # fmt: skip
    c = est.estimate_combine([a, a])
    assert c.ci_low is not None
    assert c.estimate is not None
    assert c.ci_high is not None
    assert c.ci_low <= c.estimate <= c.ci_high <= 1.0


def test_response_cells_by_hand() -> None:
    """Split by run, then version, then tier, only as far as 2 respondents per cell allow."""
    run = [1] * 8 + [2] * 3
    version = ["a", "a", "a", "a", "b", "b", "b", "b", "a", "a", "b"]
    tier = ["x", "x", "y", "y", "x", "x", "x", "y", "x", "x", "x"]
    responded = [True, True, True, False, True, True, False, False, True, False, False]
    cells = est.response_cells(responded=responded, keys=[run, version, tier], min_respondents=2)
    # Run 1, version a (3 respondents) splits by tier? x has 2, y has 1 (< 2, remainder too
    # small): a stays whole. Version b has 2: own cell, its tiers cannot split (y has 0).
    assert cells[:4] == [(1, "a")] * 4
    assert cells[4:8] == [(1, "b")] * 4
    # Run 2 has one respondent: it cannot split at all, but a run is always its own cell.
    assert cells[8:] == [(2,)] * 3
    # Pooling: version c and d have one respondent each; pooled they reach the minimum.
    cells = est.response_cells(
        responded=[True, True, True, True],
        keys=[[1, 1, 1, 1], ["a", "a", "c", "d"]],
        min_respondents=2,
    )
    assert cells == [(1, "a"), (1, "a"), (1, "*"), (1, "*")]


def test_response_rates_per_version_cell_remove_the_bias(project: Project, api_as: Any) -> None:
    """Model-b (worse) goes unlabelled far more often: one rate per run would over-weight
    model-a's labels in the overall estimate; cells per run x version do not."""
    seeded = seed_project(
        project,
        seed=45,
        n_items=1500,
        n_runs=2,
        mixed_runs=True,
        bad_rate_by_version={"model-a": 0.1, "model-b": 0.5},
        nonresponse_by_version={"model-a": 0.05, "model-b": 0.6},
    )
    body = api_as("engineer").get(URL, {"method": "hajek"}).json()
    (g,) = body["groups"]
    cells = cell_rates(seeded.items)
    assert len(set(cells.values())) > 2  # finer than one rate per run
    exp = _expected(seeded.items, seeded.items, "hajek")
    assert g["estimate"] == pytest.approx(exp.estimate, abs=1e-12)
    y, f, pi, n_pop, f_total = arrays(seeded.items, rates=response_rates(seeded.items))
    run_level = est.estimate(y=y, f=f, pi=pi, population=n_pop, f_total=f_total, method="hajek")
    truth = float(np.mean([it.good for it in seeded.items if it.pi is not None]))
    assert abs(g["estimate"] - truth) < abs(run_level.estimate - truth)
    assert any("model_version=model-b" in c for c in g["response"]["cells"])
    by_version = {
        x["group"]: x for x in api_as("engineer").get(URL, {"by": "model_version"}).json()["groups"]
    }
    warning = by_version["model-b"]["response"]["warning"]
    assert warning is not None
    assert "differs from the run's" in warning
    assert "differs from the run's" in by_version["model-b"]["warning"]
    b_rate = by_version["model-b"]["response"]["rate"]
    assert b_rate is not None
    assert b_rate < 0.6


def test_ties_and_skips_are_counted_per_domain(project: Project, api_as: Any) -> None:
    from labeling.models import Annotation
    from tests.factories import UserFactory

    seeded = seed_project(project, seed=46, n_items=400, mixed_runs=True, nonresponse=0.3)
    open_items = [it for it in seeded.items if it.selected and not it.labelled and it.pi]
    b_items = [it for it in open_items if it.model_version == "model-b"]
    a_items = [it for it in open_items if it.model_version == "model-a"]
    for it in b_items[:3]:
        QueueItem.objects.filter(interaction_id=it.interaction_id).update(skip_count=1)
    body = api_as("engineer").get(URL, {"by": "model_version"}).json()
    groups = {g["group"]: g for g in body["groups"]}
    assert groups["model-b"]["response"]["skipped"] == 3
    assert groups["model-a"]["response"]["skipped"] == 0
    for name, items in (("model-a", a_items), ("model-b", b_items)):
        r = groups[name]["response"]
        assert r["skipped"] + r["ties"] + r["backlog"] == groups[name]["nonresponse"] == len(items)
    users = [UserFactory(), UserFactory()]
    # A binary target can tie (one yes, one no): the item is then non-response until adjudicated.
    project.label_schema = {
        "questions": [{"key": "quality", "type": "binary", "prompt": "ok?"}],
        "target": {"question": "quality", "good": [True]},
    }
    project.save()
    tie = a_items[0]
    queue_item = QueueItem.objects.get(interaction_id=tie.interaction_id)
    for user, value in zip(users, (True, False), strict=True):
        Annotation.objects.create(
            queue_item=queue_item,
            interaction_id=tie.interaction_id,
            annotator=user,
            values={"quality": value},
            schema_version=2,
        )
    body = api_as("engineer").get(URL, {"by": "model_version"}).json()
    groups = {g["group"]: g for g in body["groups"]}
    assert groups["model-a"]["response"]["ties"] == 1
    assert groups["model-b"]["response"]["ties"] == 0
    assert groups["model-a"]["nonresponse"] == len(a_items)


def test_power_report_counts_only_labels_that_enter_the_estimate(project: Project) -> None:
    """Overlap duplicates, deterministic-run items and other versions' labels are not counted."""
    seeded = seed_project(
        project, seed=47, n_items=400, mixed_runs=True, overlap_fraction=0.5, deterministic_items=40
    )
    report = power_report(project=project, filters={"model_versions": ["model-a"]})
    counted = [
        it
        for it in seeded.items
        if it.labelled and it.pi is not None and it.model_version == "model-a"
    ]
    assert report["n_labels"] == len(counted)
    # Every label was made just now: the window is minutes long, and the rate divides by one day
    # (never an extrapolation from minutes to a day).
    assert report["labels_per_day"] == pytest.approx(len(counted))
    assert report["labels_window"]["labels"] == len(counted)
    assert report["labels_window"]["days"] < 0.1
    assert "counted as one day" in report["labels_window"]["note"]
    everything = power_report(project=project)
    assert everything["labels_per_day"] == pytest.approx(everything["n_labels"])


def test_dashboard_names_the_runs_it_covers(project: Project, member: Any) -> None:
    from django.test import Client

    from labeling.models import Role

    seed_project(project, seed=48, n_items=300, mixed_runs=True)
    new_run = _add_unlabelled_run(project, items=120, selected=10)
    client = Client()
    client.force_login(member(Role.ADMIN))
    response = client.get(reverse("project-dashboard", args=[project.slug]), {"range": "all"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="coverage-runs"' in html
    assert f"Left out until their first label: run {new_run} (120 interactions)" in html
