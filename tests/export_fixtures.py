"""Helpers for the export tests: a seeded project with labels of every shape."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from django.utils import timezone

from labeling.models import Annotation, Interaction, Project, QueueItem
from labeling.schema import DEFAULT_SCHEMA
from tests.factories import InteractionFactory, UserFactory

PAIRWISE_SCHEMA: dict[str, Any] = {
    "questions": [
        *DEFAULT_SCHEMA["questions"],
        {"key": "preferred", "type": "pairwise", "prompt": "Which response is better?"},
    ],
    "target": DEFAULT_SCHEMA["target"],
}

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def interaction(project: Project, **kwargs: Any) -> Interaction:
    kwargs.setdefault("occurred_at", T0)
    return InteractionFactory(project=project, **kwargs)


def label(
    item: Interaction,
    values: dict[str, Any],
    *,
    annotator: Any = None,
    kind: str = Annotation.Kind.LABEL,
    holdout: bool = False,
    is_gold: bool = False,
) -> Annotation:
    """Record a current annotation (the queue item is created on first use)."""
    queue_item, _ = QueueItem.objects.get_or_create(
        project=item.project,
        interaction=item,
        defaults={"holdout": holdout, "is_gold": is_gold},
    )
    if holdout or is_gold:
        QueueItem.objects.filter(id=queue_item.id).update(holdout=holdout, is_gold=is_gold)
    return Annotation.objects.create(
        queue_item=queue_item,
        interaction=item,
        annotator=annotator or UserFactory(),
        kind=kind,
        values=values,
        schema_version=1,
    )


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    import gzip

    p = Path(path)
    opener = gzip.open if p.name.endswith(".gz") else open
    with opener(p, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def seed_mixed(project: Project) -> dict[str, Interaction]:
    """One interaction of each interesting shape, labelled; returns them by name."""
    project.label_schema = PAIRWISE_SCHEMA
    project.save(update_fields=["label_schema"])
    items = {
        "good": interaction(
            project,
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi?"},
            ],
            response="Hello!",
            alt_response="Hey.",
        ),
        "corrected": interaction(
            project,
            messages=[{"role": "user", "content": "Capital of France?"}],
            response="Lyon.",
        ),
        "bad": interaction(
            project, messages=[{"role": "user", "content": "2+2?"}], response="5", alt_response="4"
        ),
        "holdout": interaction(project, response="Held out answer."),
        "gold": interaction(project, response="Gold answer."),
        "unlabelled": interaction(project, response="Nobody looked at this."),
    }
    label(items["good"], {"quality": 5, "failure_modes": [], "preferred": "a"})
    label(
        items["corrected"],
        {"quality": 2, "failure_modes": ["hallucination"], "correction": "Paris."},
    )
    label(items["bad"], {"quality": 1, "failure_modes": ["incomplete"], "preferred": "b"})
    label(items["holdout"], {"quality": 5, "correction": "Held out fix."}, holdout=True)
    label(items["gold"], {"quality": 5}, is_gold=True)
    return items


def utc(days: int) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


def now() -> dt.datetime:
    return timezone.now()
