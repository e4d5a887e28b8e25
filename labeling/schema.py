"""Label schemas: validation of the schema itself and of submitted values against it.

The format is part of the API contract (docs/labeling.md section 1, docs/api.md). Errors name the
question and the problem, e.g. ``{"questions[1].scale": "must be a non-empty list of ..."}``.

``schema_validate`` returns a *normalised* copy (defaults filled in: ``prompt``, ``required``
-- false, except for ``pairwise`` questions, which are required unless they say otherwise --,
``help``, ``shortcuts``) that is what a project stores. The normalised ``shortcuts`` are the one
source of truth for keys: the labelling page and the schema editor's preview both show them.
``values_validate`` returns the cleaned values (rating values as the scale's own numbers,
multi-choice answers deduplicated in option order, unanswered optional questions left out).
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from labeling.errors import Invalid

QUESTION_TYPES = (
    "binary",
    "rating",
    "single_choice",
    "multi_choice",
    "text",
    "pairwise",
    "spans",
)
PAIRWISE_CHOICES = ("a", "b", "tie")
TEXT_PREFILLS = ("response", "alt_response")
TEXT_MAX_CHARS = 100_000
SPANS_MAX = 500  # spans one annotator may mark in one text
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# Keys the annotator page uses for itself; a question's shortcuts may not take them.
RESERVED_KEYS = frozenset({"s", "S", "?", "j", "k", " ", "C", "R"})
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

COMMON_FIELDS = frozenset({"key", "type", "prompt", "required", "help", "shortcuts"})
TYPE_FIELDS: dict[str, frozenset[str]] = {
    "binary": frozenset(),
    "rating": frozenset({"scale"}),
    "single_choice": frozenset({"options"}),
    "multi_choice": frozenset({"options"}),
    "text": frozenset({"prefill", "max_length"}),
    "pairwise": frozenset({"allow_tie"}),
    "spans": frozenset({"labels", "field"}),
}

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
        {
            "key": "correction",
            "type": "text",
            "prompt": "Corrected response",
            "prefill": "response",
        },
    ],
    "target": {"question": "quality", "good": [4, 5]},
}


class SchemaError(Invalid):
    """Invalid input whose ``errors`` map a location (``questions[2].scale``) to a message."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def question_choices(question: dict[str, Any]) -> list[Any]:
    """The answers a choice-like question accepts, in display order ([] for ``text``)."""
    qtype = question["type"]
    if qtype == "binary":
        return [True, False]
    if qtype == "rating":
        return [item["value"] for item in question["scale"]]
    if qtype in ("single_choice", "multi_choice"):
        return list(question["options"])
    if qtype == "spans":
        return list(question["labels"])
    if qtype == "pairwise":
        return list(PAIRWISE_CHOICES if question.get("allow_tie", True) else PAIRWISE_CHOICES[:2])
    return []


def _default_shortcuts(count: int) -> list[str]:
    digits = [str(d) for d in range(1, 10)] + ["0"]
    return digits[:count]


