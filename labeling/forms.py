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
from rest_framework.exceptions import ValidationError as DRFValidationError

from labeling.models import Role

# What a service raises for input it refuses; pages catch these and show them on the form.
SERVICE_ERRORS: tuple[type[Exception], ...] = (DRFValidationError, ValidationError, ValueError)


def error_detail(exc: Exception) -> Any:
    """The ``{"location": message}`` detail of a service error, whatever its class."""
    if isinstance(exc, DRFValidationError):
        return exc.detail
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


class SchemaForm(forms.Form):
    """The label schema as JSON text, parsed here; ``labeling.schema.schema_validate`` checks it."""

    schema = forms.CharField(widget=forms.Textarea(attrs={"class": "code", "spellcheck": "false"}))

    def clean_schema(self) -> dict[str, Any]:
        text = self.cleaned_data["schema"]
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="what will use it, e.g. 'prod-chat-api'")


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
