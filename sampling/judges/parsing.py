"""Turn a judge's reply into a score: a JSON object with a numeric ``score`` (and optional
``reason``), else the last number in the text; with ``logprobs`` for the score token, the expected
value over its alternatives. Pure functions; an unparseable reply gives None, never 0."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w])")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class Parsed:
    score: float
    method: str  # "json", "last_number" or "logprobs"
    reason: str = ""


def _finite(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object found in the text (fenced blocks first, then brace-balanced spans)."""
    found: list[dict[str, Any]] = []
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    decoder = json.JSONDecoder()
    for source in [*candidates, text]:
        i = source.find("{")
        while i != -1:
            try:
                obj, end = decoder.raw_decode(source, i)
            except ValueError:
                i = source.find("{", i + 1)
                continue
            if isinstance(obj, dict):
                found.append(obj)
            i = source.find("{", end)
    return found


def _in_scale(value: float, lo: float, hi: float) -> bool:
    return lo <= value <= hi


def parse_text(text: str, *, score_min: float, score_max: float) -> Parsed | None:
    """The score in a reply's text, or None when there is none on the judge's scale."""
    for obj in _json_objects(text):
        score = _finite(obj.get("score"))
        if score is not None and _in_scale(score, score_min, score_max):
            reason = obj.get("reason")
            return Parsed(
                score=score,
                method="json",
                reason=str(reason)[:MAX_REASON_CHARS] if reason is not None else "",
            )
    numbers = [float(m.group(0)) for m in _NUMBER.finditer(text)]
    if numbers and _in_scale(numbers[-1], score_min, score_max):
        return Parsed(score=numbers[-1], method="last_number", reason=text.strip()[:500])
    return None


def expected_from_logprobs(
    logprobs: Any, *, score: float, score_min: float, score_max: float
) -> float | None:
    """Expected score over the alternatives of the token that carries ``score``.

    ``logprobs`` is the chat-completions ``choices[0].logprobs`` object
    (``{"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]}``). The score
    token is the first content token whose text is the parsed score; its numeric alternatives on
    the scale are renormalised. None when the server sent no usable alternatives.
    """
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return None
    for entry in content:
        if not isinstance(entry, dict):
            continue
        value = _finite(str(entry.get("token", "")))
        if value is None or value != score:
            continue
        weights: dict[float, float] = {}
        for alt in entry.get("top_logprobs") or [entry]:
            if not isinstance(alt, dict):
                continue
            v = _finite(str(alt.get("token", "")))
            lp = _finite(alt.get("logprob"))
            if v is None or lp is None or not _in_scale(v, score_min, score_max):
                continue
            weights[v] = weights.get(v, 0.0) + math.exp(lp)
        total = sum(weights.values())
        if total <= 0:
            return None
        return sum(v * w for v, w in weights.items()) / total
    return None


def parse_reply(
    text: str, logprobs: Any = None, *, score_min: float, score_max: float
) -> Parsed | None:
    parsed = parse_text(text, score_min=score_min, score_max=score_max)
    if parsed is None or logprobs is None:
        return parsed
    expected = expected_from_logprobs(
        logprobs, score=parsed.score, score_min=score_min, score_max=score_max
    )
    if expected is None:
        return parsed
    return Parsed(score=expected, method="logprobs", reason=parsed.reason)
