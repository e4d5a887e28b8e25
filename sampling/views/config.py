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
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError as DRFValidationError

from labeling.access import project_access
from labeling.models import IngestToken, Membership, Project, QueueItem, Role
from labeling.schema import schema_validate
from sampling.forms import (
    MemberForm,
    RoleForm,
    SchemaForm,
    StrategyForm,
    TokenForm,
    attach_errors,
)
from sampling.models import ProxyModel, SamplingRun, SamplingStrategy
from sampling.selectors.dashboard import optional

ServiceErrors = (DRFValidationError, DjangoValidationError, ValueError)


def _detail(exc: Exception) -> Any:
    """The ``{"location": message}`` detail of a service error, whatever its class."""
    if isinstance(exc, DRFValidationError):
        return exc.detail
    if isinstance(exc, DjangoValidationError):
        return exc.message_dict if hasattr(exc, "error_dict") else exc.messages
    return str(exc)


def _configure(request: HttpRequest, slug: str) -> Project:
    return project_access(user=request.user, slug=slug, need="configure")


def _missing(name: str) -> str:
    return f"{name} is not available in this installation yet."


# --- Members and roles ------------------------------------------------------------------------


@login_required
def members(request: HttpRequest, slug: str) -> HttpResponse:
    project = _configure(request, slug)
    form = MemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        add = optional("labeling.services.projects", "membership_add")
        user = get_user_model().objects.filter(username=form.cleaned_data["username"]).first()
        if user is None:
            form.add_error("username", "No user with this username. They must have an account.")
        elif add is None:
            form.add_error(None, _missing("Adding members"))
        else:
            try:
                add(project=project, user=user, role=form.cleaned_data["role"], actor=request.user)
            except ServiceErrors as exc:
                attach_errors(form, _detail(exc))
            else:
                messages.success(request, f"{user.username} is now {form.cleaned_data['role']}.")
                return redirect("project-members", slug=slug)
    rows = (
        Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    )
    return render(
        request,
        "sampling/members.html",
        {"project": project, "form": form, "memberships": rows, "roles": Role.choices},
    )


@login_required
@require_POST
def member_change(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    """Change a member's role (``role`` posted) or remove them (``remove`` posted)."""
    project = _configure(request, slug)
    membership = Membership.objects.filter(project=project, pk=membership_id).first()
    if membership is None:
        raise Http404("No such member.")
    try:
        if "remove" in request.POST:
            remove = optional("labeling.services.projects", "membership_remove")
            if remove is None:
                raise ValueError(_missing("Removing members"))
            remove(project=project, user=membership.user, actor=request.user)
            messages.success(request, f"{membership.user.username} was removed.")
        else:
            form = RoleForm(request.POST)
            if not form.is_valid():
                raise ValueError("Choose a role: " + ", ".join(Role.values))
            add = optional("labeling.services.projects", "membership_add")
            if add is None:
                raise ValueError(_missing("Changing roles"))
            add(
                project=project,
                user=membership.user,
                role=form.cleaned_data["role"],
                actor=request.user,
            )
            messages.success(
                request, f"{membership.user.username} is now {form.cleaned_data['role']}."
            )
    except ServiceErrors as exc:
        detail = _detail(exc)
        messages.error(request, detail if isinstance(detail, str) else json.dumps(detail))
    return redirect("project-members", slug=slug)


# --- Ingestion tokens -------------------------------------------------------------------------


@login_required
def tokens(request: HttpRequest, slug: str) -> HttpResponse:
    """List tokens and create one. A new key is rendered in this response only (never stored)."""
    project = _configure(request, slug)
    form = TokenForm(request.POST or None)
    new_key: str | None = None
    if request.method == "POST" and form.is_valid():
        create = optional("labeling.services.projects", "ingest_token_create")
        if create is None:
            form.add_error(None, _missing("Creating tokens"))
        else:
            try:
                _token, new_key = create(
                    project=project, name=form.cleaned_data["name"], actor=request.user
                )
            except ServiceErrors as exc:
                attach_errors(form, _detail(exc))
            else:
                form = TokenForm()
    rows = IngestToken.objects.filter(project=project).order_by("revoked_at", "-created_at")
    response = render(
        request,
        "sampling/tokens.html",
        {"project": project, "form": form, "tokens": rows, "new_key": new_key},
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
    revoke = optional("labeling.services.projects", "ingest_token_revoke")
    if revoke is None:
        messages.error(request, _missing("Revoking tokens"))
    else:
        revoke(token=token, actor=request.user)
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
                cleaned = schema_validate(form.cleaned_data["schema"])
            except ServiceErrors as exc:
                attach_errors(
                    form, _detail(exc), field_for=lambda _loc: "schema", name_location=True
                )
            else:
                change = optional("labeling.services.schema", "schema_change") or optional(
                    "labeling.services.projects", "project_update"
                )
                if change is None:
                    form.add_error(None, _missing("Changing the schema"))
                else:
                    try:
                        _change_schema(change, project=project, schema=cleaned, user=request.user)
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


def _change_schema(change: Any, *, project: Project, schema: dict[str, Any], user: Any) -> None:
    if change.__name__ == "project_update":
        change(project=project, data={"label_schema": schema}, actor=user)
    else:
        change(project=project, schema=schema, actor=user)


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
            "strategies": SamplingStrategy.objects.filter(project=project).order_by("name"),
            "runs": SamplingRun.objects.filter(project=project)
            .select_related("strategy")
            .order_by("-created_at")[:10],
            "proxies": ProxyModel.objects.filter(project=project).order_by("-version")[:5],
            "open_items": QueueItem.objects.filter(
                project=project, status=QueueItem.Status.OPEN
            ).count(),
            "export_kinds": ("sft", "preference", "classification", "eval"),
            "api": {
                "runs": f"/api/projects/{slug}/sampling-runs/",
                "exports": f"/api/projects/{slug}/exports/",
                "retrain": f"/api/projects/{slug}/proxy-models/",
            },
        },
    )


