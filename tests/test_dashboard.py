"""The dashboard: its numbers are the estimates/queue selectors' (and the API's) for the same
filters, its plots are inline SVG, and its empty states say what to do next."""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from labeling.models import Project, Role
from labeling.selectors.queue import queue_health
from labeling.services.queue import assignment_claim, assignment_submit
from sampling.selectors.dashboard import DashboardFilters, estimate_filters
from sampling.selectors.estimates import estimates_compute
from sampling.services.runs import sampling_run_create, sampling_run_execute
from sampling.services.strategies import strategy_create
from tests.factories import InteractionFactory


def seed_project(project: Project, annotator: Any, *, n: int = 80, label: int = 40) -> None:
    """Interactions over three weeks in two tiers and two model versions, one sampling run,
    and ``label`` of its selected items labelled through the queue services."""
    rng = random.Random(7)
    now = timezone.now()
    for i in range(n):
        InteractionFactory(
            project=project,
            occurred_at=now - dt.timedelta(days=rng.randrange(0, 20), hours=1),
            model_version="model-a" if i % 2 else "model-b",
            segment={"tier": "pro" if i % 3 == 0 else "free", "locale": "en"},
            explicit_rating=rng.choice([None, None, None, 1, -1]),
        )
    strategy = strategy_create(
        project=project,
        data={
            "name": "main",
            "weights": {"uncertainty": 0.4, "coverage": 0.3, "random": 0.3},
            "batch_size": 50,
            "segment_minimums": {"tier": 20},
            "overlap_fraction": 0.0,
            "holdout_fraction": 0.0,
        },
    )
    run = sampling_run_create(project=project, strategy=strategy)
    sampling_run_execute(run_id=run.pk)
    for _ in range(label):
        assignment = assignment_claim(project=project, annotator=annotator)
        if assignment is None:
            break
        assignment_submit(
            assignment_id=assignment.pk,
            annotator=annotator,
            values={"quality": rng.choice([2, 3, 4, 5, 5])},
            time_spent_ms=rng.randrange(5_000, 60_000),
        )


@pytest.fixture
def seeded(project: Project, member: Callable[..., Any]) -> Project:
    seed_project(project, member(Role.ANNOTATOR))
    return project


def page(user: Any, project: Project, **query: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(reverse("project-dashboard", args=[project.slug]), query)
    assert response.status_code == 200
    return response.content.decode()


def plot_svg(user: Any, html: str, testid: str) -> str:
    """The SVG the page's placeholder ``testid`` loads (the page answers first, then each plot is
    fetched from its own URL with the same filters)."""
    from html import unescape

    block = html.split(f'data-testid="{testid}"', 1)[1][:400]
    src = unescape(re.search(r'data-plot-src="([^"]+)"', block).group(1))  # type: ignore[union-attr]
    client = Client()
    client.force_login(user)
    response = client.get(src)
    assert response.status_code == 200, (src, response.status_code)
    assert response["Content-Type"].startswith("image/svg+xml")
    return response.content.decode()


def table_numbers(html: str, testid: str) -> dict[str, dict[str, str]]:
    """{group: {field: text}} from a dashboard table's data-group rows."""
    table = html.split(f'data-testid="{testid}"', 1)[1].split("</table>", 1)[0]
    out: dict[str, dict[str, str]] = {}
    for group, body in re.findall(r'<tr data-group="([^"]+)">(.*?)</tr>', table, re.S):
        out[group] = {k: v.strip() for k, v in re.findall(r'data-field="(\w+)">([^<]*)<', body)}
    return out


@pytest.mark.django_db
def test_empty_dashboard_says_what_to_do(project: Project, member: Callable[..., Any]) -> None:
    html = page(member(Role.ENGINEER), project)
    assert "Waiting for the first sampling run" in html
    assert 'data-testid="getting-started"' in html
    assert "The queue is empty" in html
    assert "No proxy model trained yet" in html
    assert "<svg" not in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [{}, {"model_version": "model-a"}, {"segment": "tier=pro", "range": "7d"}, {"range": "all"}],
)
def test_quality_numbers_equal_the_estimates_selector(
    seeded: Project, member: Callable[..., Any], query: dict[str, str]
) -> None:
    html = page(member(Role.REVIEWER), seeded, **query)
    shown = table_numbers(html, "quality-table")
    filters = estimate_filters(DashboardFilters.from_query(query))
    expected = {
        g["group"]: g
        for g in estimates_compute(project=seeded, by="model_version", filters=filters)["groups"]
        if g["n_labels"]
    }
    assert expected, "the seed must produce labels in every filter tested"
    assert set(shown) == set(expected)
    for group, numbers in shown.items():
        if expected[group]["estimate"] is None:  # below the minimum: the plain message instead
            assert numbers["estimate"] == expected[group]["display"]
            assert numbers["estimate"].startswith("not enough labels (n = ")
            continue
        assert numbers["estimate"] == f"{expected[group]['estimate']:.3f}"
        assert int(numbers["n_labels"]) == expected[group]["n_labels"]


