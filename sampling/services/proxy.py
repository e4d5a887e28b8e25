"""Proxy training: the database claim, the training itself and the stored, versioned artefact.

One training per project at a time: :func:`proxy_claim` inserts a ``ProxyModel`` row in status
``training``; the partial unique constraint ``one_training_per_project`` makes a second concurrent
insert fail with IntegrityError, and that caller skips ("already training"). A claim older than
``PROXY_CLAIM_TIMEOUT_S`` (a worker killed mid-training) is expired to ``failed`` first, so a dead
worker never blocks training for good.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from flywheel_site.app_settings import setting
from labeling.models import Annotation, Interaction, Project
from labeling.selectors.labels import final_labels, target_good
from sampling import proxy as proxy_lib
from sampling.features import FEATURE_FIELDS, Features, featurize
from sampling.models import ProxyModel
from sampling.selectors.pool import proxy_current
from sampling.services.scoring import artifact_path

logger = logging.getLogger(__name__)

FEATURE_CHUNK = 5000


def proxy_claims_expire(*, project: Project, older_than: dt.timedelta | None = None) -> int:
    """Mark training claims older than ``older_than`` (default: the ``PROXY_CLAIM_TIMEOUT_S``
    setting) as failed (their worker died)."""
    if older_than is None:
        older_than = dt.timedelta(seconds=setting("PROXY_CLAIM_TIMEOUT_S"))
    return ProxyModel.objects.filter(
        project=project,
        status=ProxyModel.Status.TRAINING,
        created_at__lt=timezone.now() - older_than,
    ).update(
        status=ProxyModel.Status.FAILED,
        error="claim expired: the training worker did not finish in time",
        finished_at=timezone.now(),
    )


def proxy_claim(*, project: Project) -> ProxyModel | None:
    """Insert the ``training`` row that claims the project's training; None if already claimed."""
    proxy_claims_expire(project=project)
    try:
        with transaction.atomic():
            version = (
                ProxyModel.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0
            ) + 1
            return ProxyModel.objects.create(
                project=project, version=version, status=ProxyModel.Status.TRAINING
            )
    except IntegrityError:
        logger.info("proxy training of project %s already claimed; skipping", project.pk)
        return None


def training_labels(*, project: Project) -> tuple[list[int], np.ndarray]:
    """(interaction ids, y) for every labelled interaction whose target is known."""
    schema = project.label_schema
    ids: list[int] = []
    ys: list[float] = []
    for interaction_id, values in sorted(final_labels(project=project).items()):
        y = target_good(schema=schema, values=values)
        if y is not None:
            ids.append(interaction_id)
            ys.append(y)
    return ids, np.asarray(ys, dtype=float)


def labelled_count(*, project: Project) -> int:
    """Interactions with at least one current annotation (what ``retrain_every`` counts)."""
    return (
        Annotation.objects.filter(queue_item__project=project, is_current=True)
        .values("interaction_id")
        .distinct()
        .count()
    )


def features_for(*, project: Project, ids: list[int]) -> Features:
    """Features of the given interactions, in the order of ``ids``."""
    judge = project.primary_judge or None
    rows: dict[int, tuple] = {}
    for start in range(0, len(ids), FEATURE_CHUNK):
        chunk = ids[start : start + FEATURE_CHUNK]
        for row in Interaction.objects.filter(id__in=chunk).values_list("id", *FEATURE_FIELDS):
            rows[row[0]] = row[1:]
    return featurize([rows[i] for i in ids if i in rows], judge=judge)


def conversation_groups(*, ids: list[int]) -> np.ndarray:
    """The conversation of each interaction (its own id when it has none), for grouped CV."""
    conversations: dict[int, str] = {}
    for start in range(0, len(ids), FEATURE_CHUNK):
        chunk = ids[start : start + FEATURE_CHUNK]
        conversations.update(
            Interaction.objects.filter(id__in=chunk).values_list("id", "conversation_id")
        )
    return np.array([conversations.get(i) or f"#{i}" for i in ids], dtype=object)


def _cluster_sample_ids(*, project: Project, seed: int, limit: int) -> list[int]:
    ids = np.fromiter(
        Interaction.objects.filter(project=project)
        .values_list("id", flat=True)
        .iterator(chunk_size=20_000),
        dtype=np.int64,
    )
    if len(ids) > limit:
        ids = np.sort(np.random.default_rng(seed).choice(ids, limit, replace=False))
    return [int(i) for i in ids]


def proxy_train(*, project: Project, seed: int = 0) -> ProxyModel | None:
    """Claim, train on all labels, store the artefact and metrics; None if another training runs.

    Not one transaction on purpose: training takes minutes, and the claim row must be visible to
    other workers while it runs. A failure marks the row ``failed`` with the error and re-raises.
    """
    model = proxy_claim(project=project)
    if model is None:
        return None
    started = time.perf_counter()
    try:
        ids, y = training_labels(project=project)
        features = features_for(project=project, ids=ids)
        groups = conversation_groups(ids=ids)
        sample = _cluster_sample_ids(project=project, seed=seed, limit=proxy_lib.CLUSTER_SAMPLE)
        pool_topic = features_for(project=project, ids=sample).topic
        proxy, metrics = proxy_lib.train(
            features,
            y,
            judge=project.primary_judge or None,
            pool_topic=pool_topic,
            seed=seed,
            groups=groups,
        )
        relative = f"{project.slug}/proxy-v{model.version}.joblib"
        proxy_lib.save(proxy, artifact_path(relative))
        metrics["train_seconds"] = round(time.perf_counter() - started, 3)
        metrics["n_clusters"] = 0 if proxy.kmeans is None else int(proxy.kmeans.n_clusters)
        model.kind = proxy.kind
        model.artifact_path = relative
        model.metrics = _jsonable(metrics)
        model.n_labels = len(y)
        model.status = ProxyModel.Status.READY
        model.finished_at = timezone.now()
        model.save(
            update_fields=["kind", "artifact_path", "metrics", "n_labels", "status", "finished_at"]
        )
        return model
    except Exception as exc:
        ProxyModel.objects.filter(pk=model.pk).update(
            status=ProxyModel.Status.FAILED, error=repr(exc)[:2000], finished_at=timezone.now()
        )
        raise


def retrain_due(*, project: Project) -> bool:
    """True when ``retrain_every`` labels arrived since the current model (or none exists yet)."""
    current = proxy_current(project=project)
    count = labelled_count(project=project)
    if current is None:
        return True
    return count - current.n_labels >= max(1, project.retrain_every)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
