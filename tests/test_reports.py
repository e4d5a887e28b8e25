"""Bias, power and regression reports on seeded projects with a known feedback bias."""

from __future__ import annotations

import math

import pytest
from django.db.models import Max, Min
from django.urls import reverse

from labeling.models import Interaction
from sampling import estimators as est
from sampling.selectors.reports import labels_needed
from tests.estimate_fixtures import arrays, response_rates, seed_project


def report(kind: str) -> str:
    return reverse(f"sampling_api:report-{kind}", kwargs={"slug": "support-bot"})


def test_bias_report_shows_the_thumbs_bias(project, api_as) -> None:
    # Thumbs-down 40% of bad answers, 1% of good ones: raters are mostly unhappy users.
    seeded = seed_project(
        project, seed=11, n_items=600, thumbs_down_if_bad=0.4, thumbs_down_if_good=0.01
    )
    client = api_as("engineer")
    body = client.get(report("bias")).json()
    prob = [it for it in seeded.items if it.pi is not None]
    rated = [it for it in prob if it.explicit is not None]
    overall = body["overall"]
    assert overall["population"] == len(prob)
    assert overall["rated"] == len(rated)
    assert overall["explicit_rate"] == pytest.approx(len(rated) / len(prob))
    down = sum(it.explicit == -1 for it in rated)
    assert overall["thumbs_down_rate"] == pytest.approx(down / len(rated))
    share_good = client.get(
        reverse("sampling_api:estimates", kwargs={"slug": "support-bot"})
    ).json()["groups"][0]
    assert overall["bad_rate"]["estimate"] == pytest.approx(1 - share_good["estimate"])
    assert overall["bad_rate"]["ci_low"] == pytest.approx(1 - share_good["ci_high"])
    # The known bias: thumbs say far more is bad than really is.
    true_bad = sum(not it.good for it in prob) / len(prob)
    assert overall["thumbs_down_rate"] > true_bad + 0.2
    assert overall["gap"] == pytest.approx(
        overall["thumbs_down_rate"] - (1 - share_good["estimate"])
    )
    raters = body["raters_vs_non_raters"]
    assert raters["raters"]["bad_rate"]["estimate"] > raters["non_raters"]["bad_rate"]["estimate"]
    assert raters["difference"]["ci_low"] > 0
    tiers = {row["value"]: row for row in body["segments"]["tier"]}
    assert set(tiers) == {"free", "pro"}
    assert sum(r["share_of_ratings"] for r in tiers.values()) == pytest.approx(1)
    assert tiers["pro"]["share_of_traffic"] == pytest.approx(
        sum(it.tier == "pro" for it in prob) / len(prob)
    )
    assert tiers["pro"]["share_of_ratings"] == pytest.approx(
        sum(it.tier == "pro" for it in rated) / len(rated)
    )
    assert body["segments"]["locale"][0]["value"] == "en"


def test_labels_needed_by_hand() -> None:
    # (1.959964 + 0.841621)^2 * (0.25 + 0.2475) / 0.05^2 = 1561.9
    assert labels_needed(p=0.5, delta=0.05) == 1562
    assert labels_needed(p=0.5, delta=0.05, design_effect=0.5) == 781
    # At p = 0 the change is tested upwards: 0 -> 0.05 has the spread of 0.05 -> 0.
    assert labels_needed(p=0.0, delta=0.05) == labels_needed(p=0.05, delta=0.05)


def test_power_report(project, api_as) -> None:
    seeded = seed_project(project, seed=12)
    body = api_as("engineer").get(report("power"), {"delta": 0.1}).json()
    rates = response_rates(seeded.items)
    y, f, pi, n_pop, f_total = arrays(seeded.items, rates=rates)
    e = est.estimate(y=y, f=f, pi=pi, population=n_pop, f_total=f_total)
    assert body["current_estimate"] == pytest.approx(e.estimate)
    assert body["design_effect"] == pytest.approx(e.n_labels / e.ess)
    assert body["labels_needed_uniform"] == labels_needed(p=e.estimate, delta=0.1)
    assert body["labels_needed"] == labels_needed(
        p=e.estimate, delta=0.1, design_effect=e.n_labels / e.ess
    )
    prob = [it for it in seeded.items if it.pi is not None]
    rated = sum(it.explicit is not None for it in prob)
    span = Interaction.objects.filter(inclusion__pi__isnull=False).aggregate(
        first=Min("occurred_at"), last=Max("occurred_at")
    )
    days = (span["last"] - span["first"]).total_seconds() / 86400
    assert days > 7
    assert body["explicit_ratings_per_day"] == pytest.approx(rated / days)
    assert body["days_by_explicit_feedback"] == pytest.approx(
        body["labels_needed_uniform"] / body["explicit_ratings_per_day"]
    )
    assert body["labels_per_day"] > 0
    assert body["days_by_labelling"] == pytest.approx(
        body["labels_needed"] / body["labels_per_day"]
    )
    assert api_as("engineer").get(report("power"), {"delta": 2}).status_code == 400