@pytest.mark.django_db
def test_model_version_filter_narrows_the_table(
    seeded: Project, member: Callable[..., Any]
) -> None:
    shown = table_numbers(
        page(member(Role.ADMIN), seeded, model_version="model-a"), "quality-table"
    )
    assert set(shown) == {"model-a"}


@pytest.mark.django_db
def test_dashboard_plots_load_after_the_page(seeded: Project, member: Callable[..., Any]) -> None:
    admin = member(Role.ADMIN)
    html = page(admin, seeded)
    assert "<svg" not in html.split('data-testid="quality"', 1)[1]  # the page answers first
    for testid in ("plot-quality", "plot-coverage-tier"):
        assert plot_svg(admin, html, testid).startswith("<svg")
    # Filters travel with the plot: a version filter draws that version only.
    filtered = page(admin, seeded, model_version="model-a", range="all")
    block = filtered.split('data-testid="plot-quality"', 1)[1][:400]
    assert "model_version=model-a" in block
    assert "range=all" in block
    assert plot_svg(admin, filtered, "plot-quality").startswith("<svg")
    # No such plot: 204; an outsider: 404; an annotator: 403.
    client = Client()
    client.force_login(admin)
    url = reverse("project-dashboard-plot", args=[seeded.slug, "quality", "nothing"])
    assert client.get(url).status_code == 204
    client.force_login(member(Role.ANNOTATOR))
    assert client.get(url).status_code == 403
    # No CDN, no external script or stylesheet.
    assert not re.search(r'(src|href)="https?://', html)


@pytest.mark.django_db
def test_queue_health_numbers_equal_the_queue_selector(
    seeded: Project, member: Callable[..., Any]
) -> None:
    html = page(member(Role.ADMIN), seeded)
    health = queue_health(project=seeded)
    for key in ("backlog", "skips", "flagged", "expired_leases", "done"):
        assert f'data-testid="queue-{key}">{health[key]}<' in html
    assert 'data-testid="annotators"' in html


@pytest.mark.django_db
def test_segments_below_minimum_are_named(seeded: Project, member: Callable[..., Any]) -> None:
    html = page(member(Role.ADMIN), seeded)
    answer = estimates_compute(
        project=seeded, by="segment.tier", filters=estimate_filters(DashboardFilters())
    )
    below = [g for g in answer["groups"] if g["n_labels"] < 20]
    if below:
        block = html.split('data-testid="below-minimum"', 1)[1].split("</p>", 1)[0]
        for g in below:
            assert f"tier={g['group']}" in block
    else:
        assert "Every segment with a minimum has reached it." in html


