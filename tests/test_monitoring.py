"""Always-valid monitoring on a seeded project: confidence sequences per version and segment, the
sequential comparison with its verdict and date, the looks see only labels known by then, and
the power report's days to detect. Validity under daily peeking is checked by simulation in
tests/test_sequential.py (the simulation runs the same ``sampling.sequential.look`` and
``comparison`` the selector uses)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.urls import reverse

from labeling.models import Annotation, Interaction, Project
from sampling import sequential
from sampling.models import Inclusion
from sampling.selectors.estimates import response_design
from sampling.selectors.monitoring import group_series, monitoring_report
from tests.monitoring_fixtures import seed_daily

URL = reverse("sampling_api:monitoring", kwargs={"slug": "support-bot"})


@pytest.fixture
def regressed(project: Project):
    return seed_daily(project, days=20, per_day=40, p_good={"stable": 0.85, "canary": 0.55})


def _group(body, version, segment=None):
    return next(
        g for g in body["groups"] if g["model_version"] == version and g["segment"] == segment
    )


def test_a_regression_is_confirmed_with_its_day_and_sentence(project, regressed, api_as) -> None:
    body = api_as("engineer").get(URL, {"baseline": "stable"}).json()
    assert body["baseline"] == "stable"
    assert body["looks"]["every"] == "day"
    # One look a day from the first day of traffic to today: 20 days of traffic and today, or 21
    # days when the first interaction falls before the UTC midnight after the seed's start (the
    # start is the clock minus 20 days; late in a UTC day, midnight comes before most of day 0).
    first_traffic = min(Interaction.objects.values_list("occurred_at", flat=True))
    expected = (dt.datetime.now(dt.UTC).date() - first_traffic.astimezone(dt.UTC).date()).days + 1
    assert expected in (20, 21)
    assert body["looks"]["count"] == expected
    assert body["looks"]["first"] == first_traffic.astimezone(dt.UTC).date().isoformat()
    canary = _group(body, "canary")
    c = canary["comparison"]
    assert c["verdict"] == "regression"
    assert c["cs_high"] < 0
    assert c["cs_low"] <= c["difference"] <= c["cs_high"]
    # Wider than the fixed-sample interval at the same look: the price of looking every day.
    assert c["cs_high"] - c["cs_low"] > c["fixed_interval"]["high"] - c["fixed_interval"]["low"]
    confirmed = dt.date.fromisoformat(c["confirmed_on"])
    first = dt.date.fromisoformat(body["looks"]["first"])
    assert first < confirmed <= dt.date.fromisoformat(body["looks"]["last"])
    # From the confirming look on, every look's sequence lies below zero (it stays confirmed).
    after = [p for p in c["series"] if dt.date.fromisoformat(p["day"]) >= confirmed]
    assert after
    assert all(p["high"] < 0 for p in after)
    before = [p for p in c["series"] if dt.date.fromisoformat(p["day"]) < confirmed]
    assert all(p["high"] >= 0 for p in before)
    points = round(-100 * c["difference"])
    assert c["sentence"].startswith(f"canary is {points} points worse than stable (±")
    assert f"confirmed on {confirmed:%b} {confirmed.day}" in c["sentence"]
    assert [r["model_version"] for r in body["regressions"]] == ["canary"]
    assert _group(body, "stable")["comparison"] is None


def test_last_look_is_the_estimates_api_number(project, regressed, api_as) -> None:
    client = api_as("engineer")
    body = client.get(URL).json()
    estimates = client.get(
        reverse("sampling_api:estimates", kwargs={"slug": "support-bot"}), {"by": "model_version"}
    ).json()
    for g in estimates["groups"]:
        row = _group(body, g["group"])
        assert row["estimate"] == pytest.approx(g["estimate"], abs=1e-9)
        assert row["n_labels"] == g["n_labels"]
        # The confidence sequence is wider than the fixed interval and contains the estimate.
        assert row["cs_low"] <= g["ci_low"] + 1e-9
        assert row["cs_high"] >= g["ci_high"] - 1e-9
        assert row["status"] == "ok"


def test_each_look_sees_only_the_labels_known_that_day(project, regressed) -> None:
    report = monitoring_report(project=project, baseline="stable", now=regressed.now)
    canary = _group(report, "canary")
    for point in canary["series"]:
        end = dt.datetime.combine(
            dt.date.fromisoformat(point["day"]) + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC
        )
        known = sum(1 for when in regressed.labelled_on.values() if when < end)
        assert point["n_labels"] <= known
    counts = [p["n_labels"] for p in canary["series"]]
    assert counts == sorted(counts)
    assert counts[0] < counts[-1]


def test_no_difference_confirms_nothing(project, api_as) -> None:
    seed_daily(project, days=20, per_day=40, p_good={"stable": 0.8, "canary": 0.8}, seed=2)
    body = api_as("engineer").get(URL, {"baseline": "stable"}).json()
    c = _group(body, "canary")["comparison"]
    assert c["verdict"] == "no_change_confirmed"
    assert c["cs_low"] < 0 < c["cs_high"]
    assert c["confirmed_on"] is None
    assert c["sentence"].startswith("No change confirmed yet between canary and stable")
    assert body["regressions"] == []


def test_a_regression_in_one_segment(project, api_as) -> None:
    seed_daily(
        project,
        days=30,
        per_day=60,
        p_good={"stable": 0.8, "canary": 0.8},
        p_good_pro={"canary": 0.3},
        seed=3,
    )
    body = api_as("engineer").get(URL, {"baseline": "stable", "segment": "tier"}).json()
    assert body["segment"] == "tier"
    pro = _group(body, "canary", {"tier": "pro"})["comparison"]
    free = _group(body, "canary", {"tier": "free"})["comparison"]
    assert pro["verdict"] == "regression"
    assert "for tier=pro" in pro["sentence"]
    assert free["verdict"] == "no_change_confirmed"


def test_too_few_labels_read_not_enough_labels(project, api_as) -> None:
    seed_daily(project, days=3, per_day=6, label_share=0.3, seed=4)
    body = api_as("engineer").get(URL, {"baseline": "stable"}).json()
    canary = _group(body, "canary")
    assert canary["status"] in ("not_enough_labels", "no_labels")
    assert canary["estimate"] is None
    assert canary["display"].startswith("not enough labels (n = ")
    c = canary["comparison"]
    assert c["verdict"] == "not_enough_labels"
    assert c["difference"] is None
    assert c["cs_low"] is None
    assert "Not enough labels yet to compare canary with stable" in c["sentence"]


def test_minimum_effect(project, regressed, api_as) -> None:
    client = api_as("engineer")
    c = _group(client.get(URL, {"baseline": "stable"}).json(), "canary")["comparison"]
    # Ask for more than the sequence can confirm: not a regression "of at least" that much.
    bigger = -c["cs_high"] + 0.01
    body = client.get(URL, {"baseline": "stable", "min_effect": bigger}).json()
    assert _group(body, "canary")["comparison"]["verdict"] == "no_change_confirmed"


def test_monitoring_errors_and_access(project, regressed, api_as) -> None:
    client = api_as("engineer")
    r = client.get(URL, {"baseline": "nope"})
    assert r.status_code == 400
    assert "nope" in r.json()["errors"]["baseline"]
    r = client.get(URL, {"segment": "colour"})
    assert r.status_code == 400
    assert "colour" in r.json()["errors"]["segment"]
    assert client.get(URL, {"alpha": 0.9}).status_code == 400
    assert api_as("annotator").get(URL).status_code == 403


def test_power_report_days_to_detect(project, regressed, api_as) -> None:
    body = (
        api_as("engineer")
        .get(reverse("sampling_api:report-power", kwargs={"slug": "support-bot"}))
        .json()
    )
    assert body["labels_per_day"] > 0
    assert body["traffic_per_day"] == pytest.approx(80, rel=0.1)  # two versions x 40
    assert body["days_to_detect"] == sequential.days_to_detect(
        p=body["current_estimate"],
        delta=0.05,
        labels_per_day=body["labels_per_day"],
        design_effect=body["design_effect"],
        alpha=0.05,
        traffic_per_day=body["traffic_per_day"] / 2,
    )
    assert body["days_to_detect"] > 0
    rate = f"{body['labels_per_day']:,.0f}"
    assert body["days_to_detect_sentence"].startswith(
        f"At {rate} labels/day you will see a 5-point change in about {body['days_to_detect']} day"
    )
    # Twice the labels: sooner.
    faster = sequential.days_to_detect(
        p=body["current_estimate"], delta=0.05, labels_per_day=2 * body["labels_per_day"],
        design_effect=body["design_effect"],
    )  # fmt: skip
    assert faster is not None
    assert faster < body["days_to_detect"]


def test_a_past_look_weighs_its_labels_by_that_days_response_rates(project) -> None:
    """Half of each run's labels come five days late. On a past day a run's cell had fewer of its
    selected items labelled than today, so each label known then stood for more of the selection:
    each look adjusts with the rates of its day, and counts the traffic of the runs that had a
    label by then (as the estimates API leaves a run without labels out). Every look equals the
    PPI++ estimate computed here from the rows; with today's rates the past looks would differ."""
    daily = seed_daily(
        project, days=12, per_day=60, p_good={"stable": 0.85, "canary": 0.6}, latency_days=0.5
    )
    late = list(Annotation.objects.order_by("id"))[::2]
    for a in late:
        a.created_at = min(a.created_at + dt.timedelta(days=5), daily.now)
        daily.labelled_on[a.interaction_id] = a.created_at
    Annotation.objects.bulk_update(late, ["created_at"])
    [series] = [
        s
        for s in group_series(project=project, by=["model_version"], now=daily.now)
        if s.group == ("canary",)
    ]
    design = response_design(project=project)
    items = design.items
    rows = np.flatnonzero(~np.isnan(items.pi) & (design.cell >= 0))
    occurred = [dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC) for us in items.occurred_us[rows]]
    label_at = [daily.labelled_on.get(int(i)) for i in items.interaction_id[rows]]
    canary = np.array([items.versions[items.version[r]] == "canary" for r in rows])
    inclusions = list(
        Inclusion.objects.filter(
            project=project, pi__isnull=False, interaction__model_version="canary"
        ).values_list("run_id", "f", "interaction__occurred_at")
    )
    gaps = []
    for day, estimate in zip(series.days, series.estimates, strict=True):
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        known = np.array(
            [
                bool(items.labelled[r]) and when is not None and when < end
                for r, when in zip(rows, label_at, strict=True)
            ]
        )
        happened = np.array([when < end for when in occurred])
        weight = 1 / items.pi[rows]
        rate_then = np.zeros(design.cell_rate.size)
        for c in range(rate_then.size):
            in_cell = design.cell[rows] == c
            total = weight[in_cell & happened].sum()
            rate_then[c] = weight[in_cell & known].sum() / total if total else 0.0
        runs_then = set(items.run_id[rows][known].tolist())
        sample = known & canary
        if not sample.any():
            assert estimate is None
            continue
        population = [(f, when) for run, f, when in inclusions if run in runs_then and when < end]
        cells = design.cell[rows][sample]
        y, f, pi = items.y[rows][sample], items.f[rows][sample], items.pi[rows][sample]

        def look_with(rates: np.ndarray) -> float:
            return _ppi_look(y, f, pi * rates[cells], population)  # noqa: B023 (used at once)

        assert estimate == pytest.approx(look_with(rate_then), abs=1e-9), day
        gaps.append(abs(look_with(design.cell_rate) - look_with(rate_then)))
    assert max(gaps) > 0.01  # today's rates would have moved the past looks


def _ppi_look(y: np.ndarray, f: np.ndarray, pi: np.ndarray, population: list) -> float:
    """The estimate of one look from its arrays (``sampling.estimators.ppi_pp_mean``'s)."""
    running = sequential.RunningPPI()
    running.add(y=y, f=f, pi=pi, population=len(population), f_total=sum(v for v, _ in population))
    return float(np.clip(sequential.look(running)[0], 0, 1))
