"""Helpers for the sampler's tests: seed a project's interactions and give some of them labels."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
from django.utils import timezone

from labeling.models import Annotation, Interaction, Project, QueueItem
from tests.factories import UserFactory

TOPICS = ["password reset", "refund for order", "invoice download", "shipping delay", "login error"]


def seed_interactions(
    project: Project,
    count: int,
    *,
    seed: int = 0,
    pro_share: float = 0.2,
    model_versions: Sequence[str] = ("model-a", "model-b"),
) -> list[Interaction]:
    """``count`` interactions with segments, model versions, signals and varied texts."""
    rng = np.random.default_rng(seed)
    now = timezone.now()
    rows = []
    for i in range(count):
        good = rng.random() < 0.7
        topic = TOPICS[i % len(TOPICS)]
        signals = {}
        if not good and rng.random() < 0.5:
            signals["regenerate"] = 1
        if good and rng.random() < 0.3:
            signals["copy"] = 1
        rows.append(
            Interaction(
                project=project,
                external_id=f"seed-{seed}-{i}",
                conversation_id=f"conv-{i}",
                occurred_at=now - dt.timedelta(hours=count - i),
                model_version=model_versions[i % len(model_versions)],
                messages=[{"role": "user", "content": f"Help with {topic}, case {i}"}],
                response=(
                    f"Sure: to handle {topic}, open settings and follow the steps."
                    if good
                    else f"Sorry, I cannot help with {topic}."
                ),
                segment={
                    "tier": "pro" if rng.random() < pro_share else "free",
                    "locale": "de" if i % 3 == 0 else "en",
                },
                signals=signals,
                metadata={"good": good},
            )
        )
    return Interaction.objects.bulk_create(rows)


def label(project: Project, interactions: Sequence[Interaction], *, by=None) -> int:
    """Label interactions as an annotator would: quality 5 when metadata says good, else 1."""
    annotator = by or UserFactory()
    for interaction in interactions:
        item, _ = QueueItem.objects.get_or_create(project=project, interaction=interaction)
        good = interaction.metadata.get("good", True)
        Annotation.objects.create(
            queue_item=item,
            interaction=interaction,
            annotator=annotator,
            values={"quality": 5 if good else 1},
            schema_version=project.schema_version,
        )
    return len(interactions)