@pytest.mark.django_db
def test_bias_and_power_numbers_come_from_the_reports(
    seeded: Project, member: Callable[..., Any]
) -> None:
    from sampling.selectors.reports import bias_report, power_report

    html = page(member(Role.ADMIN), seeded)
    where = estimate_filters(DashboardFilters())
    bias = bias_report(project=seeded, filters=where)["overall"]
    assert f'data-testid="thumbs-down-rate">{100 * bias["thumbs_down_rate"]:.1f}%<' in html
    assert f'data-testid="unbiased-bad-rate">{100 * bias["bad_rate"]["estimate"]:.1f}%<' in html
    power = power_report(project=seeded, filters=where)
    sentence = html.split('data-testid="power-sentence"><strong>', 1)[1].split("<", 1)[0]
    assert sentence.startswith(f"To detect a 5-point drop: {power['labels_needed']:,} labels")
    assert "with the queue at its current pace" in sentence
    # The labels-per-day figure names the window it was measured over.
    window = html.split('data-testid="labels-window">', 1)[1].split("</span>", 1)[0]
    assert f"({power['labels_window']['labels']} labels)" in window
    assert window.startswith("over ")
    for testid in ("plot-bias-share-tier", "plot-bias-rates-tier", "plot-power-latency"):
        assert plot_svg(member(Role.ADMIN), html, testid).startswith("<svg")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [{}, {"model_version": "model-b", "range": "all"}, {"segment": "tier=free", "range": "90d"}],
)
def test_dashboard_numbers_equal_the_api_for_the_same_filters(
    seeded: Project, member: Callable[..., Any], query: dict[str, str]
) -> None:
    """The page links the API calls for its filters; asking them gives the numbers shown."""
    from html import unescape

    from tests.conftest import client_for

    user = member(Role.ENGINEER)
    html = page(user, seeded, **query)
    links = {
        name: unescape(url)
        for url, name in re.findall(r'<a href="([^"]+)" data-api="([^"]+)">', html)
    }
    api = client_for(user)
    estimates = api.get(links["estimates"])
    assert estimates.status_code == 200, estimates.content
    shown = table_numbers(html, "quality-table")
    expected = {g["group"]: g for g in estimates.json()["groups"] if g["n_labels"]}
    assert set(shown) == set(expected)
    for group, numbers in shown.items():
        if expected[group]["estimate"] is None:  # below the minimum: the plain message instead
            assert numbers["estimate"] == expected[group]["display"]
            assert numbers["estimate"].startswith("not enough labels (n = ")
            continue
        assert numbers["estimate"] == f"{expected[group]['estimate']:.3f}"
        assert int(numbers["n_labels"]) == expected[group]["n_labels"]

    regression = api.get(links["regression report"]).json()
    for version in regression["versions"]:
        if version["model_version"] not in shown:
            continue
        difference = version["difference"]
        text = shown[version["model_version"]]["difference"]
        if difference is None:
            assert text == "\u2013"  # the baseline itself
        elif difference["estimate"] is None:  # withheld: too few labels on one side
            assert text == ""  # the cell holds a muted span with the message
            assert difference["display"].startswith("not enough labels (n = ")
            assert f'<span class="muted">{difference["display"]}</span>' in html
        else:
            assert text == (
                f"{difference['estimate']:.3f} ({difference['ci_low']:.3f} \u2013 "
                f"{difference['ci_high']:.3f})"
            )

    bias = api.get(links["bias report"]).json()["overall"]
    if bias["thumbs_down_rate"] is not None:
        assert f'data-testid="thumbs-down-rate">{100 * bias["thumbs_down_rate"]:.1f}%<' in html
    if bias["bad_rate"]["estimate"] is not None:
        assert f'data-testid="unbiased-bad-rate">{100 * bias["bad_rate"]["estimate"]:.1f}%<' in html
    power = api.get(links["power report"]).json()
    assert f"To detect a 5-point drop: {power['labels_needed']:,} labels" in html

    health = api.get(links["queue health"]).json()["health"]
    for key in ("backlog", "skips", "flagged", "expired_leases", "done"):
        assert f'data-testid="queue-{key}">{health[key]}<' in html


@pytest.mark.django_db
def test_cached_statistics_follow_new_labels(seeded: Project, member: Callable[..., Any]) -> None:
    """A second view reuses the statistics; a new label changes what is shown."""
    from unittest import mock

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sampling.selectors import dashboard as selectors

    admin = member(Role.ADMIN)
    with CaptureQueriesContext(connection) as cold:
        first = table_numbers(page(admin, seeded), "quality-table")
    with (
        CaptureQueriesContext(connection) as warm,
        mock.patch.object(selectors, "_statistics", wraps=selectors._statistics) as computed,
    ):
        assert table_numbers(page(admin, seeded), "quality-table") == first
    assert computed.call_count == 0  # the statistics came from the cache
    assert len(warm) < len(cold)
    annotator = member(Role.ANNOTATOR)
    seed_more = assignment_claim(project=seeded, annotator=annotator)
    if seed_more is None:  # everything labelled: add a second opinion through a new run instead
        pytest.skip("no item left to label in the seed")
    assignment_submit(assignment_id=seed_more.pk, annotator=annotator, values={"quality": 1})
    after = table_numbers(page(admin, seeded), "quality-table")
    assert sum(int(g["n_labels"]) for g in after.values()) == (
        sum(int(g["n_labels"]) for g in first.values()) + 1
    )


