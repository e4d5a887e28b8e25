"""Pages: create a project (staff, as the API) and change a project's settings (its admins):
name, guidelines, lease, skips, gold rate, retraining, primary judge. The same services as the API
(``project_create``, ``project_update``) check the rules; their errors land on the fields."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from labeling.access import can_create_projects
from labeling.forms import (
    SERVICE_ERRORS,
    SETTINGS_FIELD_FOR,
    ProjectNewForm,
    ProjectSettingsForm,
    attach_errors,
    error_detail,
)
from labeling.services.projects import project_create, project_update
from labeling.views.settings import configure_access, signed_in_user


@login_required
def project_new(request: HttpRequest) -> HttpResponse:
    if not can_create_projects(request.user):
        raise PermissionDenied(
            "Only staff users can create projects. Ask an administrator of this Flywheel."
        )
    form = ProjectNewForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            project = project_create(
                slug=d["slug"],
                name=d["name"],
                description=d["description"],
                segment_keys=d["segment_keys"],
                created_by=signed_in_user(request),  # type: ignore[arg-type]
            )
        except SERVICE_ERRORS as exc:
            attach_errors(form, error_detail(exc))
        else:
            messages.success(
                request,
                f"Project {project.name} created with the default label schema; you are its admin."
                " Next: the schema, members and an ingestion token.",
            )
            return redirect("project-settings", slug=project.slug)
    return render(request, "labeling/project_new.html", {"form": form})


@login_required
def project_settings(request: HttpRequest, slug: str) -> HttpResponse:
    project = configure_access(request, slug)
    form = ProjectSettingsForm(
        request.POST or None, initial=ProjectSettingsForm.initial_for(project)
    )
    if request.method == "POST" and form.is_valid():
        try:
            project_update(
                project=project,
                updated_by=signed_in_user(request),  # type: ignore[arg-type]
                data=form.update_data(),
            )
        except SERVICE_ERRORS as exc:
            attach_errors(form, error_detail(exc), field_for=SETTINGS_FIELD_FOR.get)
        else:
            messages.success(request, "Settings saved.")
            return redirect("project-settings", slug=slug)
    return render(request, "labeling/project_settings.html", {"project": project, "form": form})
