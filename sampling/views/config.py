"""Pages: configuration for project admins (need ``configure``).

Members and roles, ingestion tokens (the key is shown once), the label schema editor, sampling
strategies (form, preview on the current pool, save) and the page that starts sampling runs,
retrains and exports. Views parse the form, call one service and render; the rules live in the
services every caller shares (the API calls the same ones), and their errors are put back on the
form fields. Long jobs (runs, retrains, exports) are started through the JSON API by
``static/flywheel/config.js``, which polls the API for their progress.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from labeling import dispatch
from labeling.access import acting_user, has_capability, project_access, role_in
from labeling.errors import Invalid
from labeling.models import IngestToken, Membership, Project, Role
from labeling.selectors.projects import ingest_tokens_list, project_members
from labeling.selectors.queue import queue_health
from labeling.services.projects import (
    ingest_token_create,
    ingest_token_revoke,
    membership_add,
    membership_remove,
)
from labeling.services.schemas import schema_change
from sampling.forms import (
    MemberForm,
    RoleForm,
    SchemaForm,
    StrategyForm,
    TokenForm,
    attach_errors,
)
from sampling.models import ProxyModel
from sampling.selectors.runs import run_list
from sampling.selectors.strategies import strategy_get, strategy_list, strategy_preview
from sampling.services.strategies import strategy_create, strategy_update

ServiceErrors = (Invalid, DjangoValidationError, ValueError)


def _detail(exc: Exception) -> Any:
    """The ``{"location": message}`` detail of a service error, whatever its class."""
    if isinstance(exc, Invalid):
        return exc.errors
    if isinstance(exc, DjangoValidationError):
        return exc.message_dict if hasattr(exc, "error_dict") else exc.messages
    return str(exc)


def _configure(request: HttpRequest, slug: str) -> Project:
    return project_access(user=request.user, slug=slug, need="configure")


def _actor(request: HttpRequest) -> User:
    """The signed-in user (every view here is behind ``login_required``)."""
    return acting_user(request.user)


# --- Members and roles ------------------------------------------------------------------------


@login_required
def members(request: HttpRequest, slug: str) -> HttpResponse:
    project = _configure(request, slug)
    form = MemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = get_user_model().objects.filter(username=form.cleaned_data["username"]).first()
        if user is None:
            form.add_error("username", "No user with this username. They must have an account.")
        else:
            try:
                membership_add(
                    project=project,
                    user=user,
                    role=form.cleaned_data["role"],
                    added_by=_actor(request),
                )
            except ServiceErrors as exc:
                attach_errors(form, _detail(exc))
            else:
                messages.success(request, f"{user.username} is now {form.cleaned_data['role']}.")
                return redirect("project-members", slug=slug)
    return render(
        request,
        "sampling/members.html",
        {
            "project": project,
            "form": form,
            "memberships": project_members(project=project),
            "roles": Role.choices,
        },
    )


@login_required
@require_POST
def member_change(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    """Change a member's role (``role`` posted) or remove them (``remove`` posted)."""
    project = _configure(request, slug)
    membership = Membership.objects.filter(project=project, pk=membership_id).first()
    if membership is None:
        raise Http404("No such member.")
    user = membership.user
    try:
        if "remove" in request.POST:
            membership_remove(project=project, user=user, removed_by=_actor(request))
            messages.success(request, f"{user.username} was removed from the project.")
        else:
            form = RoleForm(request.POST)
            if not form.is_valid():
                raise ValueError("Choose a role: " + ", ".join(Role.values))
            role = form.cleaned_data["role"]
            membership_add(project=project, user=user, role=role, added_by=_actor(request))
            messages.success(request, f"{user.username} is now {role}.")
    except ServiceErrors as exc:
        messages.error(request, _message(exc))
    # An admin who just removed or demoted themselves may no longer open this page.
    if not has_capability(role=role_in(user=request.user, project=project), need="configure"):
        return redirect("home")
    return redirect("project-members", slug=slug)


def _message(exc: Exception) -> str:
    detail = _detail(exc)
    if isinstance(detail, dict):
        return "; ".join(
            f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in detail.items()
        )
    return " ".join(map(str, detail)) if isinstance(detail, list) else str(detail)


# --- Ingestion tokens -------------------------------------------------------------------------


