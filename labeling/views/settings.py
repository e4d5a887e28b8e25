"""Pages: project settings for project admins (need ``configure``): members and roles, ingestion
tokens (the key is shown once) and the label schema editor.

Views parse the form, call one service and render; the rules live in the services every caller
shares (the API calls the same ones), and their errors are put back on the form fields
(:func:`labeling.forms.attach_errors`).
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from labeling.access import acting_user, has_capability, project_access, role_in
from labeling.forms import (
    SERVICE_ERRORS,
    MemberForm,
    RoleForm,
    SchemaForm,
    TokenForm,
    attach_errors,
    error_detail,
    error_message,
)
from labeling.models import IngestToken, Membership, Project, Role
from labeling.selectors.projects import ingest_tokens_list, project_members
from labeling.services.projects import (
    ingest_token_create,
    ingest_token_revoke,
    membership_add,
    membership_remove,
)
from labeling.services.schemas import schema_change


def configure_access(request: HttpRequest, slug: str) -> Project:
    """The project, when the signed-in user may configure it (404 / 403 otherwise)."""
    return project_access(user=request.user, slug=slug, need="configure")


def signed_in_user(request: HttpRequest) -> User:
    """The signed-in user (every settings view is behind ``login_required``)."""
    return acting_user(request.user)


# --- Members and roles ------------------------------------------------------------------------


@login_required
def members(request: HttpRequest, slug: str) -> HttpResponse:
    project = configure_access(request, slug)
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
                    added_by=signed_in_user(request),
                )
            except SERVICE_ERRORS as exc:
                attach_errors(form, error_detail(exc))
            else:
                messages.success(request, f"{user.username} is now {form.cleaned_data['role']}.")
                return redirect("project-members", slug=slug)
    return render(
        request,
        "labeling/members.html",
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
    project = configure_access(request, slug)
    membership = Membership.objects.filter(project=project, pk=membership_id).first()
    if membership is None:
        raise Http404("No such member.")
    user = membership.user
    losing_admin = membership.role == Role.ADMIN and (
        "remove" in request.POST or request.POST.get("role") != Role.ADMIN
    )
    if losing_admin and request.POST.get("confirm") != "1":
        return _confirm_admin_change(request, project=project, membership=membership)
    try:
        if "remove" in request.POST:
            membership_remove(project=project, user=user, removed_by=signed_in_user(request))
            messages.success(request, f"{user.username} was removed from the project.")
        else:
            form = RoleForm(request.POST)
            if not form.is_valid():
                raise ValueError("Choose a role: " + ", ".join(Role.values))
            role = form.cleaned_data["role"]
            membership_add(project=project, user=user, role=role, added_by=signed_in_user(request))
            messages.success(request, f"{user.username} is now {role}.")
    except SERVICE_ERRORS as exc:
        messages.error(request, error_message(exc))
    # An admin who just removed or demoted themselves may no longer open this page.
    if not has_capability(role=role_in(user=request.user, project=project), need="configure"):
        return redirect("home")
    return redirect("project-members", slug=slug)


def _confirm_admin_change(
    request: HttpRequest, *, project: Project, membership: Membership
) -> HttpResponse:
    """Removing or demoting an admin (perhaps oneself, perhaps the last one) is asked twice."""
    user = membership.user
    removing = "remove" in request.POST
    new_role = request.POST.get("role", "")
    admins = Membership.objects.filter(project=project, role=Role.ADMIN).count()
    lines = []
    if admins <= 1:
        lines.append(
            f"{user.username} is the only admin of {project.name}. A project must keep an admin: "
            "make someone else admin first, or this will be refused."
        )
    if user.pk == request.user.pk:
        lines.append("This is you: you will no longer be able to open this page.")
    lines.append(
        f"{user.username} will lose the right to configure {project.name} "
        "(schema, members, tokens, strategies, settings)."
    )
    action = "Remove" if removing else f"Make {user.username} {new_role}"
    return confirm_page(
        request,
        project=project,
        title=f"{'Remove' if removing else 'Demote'} the admin {user.username}?",
        lines=lines,
        button=action,
        fields=[("remove", "1")] if removing else [("role", new_role)],
        cancel_url=reverse("project-members", kwargs={"slug": project.slug}),
    )


# --- Ingestion tokens -------------------------------------------------------------------------


def confirm_page(
    request: HttpRequest,
    *,
    project: Project,
    title: str,
    lines: list[str],
    button: str,
    fields: list[tuple[str, str]],
    cancel_url: str,
) -> HttpResponse:
    """Ask before a step that is hard to undo: the same POST again, with ``confirm=1``."""
    return render(
        request,
        "labeling/confirm.html",
        {
            "project": project,
            "title": title,
            "lines": lines,
            "button": button,
            "fields": fields,
            "action": request.path,
            "cancel_url": cancel_url,
        },
    )


def tokens_access(request: HttpRequest, slug: str) -> Project:
    """Engineers and admins manage ingestion tokens (the API's rule: capability ``ingest``)."""
    return project_access(user=request.user, slug=slug, need="ingest")


NEW_KEY_SESSION = "flywheel-new-ingest-key"


@login_required
def tokens(request: HttpRequest, slug: str) -> HttpResponse:
    """List tokens and create one (post/redirect/get: a reload never creates a second token).

    The new key is kept in the session for the one page view after the redirect, then dropped;
    only its hash is stored.
    """
    project = tokens_access(request, slug)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, key = ingest_token_create(
                project=project, name=form.cleaned_data["name"], created_by=signed_in_user(request)
            )
        except SERVICE_ERRORS as exc:
            attach_errors(form, error_detail(exc))
        else:
            request.session[NEW_KEY_SESSION] = {
                "project": project.slug,
                "key": key,
                "name": token.name,
            }
            return redirect("project-tokens", slug=slug)
    new_key: str | None = None
    new_name = ""
    shown = request.session.pop(NEW_KEY_SESSION, None) if request.method == "GET" else None
    if shown and shown.get("project") == project.slug:
        new_key, new_name = shown["key"], shown["name"]
    response = render(
        request,
        "labeling/tokens.html",
        {
            "project": project,
            "form": form,
            "tokens": ingest_tokens_list(project=project),
            "new_key": new_key,
            "new_name": new_name,
        },
    )
    if new_key:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, slug: str, token_id: int) -> HttpResponse:
    project = tokens_access(request, slug)
    token = IngestToken.objects.filter(project=project, pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    if request.POST.get("confirm") != "1":
        return confirm_page(
            request,
            project=project,
            title=f"Revoke the token {token.name}?",
            lines=[
                f"Every service sending with {token.prefix}… gets 401 from now on; "
                "data it already sent stays.",
                "A revoked token cannot be restored: create a new one for the service.",
            ],
            button=f"Revoke {token.name}",
            fields=[],
            cancel_url=reverse("project-tokens", kwargs={"slug": slug}),
        )
    ingest_token_revoke(token=token, revoked_by=signed_in_user(request))
    messages.success(request, f"Token {token.name} ({token.prefix}…) was revoked.")
    return redirect("project-tokens", slug=slug)


# --- Label schema -----------------------------------------------------------------------------


@login_required
def schema(request: HttpRequest, slug: str) -> HttpResponse:
    """The schema editor: JSON in a textarea, errors in place, a live preview (schema.js)."""
    project = configure_access(request, slug)
    if request.method == "POST":
        form = SchemaForm(request.POST)
        if form.is_valid():
            try:
                schema_change(
                    project=project,
                    schema=form.cleaned_data["schema"],
                    actor=signed_in_user(request),
                )
            except SERVICE_ERRORS as exc:
                attach_errors(
                    form, error_detail(exc), field_for=lambda _loc: "schema", name_location=True
                )
            else:
                messages.success(request, "Schema saved.")
                return redirect("project-schema", slug=slug)
    else:
        form = SchemaForm(initial={"schema": json.dumps(project.label_schema, indent=2)})
    return render(request, "labeling/schema.html", {"project": project, "form": form})
