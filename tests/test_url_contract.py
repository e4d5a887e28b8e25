"""The public URL contract, pinned by literal paths: the one test module that spells paths out.

Every other test builds its URLs with ``reverse()``. This module says, in plain strings, which paths
clients send and what they reach, so a change to a ``urls.py`` that breaks a client fails here:

- ``OLD_PATHS``: every route the site had before the URL convention (issue 11, item 5), dumped
  from ``get_resolver()`` on main, with sample arguments, and the view it reached. Each still
  reaches the same view, except the slash-less forms in ``DROPPED``.
- ``DROPPED``: slash-less forms that only worked through a ``/?$`` regex and that no client sends
  (not the SDK, the docs, the README or bench/). They now get Django's ``APPEND_SLASH`` answer: a
  301 to the path with its slash. Page form targets that gained a slash are listed too.
- ``ALIASES``: slash-less paths clients do send (docs/api.md, "Paths and their trailing slash").
  They reach the same view as the canonical path and answer the same, with no redirect, so a POST
  keeps its body.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import Resolver404, resolve
from rest_framework.test import APIClient

from labeling.auth import generate_key, hash_key
from labeling.models import (
    Annotation,
    Assignment,
    Export,
    IngestToken,
    Interaction,
    Queue,
    QueueItem,
    Role,
    WebhookSubscription,
)
from tests.conftest import client_for
from tests.factories import InteractionFactory, MembershipFactory, ProjectFactory, UserFactory
from tests.otlp_spans import json_body, recorded

# (path, view) for every route on main before the convention; ids are 7, the user is "ann".
OLD_PATHS: list[tuple[str, str]] = [
    ("/api/projects/", "ProjectsApi"),
    ("/api/projects/support-bot/", "ProjectDetailApi"),
    ("/api/projects/support-bot/members/", "MembersApi"),
    ("/api/projects/support-bot/members/ann/", "MemberDetailApi"),
    ("/api/projects/support-bot/ingest-tokens/", "IngestTokensApi"),
    ("/api/projects/support-bot/ingest-tokens/7/", "IngestTokenDetailApi"),
    ("/api/ingest/whoami", "IngestWhoamiApi"),
    ("/api/projects/support-bot/interactions/", "InteractionsApi"),
    ("/api/projects/support-bot/interactions/bulk", "InteractionsBulkApi"),
    ("/api/projects/support-bot/events/", "EventsApi"),
    ("/api/projects/support-bot/import", "ImportApi"),
    ("/api/projects/support-bot/queue/next/", "QueueNextApi"),
    ("/api/projects/support-bot/queue/next", "QueueNextApi"),
    ("/api/projects/support-bot/queue/progress/", "QueueProgressApi"),
    ("/api/projects/support-bot/queue/progress", "QueueProgressApi"),
    ("/api/projects/support-bot/queue/health/", "QueueHealthApi"),
    ("/api/projects/support-bot/queue/health", "QueueHealthApi"),
    ("/api/assignments/7/submit/", "AssignmentSubmitApi"),
    ("/api/assignments/7/submit", "AssignmentSubmitApi"),
    ("/api/assignments/7/skip/", "AssignmentSkipApi"),
    ("/api/assignments/7/skip", "AssignmentSkipApi"),
    ("/api/projects/support-bot/agreement/", "AgreementApi"),
    ("/api/projects/support-bot/agreement", "AgreementApi"),
    ("/api/projects/support-bot/disagreements/", "DisagreementListApi"),
    ("/api/projects/support-bot/disagreements", "DisagreementListApi"),
    ("/api/projects/support-bot/items/7/adjudicate/", "AdjudicateApi"),
    ("/api/projects/support-bot/items/7/adjudicate", "AdjudicateApi"),
    ("/api/projects/support-bot/items/7/gold/", "GoldApi"),
    ("/api/projects/support-bot/items/7/gold", "GoldApi"),
    ("/api/projects/support-bot/items/7/reopen/", "QueueItemReopenApi"),
    ("/api/projects/support-bot/items/7/reopen", "QueueItemReopenApi"),
    ("/api/projects/support-bot/items/7/annotations/", "AnnotationHistoryApi"),
    ("/api/projects/support-bot/items/7/annotations", "AnnotationHistoryApi"),
    ("/api/projects/support-bot/gold/", "GoldListApi"),
    ("/api/projects/support-bot/gold", "GoldListApi"),
    ("/api/annotations/7/edit/", "AnnotationEditApi"),
    ("/api/annotations/7/edit", "AnnotationEditApi"),
    ("/api/projects/support-bot/my-labels/", "MyLabelsApi"),
    ("/api/projects/support-bot/items/7/comments/", "ItemCommentsApi"),
    ("/api/projects/support-bot/items/7/comments", "ItemCommentsApi"),
    ("/api/projects/support-bot/annotations/7/review/", "AnnotationReviewApi"),
    ("/api/projects/support-bot/annotations/7/review", "AnnotationReviewApi"),
    ("/api/projects/support-bot/queues/", "QueuesApi"),
    ("/api/projects/support-bot/queues/7/", "QueueDetailApi"),
    ("/api/projects/support-bot/queues/7", "QueueDetailApi"),
    ("/api/projects/support-bot/members/ann/skills", "MemberSkillsApi"),
    ("/api/projects/support-bot/exports/", "ProjectExportsApi"),
    ("/api/projects/support-bot/exports", "ProjectExportsApi"),
    ("/api/exports/7/", "ExportDetailApi"),
    ("/api/exports/7", "ExportDetailApi"),
    ("/api/exports/7/retry/", "ExportRetryApi"),
    ("/api/exports/7/retry", "ExportRetryApi"),
    ("/api/exports/7/download/", "ExportDownloadApi"),
    ("/api/exports/7/download", "ExportDownloadApi"),
    ("/api/projects/support-bot/webhooks/", "WebhooksApi"),
    ("/api/projects/support-bot/webhooks/7/", "WebhookDetailApi"),
    ("/api/projects/support-bot/webhooks/7/rotate-secret", "WebhookRotateApi"),
    ("/api/projects/support-bot/webhooks/7/test", "WebhookTestApi"),
    ("/api/projects/support-bot/webhooks/7/deliveries/", "WebhookDeliveriesApi"),
    ("/api/projects/support-bot/webhooks/7/deliveries/7/", "WebhookDeliveryApi"),
    ("/v1/traces", "OtlpTracesApi"),
    ("/api/projects/support-bot/strategies/", "StrategyListCreateApi"),
    ("/api/projects/support-bot/strategies", "StrategyListCreateApi"),
    ("/api/projects/support-bot/strategies/preview/", "StrategyPreviewApi"),
    ("/api/projects/support-bot/strategies/preview", "StrategyPreviewApi"),
    ("/api/projects/support-bot/strategies/7/", "StrategyDetailApi"),
    ("/api/projects/support-bot/strategies/7", "StrategyDetailApi"),
    ("/api/projects/support-bot/sampling-runs/", "RunListCreateApi"),
    ("/api/projects/support-bot/sampling-runs", "RunListCreateApi"),
    ("/api/projects/support-bot/sampling-runs/7/", "RunDetailApi"),
    ("/api/projects/support-bot/sampling-runs/7", "RunDetailApi"),
    ("/api/projects/support-bot/monitoring/", "MonitoringApi"),
    ("/api/projects/support-bot/monitoring", "MonitoringApi"),
    ("/api/projects/support-bot/estimates/", "EstimatesApi"),
    ("/api/projects/support-bot/estimates", "EstimatesApi"),
    ("/api/projects/support-bot/reports/bias/", "BiasReportApi"),
    ("/api/projects/support-bot/reports/bias", "BiasReportApi"),
    ("/api/projects/support-bot/reports/power/", "PowerReportApi"),
    ("/api/projects/support-bot/reports/power", "PowerReportApi"),
    ("/api/projects/support-bot/reports/regression/", "RegressionReportApi"),
    ("/api/projects/support-bot/reports/regression", "RegressionReportApi"),
    ("/api/projects/support-bot/alert-rules/", "AlertRuleListCreateApi"),
    ("/api/projects/support-bot/alert-rules", "AlertRuleListCreateApi"),
    ("/api/projects/support-bot/alert-rules/evaluate/", "AlertRuleEvaluateApi"),
    ("/api/projects/support-bot/alert-rules/evaluate", "AlertRuleEvaluateApi"),
    ("/api/projects/support-bot/alert-rules/7/", "AlertRuleDetailApi"),
    ("/api/projects/support-bot/alert-rules/7", "AlertRuleDetailApi"),
    ("/api/projects/support-bot/alerts/", "AlertListApi"),
    ("/api/projects/support-bot/alerts", "AlertListApi"),
    ("/api/projects/support-bot/judges/", "JudgeListCreateApi"),
    ("/api/projects/support-bot/judges/7/", "JudgeDetailApi"),
    ("/api/projects/support-bot/judges/7/results/", "JudgeResultsApi"),
    ("/api/projects/support-bot/judges/7/test/", "JudgeTestConnectionApi"),
    ("/api/projects/support-bot/judges/7/run/", "JudgeRunApi"),
    ("/api/projects/support-bot/judges/7/calibration/", "JudgeCalibrationApi"),
    ("/p/support-bot/retrain/", "retrain"),
    ("/p/support-bot/strategies/", "strategies"),
    ("/p/support-bot/strategies/new/", "strategy_edit"),
    ("/p/support-bot/strategies/7/", "strategy_edit"),
    ("/p/support-bot/dashboard/", "dashboard"),
    ("/p/support-bot/dashboard/plots/overview/trend.svg", "dashboard_plot_svg"),
    ("/p/support-bot/data/", "data_browser"),
    ("/p/support-bot/data/enqueue/", "data_enqueue"),
    ("/p/support-bot/data/7/", "data_item"),
    ("/p/support-bot/alerts/", "alerts"),
    ("/p/support-bot/alerts/check/", "alerts_check"),
    ("/p/support-bot/alerts/rules/7/", "alerts"),
    ("/p/support-bot/judges/", "judges"),
    ("/p/support-bot/judges/new/", "judge_edit"),
    ("/p/support-bot/judges/7/", "judge_edit"),
    ("/p/support-bot/judges/7/action/", "judge_action"),
    ("/p/support-bot/judges/7/trust/", "judge_trust"),
    ("/", "home"),
    ("/login/", "ThrottledLoginView"),
    ("/logout/", "LogoutView"),
    ("/p/support-bot/", "project_home"),
    ("/p/support-bot/label/", "annotate"),
    ("/p/support-bot/label/history/", "label_history"),
    ("/p/support-bot/review/", "review"),
    ("/p/support-bot/review/items/7/reopen", "reopen"),
    ("/p/support-bot/review/disagreements/", "review_disagreements"),
    ("/p/support-bot/review/gold/", "review_gold"),
    ("/p/support-bot/review/gold/rate/", "review_gold_rate"),
    ("/p/support-bot/review/gold/7/", "review_gold_item"),
    ("/p/support-bot/review/labels/", "review_labels"),
    ("/p/support-bot/queues/", "queues_page"),
    ("/p/support-bot/members/", "members"),
    ("/p/support-bot/members/7/", "member_change"),
    ("/p/support-bot/tokens/", "tokens"),
    ("/p/support-bot/tokens/7/revoke/", "token_revoke"),
    ("/p/support-bot/schema/", "schema"),
    ("/projects/new/", "project_new"),
    ("/p/support-bot/settings/", "project_settings"),
    ("/p/support-bot/exports/", "exports_page"),
    ("/p/support-bot/exports/7/retry", "export_retry_page"),
    ("/p/support-bot/webhooks/", "webhooks"),
    ("/p/support-bot/webhooks/7/", "webhook_detail"),
    ("/p/support-bot/webhooks/7/action/", "webhook_action"),
]

# Slash-less forms that resolved before (a ``/?$`` regex, or a page route without a slash) and that
# no client sends. They are not kept: a GET is redirected to the form with a slash (301).
DROPPED: set[str] = {
    "/api/projects/support-bot/agreement",
    "/api/projects/support-bot/disagreements",
    "/api/projects/support-bot/gold",
    "/api/projects/support-bot/items/7/annotations",
    "/api/projects/support-bot/exports",
    "/api/exports/7",
    "/api/projects/support-bot/strategies",
    "/api/projects/support-bot/strategies/preview",
    "/api/projects/support-bot/strategies/7",
    "/api/projects/support-bot/sampling-runs",
    "/api/projects/support-bot/sampling-runs/7",
    "/api/projects/support-bot/monitoring",
    "/api/projects/support-bot/estimates",
    "/api/projects/support-bot/reports/bias",
    "/api/projects/support-bot/reports/power",
    "/api/projects/support-bot/reports/regression",
    "/api/projects/support-bot/alert-rules",
    "/api/projects/support-bot/alert-rules/evaluate",
    "/api/projects/support-bot/alert-rules/7",
    "/api/projects/support-bot/alerts",
    # pages: POST targets of forms built with {% url %}; no client has them
    "/p/support-bot/review/items/7/reopen",
    "/p/support-bot/exports/7/retry",
}

# Slash-less paths clients send -> the canonical path (with its slash) they alias.
ALIASES: dict[str, str] = {
    "/api/ingest/whoami": "/api/ingest/whoami/",
    "/api/projects/support-bot/interactions/bulk": "/api/projects/support-bot/interactions/bulk/",
    "/api/projects/support-bot/import": "/api/projects/support-bot/import/",
    "/api/projects/support-bot/queue/next": "/api/projects/support-bot/queue/next/",
    "/api/projects/support-bot/queue/progress": "/api/projects/support-bot/queue/progress/",
    "/api/projects/support-bot/queue/health": "/api/projects/support-bot/queue/health/",
    "/api/assignments/7/submit": "/api/assignments/7/submit/",
    "/api/assignments/7/skip": "/api/assignments/7/skip/",
    "/api/projects/support-bot/queues/7": "/api/projects/support-bot/queues/7/",
    "/api/projects/support-bot/members/ann/skills": "/api/projects/support-bot/members/ann/skills/",
    "/api/projects/support-bot/items/7/adjudicate": "/api/projects/support-bot/items/7/adjudicate/",
    "/api/projects/support-bot/items/7/gold": "/api/projects/support-bot/items/7/gold/",
    "/api/projects/support-bot/items/7/reopen": "/api/projects/support-bot/items/7/reopen/",
    "/api/projects/support-bot/items/7/comments": "/api/projects/support-bot/items/7/comments/",
    "/api/projects/support-bot/annotations/7/review": (
        "/api/projects/support-bot/annotations/7/review/"
    ),
    "/api/annotations/7/edit": "/api/annotations/7/edit/",
    "/api/exports/7/retry": "/api/exports/7/retry/",
    "/api/exports/7/download": "/api/exports/7/download/",
    "/api/projects/support-bot/webhooks/7/rotate-secret": (
        "/api/projects/support-bot/webhooks/7/rotate-secret/"
    ),
    "/api/projects/support-bot/webhooks/7/test": "/api/projects/support-bot/webhooks/7/test/",
    "/v1/traces": "/v1/traces/",
}


def view_name(path: str) -> str:
    func = resolve(path).func
    view = getattr(func, "view_class", None) or getattr(func, "cls", None) or func
    return str(view.__name__)


@pytest.mark.parametrize(("path", "view"), OLD_PATHS, ids=[p for p, _ in OLD_PATHS])
def test_every_old_path_reaches_the_same_view(path: str, view: str) -> None:
    if path in DROPPED:
        with pytest.raises(Resolver404):
            resolve(path)
        assert view_name(path + "/") == view
    else:
        assert view_name(path) == view


def test_the_lists_agree() -> None:
    olds = {p for p, _ in OLD_PATHS}
    assert olds >= DROPPED
    assert olds >= set(ALIASES)
    assert not DROPPED & set(ALIASES)


@pytest.mark.parametrize("path", sorted(p for p in DROPPED if p.startswith("/api/")))
def test_a_dropped_form_redirects_a_get_to_its_slash(path: str) -> None:
    answer = APIClient().get(path)
    assert answer.status_code == 301
    assert answer["Location"] == path + "/"


@pytest.mark.parametrize(("alias", "canonical"), sorted(ALIASES.items()))
def test_an_alias_reaches_the_view_of_its_canonical_path(alias: str, canonical: str) -> None:
    assert resolve(alias).func is resolve(canonical).func
    assert resolve(alias).kwargs == resolve(canonical).kwargs
    assert not canonical.removesuffix("/").endswith("/")


# --- aliases answer like the canonical path ------------------------------------------------------


@dataclass
class World:
    ids: dict[str, int]
    admin: APIClient
    annotator: APIClient
    ingest: APIClient
    key: str


@pytest.fixture
def world(db: None) -> World:
    project = ProjectFactory(slug="support-bot")
    admin, annotator = UserFactory(username="boss"), UserFactory(username="ann")
    MembershipFactory(project=project, user=admin, role=Role.ADMIN)
    MembershipFactory(project=project, user=annotator, role=Role.ANNOTATOR)
    key = generate_key()
    IngestToken.objects.create(project=project, name="t", prefix=key[:12], key_hash=hash_key(key))
    interaction = InteractionFactory(project=project)
    item = QueueItem.objects.create(project=project, interaction=interaction, overlap=2)
    later = interaction.occurred_at.replace(year=2100)
    leased = QueueItem.objects.create(
        project=project, interaction=InteractionFactory(project=project), overlap=2, leased_count=1
    )
    assignment = Assignment.objects.create(
        queue_item=leased,
        annotator=annotator,
        leased_at=interaction.occurred_at,
        lease_expires_at=later,
    )
    annotation = Annotation.objects.create(
        queue_item=item,
        interaction=interaction,
        annotator=annotator,
        values={"quality": 4},
        schema_version=project.schema_version,
    )
    ids = {
        "item": item.pk,
        "assignment": assignment.pk,
        "annotation": annotation.pk,
        "export": Export.objects.create(project=project, kind="sft", created_by=admin).pk,
        "queue": Queue.objects.create(project=project, name="German", slug="de").pk,
        "webhook": WebhookSubscription.objects.create(
            project=project, url="http://127.0.0.1:9/hook", events=["export.ready"], secret="s"
        ).pk,
    }
    ingest = APIClient()
    ingest.credentials(HTTP_AUTHORIZATION=f"Ingest {key}")
    return World(ids, client_for(admin), client_for(annotator), ingest, key)


def real(path: str, world: World) -> str:
    """An ``ALIASES`` path with the world's ids in place of the sample 7s."""
    for noun, key in (
        ("items", "item"),
        ("assignments", "assignment"),
        ("annotations", "annotation"),
        ("exports", "export"),
        ("queues", "queue"),
        ("webhooks", "webhook"),
    ):
        path = re.sub(rf"/{noun}/7(?=/|$)", f"/{noun}/{world.ids[key]}", path)
    return path


