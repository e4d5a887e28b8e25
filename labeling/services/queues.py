"""Named queues: several queues per project (e.g. "safety review", "German"), each fed by
sampling strategies and routed by segment; a skill tag on a queue limits who labels it.

- ``queue_create`` / ``queue_update`` / ``queue_delete`` (admins): a queue's rules.
- ``member_skills_set``: the skill tags of a membership (e.g. ``["de", "safety"]``).
- ``queue_route``: which queue a new queue item goes to: the first active queue, by ``position``,
  whose ``strategy_ids`` include the strategy that selected it (an empty list takes every strategy
  and deliberate batches) and whose ``segment`` rule the interaction's segment matches (every key,
  one of the listed values); no match: the project's main queue (``QueueItem.queue`` null).

Serving (``labeling.services.queue.assignment_claim``) offers an annotator the main queue and every
active queue whose skill they have; a queue's items stay blind unless the queue is ``open``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from labeling.errors import Conflict, Invalid, NotFound
from labeling.models import AuditLog, Membership, Project, Queue, QueueItem
from labeling.selectors.queues import MAIN

QUEUE_FIELDS = (
    "name",
    "description",
    "position",
    "strategy_ids",
    "segment",
    "skill",
    "blind",
    "active",
)
SKILL_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

# PositiveIntegerField: the largest value every database stores (PostgreSQL's integer).
MAX_POSITION = 2_147_483_647


def _skill(value: Any, where: str) -> str:
    text = str(value or "").strip().lower()
    if text and not SKILL_RE.match(text):
        raise Invalid({where: f"{value!r}: use lower-case letters, digits, '-', '_' or '.'"})
    return text


def _clean(data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    unknown = sorted(set(data) - set(QUEUE_FIELDS))
    if unknown:
        raise Invalid(dict.fromkeys(unknown, "unknown field"))
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if "name" in data or not partial:
        name = str(data.get("name") or "").strip()
        if not name or len(name) > 100:
            errors["name"] = "give a name of 1 to 100 characters"
        elif slugify(name) in ("", MAIN):
            errors["name"] = "choose another name (it must make a URL slug other than 'main')"
        out["name"] = name
    if "description" in data:
        out["description"] = str(data["description"] or "")[:2000]
    if "position" in data:
        try:
            position = int(data["position"])
        except (TypeError, ValueError):
            errors["position"] = "must be a whole number"
        else:
            if position > MAX_POSITION:
                errors["position"] = f"must be at most {MAX_POSITION:,}"
            out["position"] = max(0, position)
    if "strategy_ids" in data:
        ids = data["strategy_ids"] or []
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            errors["strategy_ids"] = "must be a list of strategy ids"
        else:
            out["strategy_ids"] = sorted(set(ids))
    if "segment" in data:
        segment = data["segment"] or {}
        if not isinstance(segment, dict):
            errors["segment"] = 'must be an object such as {"locale": ["de", "at"]}'
        else:
            rule: dict[str, list[str]] = {}
            for key, values in segment.items():
                values = values if isinstance(values, list) else [values]
                if not str(key).strip() or not values:
                    errors["segment"] = f"{key!r}: give a key and at least one value"
                    break
                rule[str(key).strip()] = [str(v) for v in values]
            out["segment"] = rule
    if "skill" in data:
        try:
            out["skill"] = _skill(data["skill"], "skill")
        except Invalid as exc:
            errors.update(exc.errors)
    for flag in ("blind", "active"):
        if flag in data:
            if not isinstance(data[flag], bool):
                errors[flag] = "must be true or false"
            out[flag] = bool(data[flag])
    if errors:
        raise Invalid(errors)
    return out


def _audit(queue: Queue, actor: User | None, action: str, data: dict[str, Any]) -> None:
    AuditLog.objects.create(
        project_id=queue.project_id,
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        object_type="queue",
        object_id=str(queue.pk),
        data=data,
    )


def _rules(queue: Queue) -> dict[str, Any]:
    return {f: getattr(queue, f) for f in QUEUE_FIELDS}


@transaction.atomic
def queue_create(*, project: Project, actor: User | None, data: dict[str, Any]) -> Queue:
    fields = _clean(data, partial=False)
    queue = Queue(project=project, slug=slugify(fields["name"])[:64], **fields)
    try:
        with transaction.atomic():
            queue.save()
    except IntegrityError:
        raise Conflict(
            f"A queue named {fields['name']!r} already exists.", code="duplicate"
        ) from None
    _audit(queue, actor, "queue.created", _rules(queue))
    return queue


@transaction.atomic
def queue_update(*, queue: Queue, actor: User | None, data: dict[str, Any]) -> Queue:
    """Change a queue's rules. The slug stays (links keep working); rules apply to items queued
    from now on (items already queued stay where they are)."""
    fields = _clean(data, partial=True)
    before = _rules(queue)
    for key, value in fields.items():
        setattr(queue, key, value)
    try:
        with transaction.atomic():
            queue.save()
    except IntegrityError:
        raise Conflict(f"A queue named {queue.name!r} already exists.", code="duplicate") from None
    _audit(queue, actor, "queue.changed", {"before": before, "after": _rules(queue)})
    return queue


@transaction.atomic
def queue_delete(*, queue: Queue, actor: User | None) -> int:
    """Delete a queue; its items go back to the main queue. Returns how many items moved."""
    moved = QueueItem.objects.filter(queue=queue).update(queue=None)
    _audit(queue, actor, "queue.deleted", {**_rules(queue), "items_moved": moved})
    queue.delete()
    return moved


def member_skills_set(
    *, project: Project, user: User, skills: Iterable[Any], actor: User | None
) -> Membership:
    """Set a member's skill tags (lower-case, deduplicated, sorted)."""
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None:
        raise NotFound("No such member.")
    cleaned = sorted({_skill(s, "skills") for s in skills} - {""})
    if len(cleaned) > 50:
        raise Invalid({"skills": "at most 50 skill tags"})
    before = list(membership.skills or [])
    membership.skills = cleaned
    membership.save(update_fields=["skills"])
    AuditLog.objects.create(
        project=project,
        actor=actor if getattr(actor, "pk", None) else None,
        action="membership.skills",
        object_type="membership",
        object_id=str(membership.pk),
        data={"user": user.get_username(), "before": before, "after": cleaned},
    )
    return membership


def queue_route(
    *, queues: Iterable[Queue], segment: dict[str, Any] | None, strategy_id: int | None
) -> Queue | None:
    """The queue a new item goes to (``queues`` in routing order), or None for the main queue."""
    segment = segment or {}
    for queue in queues:
        if not queue.active:
            continue
        if queue.strategy_ids and strategy_id not in queue.strategy_ids:
            continue
        if all(
            key in segment and str(segment[key]) in values for key, values in queue.segment.items()
        ):
            return queue
    return None