@pytest.mark.django_db
def test_agreement_is_the_agreement_selector(project: Project, member: Callable[..., Any]) -> None:
    from labeling.selectors.agreement import project_agreement

    rng = random.Random(3)
    for i in range(30):
        InteractionFactory(project=project, segment={"tier": "pro" if i % 2 else "free"})
    strategy = strategy_create(
        project=project,
        data={"name": "overlap", "batch_size": 12, "overlap_fraction": 1.0, "overlap_k": 2},
    )
    run = sampling_run_create(project=project, strategy=strategy)
    sampling_run_execute(run_id=run.pk)
    for annotator in (member(Role.ANNOTATOR), member(Role.ANNOTATOR)):
        while (a := assignment_claim(project=project, annotator=annotator)) is not None:
            assignment_submit(
                assignment_id=a.pk, annotator=annotator, values={"quality": rng.choice([2, 4, 5])}
            )
    html = page(member(Role.REVIEWER), project)
    table = html.split('data-testid="agreement"', 1)[1].split("</table>", 1)[0]
    quality = next(
        q for q in project_agreement(project=project)["questions"] if q["key"] == "quality"
    )
    assert quality["items"] > 0
    row = table.split("<td>quality</td>", 1)[1].split("</tr>", 1)[0]
    assert f">{quality['alpha']:.2f}<" in row
    assert f">{quality['items']}<" in row


@pytest.mark.django_db
def test_cached_statistics_survive_pickling(seeded: Project) -> None:
    """The production cache is Redis: what is cached must pickle and come back equal."""
    import pickle

    from sampling.selectors.dashboard import dashboard_data
    from sampling.views.dashboard_presenter import dashboard_present

    data = dashboard_data(project=seeded, filters=DashboardFilters())
    restored = pickle.loads(pickle.dumps(data))
    shown, shown_restored = dashboard_present(data), dashboard_present(restored)
    for name in ("quality", "coverage", "bias", "power"):
        assert getattr(restored, name) == getattr(data, name)
        assert getattr(shown_restored, name).plots == getattr(shown, name).plots
        assert getattr(shown_restored, name).empty == getattr(shown, name).empty


@pytest.mark.django_db
def test_coverage_per_topic_cluster(seeded: Project, member: Callable[..., Any]) -> None:
    from labeling.models import Annotation
    from sampling.models import Inclusion, InteractionTopic
    from sampling.selectors.coverage import cluster_coverage
    from sampling.services.topic_cells import topic_cells_rebuild

    considered = list(
        Inclusion.objects.filter(project=seeded).values_list("interaction_id", "selected")
    )
    InteractionTopic.objects.bulk_create(
        [InteractionTopic(interaction_id=i, cluster=i % 3) for i, _ in considered]
    )
    topic_cells_rebuild(project=seeded)  # written past scoring: the cells as the backfill makes
    labelled = set(
        Annotation.objects.filter(queue_item__project=seeded).values_list(
            "interaction_id", flat=True
        )
    )
    rows = {r["cluster"]: r for r in cluster_coverage(project=seeded)}
    for cluster in range(3):
        members = [(i, sel) for i, sel in considered if i % 3 == cluster]
        assert rows[cluster]["traffic"] == len(members)
        assert rows[cluster]["selected"] == sum(sel for _, sel in members)
        assert rows[cluster]["labels"] == sum(i in labelled for i, _ in members)
    admin = member(Role.ADMIN)
    html = page(admin, seeded)
    assert plot_svg(admin, html, "plot-coverage-clusters").startswith("<svg")


@pytest.mark.django_db
def test_cached_statistics_outlive_the_minute_and_state_their_range(
    seeded: Project, member: Callable[..., Any]
) -> None:
    """The cache key is the data version, not the clock: a view three minutes later reuses the
    statistics (a page slower than a minute is still warm) and states the range they were
    computed for (its API links carry the first view's ``since``); past ``CACHE_SECONDS`` the
    statistics are recomputed, and a new label changes the key at once."""
    from unittest import mock
    from urllib.parse import urlencode

    from sampling.selectors import dashboard as selectors

    admin = member(Role.ADMIN)
    start = timezone.now().replace(second=30, microsecond=0)
    # "last 30 days" starts at the UTC midnight 30 days before today (whole days: the cells)
    midnight = (start - dt.timedelta(days=30)).replace(hour=0, minute=0, second=0)
    since = {"since": midnight.isoformat()}
    with mock.patch("django.utils.timezone.now", return_value=start):
        first = table_numbers(page(admin, seeded), "quality-table")
    later = start + dt.timedelta(minutes=3)
    with (
        mock.patch("django.utils.timezone.now", return_value=later),
        mock.patch.object(selectors, "_statistics", wraps=selectors._statistics) as computed,
    ):
        html = page(admin, seeded)
    assert computed.call_count == 0
    assert table_numbers(html, "quality-table") == first
    assert urlencode(since) in html
    much_later = start + dt.timedelta(seconds=selectors.CACHE_SECONDS + 120)
    with (
        mock.patch("django.utils.timezone.now", return_value=much_later),
        mock.patch.object(selectors, "_statistics", wraps=selectors._statistics) as computed,
    ):
        html = page(admin, seeded)
    assert computed.call_count == 1