@login_required
def tokens(request: HttpRequest, slug: str) -> HttpResponse:
    """List tokens and create one. A new key is rendered in this response only (never stored)."""
    project = _configure(request, slug)
    form = TokenForm(request.POST or None)
    new_key: str | None = None
    if request.method == "POST" and form.is_valid():
        try:
            _token, new_key = ingest_token_create(
                project=project, name=form.cleaned_data["name"], created_by=_actor(request)
            )
        except ServiceErrors as exc:
            attach_errors(form, _detail(exc))
        else:
            form = TokenForm()
    response = render(
        request,
        "sampling/tokens.html",
        {
            "project": project,
            "form": form,
            "tokens": ingest_tokens_list(project=project),
            "new_key": new_key,
        },
    )
    if new_key:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, slug: str, token_id: int) -> HttpResponse:
    project = _configure(request, slug)
    token = IngestToken.objects.filter(project=project, pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    ingest_token_revoke(token=token, revoked_by=_actor(request))
    messages.success(request, f"Token {token.name} ({token.prefix}…) was revoked.")
    return redirect("project-tokens", slug=slug)


# --- Label schema -----------------------------------------------------------------------------


@login_required
def schema(request: HttpRequest, slug: str) -> HttpResponse:
    """The schema editor: JSON in a textarea, errors in place, a live preview (config.js)."""
    project = _configure(request, slug)
    if request.method == "POST":
        form = SchemaForm(request.POST)
        if form.is_valid():
            try:
                schema_change(
                    project=project,
                    schema=form.cleaned_data["schema"],
                    actor=_actor(request),
                )
            except ServiceErrors as exc:
                attach_errors(
                    form, _detail(exc), field_for=lambda _loc: "schema", name_location=True
                )
            else:
                messages.success(request, "Schema saved.")
                return redirect("project-schema", slug=slug)
    else:
        form = SchemaForm(initial={"schema": json.dumps(project.label_schema, indent=2)})
    return render(request, "sampling/schema.html", {"project": project, "form": form})


# --- Sampling strategies, runs, retrains, exports ---------------------------------------------


@login_required
def strategies(request: HttpRequest, slug: str) -> HttpResponse:
    """Strategies with "run now", recent runs with progress, proxy models, retrain and export."""
    project = _configure(request, slug)
    return render(
        request,
        "sampling/strategies.html",
        {
            "project": project,
            "strategies": strategy_list(project=project),
            "runs": run_list(project=project).select_related("strategy")[:10],
            "proxies": ProxyModel.objects.filter(project=project).order_by("-version")[:5],
            "queue": queue_health(project=project),
            "export_kinds": ("sft", "preference", "classification", "eval"),
            "api": {
                "runs": reverse_api("sampling-runs", slug),
                "exports": reverse_api("exports", slug),
            },
        },
    )


@login_required
@require_POST
def retrain(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a proxy retrain (a Celery task; a second request while one trains does nothing)."""
    project = _configure(request, slug)
    project_id = project.pk
    dispatch.enqueue_on_commit("sampling.retrain", project_id)
    messages.success(request, "Retraining the proxy model: its row below shows the progress.")
    return redirect("project-strategies", slug=slug)


def reverse_api(collection: str, slug: str) -> str:
    return f"/api/projects/{slug}/{collection}/"


@login_required
def strategy_edit(request: HttpRequest, slug: str, strategy_id: int | None = None) -> HttpResponse:
    """Create or edit a strategy. "Preview" shows, on the current pool, the expected labels per
    segment and per component and the smallest pi, without saving."""
    project = _configure(request, slug)
    strategy = None
    if strategy_id is not None:
        strategy = strategy_get(project=project, strategy_id=strategy_id)
        if strategy is None:
            raise Http404("No such strategy.")
    preview: Any = None
    if request.method == "POST":
        form = StrategyForm(request.POST)
        if form.is_valid():
            data = form.strategy_data()
            try:
                if request.POST.get("action") == "preview":
                    preview = preview_context(
                        strategy_preview(strategy_data=data, project=project, instance=strategy)
                    )
                else:
                    saved = (
                        strategy_update(strategy=strategy, data=data)
                        if strategy is not None
                        else strategy_create(project=project, data=data, user=_actor(request))
                    )
                    messages.success(request, f"Strategy {saved.name} saved.")
                    return redirect("project-strategies", slug=slug)
            except ServiceErrors as exc:
                attach_errors(form, _detail(exc), field_for=form.field_for)
    else:
        form = StrategyForm(initial=StrategyForm.initial_from(strategy) if strategy else None)
    return render(
        request,
        "sampling/strategy_form.html",
        {"project": project, "form": form, "strategy": strategy, "preview": preview},
    )


def preview_context(preview: dict[str, Any]) -> dict[str, Any]:
    """The preview selector's answer arranged as table rows (no numbers computed here)."""
    segments = [
        {"key": key, **row}
        for key, rows in sorted((preview.get("segments") or {}).items())
        for row in rows
    ]
    return {
        **preview,
        "component_rows": [
            {"name": name, "expected": expected}
            for name, expected in (preview.get("components") or {}).items()
        ],
        "segment_rows": segments,
        "max_weight": 1 / preview["min_pi"] if preview.get("min_pi") else None,
    }


urlpatterns = [
    path("p/<slug:slug>/members/", members, name="project-members"),
    path(
        "p/<slug:slug>/members/<int:membership_id>/",
        member_change,
        name="project-member-change",
    ),
    path("p/<slug:slug>/tokens/", tokens, name="project-tokens"),
    path(
        "p/<slug:slug>/tokens/<int:token_id>/revoke/",
        token_revoke,
        name="project-token-revoke",
    ),
    path("p/<slug:slug>/schema/", schema, name="project-schema"),
    path("p/<slug:slug>/retrain/", retrain, name="project-retrain"),
    path("p/<slug:slug>/strategies/", strategies, name="project-strategies"),
    path("p/<slug:slug>/strategies/new/", strategy_edit, name="project-strategy-new"),
    path(
        "p/<slug:slug>/strategies/<int:strategy_id>/",
        strategy_edit,
        name="project-strategy",
    ),
]
