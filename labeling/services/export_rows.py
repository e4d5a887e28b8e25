"""Row builders of the training export kinds (``sft``, ``preference``, ``classification``).

Each builder turns the labelled items of an export's snapshot (``labelled_items``, which already
drops holdout items for training kinds) into JSON-ready dicts, in interaction id order and with no
timestamps, so the same snapshot always gives the same rows. Items a kind cannot use are counted
in the scan's ``counts`` (they appear in the manifest under ``skipped``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from labeling.models import Export
from labeling.selectors.exports import (
    LabelledItem,
    export_scan_current,
    export_snapshot,
    labelled_items,
)
from labeling.services.export_kinds import ExportKind, export_kind_register

OPENAI_ROLES = frozenset({"system", "user", "assistant", "tool"})
OPENAI_MESSAGE_KEYS = frozenset({"role", "content", "name", "weight"})


# --- Pure helpers --------------------------------------------------------------------------------
def conversation_split(*, key: str, seed: int, validation_fraction: float) -> str:
    """ "train" or "validation" from a hash of (seed, conversation key): a conversation never
    lands on both sides, and the same seed always gives the same split."""
    if validation_fraction <= 0:
        return "train"
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "validation" if u < validation_fraction else "train"


def chat_message(message: Any) -> dict[str, str] | None:
    """A stored message as ``{"role", "content"[, "name"]}``; None when it has no usable form.

    Content given as a list of parts keeps its text parts, joined by newlines.
    """
    if not isinstance(message, dict):
        return None
    role, content = message.get("role"), message.get("content")
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        content = "\n".join(t for t in texts if isinstance(t, str))
    if not isinstance(role, str) or not isinstance(content, str):
        return None
    out = {"role": role, "content": content}
    if isinstance(message.get("name"), str) and message["name"]:
        out["name"] = message["name"]
    return out


def prompt_turns(messages: list[Any]) -> list[dict[str, str]] | None:
    """The prompt turns in chat form, or None if any turn is unusable."""
    turns = [chat_message(m) for m in messages]
    if not turns or any(t is None for t in turns):
        return None
    return [t for t in turns if t is not None]


def openai_chat_problems(row: dict[str, Any]) -> list[str]:
    """Problems that make a row invalid for OpenAI chat fine-tuning (empty list: valid).

    Rules: ``messages`` is a non-empty list; each message has a known role (system, user,
    assistant, tool) and non-empty string content and no keys beyond role, content, name, weight;
    there is at least one user message; the last message is from the assistant.
    """
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["messages: must be a non-empty list"]
    problems = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            problems.append(f"messages[{i}]: must be an object")
            continue
        if m.get("role") not in OPENAI_ROLES:
            problems.append(f"messages[{i}].role: must be one of {sorted(OPENAI_ROLES)}")
        content = m.get("content")
        if not isinstance(content, str) or not content.strip():
            problems.append(f"messages[{i}].content: must be a non-empty string")
        if not OPENAI_MESSAGE_KEYS.issuperset(m):
            extra = sorted(set(m) - OPENAI_MESSAGE_KEYS)
            problems.append(f"messages[{i}]: unexpected keys {extra}")
    if not any(isinstance(m, dict) and m.get("role") == "user" for m in messages):
        problems.append("messages: needs at least one user message")
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "assistant":
        problems.append("messages: the last message must be from the assistant")
    return problems


def correction_question(schema: dict[str, Any]) -> str | None:
    """The key of the schema's correction question: a text question prefilled with the response
    (the first one), else a text question keyed ``correction``."""
    texts = [q for q in schema.get("questions", []) if q.get("type") == "text"]
    for q in texts:
        if q.get("prefill") == "response":
            return str(q["key"])
    return next((str(q["key"]) for q in texts if q["key"] == "correction"), None)


def correction_of(item: LabelledItem, key: str | None) -> str | None:
    """The annotators' correction, or None when there is none (empty or equal to the response)."""
    if key is None:
        return None
    value = item.final.get(key)
    if not isinstance(value, str) or not value.strip() or value.strip() == item.response.strip():
        return None
    return value


def _schema(export: Export) -> dict[str, Any]:
    return export_snapshot(export).get("label_schema") or export.project.label_schema


