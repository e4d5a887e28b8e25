"""Daily traffic of two model versions with a daily sampling run and labels that arrive late, for
the monitoring and alert tests (rows built directly, truth kept)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from django.utils import timezone

from labeling.models import Annotation, Interaction, Project, QueueItem
from sampling.models import Inclusion, SamplingRun
from sampling.services.population import population_cells_rebuild
from tests.factories import UserFactory


@dataclass
class Daily:
    now: dt.datetime
    labelled_on: dict[int, dt.datetime] = field(default_factory=dict)  # interaction -> label time
    truth: dict[str, list[bool]] = field(default_factory=dict)  # "version/tier" -> good values


def seed_daily(
    project: Project,
    *,
    days: int = 20,
    per_day: int = 40,
    p_good: dict[str, float] | None = None,
    p_good_pro: dict[str, float] | None = None,
    label_share: float = 0.5,
    latency_days: float = 1.0,
    seed: int = 1,
    now: dt.datetime | None = None,
) -> Daily:
    """``per_day`` interactions per version and day over the last ``days`` days, one finished
    run per day with non-uniform ``pi`` (mean ``label_share``), every selected item labelled from
    the truth ``latency_days`` after it occurred (labels of the last day or so are not in yet).

    ``p_good`` is each version's share of good answers; ``p_good_pro`` overrides it in the ``pro``
    tier (30% of traffic), to build a regression confined to one segment.
    """
    rng = np.random.default_rng(seed)
    now = now or timezone.now()
    p_good = p_good or {"stable": 0.8, "canary": 0.8}
    p_good_pro = p_good_pro or {}
    user = UserFactory()
    out = Daily(now=now)
    start = now - dt.timedelta(days=days)
    for day in range(days):
        run = SamplingRun.objects.create(
            project=project,
            status=SamplingRun.Status.DONE,
            strategy_snapshot={"name": "daily", "weights": {"uncertainty": 0.8, "random": 0.2}},
            pool_size=0,
        )
        rows, meta = [], []
        for version, p in p_good.items():
            for i in range(per_day):
                tier = "pro" if rng.random() < 0.3 else "free"
                good = bool(rng.random() < (p_good_pro.get(version, p) if tier == "pro" else p))
                occurred = start + dt.timedelta(days=day, seconds=float(rng.uniform(0, 86000)))
                f = float(np.clip((0.7 if good else 0.45) + rng.normal(0, 0.15), 0.02, 0.98))
                rows.append(
                    Interaction(
                        project=project,
                        external_id=f"d{seed}-{day}-{version}-{i}",
                        occurred_at=occurred,
                        model_version=version,
                        messages=[{"role": "user", "content": "q"}],
                        response="a",
                        segment={"tier": tier, "locale": "en"},
                    )
                )
                meta.append((good, f, occurred, f"{version}/{tier}"))
        created = Interaction.objects.bulk_create(rows)
        inclusions, queue, labels = [], [], []
        for inter, (good, f, occurred, key) in zip(created, meta, strict=True):
            out.truth.setdefault(key, []).append(good)
            pi = float(min(1.0, label_share * (0.4 + 1.2 * np.sqrt(f * (1 - f)) / 0.45)))
            selected = bool(rng.random() < pi)
            inclusions.append(
                Inclusion(
                    run=run, project=project, interaction=inter, f=f, pi=pi, selected=selected
                )
            )
            labelled_at = occurred + dt.timedelta(days=latency_days)
            if selected and labelled_at <= now:
                queue.append(
                    QueueItem(
                        project=project, interaction=inter, sampling_run_id=run.id, status="done"
                    )
                )
                labels.append((inter.id, good, labelled_at))
            elif selected:
                queue.append(
                    QueueItem(
                        project=project, interaction=inter, sampling_run_id=run.id, status="open"
                    )
                )
        Inclusion.objects.bulk_create(inclusions)
        population_cells_rebuild(project=project)
        items = {q.interaction_id: q for q in QueueItem.objects.bulk_create(queue)}
        annotations = Annotation.objects.bulk_create(
            [
                Annotation(
                    queue_item=items[interaction_id],
                    interaction_id=interaction_id,
                    annotator=user,
                    values={"quality": 5 if good else 2},
                    schema_version=1,
                    time_spent_ms=1000,
                )
                for interaction_id, good, _ in labels
            ]
        )
        for a, (interaction_id, _, when) in zip(annotations, labels, strict=True):
            a.created_at = when
            out.labelled_on[interaction_id] = when
        Annotation.objects.bulk_update(annotations, ["created_at"])
    return out