def _question_validate(
    question: Any, where: str, errors: dict[str, str], seen: set[str]
) -> dict[str, Any] | None:
    if not isinstance(question, dict):
        errors[where] = "must be an object with at least 'key' and 'type'"
        return None
    key = question.get("key")
    if not isinstance(key, str) or not KEY_RE.match(key):
        errors[f"{where}.key"] = (
            "must be an identifier (letters, digits, underscore; not starting with a digit)"
        )
    elif key in seen:
        errors[f"{where}.key"] = f"duplicate key {key!r}"
    else:
        seen.add(key)
    qtype = question.get("type")
    if qtype not in QUESTION_TYPES:
        errors[f"{where}.type"] = f"must be one of {', '.join(QUESTION_TYPES)}"
        return None
    unknown = sorted(set(question) - COMMON_FIELDS - TYPE_FIELDS[qtype])
    if unknown:
        errors[where] = f"unknown field(s) for a {qtype} question: {', '.join(unknown)}"
    out: dict[str, Any] = {"key": key, "type": qtype}
    prompt = question.get("prompt", key)
    if not isinstance(prompt, str) or not prompt.strip():
        errors[f"{where}.prompt"] = "must be a non-empty string"
    out["prompt"] = prompt
    # A pairwise preference is the point of a pairwise item: required unless the schema says not.
    required = question.get("required", qtype == "pairwise")
    if not isinstance(required, bool):
        errors[f"{where}.required"] = "must be true or false"
    out["required"] = required
    help_text = question.get("help", "")
    if not isinstance(help_text, str):
        errors[f"{where}.help"] = "must be a string"
    out["help"] = help_text

    if qtype == "rating":
        scale = question.get("scale")
        if not isinstance(scale, list) or not scale:
            errors[f"{where}.scale"] = "must be a non-empty list of {value, label}"
            return None
        values: list[float] = []
        for j, item in enumerate(scale):
            if (
                not isinstance(item, dict)
                or set(item) != {"value", "label"}
                or not _is_number(item["value"])
                or not isinstance(item["label"], str)
            ):
                errors[f"{where}.scale[{j}]"] = "must be {value: number, label: string}"
                return None
            values.append(item["value"])
        if len(set(values)) != len(values):
            errors[f"{where}.scale"] = "values must be distinct"
        elif values != sorted(values):
            errors[f"{where}.scale"] = "values must be in increasing order"
        out["scale"] = [dict(item) for item in scale]
    elif qtype in ("single_choice", "multi_choice"):
        options = question.get("options")
        if (
            not isinstance(options, list)
            or not options
            or not all(isinstance(o, str) and o.strip() for o in options)
        ):
            errors[f"{where}.options"] = "must be a non-empty list of non-empty strings"
            return None
        if len(set(options)) != len(options):
            errors[f"{where}.options"] = "options must be distinct"
        out["options"] = list(options)
    elif qtype == "text":
        prefill = question.get("prefill")
        if prefill not in (None, "", *TEXT_PREFILLS):
            errors[f"{where}.prefill"] = f"must be one of {', '.join(TEXT_PREFILLS)} or empty"
        if prefill:
            out["prefill"] = prefill
        max_length = question.get("max_length", TEXT_MAX_CHARS)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            errors[f"{where}.max_length"] = "must be a positive integer"
        out["max_length"] = max_length
    elif qtype == "spans":
        labels = question.get("labels")
        if (
            not isinstance(labels, list)
            or not labels
            or not all(isinstance(o, str) and o.strip() for o in labels)
        ):
            errors[f"{where}.labels"] = "must be a non-empty list of non-empty strings"
            return None
        if len(set(labels)) != len(labels):
            errors[f"{where}.labels"] = "labels must be distinct"
        out["labels"] = list(labels)
        field = question.get("field", "response")
        if field not in TEXT_PREFILLS:
            errors[f"{where}.field"] = f"must be one of {', '.join(TEXT_PREFILLS)}"
        out["field"] = field
    elif qtype == "pairwise":
        allow_tie = question.get("allow_tie", True)
        if not isinstance(allow_tie, bool):
            errors[f"{where}.allow_tie"] = "must be true or false"
        out["allow_tie"] = allow_tie

    choices = question_choices(out) if f"{where}.allow_tie" not in errors else []
    shortcuts = question.get("shortcuts")
    if qtype == "text":
        if shortcuts not in (None, []):
            errors[f"{where}.shortcuts"] = "text questions take no shortcuts"
    elif shortcuts is None:
        out["shortcuts"] = _default_shortcuts(len(choices))
    elif (
        not isinstance(shortcuts, list)
        or len(shortcuts) > len(choices)
        or not all(isinstance(s, str) and len(s) == 1 for s in shortcuts)
    ):
        errors[f"{where}.shortcuts"] = (
            f"must be a list of at most {len(choices)} single characters, one per option"
        )
    elif len(set(shortcuts)) != len(shortcuts):
        errors[f"{where}.shortcuts"] = "shortcuts must be distinct"
    elif RESERVED_KEYS & set(shortcuts):
        errors[f"{where}.shortcuts"] = (
            f"{', '.join(sorted(repr(k) for k in RESERVED_KEYS & set(shortcuts)))} "
            "are reserved by the annotator page"
        )
    else:
        out["shortcuts"] = list(shortcuts)
    return out