# alias -> (caller, method, body or "?query"): requests that change nothing, so both paths must
# answer byte for byte the same (a validation error, a conflict, a listing).
SAME_ANSWER: dict[str, tuple[str, str, Any]] = {
    "/api/ingest/whoami": ("ingest", "get", None),
    "/api/projects/support-bot/import": ("ingest", "post", None),
    "/api/projects/support-bot/queue/progress": ("annotator", "get", None),
    "/api/projects/support-bot/queue/health": ("admin", "get", None),
    "/api/assignments/7/submit": ("annotator", "post", {"values": {"quality": "not a number"}}),
    "/api/assignments/7/skip": ("admin", "post", {"reason": "not mine"}),
    "/api/projects/support-bot/queues/7": ("admin", "patch", {"position": "first"}),
    "/api/projects/support-bot/members/ann/skills": ("admin", "put", {"skills": "de"}),
    "/api/projects/support-bot/items/7/adjudicate": ("admin", "post", {}),
    "/api/projects/support-bot/items/7/gold": ("admin", "post", {}),
    "/api/projects/support-bot/items/7/reopen": ("admin", "post", {}),
    "/api/projects/support-bot/items/7/comments": ("annotator", "get", None),
    "/api/projects/support-bot/annotations/7/review": ("admin", "post", {"decision": "maybe"}),
    "/api/annotations/7/edit": ("annotator", "post", {"values": {"quality": "not a number"}}),
    "/api/exports/7/retry": ("admin", "post", None),
    "/api/exports/7/download": ("admin", "get", None),
    "/api/projects/support-bot/webhooks/7/test": ("annotator", "post", None),
    "/api/projects/support-bot/webhooks/7/rotate-secret": ("annotator", "post", None),
    "/api/projects/support-bot/queue/next": ("admin", "post", "?queue=no-such-queue"),
}


