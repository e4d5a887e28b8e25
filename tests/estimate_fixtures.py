"""Seeded sampled-and-labelled projects for the estimates, reports and eval-set tests.

Builds SamplingRun, Inclusion, QueueItem and Annotation rows directly (bulk), with the truth kept
alongside, so tests can recompute every number from the arrays they created.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labeling.models import Annotation, Interaction, Project, QueueItem
from sampling.models import Inclusion, SamplingRun
from sampling.services.population import population_cells_rebuild
from tests.factories import UserFactory

BASE_TIME = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)  # a Monday: ISO week 2026-W45


@dataclass
class Item:
    interaction_id: int
    run_id: int
    model_version: str
    tier: str
    week: str
    f: float
    pi: float | None
    selected: bool
    labelled: bool
    rating: int | None
    good: bool
    explicit: int | None
    holdout: bool = False


@dataclass
class Seeded:
    project: Project
    items: list[Item] = field(default_factory=list)
    runs: list[SamplingRun] = field(default_factory=list)


def make_run(project: Project, *, deterministic: bool = False, **kw: Any) -> SamplingRun:
    return SamplingRun.objects.create(
        project=project,
        status=SamplingRun.Status.DONE,
        deterministic=deterministic,
        strategy_snapshot={"name": "test", "weights": {"uncertainty": 0.8, "random": 0.2}},
        **kw,
    )


def seed_project(
    project: Project,
    *,
    n_items: int = 400,
    seed: int = 1,
    n_runs: int = 2,
    nonresponse: float = 0.1,
    deterministic_items: int = 20,
    bad_rate_by_version: dict[str, float] | None = None,
    thumbs_down_if_bad: float = 0.3,
    thumbs_down_if_good: float = 0.02,
    annotators: int = 2,
    overlap_fraction: float = 0.2,
    mixed_runs: bool = False,
    nonresponse_by_version: dict[str, float] | None = None,
) -> Seeded:
    """A project with ``n_items`` interactions over two model versions, two tiers and two weeks,
    considered by ``n_runs`` probabilistic runs (non-uniform ``pi``), plus a deterministic run.

    The truth: rating 5 (good) or 2 (bad), bad with the version's rate; ``f`` is a noisy proxy;
    explicit thumbs-down far more likely when bad (selection bias). Selected items are labelled
    from the truth except a ``nonresponse`` share (per version with ``nonresponse_by_version``);
    some get two annotators (overlap).

    By default item ``i`` goes to run ``i % n_runs`` and version ``i % 2``, so with two runs each
    version sits in its own run. ``mixed_runs=True`` draws each item's run at random instead: every
    run then mixes versions, tiers and weeks (what real runs over live traffic look like).
    """
    rng = np.random.default_rng(seed)
    bad_rate_by_version = bad_rate_by_version or {"model-a": 0.2, "model-b": 0.35}
    versions = list(bad_rate_by_version)
    users = [UserFactory() for _ in range(annotators)]
    runs = [make_run(project, pool_size=0) for _ in range(n_runs)]
    det_run = make_run(project, deterministic=True) if deterministic_items else None
    total = n_items + deterministic_items
    version = [versions[i % len(versions)] for i in range(total)]
    tier = ["pro" if rng.random() < 0.3 else "free" for _ in range(total)]
    week = [int(rng.random() < 0.5) for _ in range(total)]
    bad = np.array([rng.random() < bad_rate_by_version[v] for v in version])
    f = np.clip(np.where(bad, 0.45, 0.75) + rng.normal(0, 0.15, total), 0.02, 0.98)
    explicit: list[int | None] = []
    for b in bad:
        u = rng.random()
        if u < (thumbs_down_if_bad if b else thumbs_down_if_good):
            explicit.append(-1)
        elif u > 0.97:
            explicit.append(1)
        else:
            explicit.append(None)
    interactions = Interaction.objects.bulk_create(
        [
            Interaction(
                project=project,
                external_id=f"seed-{seed}-{i}",
                conversation_id=f"conv-{seed}-{i}",
                occurred_at=BASE_TIME + dt.timedelta(days=7 * week[i], hours=i % 24),
                model_version=version[i],
                messages=[{"role": "user", "content": f"question {i}"}],
                response=f"answer {i}",
                segment={"tier": tier[i], "locale": "en"},
                explicit_rating=explicit[i],
            )
            for i in range(total)
        ]
    )
    seeded = Seeded(project=project, runs=[*runs, *([det_run] if det_run else [])])
    inclusions, queue_items = [], []
    for i, inter in enumerate(interactions):
        if i < n_items:
            run = runs[int(rng.integers(n_runs)) if mixed_runs else i % n_runs]
            u = np.sqrt(f[i] * (1 - f[i]))
            pi = float(min(1.0, 0.08 + 0.5 * u))
            selected = bool(rng.random() < pi)
        else:
            run, pi, selected = det_run, None, bool(rng.random() < 0.5)
        holdout = selected and rng.random() < 0.1
        missing = (nonresponse_by_version or {}).get(version[i], nonresponse)
        labelled = selected and rng.random() >= missing
        inclusions.append(
            Inclusion(
                run=run,
                project=project,
                interaction=inter,
                f=float(f[i]),
                pi=pi,
                selected=selected,
                holdout=holdout,
            )
        )
        if selected:
            queue_items.append(
                QueueItem(
                    project=project,
                    interaction=inter,
                    sampling_run_id=run.id,
                    holdout=holdout,
                    status="done" if labelled else "open",
                )
            )
        seeded.items.append(
            Item(
                interaction_id=inter.id,
                run_id=run.id,
                model_version=version[i],
                tier=tier[i],
                week="2026-W45" if week[i] == 0 else "2026-W46",
                f=float(f[i]),
                pi=pi,
                selected=selected,
                labelled=labelled,
                rating=(2 if bad[i] else 5) if labelled else None,
                good=not bad[i],
                explicit=explicit[i],
                holdout=holdout,
            )
        )
    Inclusion.objects.bulk_create(inclusions)
    population_cells_rebuild(project=project)
    created = QueueItem.objects.bulk_create(queue_items)
    by_interaction = {q.interaction_id: q for q in created}
    annotations = []
    for item in seeded.items:
        if not item.labelled:
            continue
        q = by_interaction[item.interaction_id]
        k = 2 if rng.random() < overlap_fraction and annotators > 1 else 1
        for user in users[:k]:
            annotations.append(
                Annotation(
                    queue_item=q,
                    interaction_id=item.interaction_id,
                    annotator=user,
                    values={"quality": item.rating},
                    schema_version=1,
                    time_spent_ms=1000,
                )
            )
    Annotation.objects.bulk_create(annotations)
    return seeded


def arrays(
    items: list[Item],
    *,
    rates: dict[int, float] | None = None,
    item_rates: dict[int, float] | None = None,
) -> tuple[np.ndarray, ...]:
    """(y, f, pi adjusted, population, f_total) of a domain, recomputed from the truth.

    ``rates`` adjusts by run (run id -> rate), ``item_rates`` by cell (interaction id -> rate).
    Runs without any labelled item are left out of the population (the coverage rule).
    """
    labelled_runs = {it.run_id for it in items if it.labelled and it.pi is not None}
    if rates is not None:
        labelled_runs &= {r for r, v in rates.items() if v > 0}
    prob = [it for it in items if it.pi is not None and it.run_id in labelled_runs]
    lab = [it for it in prob if it.labelled]
    y = np.array([1.0 if it.rating and it.rating >= 4 else 0.0 for it in lab])
    f = np.array([it.f for it in lab])
    if item_rates is not None:
        pi = np.array([it.pi * item_rates[it.interaction_id] for it in lab])
    else:
        pi = np.array([it.pi * (rates or {}).get(it.run_id, 1.0) for it in lab])
    return y, f, pi, len(prob), sum(it.f for it in prob)


def cell_rates(items: list[Item], *, min_respondents: int | None = None) -> dict[int, float]:
    """interaction id -> response rate of its adjustment cell (run x version x tier x locale,
    collapsed by ``sampling.estimators.response_cells``), for every selected item with a pi."""
    from sampling.estimators import MIN_CELL_RESPONDENTS, response_cells

    sel = [it for it in items if it.selected and it.pi is not None]
    paths = response_cells(
        responded=[it.labelled for it in sel],
        keys=[[it.run_id for it in sel], [it.model_version for it in sel],
              [it.tier for it in sel], ["en" for _ in sel]],
        min_respondents=MIN_CELL_RESPONDENTS if min_respondents is None else min_respondents,
    )  # fmt: skip
    total: dict[tuple[Any, ...], float] = {}
    got: dict[tuple[Any, ...], float] = {}
    for it, path in zip(sel, paths, strict=True):
        total[path] = total.get(path, 0.0) + 1 / it.pi
        got[path] = got.get(path, 0.0) + (1 / it.pi if it.labelled else 0.0)
    return {it.interaction_id: got[path] / total[path] for it, path in zip(sel, paths, strict=True)}


def response_rates(items: list[Item]) -> dict[int, float]:
    """Each run's weighted response rate over all its selected items."""
    out: dict[int, float] = {}
    for run_id in {it.run_id for it in items if it.pi is not None}:
        sel = [it for it in items if it.run_id == run_id and it.selected and it.pi is not None]
        total = sum(1 / it.pi for it in sel)
        got = sum(1 / it.pi for it in sel if it.labelled)
        out[run_id] = got / total if total else 0.0
    return out
