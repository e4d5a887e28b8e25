"""Erasure: delete everything a project holds about some interactions, by their external ids.

What a privacy request ("forget this conversation") needs, through the API
(``POST /api/projects/{slug}/interactions/erase/``) or ``manage.py erase``:

- the interactions with their labels, queue items, events, scores and the sampling runs'
  inclusion rows (the database cascades), and the events sent for an id whose interaction never
  arrived (``interaction = NULL``, matched by ``external_id``);
- the runs' population and topic cells move in the same transaction (``sampling.receivers``,
  fired per deleted interaction), so every estimate afterwards is what it would be had the
  interactions never been considered; the estimates' caches are keyed by the project's
  ``updated_at``, which the receiver touches;
- one AuditLog row names who erased how many and which ids (the external ids are the caller's own
  keys; the content is gone).

Exports written before the erasure are files the caller already holds: they are not rewritten.
All or nothing: one transaction per call; an id that is not there is listed in ``not_found``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from labeling.errors import Invalid
from labeling.models import AuditLog, Event, Interaction, Project
from labeling.nul import NUL, NUL_MESSAGE
from labeling.selectors.interactions import interaction_ids_by_external_id

MAX_IDS = 10_000  # per call: one transaction, one audit row
_CHUNK = 1_000  # ids per query


@dataclass
class ErasureResult:
    erased: int = 0  # interactions deleted
    events_erased: int = 0  # events of ids whose interaction never arrived
    labels_erased: int = 0  # annotations that went with the interactions
    not_found: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "erased": self.erased,
            "labels_erased": self.labels_erased,
            "events_erased": self.events_erased,
            "not_found": self.not_found,
        }


def erasure_ids_clean(value: Any) -> list[str]:
    """The external ids of an erasure request (unique, in the given order); Invalid naming the
    first bad entry."""
    if not isinstance(value, list) or not value:
        raise Invalid({"external_ids": "required: a non-empty list of external ids"})
    if len(value) > MAX_IDS:
        raise Invalid({"external_ids": f"at most {MAX_IDS:,} ids per call (split the list)"})
    out: dict[str, None] = {}
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or len(item) > 200:
            raise Invalid(
                {f"external_ids[{i}]": "must be a non-empty string of at most 200 characters"}
            )
        if NUL in item:
            raise Invalid({f"external_ids[{i}]": NUL_MESSAGE})
        out[item] = None
    return list(out)


def interactions_erase(
    *, project: Project, external_ids: list[str], actor: User | None
) -> ErasureResult:
    """Delete the project's interactions with ``external_ids`` and everything that hangs on them
    (module docstring); one transaction."""
    ids = erasure_ids_clean(external_ids)
    result = ErasureResult()
    with transaction.atomic():
        found = interaction_ids_by_external_id(project_id=project.pk, external_ids=ids)
        pks = list(found.values())
        for start in range(0, len(pks), _CHUNK):
            some = pks[start : start + _CHUNK]
            _, by_model = Interaction.objects.filter(pk__in=some).delete()
            result.erased += by_model.get("labeling.Interaction", 0)
            result.labels_erased += by_model.get("labeling.Annotation", 0)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            result.events_erased += Event.objects.filter(
                project=project, interaction__isnull=True, external_id__in=chunk
            ).delete()[0]
        result.not_found = [i for i in ids if i not in found]
        AuditLog.objects.create(
            project=project,
            actor=actor if getattr(actor, "pk", None) else None,
            action="interactions.erase",
            object_type="Interaction",
            data={
                "erased": result.erased,
                "labels_erased": result.labels_erased,
                "events_erased": result.events_erased,
                "external_ids": [i for i in ids if i in found],
                "not_found": len(result.not_found),
            },
        )
    return result
