"""GET /api/projects/{slug}/estimates/: per domain on a seeded project, against the estimators."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.urls import reverse

from labeling.models import Annotation, Interaction, QueueItem
from sampling import estimators as est
from sampling.models import Inclusion
from sampling.services.population import population_cells_rebuild
from tests.estimate_fixtures import arrays, make_run, response_rates, seed_project
from tests.factories import InteractionFactory, UserFactory

URL = reverse("sampling_api:estimates", kwargs={"slug": "support-bot"})


def _expected(items, method="ppi_pp", level=0.95):
    rates = response_rates(items)
    y, f, pi, n_pop, f_total = arrays(items, rates=rates)
    return est.estimate(
        y=y, f=f, pi=pi, population=n_pop, f_total=f_total, method=method, level=level
    )


def test_hand_computed_small_project(project, api_as) -> None:
    """10 items, pi 0.5; selected 4: ratings 5, 5, 1 and one unlabelled (rate 3/4)."""
    run = make_run(project)
    user = UserFactory()
    for i in range(10):
        inter = InteractionFactory(project=project)
        selected = i < 4
        Inclusion.objects.create(
            run=run, project=project, interaction=inter, f=0.5, pi=0.5, selected=selected
        )
        if selected:
            q = QueueItem.objects.create(project=project, interaction=inter, sampling_run_id=run.id)
            if i < 3:
                Annotation.objects.create(
                    queue_item=q,
                    interaction=inter,
                    annotator=user,
                    values={"quality": [5, 5, 1][i]},
                    schema_version=1,
                )
    population_cells_rebuild(project=project)
    body = api_as("engineer").get(URL, {"method": "hajek"}).json()
    assert body["method"] == "hajek"
    assert body["target"]["question"] == "quality"
    (g,) = body["groups"]
    assert g["group"] == "all"
    # 3 labels are below the minimum effective sample size: no number, a plain message, and the
    # numbers kept aside under "provisional".
    assert g["estimate"] is None
    assert g["ci_low"] is None
    assert g["se"] is None
    assert g["status"] == "not_enough_labels"
    assert g["display"] == "not enough labels (n = 3)"
    g = {**g, **g["provisional"]}
    assert g["estimate"] == pytest.approx(2 / 3)
    assert g["n_labels"] == 3
    assert g["population"] == 10
    assert g["nonresponse"] == 1
    assert g["selected"] == 4
    assert g["excluded"] == 0
    # pi adjusted to 0.375: Var = (1/Nhat^2) sum (1-pi)/pi^2 (y-R)^2, Nhat = 8
    a = (1 - 0.375) / 0.375**2
    var = a * (2 * (1 / 3) ** 2 + (2 / 3) ** 2) / 64
    assert g["se"] == pytest.approx(var**0.5)
    assert "n too small" in g["warning"]
    # The rating target also reports the mean rating: (5 + 5 + 1) / 3.
    assert g["rating"]["estimate"] is None
    assert g["rating"]["provisional"]["estimate"] == pytest.approx(11 / 3)


@pytest.mark.parametrize("method", ["ppi_pp", "ppi", "hajek", "ht"])
def test_all_domain_matches_estimators(project, api_as, method) -> None:
    seeded = seed_project(project, seed=3)
    body = api_as("engineer").get(URL, {"method": method, "level": 0.9}).json()
    (g,) = body["groups"]
    exp = _expected(seeded.items, method=method, level=0.9)
    assert g["estimate"] == pytest.approx(exp.estimate)
    assert g["ci_low"] == pytest.approx(exp.ci_low)
    assert g["ci_high"] == pytest.approx(exp.ci_high)
    assert g["n_labels"] == exp.n_labels
    assert g["population"] == exp.population
    assert g["ess"] == pytest.approx(exp.ess)
    det = [it for it in seeded.items if it.pi is None]
    assert g["excluded"] == len(det)
    assert g["excluded_labels"] == sum(it.labelled for it in det)
    prob_sel = [it for it in seeded.items if it.pi is not None and it.selected]
    assert g["nonresponse"] == sum(not it.labelled for it in prob_sel)
    assert g["nonresponse"] > 0
    assert body["level"] == 0.9


@pytest.mark.parametrize(
    ("by", "key"),
    [
        ("model_version", lambda it: (it.model_version,)),
        ("segment.tier", lambda it: (it.tier,)),
        ("week", lambda it: (it.week,)),
        ("model_version,segment.tier", lambda it: (it.model_version, it.tier)),
    ],
)
def test_groups_match_estimators(project, api_as, by, key) -> None:
    seeded = seed_project(project, seed=5)
    body = api_as("admin").get(URL, {"by": by}).json()
    assert body["by"] == by.split(",")
    expected_keys = sorted({key(it) for it in seeded.items})
    got = {tuple(g["group_values"].values()): g for g in body["groups"]}
    assert sorted(got) == expected_keys
    rates = response_rates(seeded.items)  # one adjustment cell per run, over the whole run
    for k, g in got.items():
        dom = [it for it in seeded.items if key(it) == k]
        y, f, pi, n_pop, f_total = arrays(dom, rates=rates)
        exp = est.estimate(y=y, f=f, pi=pi, population=n_pop, f_total=f_total)
        assert g["group"] == " / ".join(k)
        assert g["estimate"] == pytest.approx(exp.estimate)
        assert g["se"] == pytest.approx(exp.se)
        assert g["population"] == n_pop
        assert g["n_labels"] == exp.n_labels


def test_filters_restrict_the_domain(project, api_as) -> None:
    seeded = seed_project(project, seed=7)
    client = api_as("engineer")
    by_version = {g["group"]: g for g in client.get(URL, {"by": "model_version"}).json()["groups"]}
    filtered = client.get(URL, {"model_version": "model-b"}).json()["groups"][0]
    assert filtered["estimate"] == pytest.approx(by_version["model-b"]["estimate"])
    pro = client.get(URL + "?segment.tier=pro&by=model_version").json()["groups"]
    for g in pro:
        dom = [it for it in seeded.items if it.tier == "pro" and it.model_version == g["group"]]
        assert g["population"] == sum(it.pi is not None for it in dom)
    later = client.get(URL, {"since": "2026-11-09T00:00:00Z"}).json()["groups"][0]
    assert later["population"] == sum(
        it.pi is not None and it.week == "2026-W46" for it in seeded.items
    )


def test_unfinished_runs_do_not_count(project, api_as) -> None:
    run = make_run(project)
    run.status = "running"
    run.save(update_fields=["status"])
    inter = InteractionFactory(project=project)
    Inclusion.objects.create(run=run, project=project, interaction=inter, f=0.5, pi=0.5)
    population_cells_rebuild(project=project)
    (g,) = api_as("engineer").get(URL).json()["groups"]
    assert g["population"] == 0
    assert g["estimate"] is None


def test_errors_name_the_parameter(project, api_as) -> None:
    client = api_as("engineer")
    r = client.get(URL, {"by": "colour"})
    assert r.status_code == 400
    assert "colour" in r.json()["errors"]["by"]
    r = client.get(URL, {"method": "median"})
    assert r.status_code == 400
    assert "method" in r.json()["errors"]
    r = client.get(URL, {"level": 1.5})
    assert r.status_code == 400
    assert "level" in r.json()["errors"]
    r = client.get(URL, {"since": "yesterday"})
    assert r.status_code == 400
    assert "filters.since" in r.json()["errors"]


def test_access_rules(project, other_project, api_as) -> None:
    assert api_as("annotator").get(URL).status_code == 403
    assert api_as("reviewer").get(URL).status_code == 200
    assert api_as("engineer", project=other_project).get(URL).status_code == 404
    assert (
        api_as("engineer")
        .get(reverse("sampling_api:estimates", kwargs={"slug": "nope"}))
        .status_code
        == 404
    )


def test_estimate_uses_f_recorded_at_sampling(project, api_as) -> None:
    """Re-scoring interactions later must not change the estimate (f comes from Inclusion)."""
    seed_project(project, seed=9)
    client = api_as("engineer")
    before = client.get(URL).json()["groups"][0]
    Interaction.objects.filter(project=project).update(
        proxy_score=0.99, scored_at=dt.datetime.now(dt.UTC)
    )
    after = client.get(URL).json()["groups"][0]
    assert after["estimate"] == pytest.approx(before["estimate"])
    assert np.isfinite(after["lam"])