def _with_split(row: dict[str, Any], item: LabelledItem, options: dict[str, Any]) -> dict:
    fraction = float(options.get("validation_fraction") or 0)
    if fraction > 0:
        row["split"] = conversation_split(
            key=item.conversation_key,
            seed=int(options.get("seed", 0)),
            validation_fraction=fraction,
        )
    return row


# --- Kinds ---------------------------------------------------------------------------------------
def sft_rows(export: Export) -> Iterator[dict[str, Any]]:
    """``{"messages": [...prompt, {"role": "assistant", "content": ...}]}`` for items whose final
    label is good (the response) or that carry a correction (the correction)."""
    counts = export_scan_current().counts
    key = correction_question(_schema(export))
    for item in labelled_items(export, training=True):
        correction = correction_of(item, key)
        if correction is None and item.good != 1.0:
            counts["not_good_no_correction"] += 1
            continue
        prompt = prompt_turns(item.messages)
        answer = correction if correction is not None else item.response
        row = {"messages": [*(prompt or []), {"role": "assistant", "content": answer}]}
        if prompt is None or openai_chat_problems(row):
            counts["invalid_chat"] += 1
            continue
        yield _with_split(row, item, export.options)


def preference_rows(export: Export) -> Iterator[dict[str, Any]]:
    """TRL conversational preference rows: a correction beats the original response; a pairwise
    answer "a" means the response wins, "b" the alternative. Ties are left out unless
    ``options.keep_ties`` (then every row carries ``"tie"``)."""
    counts = export_scan_current().counts
    schema = _schema(export)
    key = correction_question(schema)
    pairwise = [q["key"] for q in schema.get("questions", []) if q.get("type") == "pairwise"]
    keep_ties = bool(export.options.get("keep_ties", False))

    def make(prompt: list, chosen: str, rejected: str, tie: bool, item: LabelledItem) -> dict:
        row: dict[str, Any] = {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
        if keep_ties:
            row["tie"] = tie
        return _with_split(row, item, export.options)

    for item in labelled_items(export, training=True):
        prompt = prompt_turns(item.messages)
        if prompt is None or any(not t["content"].strip() for t in prompt):
            counts["invalid_prompt"] += 1
            continue
        made = False
        correction = correction_of(item, key)
        if correction is not None and item.response.strip():
            made = True
            yield make(prompt, correction, item.response, False, item)
        for q in pairwise:
            answer = item.final.get(q)
            if answer is None:
                continue
            if not item.alt_response.strip() or not item.response.strip():
                counts["pairwise_missing_response"] += 1
                continue
            if answer == "tie":
                if not keep_ties:
                    counts["ties_dropped"] += 1
                    continue
                made = True
                yield make(prompt, item.response, item.alt_response, True, item)
            elif answer in ("a", "b"):
                made = True
                win, lose = (
                    (item.response, item.alt_response)
                    if answer == "a"
                    else (item.alt_response, item.response)
                )
                yield make(prompt, win, lose, False, item)
        if not made:
            counts["no_preference"] += 1


def classification_rows(export: Export) -> Iterator[dict[str, Any]]:
    """``{"messages", "response", "labels": {question: final value or null}, "good", "weight"}``.

    ``good`` is the target verdict (true/false/null). ``weight`` is 1.0, or the annotators'
    agreement share with ``options.weight = "agreement"``.
    """
    counts = export_scan_current().counts
    questions = [q["key"] for q in _schema(export).get("questions", [])]
    by_agreement = export.options.get("weight") == "agreement"
    for item in labelled_items(export, training=True, with_agreement=by_agreement):
        prompt = prompt_turns(item.messages)
        if prompt is None:
            counts["invalid_prompt"] += 1
            continue
        weight = 1.0
        if by_agreement:
            weight = item.agreement if item.agreement is not None else 0.0
        row = {
            "messages": prompt,
            "response": item.response,
            "labels": {k: item.final.get(k) for k in questions},
            "good": None if item.good is None else item.good == 1.0,
            "weight": weight,
        }
        yield _with_split(row, item, export.options)


for _kind in (
    ExportKind(name="sft", rows=sft_rows, training=True),
    ExportKind(name="preference", rows=preference_rows, training=True),
    ExportKind(name="classification", rows=classification_rows, training=True),
):
    export_kind_register(_kind)
