"""Chat messages from other tools' shapes to Flywheel's ``{role, content}`` (used by the OTLP
receiver and the importers).

Content may be a string, a list of typed parts (OpenAI ``{"type": "text", "text"}``, GenAI
semantic conventions ``{"type": "text", "content"}``), an object holding one of those, or a JSON
string of any of them; only text parts are kept. Roles of other vocabularies map onto Flywheel's
four (``developer`` → system, ``human`` → user, ``model``/``ai`` → assistant, ``function`` →
tool); LangChain's serialized messages (``{"lc": 1, "id": [..., "HumanMessage"], "kwargs"}`` or
``{"type": "human", "content"}``) are understood too.
"""

from __future__ import annotations

from typing import Any

import orjson

ROLE_ALIASES = {
    "developer": "system",
    "human": "user",
    "model": "assistant",
    "ai": "assistant",
    "function": "tool",
    "humanmessage": "user",
    "aimessage": "assistant",
    "aimessagechunk": "assistant",
    "systemmessage": "system",
    "toolmessage": "tool",
    "functionmessage": "tool",
    "chatmessage": "user",
}


def maybe_json(value: Any) -> Any:
    """A JSON string decoded (objects and arrays only); anything else as it is."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def role_of(value: Any, default: str = "user") -> str:
    role = str(value or default).strip().lower()
    return ROLE_ALIASES.get(role, role)


def content_text(content: Any) -> str:
    """The text of a content value (see the module docstring); ``""`` when there is none."""
    content = maybe_json(content)
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_part_text(part) for part in content)
    if isinstance(content, dict):
        for key in ("content", "text", "parts"):
            if key in content:
                return content_text(content[key])
        return ""
    return str(content)


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and part.get("type", "text") == "text":
        return str(part.get("text", part.get("content", "")) or "")
    return ""


def message_of(raw: Any, default_role: str = "user") -> dict[str, str] | None:
    """One message in Flywheel's shape, or None when ``raw`` is not a message."""
    if isinstance(raw, str):
        return {"role": default_role, "content": raw}
    if not isinstance(raw, dict):
        return None
    if raw.get("lc") == 1 and isinstance(raw.get("kwargs"), dict):  # LangChain, serialized
        ident = raw.get("id") or []
        kwargs = raw["kwargs"]
        role = kwargs.get("role") or (ident[-1] if ident else default_role)
        return {"role": role_of(role, default_role), "content": content_text(kwargs.get("content"))}
    role = raw.get("role") or raw.get("type") or default_role
    content = raw.get("parts", raw.get("content"))
    if content is None and isinstance(raw.get("data"), dict):  # LangChain message_to_dict
        content = raw["data"].get("content")
    return {"role": role_of(role, default_role), "content": content_text(content)}


def messages_of(raw: Any, default_role: str = "user") -> list[dict[str, str]]:
    """A list of messages from a list, one message, or a JSON string of either."""
    raw = maybe_json(raw)
    if isinstance(raw, (dict, str)):
        raw = [raw] if raw else []
    if not isinstance(raw, list):
        return []
    out = []
    for item in raw:
        message = message_of(item, default_role)
        if message is not None:
            out.append(message)
    return out
