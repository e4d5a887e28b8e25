"""The judge's prompt: the default rubric, the placeholders a template may use, validation and
rendering (``str.format`` or Django template syntax). Pure: takes plain values, no ORM."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any

from django.template import Context, Engine, TemplateSyntaxError

MAX_TEMPLATE_CHARS = 20_000

PLACEHOLDERS: dict[str, str] = {
    "messages": "the conversation before the response, one 'role: content' block per turn",
    "response": "the assistant response being judged",
    "alt_response": "the alternative response (pairwise projects), empty otherwise",
    "model_version": "the model version that produced the response",
    "segment": 'the interaction\'s segment as JSON, e.g. {"tier": "pro"}',
    "schema": "the project's label schema questions (prompt and options), one per line",
    "guidelines": "the project's labelling guidelines",
    "score_min": "the lowest score of the judge's scale",
    "score_max": "the highest score of the judge's scale",
}

DEFAULT_TEMPLATE = """You are a careful, strict evaluator of an AI assistant's replies. Judge
whether the assistant's response is GOOD: it answers what the user actually asked, is correct,
complete enough to act on, follows every explicit instruction (format, length, language,
constraints), and is safe and honest (no invented facts, a refusal only when refusing is right).

The team's labelling guidelines:
{guidelines}

What their human labellers are asked:
{schema}

The conversation so far:
{messages}

The assistant's response to judge:
<<<
{response}
>>>

Think about the single most important requirement the user had and whether the response meets it.
Then score the response from {score_min} (useless or harmful) to {score_max} (excellent: a careful
expert could not do better). A response that misses an explicit instruction scores at most half the
scale. Do not reward length or confidence for their own sake.

Reply with only a JSON object, nothing before or after it:
{{"score": <number from {score_min} to {score_max}>, "reason": "<one short sentence>"}}"""

_DJANGO = Engine(autoescape=False, debug=False, libraries={}, builtins=None)
_VAR = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)")


def template_errors(template: str, syntax: str) -> list[str]:
    """Problems with a prompt template, in words; empty when it is usable."""
    if not template.strip():
        return ["must not be empty"]
    if len(template) > MAX_TEMPLATE_CHARS:
        return [f"is {len(template):,} characters; the limit is {MAX_TEMPLATE_CHARS:,}"]
    names: list[str] = []
    if syntax == "format":
        try:
            for _, field, spec, conversion in string.Formatter().parse(template):
                if field is None:
                    continue
                root = re.split(r"[.\[]", field, maxsplit=1)[0]
                if not root or root.isdigit():
                    return ["positional placeholders ({} or {0}) are not allowed: name them"]
                if root != field or spec or conversion:
                    return [f"placeholder {{{field}}} must be a plain name such as {{response}}"]
                names.append(root)
        except ValueError as exc:
            return [
                f"is not a valid str.format template ({exc}); write literal braces as {{{{ }}}}"
            ]
    elif syntax == "django":
        try:
            _DJANGO.from_string(template)
        except TemplateSyntaxError as exc:
            return [f"is not a valid Django template: {exc}"]
        names = _VAR.findall(template)
    else:
        return [f"unknown template syntax {syntax!r}: use 'format' or 'django'"]
    unknown = sorted({n for n in names if n not in PLACEHOLDERS})
    if unknown:
        known = ", ".join(sorted(PLACEHOLDERS))
        return [f"unknown placeholder(s) {', '.join(unknown)}; known: {known}"]
    if "response" not in names:
        return ["must contain the {response} placeholder (the text being judged)"]
    return []


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _messages_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    lines = []
    for turn in messages:
        if isinstance(turn, Mapping):
            content = turn.get("content")
            if not isinstance(content, str):
                content = json.dumps(content, ensure_ascii=False)
            lines.append(f"{turn.get('role', 'user')}: {content}")
    return "\n\n".join(lines) or "(no earlier turns)"


def schema_text(schema: Mapping[str, Any]) -> str:
    """The label schema's questions as short lines, for the judge's context."""
    lines = []
    for q in schema.get("questions") or []:
        if not isinstance(q, Mapping):
            continue
        options = q.get("options") or [
            f"{s.get('value')}={s.get('label')}"
            for s in q.get("scale") or []
            if isinstance(s, dict)
        ]
        extra = f" [{', '.join(map(str, options))}]" if options else ""
        lines.append(f"- {q.get('prompt') or q.get('key')}{extra}")
    return "\n".join(lines) or "(no schema)"


def context_for(
    *,
    interaction: Mapping[str, Any],
    schema: Mapping[str, Any],
    guidelines: str,
    score_min: float,
    score_max: float,
) -> dict[str, str]:
    """The values of every placeholder for one interaction (a dict of its fields)."""
    return {
        "messages": _messages_text(interaction.get("messages")),
        "response": str(interaction.get("response") or ""),
        "alt_response": str(interaction.get("alt_response") or ""),
        "model_version": str(interaction.get("model_version") or ""),
        "segment": json.dumps(interaction.get("segment") or {}, ensure_ascii=False, sort_keys=True),
        "schema": schema_text(schema),
        "guidelines": guidelines.strip() or "(none given)",
        "score_min": _number(score_min),
        "score_max": _number(score_max),
    }


def render(template: str, syntax: str, context: Mapping[str, str]) -> str:
    if syntax == "django":
        return _DJANGO.from_string(template).render(Context(dict(context), autoescape=False))
    return template.format(**context)