def _target_validate(
    target: Any, questions: dict[str, dict[str, Any]], errors: dict[str, str]
) -> dict[str, Any] | None:
    if not isinstance(target, dict) or set(target) - {"question", "good"}:
        errors["target"] = 'must be {"question": <key>, "good": [values that count as good]}'
        return None
    key = target.get("question")
    question = questions.get(key) if isinstance(key, str) else None
    if question is None:
        errors["target.question"] = f"{key!r} is not a question of this schema"
        return None
    if question["type"] in ("text", "spans"):
        errors["target.question"] = (
            f"{key!r} is a {question['type']} question and cannot be the target"
        )
        return None
    good = target.get("good")
    if not isinstance(good, list) or not good:
        errors["target.good"] = "must be a non-empty list of the target question's values"
        return None
    choices = question_choices(question)
    bad = [g for g in good if not any(_same_choice(g, c) for c in choices)]
    if bad:
        errors["target.good"] = (
            f"{', '.join(repr(b) for b in bad)} not among the answers of {key!r} "
            f"({', '.join(repr(c) for c in choices)})"
        )
        return None
    if len(good) == len(choices):
        errors["target.good"] = "every answer counts as good: the target would say nothing"
        return None
    return {"question": key, "good": list(good)}


def _same_choice(value: Any, choice: Any) -> bool:
    """Equality that keeps booleans apart from 0/1 (True == 1 in Python)."""
    if isinstance(value, bool) or isinstance(choice, bool):
        return isinstance(value, bool) and isinstance(choice, bool) and value is choice
    return bool(value == choice)


def schema_validate(schema: Any) -> dict[str, Any]:
    """Return the normalised schema or raise SchemaError naming each problem.

    A schema is ``{"questions": [...], "target": {"question", "good"}}``; see docs/labeling.md.
    """
    if not isinstance(schema, dict):
        raise SchemaError({"schema": "must be an object with 'questions' and 'target'"})
    errors: dict[str, str] = {}
    unknown = sorted(set(schema) - {"questions", "target"})
    if unknown:
        errors["schema"] = f"unknown field(s): {', '.join(unknown)}"
    questions = schema.get("questions")
    if not isinstance(questions, list) or not questions:
        errors["questions"] = "must be a non-empty list"
        raise SchemaError(errors)
    seen: set[str] = set()
    normalised: list[dict[str, Any]] = []
    for i, question in enumerate(questions):
        out = _question_validate(question, f"questions[{i}]", errors, seen)
        if out is not None:
            normalised.append(out)
    result: dict[str, Any] = {"questions": normalised}
    if "target" not in schema:
        errors["target"] = 'is required: {"question": <key>, "good": [...]} says what "good" means'
    elif not any(k.startswith("questions") for k in errors):
        by_key = {q["key"]: q for q in normalised}
        target = _target_validate(schema["target"], by_key, errors)
        if target is not None:
            result["target"] = target
    if errors:
        raise SchemaError(errors)
    return result


