"""HTML forms of the project settings pages (members, tokens, schema) and the helpers every page
form uses to show a service's errors in place.

The forms only turn text into the shapes the API accepts and report parse errors in place; the
rules are checked by the services every caller shares, and their errors are mapped back onto the
fields with :func:`attach_errors`. ``sampling``'s strategy form uses the same helpers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from labeling.errors import Invalid
from labeling.models import Role, WebhookEvent
from labeling.nul import NUL_MESSAGE, nul_path

# What a service raises for input it refuses; pages catch these and show them on the form.
SERVICE_ERRORS: tuple[type[Exception], ...] = (Invalid, ValidationError, ValueError)


def error_detail(exc: Exception) -> Any:
    """The ``{"location": message}`` detail of a service error, whatever its class."""
    if isinstance(exc, Invalid):
        return exc.errors
    if isinstance(exc, ValidationError):
        return exc.message_dict if hasattr(exc, "error_dict") else exc.messages
    return str(exc)


def error_message(exc: Exception) -> str:
    """A service error as one line of text (for a flash message)."""
    detail = error_detail(exc)
    if isinstance(detail, dict):
        return "; ".join(
            f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in detail.items()
        )
    return " ".join(map(str, detail)) if isinstance(detail, list) else str(detail)


def json_text_parse(text: str) -> Any:
    """JSON typed into a text box, parsed; a ValidationError that says where it is wrong. The NUL
    character (``\\u0000`` in the text) is refused like in the API: the database cannot store it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if (where := nul_path(value)) is not None:
        raise ValidationError(f"{where or 'the value'} {NUL_MESSAGE}")
    return value


class SchemaForm(forms.Form):
    """The label schema as JSON text, parsed here; ``labeling.schema.schema_validate`` checks it."""

    schema = forms.CharField(widget=forms.Textarea(attrs={"class": "code", "spellcheck": "false"}))

    def clean_schema(self) -> dict[str, Any]:
        value: dict[str, Any] = json_text_parse(self.cleaned_data["schema"])
        return value


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="what will use it, e.g. 'prod-chat-api'")


class WebhookForm(forms.Form):
    """A webhook subscription; the URL and events are checked by the webhooks service."""

    url = forms.CharField(
        label="URL",
        max_length=2000,
        help_text="https://… that answers 2xx within the timeout; redirects are not followed",
        widget=forms.TextInput(attrs={"placeholder": "https://hooks.example.com/flywheel"}),
    )
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="docs/webhooks.md describes each payload",
    )
    description = forms.CharField(max_length=200, required=False)


def attach_errors(
    form: forms.Form, detail: Any, *, field_for: Any = None, name_location: bool = False
) -> None:
    """Put a service's ``{"location": message}`` errors onto the form's fields (or the form).

    With ``name_location`` each message keeps its location (``questions[1].scale: ...``), for
    fields such as the schema textarea where the location is the useful part.
    """
    for location, message in flatten_errors(detail):
        messages = message if isinstance(message, list | tuple) else [message]
        text = "; ".join(str(m) for m in messages)
        field = field_for(location) if field_for is not None else None
        if field is None and location in form.fields:
            field = location
        shown = location and (name_location or not field) and location != field
        label = f"{location}: " if shown else ""
        form.add_error(field, f"{label}{text}")


def flatten_errors(detail: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"weights": {"random": ["..."]}}`` -> ``[("weights.random", ["..."])]``."""
    if isinstance(detail, Mapping):
        out: list[tuple[str, Any]] = []
        for key, value in detail.items():
            out.extend(flatten_errors(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(detail, list | tuple) and any(isinstance(v, Mapping) for v in detail):
        out = []
        for index, value in enumerate(detail):
            out.extend(flatten_errors(value, f"{prefix}[{index}]"))
        return out
    return [(prefix, detail)]


class ProjectNewForm(forms.Form):
    """A new project: the rest (schema, members, tokens, strategies) is set on its own pages."""

    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=64, help_text="in URLs and the API, e.g. 'support-bot'; it cannot change later"
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    segment_keys = forms.CharField(
        required=False,
        help_text="metadata keys that define segments, comma-separated, e.g. tier, locale",
    )

    def clean_segment_keys(self) -> list[str]:
        return [k.strip() for k in self.cleaned_data["segment_keys"].split(",") if k.strip()]


class ProjectSettingsForm(forms.Form):
    """What a project admin tunes from the browser; ``project_update`` checks the rules."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    guidelines = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="shown to annotators above every item (collapsible)",
    )
    lease_minutes = forms.IntegerField(
        min_value=1,
        max_value=24 * 60,
        help_text="how long an item stays with an annotator before it returns to the queue",
    )
    max_skips = forms.IntegerField(
        min_value=0,
        max_value=1000,
        help_text="skips after which an item is flagged for an admin (0: never)",
    )
    gold_percent = forms.FloatField(
        label="Gold rate (%)",
        min_value=0,
        max_value=100,
        help_text="share of items served from the gold set, 0 to 100",
    )
    retrain_every = forms.IntegerField(
        min_value=1, max_value=1_000_000, help_text="retrain the proxy model after this many labels"
    )
    primary_judge = forms.CharField(
        required=False,
        max_length=100,
        help_text="the name of an ingested score the proxy should calibrate (optional)",
    )
    show_suggestions = forms.BooleanField(
        required=False,
        label="Show the primary judge's score to annotators",
        help_text="off by default: a shown score anchors the labels (annotators drift towards it); "
        "each label records whether it was shown",
    )

    @classmethod
    def initial_for(cls, project: Any) -> dict[str, Any]:
        return {
            "name": project.name,
            "description": project.description,
            "guidelines": project.guidelines,
            "lease_minutes": max(1, round(project.lease_seconds / 60)),
            "max_skips": project.max_skips,
            "gold_percent": round(project.gold_rate * 100, 2),
            "retrain_every": project.retrain_every,
            "primary_judge": project.primary_judge,
            "show_suggestions": project.show_suggestions,
        }

    def update_data(self) -> dict[str, Any]:
        """The cleaned form in ``project_update``'s field names."""
        d = self.cleaned_data
        return {
            "name": d["name"],
            "description": d["description"],
            "guidelines": d["guidelines"],
            "lease_seconds": d["lease_minutes"] * 60,
            "max_skips": d["max_skips"],
            "gold_rate": d["gold_percent"] / 100,
            "retrain_every": d["retrain_every"],
            "primary_judge": d["primary_judge"],
            "show_suggestions": d["show_suggestions"],
        }


# Where project_update's field names show up on the settings form.
SETTINGS_FIELD_FOR = {"lease_seconds": "lease_minutes", "gold_rate": "gold_percent"}


class GoldRateForm(forms.Form):
    gold_percent = forms.FloatField(label="Gold rate (%)", min_value=0, max_value=100)