def test_label_window_is_first_label_to_now_at_most_seven_days() -> None:
    import datetime as dt

    from sampling.selectors.reports import label_window

    now = dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC)
    # 38 labels within the first hour: 38 per day, not 38 x 24.
    window = label_window(dated=[now - dt.timedelta(minutes=m) for m in range(38)], now=now)
    assert window["labels"] == 38
    assert window["rate_days"] == 1.0
    assert window["days"] == pytest.approx(37 / 1440)
    assert "0.6 hours ago" in window["note"]
    # Three days of labels: the window starts at the first one.
    dated = [now - dt.timedelta(hours=h) for h in range(0, 72, 2)]
    window = label_window(dated=dated, now=now)
    assert window["days"] == pytest.approx(70 / 24)
    assert window["labels"] == 36
    assert window["note"] is None
    assert window["start"] == (now - dt.timedelta(hours=70)).isoformat()
    # Older than a week: only the last 7 days count.
    dated = [now - dt.timedelta(days=d) for d in range(30)]
    window = label_window(dated=dated, now=now)
    assert window["days"] == pytest.approx(7.0)
    assert window["labels"] == 8  # days 0..7, the one exactly 7 days ago included
    empty = label_window(dated=[], now=now)
    assert empty["labels"] == 0
    assert empty["start"] is None


def test_power_report_rate_over_days_of_labels(project, api_as) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from labeling.models import Annotation

    seed_project(project, seed=14)
    annotations = list(Annotation.objects.filter(is_current=True).order_by("id"))
    now = timezone.now()
    # Spread the labels over the last 5 days, one after another.
    for i, a in enumerate(annotations):
        Annotation.objects.filter(pk=a.pk).update(
            created_at=now - timedelta(days=5) + timedelta(seconds=i * 5 * 86400 / len(annotations))
        )
    body = api_as("engineer").get(report("power")).json()
    window = body["labels_window"]
    assert window["days"] == pytest.approx(5.0, abs=0.01)
    assert window["note"] is None
    assert body["labels_per_day"] == pytest.approx(window["labels"] / window["days"], rel=1e-6)
    assert window["labels"] == body["n_labels"]


def test_regression_flags_a_worse_version(project, api_as) -> None:
    seed_project(
        project, seed=13, n_items=800, bad_rate_by_version={"model-a": 0.1, "model-b": 0.5}
    )
    client = api_as("engineer")
    body = client.get(report("regression"), {"baseline": "model-a"}).json()
    assert body["baseline"] == "model-a"
    rows = {r["model_version"]: r for r in body["versions"]}
    est_by_version = {
        g["group"]: g
        for g in client.get(
            reverse("sampling_api:estimates", kwargs={"slug": "support-bot"}),
            {"by": "model_version"},
        ).json()["groups"]
    }
    b, a = rows["model-b"], rows["model-a"]
    assert b["estimate"] == pytest.approx(est_by_version["model-b"]["estimate"])
    assert b["difference"]["estimate"] == pytest.approx(b["estimate"] - a["estimate"])
    se = math.sqrt(est_by_version["model-a"]["se"] ** 2 + est_by_version["model-b"]["se"] ** 2)
    assert b["difference"]["se"] == pytest.approx(se)
    assert b["difference"]["ci_high"] < 0
    assert b["flagged"] is True
    assert a["flagged"] is False
    assert a["difference"] is None
    flipped = client.get(report("regression"), {"baseline": "model-b"}).json()
    assert not any(r["flagged"] for r in flipped["versions"])
    r = client.get(report("regression"), {"baseline": "model-z"})
    assert r.status_code == 400
    assert "model-z" in r.json()["errors"]["baseline"]


def test_reports_need_read(project, api_as) -> None:
    for kind in ("bias", "power", "regression"):
        assert api_as("annotator").get(report(kind)).status_code == 403
