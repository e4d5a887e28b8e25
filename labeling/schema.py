"""Label schemas: validation of the schema itself and of submitted values against it.

The format is part of the API contract (DESIGN.md section 4). Errors name the question and the
problem, e.g. ``{"questions[1].scale": "must be a non-empty list of {value, label}"}``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError

QUESTION_TYPES = ("binary", "rating", "single_choice", "multi_choice", "text", "pairwise")

DEFAULT_SCHEMA: dict[str, Any] = {
    "questions": [
        {
            "key": "quality",
            "type": "rating",
            "prompt": "How good is the response?",
            "required": True,
            "scale": [
                {"value": 1, "label": "unusable"},
                {"value": 2, "label": "poor"},
                {"value": 3, "label": "ok"},
                {"value": 4, "label": "good"},
                {"value": 5, "label": "great"},
            ],
        },
        {
            "key": "failure_modes",
            "type": "multi_choice",
            "prompt": "What went wrong?",
            "options": ["hallucination", "refusal", "incomplete", "formatting", "tone", "unsafe"],
        },
        {"key": "correction", "type": "text", "prompt": "Corrected response", "prefill": "response"},
    ],
    "target": {"question": "quality", "good": [4, 5]},
}


class SchemaError(ValidationError):
    """A ValidationError whose ``detail`` maps a location (``questions[2].scale``) to a message."""


def schema_validate(schema: Any) -> dict[str, Any]:
    """Return the normalised schema or raise SchemaError naming each problem.

    Owned by the queue/labelling work; see tests/test_schema.py.
    """
    errors: dict[str, str] = {}
    if not isinstance(schema, dict):
        raise SchemaError({"schema": "must be an object with 'questions' and 'target'"})
    questions = schema.get("questions")
    if not isinstance(questions, list) or not questions:
        errors["questions"] = "must be a non-empty list"
    if errors:
        raise SchemaError(errors)
    return schema


def values_validate(schema: dict[str, Any], values: Any) -> dict[str, Any]:
    """Validate submitted values against the schema; raise ValidationError keyed by question."""
    if not isinstance(values, dict):
        raise ValidationError({"values": "must be an object keyed by question"})
    return values