def _is_blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def values_validate(
    schema: dict[str, Any],
    values: Any,
    *,
    has_alt_response: bool = True,
    partial: bool = False,
    texts: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Validate submitted values against the schema; raise Invalid keyed by question.

    ``texts``: the item's ``response`` and ``alt_response``; a ``spans`` answer is checked against
    the text it marks (offsets within it, and the ``text_sha256`` the page was shown must be its
    current hash) and each span gets its ``text``. Without ``texts`` only the form is checked.

    ``has_alt_response``: whether the item has a second response (a ``pairwise`` question then
    applies; without one it must stay unanswered and is never required). ``partial``: required
    questions may be left out (adjudications and gold answers name only what they settle).
    """
    if not isinstance(values, dict):
        raise Invalid({"values": "must be an object keyed by question"})
    errors: dict[str, str] = {}
    questions = {q["key"]: q for q in schema.get("questions", [])}
    for key in values:
        if key not in questions:
            errors[str(key)] = "unknown question"
    cleaned: dict[str, Any] = {}
    for key, question in questions.items():
        qtype = question["type"]
        value = values.get(key)
        applies = (qtype != "pairwise" and question.get("field") != "alt_response") or (
            has_alt_response
        )
        if _is_blank(value):
            if question.get("required") and applies and not partial:
                errors[key] = "this question is required"
            continue
        if not applies:
            errors[key] = "this item has no alternative response to compare"
            continue
        if qtype == "spans":
            error, clean = _spans_check(question, value, texts)
        else:
            error, clean = _value_check(question, value)
        if error:
            errors[key] = error
        else:
            cleaned[key] = clean
    if errors:
        raise Invalid(errors)
    return cleaned


def _value_check(question: dict[str, Any], value: Any) -> tuple[str | None, Any]:
    qtype = question["type"]
    choices = question_choices(question)
    if qtype == "binary":
        if not isinstance(value, bool):
            return "must be true or false", None
        return None, value
    if qtype == "rating":
        if not _is_number(value):
            return f"must be a number from the scale ({', '.join(map(str, choices))})", None
        for choice in choices:
            if value == choice:
                return None, choice
        return f"{value!r} is out of range: choose one of {', '.join(map(str, choices))}", None
    if qtype in ("single_choice", "pairwise"):
        if not isinstance(value, str) or value not in choices:
            return f"{value!r} is not an option: choose one of {', '.join(choices)}", None
        return None, value
    if qtype == "multi_choice":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "must be a list of options", None
        unknown = [v for v in value if v not in choices]
        if unknown:
            return f"unknown option(s) {', '.join(map(repr, unknown))}", None
        chosen = set(value)
        return None, [c for c in choices if c in chosen]
    # text
    if not isinstance(value, str):
        return "must be a string", None
    limit = int(question.get("max_length", TEXT_MAX_CHARS))
    if len(value) > limit:
        return f"is {len(value)} characters long; the limit is {limit}", None
    return None, value


def item_texts(interaction: Any) -> dict[str, str]:
    """The texts a ``spans`` question may mark, by field."""
    return {"response": interaction.response or "", "alt_response": interaction.alt_response or ""}


def text_sha256(text: str) -> str:
    """The hash that pins span offsets to one exact text (UTF-8 bytes)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _spans_check(
    question: dict[str, Any], value: Any, texts: dict[str, str] | None
) -> tuple[str | None, Any]:
    """``{"text_sha256", "spans": [{"start", "end", "label"}]}`` with offsets in Unicode code
    points of the marked text (``field``), ``start < end``; sorted and deduplicated."""
    if not isinstance(value, dict) or set(value) - {"text_sha256", "spans"}:
        return 'must be {"text_sha256": ..., "spans": [{"start", "end", "label"}]}', None
    sha, spans = value.get("text_sha256"), value.get("spans")
    if not isinstance(sha, str) or not SHA_RE.match(sha):
        return "text_sha256 must be the sha256 (hex) of the text the spans are marked in", None
    if not isinstance(spans, list) or len(spans) > SPANS_MAX:
        return f"spans must be a list of at most {SPANS_MAX} spans", None
    text = None if texts is None else texts.get(question.get("field", "response")) or ""
    if text is not None and text_sha256(text) != sha:
        return "the text changed since it was shown: reload the item and mark it again", None
    labels = question_choices(question)
    clean: dict[tuple[int, int, str], dict[str, Any]] = {}
    for span in spans:
        if (
            not isinstance(span, dict)
            or set(span) - {"start", "end", "label", "text"}
            or not all(
                isinstance(span.get(k), int) and not isinstance(span.get(k), bool)
                for k in ("start", "end")
            )
        ):
            return "each span must be {start: integer, end: integer, label}", None
        start, end, label = span["start"], span["end"], span.get("label")
        if not isinstance(label, str) or label not in labels:
            return f"{label!r} is not a label: choose one of {', '.join(labels)}", None
        if not 0 <= start < end or (text is not None and end > len(text)):
            return f"span {start}-{end} is outside the text or empty", None
        row: dict[str, Any] = {"start": start, "end": end, "label": label}
        if text is not None:
            row["text"] = text[start:end]
        clean[(start, end, label)] = row
    return None, {"text_sha256": sha, "spans": [clean[k] for k in sorted(clean)]}


def span_set(value: Any) -> frozenset[tuple[int, int, str]]:
    """A spans answer as a set of (start, end, label) (empty for a blank answer)."""
    if not isinstance(value, dict):
        return frozenset()
    return frozenset(
        (int(s["start"]), int(s["end"]), str(s["label"]))
        for s in value.get("spans") or []
        if isinstance(s, dict)
    )


def gold_matches(*, question: dict[str, Any], expected: Any, given: Any) -> bool:
    """Whether an annotator's answer equals a gold answer for one question (sets for multi)."""
    if question["type"] == "multi_choice":
        return set(expected or []) == set(given or [])
    if question["type"] == "spans":
        return span_set(expected) == span_set(given)
    if question["type"] == "text":
        return str(expected).strip() == str(given or "").strip()
    if question["type"] == "binary":
        return isinstance(given, bool) and given is expected
    return given is not None and _same_choice(given, expected)


def schema_for_display(schema: dict[str, Any]) -> dict[str, Any]:
    """The normalised schema (defaults such as shortcuts filled in) for pages and the queue API;
    a stored schema that no longer validates is shown as it is rather than failing the page."""
    try:
        return schema_validate(schema)
    except Invalid:
        return schema