def test_every_alias_is_called_below() -> None:
    assert set(SAME_ANSWER) | {
        "/api/projects/support-bot/interactions/bulk",
        "/v1/traces",
    } == set(ALIASES)


@pytest.mark.parametrize("alias", sorted(SAME_ANSWER))
def test_an_alias_answers_like_its_canonical_path(world: World, alias: str) -> None:
    caller, method, body = SAME_ANSWER[alias]
    client: APIClient = getattr(world, caller)
    query = body if isinstance(body, str) else ""
    data = None if query else body
    answers = [
        getattr(client, method)(real(path, world) + query, data, format="json")
        for path in (ALIASES[alias], alias)
    ]
    canonical, aliased = answers
    assert aliased.status_code == canonical.status_code
    assert aliased.status_code not in (301, 302, 405), aliased.content[:200]
    if aliased.status_code == 404:  # the view's answer (JSON), not the URL resolver's page
        assert aliased["Content-Type"] == "application/json", aliased.content[:200]
    assert aliased.content == canonical.content


def test_a_post_to_an_alias_keeps_its_body(world: World) -> None:
    """A POST through an alias is not redirected (a redirect would drop the body)."""
    rows = [
        {
            "external_id": f"a-{n}",
            "messages": [{"role": "user", "content": "Hi"}],
            "response": "Hello",
            "occurred_at": "2026-01-05T10:00:00Z",
        }
        for n in range(2)
    ]
    for path, row in zip(
        (
            "/api/projects/support-bot/interactions/bulk",
            "/api/projects/support-bot/interactions/bulk/",
        ),
        rows,
        strict=True,
    ):
        answer = world.ingest.post(path, json.dumps(row), content_type="application/x-ndjson")
        assert answer.status_code in (200, 201), answer.content
        assert answer.json()["created"] == 1, answer.content
    assert Interaction.objects.filter(external_id__startswith="a-").count() == 2

    submitted = world.annotator.post(
        real("/api/assignments/7/submit", world), {"values": {"quality": 4}}, format="json"
    )
    assert submitted.status_code == 201, submitted.content


def test_otlp_exporters_post_to_the_path_the_spec_fixes(world: World) -> None:
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {world.key}"}
    body = json_body(recorded(with_uncaptured=False))
    first = client.post("/v1/traces", body, content_type="application/json", **auth)
    assert first.status_code == 200, first.content
    assert "created=0" not in first["X-Flywheel-Spans"]
    again = client.post("/v1/traces/", body, content_type="application/json", **auth)
    assert again.status_code == 200
    assert "created=0" in again["X-Flywheel-Spans"]
    bad = [
        client.post(p, b"{", content_type="application/json", **auth)
        for p in ("/v1/traces", "/v1/traces/")
    ]
    assert bad[0].status_code == bad[1].status_code == 400
    assert bad[0].content == bad[1].content
