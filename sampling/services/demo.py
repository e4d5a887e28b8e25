"""The demo project's history: weekly sampling runs, simulated late labels and an alert rule.

``labeling.demo`` loads 35 days of traffic for two model versions (the new one regresses on
``surface=mobile``). This builds what a team would have after those weeks, through the real
machinery where it matters:

- one sampling run per week over all but the last two days (``sampling_run_execute`` with the
  default strategy's settings and that week's ``since``/``until``: every ``pi`` is recorded as in
  production), expected to select ``LABEL_SHARE`` of the week's traffic;
- a label for each selected item, from the conversation's own truth (``metadata.truth``), that
  arrived ``LATENCY_DAYS`` (exponential) after the interaction; labels not due yet, and a random
  ``BACKLOG_SHARE`` of the rest, are not written, so part of the queue is still waiting for the
  demo annotators (at random: ignorable non-response, adjusted for like any backlog);
- the last two days stay unsampled: a new strategy's preview and run have a pool;
- the proxy is retrained on the labels, and an alert rule watches the new version per surface,
  evaluated once (the alert shows on first login; the hourly task keeps it up to date).

Idempotent: nothing is done when the project already has a sampling run.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random

from django.utils import timezone

from labeling.demo import NEW, STABLE, demo_label_values, demo_labels_write
from labeling.models import Interaction, Project, QueueItem
from sampling.models import AlertRule, ProxyModel, SamplingRun
from sampling.services import proxy as proxy_services
from sampling.services import scoring
from sampling.services.alerts import alerts_evaluate
from sampling.services.runs import sampling_run_execute
from sampling.services.strategies import strategy_ensure_default, strategy_snapshot

logger = logging.getLogger(__name__)

SEED = 20261203
LABEL_SHARE = 0.45
LATENCY_DAYS = 3.0
BACKLOG_SHARE = 0.12  # selected items the annotators have not reached yet, at random
UNSAMPLED_DAYS = 2
RULE_NAME = "New version, per surface"


def demo_bootstrap(*, project: Project) -> SamplingRun | None:
    """Give a freshly loaded demo project a proxy, scores, the default strategy and its history
    (:func:`demo_history`); returns the last run made (None when the project already had runs)."""
    strategy_ensure_default(project=project)
    if not ProxyModel.objects.filter(project=project, status=ProxyModel.Status.READY).exists():
        proxy_services.proxy_train(project=project)
    step = scoring.chunk_size()
    while ids := scoring.unscored_ids(project=project, limit=step):
        scoring.interactions_score(project=project, interaction_ids=ids)
    runs = demo_history(project=project)
    if not runs:
        return None
    logger.info(
        "demo project %s: %s weekly sampling runs with simulated labels at %s",
        project.slug,
        len(runs),
        timezone.now(),
    )
    return runs[-1]


def demo_history(*, project: Project, now: dt.datetime | None = None) -> list[SamplingRun]:
    """Build the history (see the module docstring); returns the runs made (none if any exist)."""
    if SamplingRun.objects.filter(project=project).exists():
        return []
    now = now or timezone.now()
    first = Interaction.objects.filter(project=project).order_by("occurred_at").first()
    if first is None:
        return []
    strategy = strategy_ensure_default(project=project)
    snapshot = strategy_snapshot(strategy)
    end = now - dt.timedelta(days=UNSAMPLED_DAYS)
    start = first.occurred_at
    runs = []
    week = 0
    while start < end:
        until = min(start + dt.timedelta(days=7), end)
        traffic = Interaction.objects.filter(
            project=project, occurred_at__gte=start, occurred_at__lt=until
        ).count()
        if traffic:
            run = SamplingRun.objects.create(
                project=project,
                strategy=strategy,
                strategy_snapshot={
                    **snapshot,
                    "filters": {"since": start.isoformat(), "until": until.isoformat()},
                    "batch_size": max(1, round(LABEL_SHARE * traffic)),
                    "overlap_fraction": 0.0,
                    "holdout_fraction": 0.05,
                },
                seed=SEED + week,
            )
            done = sampling_run_execute(run_id=run.pk)
            if done is not None:
                runs.append(done)
        start, week = until, week + 1
    _simulate_labels(project=project, runs=runs, now=now)
    if any(r.selected_count for r in runs):
        proxy_services.proxy_train(project=project)
    AlertRule.objects.get_or_create(
        project=project,
        name=RULE_NAME,
        defaults={"baseline": STABLE, "model_versions": [NEW], "segment_key": "surface"},
    )
    alerts_evaluate(project=project, now=now)
    return runs


def _simulate_labels(*, project: Project, runs: list[SamplingRun], now: dt.datetime) -> int:
    rng = random.Random(SEED)
    items = (
        QueueItem.objects.filter(project=project, sampling_run_id__in=[r.pk for r in runs])
        .select_related("interaction")
        .order_by("id")
    )
    due = []
    for item in items:
        interaction = item.interaction
        delay = dt.timedelta(days=-LATENCY_DAYS * math.log(1 - rng.random()))
        when = interaction.occurred_at + delay
        truth = (interaction.metadata or {}).get("truth")
        waiting = rng.random() < BACKLOG_SHARE
        if when >= now or waiting or truth not in ("chosen", "rejected"):
            continue  # not labelled yet: it waits in the queue
        due.append((item.pk, demo_label_values(good=truth == "chosen", rng=rng), when))
    return demo_labels_write(project=project, labels=due)