@login_required
def strategy_edit(request: HttpRequest, slug: str, strategy_id: int | None = None) -> HttpResponse:
    """Create or edit a strategy. "Preview" shows, on the current pool, the expected labels per
    segment and per component and the smallest pi, without saving."""
    project = _configure(request, slug)
    strategy = None
    if strategy_id is not None:
        strategy = SamplingStrategy.objects.filter(project=project, pk=strategy_id).first()
        if strategy is None:
            raise Http404("No such strategy.")
    preview: Any = None
    if request.method == "POST":
        form = StrategyForm(request.POST)
        if form.is_valid():
            data = form.strategy_data()
            if request.POST.get("action") == "preview":
                preview = _preview(form, project=project, data=data)
            else:
                saved = _save(
                    form, project=project, strategy=strategy, data=data, user=request.user
                )
                if saved is not None:
                    messages.success(request, f"Strategy {saved.name} saved.")
                    return redirect("project-strategies", slug=slug)
    else:
        form = StrategyForm(initial=StrategyForm.initial_from(strategy) if strategy else None)
    return render(
        request,
        "sampling/strategy_form.html",
        {"project": project, "form": form, "strategy": strategy, "preview": preview},
    )


def _preview(form: StrategyForm, *, project: Project, data: dict[str, Any]) -> Any:
    validate = optional("sampling.services.strategies", "strategy_validate")
    preview = optional("sampling.services.strategies", "strategy_preview")
    try:
        if validate is not None:
            data = validate(data=data, project=project)
        if preview is None:
            form.add_error(None, _missing("The preview"))
            return None
        return preview(strategy_data=data, project=project)
    except ServiceErrors as exc:
        attach_errors(form, _detail(exc), field_for=form.field_for)
        return None


def _save(
    form: StrategyForm,
    *,
    project: Project,
    strategy: SamplingStrategy | None,
    data: dict[str, Any],
    user: Any,
) -> SamplingStrategy | None:
    name = "strategy_update" if strategy is not None else "strategy_create"
    service = optional("sampling.services.strategies", name)
    if service is None:
        form.add_error(None, _missing("Saving strategies"))
        return None
    try:
        if strategy is not None:
            return service(strategy=strategy, data=data)
        return service(project=project, data=data, user=user)
    except ServiceErrors as exc:
        attach_errors(form, _detail(exc), field_for=form.field_for)
        return None


def strategy_url(project: Project, strategy: SamplingStrategy) -> str:
    return reverse("project-strategy", kwargs={"slug": project.slug, "strategy_id": strategy.pk})


urlpatterns = [
    path("projects/<slug:slug>/members/", members, name="project-members"),
    path(
        "projects/<slug:slug>/members/<int:membership_id>/",
        member_change,
        name="project-member-change",
    ),
    path("projects/<slug:slug>/tokens/", tokens, name="project-tokens"),
    path(
        "projects/<slug:slug>/tokens/<int:token_id>/revoke/",
        token_revoke,
        name="project-token-revoke",
    ),
    path("projects/<slug:slug>/schema/", schema, name="project-schema"),
    path("projects/<slug:slug>/strategies/", strategies, name="project-strategies"),
    path("projects/<slug:slug>/strategies/new/", strategy_edit, name="project-strategy-new"),
    path(
        "projects/<slug:slug>/strategies/<int:strategy_id>/",
        strategy_edit,
        name="project-strategy",
    ),
]
