"""Authorisation matrix: every URL pattern x every kind of caller -> the expected answer class.

The routes are walked from the URL conf (``get_resolver``), so a new endpoint that is not listed in
``ROUTES`` below fails ``test_every_route_is_classified``. Each route is called once per caller with
the route's first allowed method (GET when it has one; otherwise POST with an empty body, where a
caller who passes authorisation gets a 4xx validation answer or a 2xx/3xx, never 401/403/404).

Answer classes:
- ``ok``: passed authorisation (any status except 401, 403, 404 and a redirect to the login page);
- ``denied``: 401, 403 or a redirect to the login page, with no object details in the body;
- ``hidden``: 404 (the object belongs to a project the caller is not a member of).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from labeling.auth import generate_key, hash_key
from labeling.models import (
    Annotation,
    Assignment,
    Export,
    IngestToken,
    Membership,
    Project,
    Queue,
    QueueItem,
    Role,
    WebhookDelivery,
    WebhookSubscription,
)
from labeling.routing import ALIAS_SUFFIX
from sampling.judges.models import Judge
from sampling.models import AlertRule, SamplingRun, SamplingStrategy
from tests.conftest import client_for
from tests.factories import InteractionFactory, MembershipFactory, ProjectFactory, UserFactory

CALLERS = ("anonymous", "annotator", "reviewer", "engineer", "admin", "outsider", "token")
MEMBER_ROLES = {
    "annotator": Role.ANNOTATOR,
    "reviewer": Role.REVIEWER,
    "engineer": Role.ENGINEER,
    "admin": Role.ADMIN,
}


@dataclass(frozen=True)
class Route:
    """How a route is guarded.

    ``need``: "public" (anyone), "auth" (any signed-in user), "staff" (staff users only), "token"
    (ingestion tokens only: people get 403), or a
    capability from
    ``labeling.access.CAPABILITIES``; ``scoped``: the route names a project (or an object in one),
    so outsiders get 404; ``token``: an ingestion token of the project may call it; ``page``: a
    browser page (session auth: tokens are ignored there and count as anonymous);
    ``owner``: only the annotator who holds the object (an assignment) may act; others get 404;
    ``method``: for function views restricted to POST (GET answers 405 before any check).
    """

    need: str
    scoped: bool = True
    token: bool = False
    page: bool = False
    owner: bool = False
    method: str | None = None


CAP = {
    "label": {"annotator", "reviewer", "admin"},
    "review": {"reviewer", "admin"},
    "read": {"reviewer", "engineer", "admin"},
    "export": {"engineer", "admin"},
    "configure": {"admin"},
    "ingest": {"engineer", "admin"},
    "member": {"annotator", "reviewer", "engineer", "admin"},
}

ROUTES: dict[str, Route] = {
    # OpenAPI and docs
    "api-schema": Route("public", scoped=False),
    "api-docs": Route("public", scoped=False),
    # projects and membership
    "labeling_api:projects": Route("auth", scoped=False),
    "labeling_api:project": Route("member"),
    "labeling_api:members": Route("configure"),
    "labeling_api:member": Route("configure"),
    "labeling_api:ingest-tokens": Route("ingest"),
    "labeling_api:ingest-token": Route("ingest"),
    # ingestion
    "labeling_api:interactions": Route("read"),
    "labeling_api:interactions-bulk": Route("ingest", token=True),
    "labeling_api:interactions-erase": Route("configure"),
    "labeling_api:events": Route("ingest", token=True),
    "labeling_api:ingest-whoami": Route("token", scoped=False, token=True),
    "otlp:traces": Route("token", scoped=False, token=True),
    "labeling_api:import": Route("ingest", token=True),
    # queue
    "labeling_api:queue-next": Route("label"),
    "labeling_api:queue-progress": Route("label"),
    "labeling_api:queue-health": Route("read"),
    "labeling_api:assignment-submit": Route("label", owner=True),
    "labeling_api:assignment-skip": Route("label", owner=True),
    "labeling_api:agreement": Route("read"),
    "labeling_api:disagreements": Route("review"),
    "labeling_api:adjudicate": Route("review"),
    "labeling_api:gold": Route("review"),
    "labeling_api:item-reopen": Route("review"),
    "labeling_api:annotation-history": Route("label"),
    "labeling_api:gold-list": Route("review"),
    "labeling_api:annotation-edit": Route("label", owner=True),
    "labeling_api:my-labels": Route("label"),
    "labeling_api:item-comments": Route("label"),
    "labeling_api:annotation-review": Route("review"),
    "labeling_api:queues": Route("label"),
    "labeling_api:queue": Route("configure"),
    "labeling_api:member-skills": Route("configure"),
    # exports
    "labeling_api:exports": Route("export"),
    "labeling_api:export": Route("export"),
    "labeling_api:export-retry": Route("export"),
    "labeling_api:export-download": Route("export"),
    # webhooks
    "labeling_api:webhooks": Route("configure"),
    "labeling_api:webhook": Route("configure"),
    "labeling_api:webhook-rotate": Route("configure"),
    "labeling_api:webhook-test": Route("configure"),
    "labeling_api:webhook-deliveries": Route("configure"),
    "labeling_api:webhook-delivery": Route("configure"),
    # sampling
    "sampling_api:strategies": Route("read"),
    "sampling_api:strategy-preview": Route("configure"),
    "sampling_api:strategy": Route("read"),
    "sampling_api:runs": Route("read"),
    "sampling_api:run": Route("read"),
    "sampling_api:estimates": Route("read"),
    "sampling_api:report-bias": Route("read"),
    "sampling_api:report-power": Route("read"),
    "sampling_api:report-regression": Route("read"),
    "sampling_api:monitoring": Route("read"),
    "sampling_api:alert-rules": Route("read"),
    "sampling_api:alert-rules-evaluate": Route("configure"),
    "sampling_api:alert-rule": Route("configure"),
    "sampling_api:alerts": Route("read"),
    # judges
    "sampling_api:judges": Route("read"),
    "sampling_api:judge": Route("read"),
    "sampling_api:judge-results": Route("read"),
    "sampling_api:judge-test": Route("configure"),
    "sampling_api:judge-run": Route("configure"),
    "sampling_api:judge-calibration": Route("read"),
    # pages
    "home": Route("auth", scoped=False, page=True),
    "login": Route("public", scoped=False, page=True),
    "logout": Route("public", scoped=False, page=True),
    "project-home": Route("member", page=True),
    "project-members": Route("configure", page=True),
    "project-member-change": Route("configure", page=True, method="post"),
    "project-tokens": Route("ingest", page=True),
    "project-token-revoke": Route("ingest", page=True, method="post"),
    "project-settings": Route("configure", page=True),
    "project-new": Route("staff", scoped=False, page=True),
    "project-schema": Route("configure", page=True),
    "project-retrain": Route("configure", page=True, method="post"),
    "project-strategies": Route("configure", page=True),
    "project-strategy-new": Route("configure", page=True),
    "project-strategy": Route("configure", page=True),
    "project-dashboard": Route("read", page=True),
    "project-dashboard-plot": Route("read", page=True),
    "data-browser": Route("read", page=True),
    "data-item": Route("read", page=True),
    "data-enqueue": Route("configure", page=True, method="post"),
    "data-erase": Route("configure", page=True),
    "annotate": Route("label", page=True),
    "label-history": Route("label", page=True),
    "review": Route("review", page=True),
    "review-reopen": Route("review", page=True, method="post"),
    "review-disagreements": Route("review", page=True),
    "review-gold": Route("review", page=True),
    "review-gold-item": Route("review", page=True),
    "review-gold-rate": Route("configure", page=True, method="post"),
    "review-labels": Route("review", page=True),
    "project-queues": Route("configure", page=True),
    "project-exports": Route("export", page=True),
    "project-export-retry": Route("export", page=True, method="post"),
    "project-alerts": Route("configure", page=True),
    "project-alert-rule": Route("configure", page=True),
    "project-alerts-check": Route("configure", page=True, method="post"),
    "project-webhooks": Route("configure", page=True),
    "project-webhook": Route("configure", page=True),
    "project-webhook-action": Route("configure", page=True, method="post"),
    "project-judges": Route("configure", page=True),
    "project-judge-new": Route("configure", page=True),
    "project-judge": Route("configure", page=True),
    "project-judge-action": Route("configure", page=True, method="post"),
    "project-judge-trust": Route("read", page=True),
}


def walk(
    patterns: list[Any], prefix: str = "", namespace: str = ""
) -> Iterator[tuple[str, str, URLPattern]]:
    """(route, name with its namespaces, pattern) for every pattern under ``patterns``."""
    for p in patterns:
        if isinstance(p, URLResolver):
            inner = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from walk(p.url_patterns, prefix + str(p.pattern), inner)
        else:
            yield prefix + str(p.pattern), f"{namespace}{p.name or ''}", p


def app_routes() -> dict[str, URLPattern]:
    """Every named pattern of the site except Django's admin (tested separately below) and the
    slash-less aliases, which must reach the same view as the route they alias (so they share its
    guard; tests/test_url_contract.py calls them)."""
    found: dict[str, URLPattern] = {}
    aliases: dict[str, URLPattern] = {}
    for route, name, pattern in walk(get_resolver().url_patterns):
        if route.startswith("admin/"):
            continue
        assert pattern.name, f"unnamed URL pattern {route!r}: name it and classify it here"
        if name.endswith(ALIAS_SUFFIX):
            aliases[name.removesuffix(ALIAS_SUFFIX)] = pattern
        else:
            found[name] = pattern
    for name, alias in aliases.items():
        assert alias.callback is found[name].callback, f"alias of {name} reaches another view"
    return found


def test_every_route_is_classified() -> None:
    names = set(app_routes())
    assert names - set(ROUTES) == set(), "classify these new routes in ROUTES"
    assert set(ROUTES) - names == set(), "these classified routes no longer exist"


def expected(route: Route, caller: str) -> str:
    if route.need == "public":
        return "ok"
    if caller == "anonymous" or (caller == "token" and route.page):
        return "denied"
    if caller == "token":
        if route.token:
            return "ok"
        return "denied|hidden" if route.owner else "denied"  # owner lookups find nothing: 404
    if route.need == "staff":
        return "denied"  # no caller of the matrix is a staff user
    if route.need == "token":
        return "denied"  # only an ingestion token may call it
    if caller == "outsider":
        return "hidden" if route.scoped else "ok"
    if route.need == "auth":
        return "ok"
    if caller in CAP[route.need]:
        if route.owner and caller != "annotator":
            return "hidden"  # the assignment / annotation belongs to the annotator
        return "ok"
    return "hidden" if route.owner else "denied"


@dataclass
class World:
    project: Project
    users: dict[str, Any]
    token_key: str
    kwargs: dict[str, str]


@pytest.fixture
def world(db: None) -> World:
    project = ProjectFactory(slug="matrix-bot")
    other = ProjectFactory(slug="other-bot")
    users: dict[str, Any] = {}
    for caller, role in MEMBER_ROLES.items():
        users[caller] = UserFactory(username=f"m-{caller}")
        MembershipFactory(project=project, user=users[caller], role=role)
    users["outsider"] = UserFactory(username="m-outsider")
    MembershipFactory(project=other, user=users["outsider"], role=Role.ADMIN)

    key = generate_key()
    token = IngestToken.objects.create(
        project=project, name="matrix", prefix=key[:12], key_hash=hash_key(key)
    )
    interaction = InteractionFactory(project=project)
    item = QueueItem.objects.create(
        project=project, interaction=interaction, overlap=2, leased_count=1
    )
    assignment = Assignment.objects.create(
        queue_item=item,
        annotator=users["annotator"],
        leased_at=interaction.occurred_at,
        lease_expires_at=interaction.occurred_at.replace(year=2100),
    )
    annotation = Annotation.objects.create(
        queue_item=item,
        interaction=interaction,
        annotator=users["annotator"],
        values={"quality": 4},
        schema_version=project.schema_version,
    )
    export = Export.objects.create(project=project, kind="sft", created_by=users["admin"])
    strategy = SamplingStrategy.objects.create(project=project, name="matrix")
    run = SamplingRun.objects.create(project=project, strategy=strategy)
    membership = Membership.objects.get(project=project, user=users["annotator"])
    named_queue = Queue.objects.create(project=project, name="matrix", slug="matrix")
    judge = Judge.objects.create(
        project=project,
        name="matrix",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        prompt_template="{response}",
        max_retries=0,
    )
    webhook = WebhookSubscription.objects.create(
        project=project, url="http://127.0.0.1:9/hook", events=["export.ready"], secret="s"
    )
    delivery = WebhookDelivery.objects.create(
        project=project,
        subscription=webhook,
        event="export.ready",
        uid="dlv_matrix",
        next_attempt_at=interaction.occurred_at,
    )
    kwargs = {
        "webhook_id": str(webhook.id),
        "delivery_id": str(delivery.id),
        "slug": project.slug,
        "username": users["annotator"].username,
        "token_id": str(token.id),
        "assignment_id": str(assignment.id),
        "item_id": str(item.id),
        "interaction_id": str(interaction.id),
        "annotation_id": str(annotation.id),
        "export_id": str(export.id),
        "strategy_id": str(strategy.id),
        "run_id": str(run.id),
        "membership_id": str(membership.id),
        "judge_id": str(judge.id),
        "rule_id": str(AlertRule.objects.create(project=project, name="matrix").id),
        "section": "quality",
        "name": "quality",
        "queue_id": str(named_queue.id),
    }
    return World(project=project, users=users, token_key=key, kwargs=kwargs)


def client(world: World, caller: str, *, page: bool) -> Client:
    if caller == "anonymous":
        return Client() if page else APIClient()
    if caller == "token":
        c = Client() if page else APIClient()
        c.defaults["HTTP_AUTHORIZATION"] = f"Ingest {world.token_key}"
        return c
    user = world.users[caller]
    if page:
        c = Client()
        c.force_login(user)
        return c
    return client_for(user)


def url_for(name: str, pattern: URLPattern, kwargs: dict[str, str]) -> str:
    needed = pattern.pattern.regex.groupindex
    return reverse(name, kwargs={k: kwargs[k] for k in needed})


def method_for(pattern: URLPattern) -> str:
    view_class = getattr(pattern.callback, "view_class", None)
    cls = getattr(pattern.callback, "cls", None) or view_class
    if cls is not None:
        allowed = [m for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)]
        return allowed[0] if allowed else "get"
    return "get"


def answer_class(response: Any) -> str:
    status = response.status_code
    if status in (401, 403):
        return "denied"
    if status in (301, 302, 303) and "/login" in response.get("Location", ""):
        return "denied"
    if status == 404:
        return "hidden"
    return "ok"


CASES = [(name, caller) for name in ROUTES for caller in CALLERS]


@pytest.mark.parametrize(("name", "caller"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_matrix(world: World, name: str, caller: str) -> None:
    route = ROUTES[name]
    pattern = app_routes()[name]
    url = url_for(name, pattern, world.kwargs)
    method = route.method or method_for(pattern)
    c = client(world, caller, page=route.page)
    response = getattr(c, method)(url)
    got = answer_class(response)
    want = expected(route, caller)
    assert got in want.split("|"), (
        f"{method.upper()} {url} as {caller}: {response.status_code} ({got}), want {want}"
    )
    if got == "hidden" and caller == "outsider":
        body = response.content.decode("utf-8", "replace")
        assert world.project.name not in body


def test_outsider_and_stranger_get_the_same_answer(world: World) -> None:
    """404 for another project's object is indistinguishable from 404 for an object that does not
    exist: same status, same body."""
    api = client_for(world.users["outsider"])
    real = api.get(reverse("labeling_api:export", kwargs={"export_id": world.kwargs["export_id"]}))
    missing = api.get(reverse("labeling_api:export", kwargs={"export_id": 999999999}))
    assert real.status_code == missing.status_code == 404
    assert real.json() == missing.json()


@pytest.mark.parametrize("path", ["/admin/", "/admin/labeling/project/", "/admin/auth/user/"])
def test_admin_site_is_staff_only(world: World, path: str) -> None:
    anonymous = Client().get(path)
    assert anonymous.status_code == 302
    assert "/admin/login/" in anonymous["Location"]
    project_admin = Client()
    project_admin.force_login(world.users["admin"])  # a project admin is not Django staff
    response = project_admin.get(path)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
