"""Pages: the project's exports — a create form and the list, with progress bars that poll the API.

The form only translates fields into the API's ``filters``/``options`` and calls ``export_create``
(the same service the API and ``manage.py export`` use); errors come back keyed by field.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from labeling.access import acting_user, project_access
from labeling.errors import Invalid
from labeling.forms import json_text_parse
from labeling.models import Export
from labeling.selectors.exports import export_list
from labeling.services.export_kinds import export_kinds
from labeling.services.exports import export_create, export_retry


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


class ExportForm(forms.Form):
    kind = forms.ChoiceField(choices=())
    since = forms.CharField(required=False, help_text="ISO date or datetime, e.g. 2026-11-01")
    until = forms.CharField(required=False, help_text="exclusive")
    model_versions = forms.CharField(required=False, help_text="comma-separated")
    segment = forms.CharField(required=False, help_text="e.g. tier=pro,tier=team,locale=de")
    labels = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='label conditions as JSON, e.g. {"quality": {"gte": 4}}',
    )
    min_agreement = forms.FloatField(required=False, min_value=0, max_value=1)
    annotators = forms.CharField(required=False, help_text="usernames, comma-separated")
    include_gold = forms.BooleanField(required=False)
    validation_fraction = forms.FloatField(
        required=False, min_value=0, max_value=0.99, help_text="split by conversation"
    )
    seed = forms.IntegerField(required=False, initial=0)
    dedupe = forms.BooleanField(required=False, initial=True, label="Remove exact duplicates")
    keep_ties = forms.BooleanField(required=False, help_text="preference: keep ties, flagged")
    weight = forms.ChoiceField(
        choices=[("uniform", "uniform (1.0)"), ("agreement", "annotator agreement")],
        required=False,
        help_text="classification",
    )
    gzip = forms.BooleanField(required=False)

    FILTER_FIELDS = ("since", "until", "model_versions", "segment", "labels", "min_agreement")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kind = cast(forms.ChoiceField, self.fields["kind"])
        kind.choices = [(k, k) for k in export_kinds()]

    def clean_labels(self) -> dict[str, Any] | None:
        raw = self.cleaned_data.get("labels") or ""
        if not raw.strip():
            return None
        value: dict[str, Any] | None = json_text_parse(raw)
        return value

    def clean_segment(self) -> dict[str, list[str]] | None:
        segment: dict[str, list[str]] = {}
        for pair in _csv(self.cleaned_data.get("segment") or ""):
            key, sep, value = pair.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise forms.ValidationError(f"{pair!r}: write key=value")
            segment.setdefault(key.strip(), []).append(value.strip())
        return segment or None

    def params(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        d = self.cleaned_data
        filters: dict[str, Any] = {}
        for key in ("since", "until", "segment", "labels"):
            if d.get(key):
                filters[key] = d[key]
        if d.get("model_versions"):
            filters["model_versions"] = _csv(d["model_versions"])
        if d.get("annotators"):
            filters["annotators"] = _csv(d["annotators"])
        if d.get("min_agreement") is not None:
            filters["min_agreement"] = d["min_agreement"]
        options: dict[str, Any] = {"gzip": d["gzip"]}
        kind = d["kind"]
        if kind != "eval":
            filters["include_gold"] = d["include_gold"]
            options["dedupe"] = d["dedupe"]
            options["validation_fraction"] = d.get("validation_fraction") or 0.0
            options["seed"] = d.get("seed") or 0
        if kind == "preference":
            options["keep_ties"] = d["keep_ties"]
        if kind == "classification":
            options["weight"] = d.get("weight") or "uniform"
        return kind, filters, options

    def add_service_errors(self, errors: dict[str, Any]) -> None:
        """Attach ``{"filters.labels.quality": ...}`` style errors to the matching field."""
        for where, message in errors.items():
            parts = where.split(".")
            name = parts[1] if len(parts) > 1 and parts[0] in ("filters", "options") else parts[0]
            text = message[0] if isinstance(message, list) and message else message
            detail = f"{'.'.join(parts[2:])}: {text}" if len(parts) > 2 else str(text)
            self.add_error(name if name in self.fields else None, detail)


@login_required
def exports_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_access(user=request.user, slug=slug, need="export")
    if request.method == "POST":
        form = ExportForm(request.POST)
        if form.is_valid():
            kind, filters, options = form.params()
            try:
                export = export_create(
                    project=project,
                    kind=kind,
                    filters=filters,
                    options=options,
                    created_by=acting_user(request.user),
                )
            except Invalid as exc:
                form.add_service_errors(exc.errors)
            else:
                messages.success(request, f"Export #{export.id} ({kind}) started.")
                return redirect("project-exports", slug=slug)
    else:
        form = ExportForm(initial={"dedupe": True, "seed": 0})
    return render(
        request,
        "labeling/exports.html",
        {"project": project, "form": form, "exports": export_list(project=project)[:50]},
    )


@login_required
@require_POST
def export_retry_page(request: HttpRequest, slug: str, export_id: int) -> HttpResponse:
    project = project_access(user=request.user, slug=slug, need="export")
    export = get_object_or_404(Export, id=export_id, project=project)
    try:
        export_retry(export=export)
    except Invalid:
        messages.error(request, f"Export #{export.id} is {export.status}: nothing to retry.")
    else:
        messages.success(request, f"Export #{export.id} queued again (same snapshot).")
    return redirect("project-exports", slug=slug)
