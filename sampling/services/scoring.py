"""Scoring: featurize interactions, predict P(good) with the current proxy, store it in bulk.

Writes ``Interaction.proxy_score / proxy_version / scored_at`` with one statement per chunk (an
``UPDATE ... FROM unnest(...)`` join on PostgreSQL, ``executemany`` on SQLite), never per-row saves,
and the topic cluster in the narrow ``InteractionTopic`` table. Idempotent: scoring twice with the
same model writes the same values.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from flywheel_site.app_settings import setting
from labeling.models import Interaction, Project
from labeling.selectors.projects import project_by_id
from sampling import proxy as proxy_lib
from sampling.features import FEATURE_FIELDS, featurize
from sampling.models import InteractionTopic, ProxyModel
from sampling.selectors.pool import proxy_current
from sampling.services.topic_cells import run_lock_shared, topic_cells_move

logger = logging.getLogger(__name__)

_cache: dict[str, proxy_lib.Proxy] = {}
_cache_lock = threading.Lock()
_CACHE_SIZE = 4

SWEEP_CHUNKS_PER_PROJECT = 20


def chunk_size() -> int:
    return int(setting("SCORE_CHUNK_SIZE"))


def artifact_path(relative: str) -> Path:
    return Path(settings.MODEL_ROOT) / relative


def proxy_load(model: ProxyModel | None) -> proxy_lib.Proxy | None:
    """The artefact of ``model``, cached per process (artefacts are immutable once written)."""
    if model is None or not model.artifact_path:
        return None
    path = artifact_path(model.artifact_path)
    key = str(path)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    loaded = proxy_lib.load(path)
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = loaded
    return loaded


def scores_compute(
    *, project: Project, rows: Sequence[Sequence], model: ProxyModel | None
) -> tuple[np.ndarray, np.ndarray]:
    """P(good) and topic cluster for featurizer rows (FEATURE_FIELDS order)."""
    judge = project.primary_judge or None
    features = featurize(rows, judge=judge)
    proxy = proxy_load(model) or proxy_lib.Proxy(kind="prior", judge=judge)
    return proxy.predict(features), proxy.clusters(features)


def scores_write(
    *,
    ids: Sequence[int],
    scores: np.ndarray,
    clusters: np.ndarray,
    version: int | None,
    project_id: int | None = None,
) -> None:
    """Store scores and clusters of ``ids`` (of project ``project_id``; default: read from the
    rows) in bulk (one statement per table).

    A considered interaction whose cluster changes moves between its run's topic cells in the
    same transaction (``topic_cells.topic_cells_move``), under the project's run lock taken
    shared first: a sampling run of the project (which holds it exclusively) is never between
    reading the clusters and committing its cells while this writes them (scoring waits for the
    run; the run, for scoring's commit)."""
    now = timezone.now()
    table = Interaction._meta.db_table
    topic_table = InteractionTopic._meta.db_table
    id_list = [int(i) for i in ids]
    score_list = [float(s) for s in scores]
    known = clusters >= 0
    if project_id is not None:
        projects = [project_id]
    else:
        projects = list(
            Interaction.objects.filter(pk__in=id_list)
            .values_list("project_id", flat=True)
            .distinct()
            .order_by()
        )
    with transaction.atomic(), connection.cursor() as cursor:
        run_lock_shared(project_ids=projects)
        if known.any():
            topic_cells_move(
                ids=np.asarray(id_list)[known].tolist(), clusters=clusters[known].tolist()
            )
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} AS i SET proxy_score = v.score, proxy_version = %s, "
                "scored_at = %s "
                "FROM unnest(%s::bigint[], %s::float8[]) AS v(id, score) WHERE i.id = v.id",
                [version, now, id_list, score_list],
            )
            if known.any():
                cursor.execute(
                    f"INSERT INTO {topic_table} (interaction_id, cluster, proxy_version) "
                    "SELECT v.id, v.cluster, %s FROM unnest(%s::bigint[], %s::smallint[]) "
                    "AS v(id, cluster) ON CONFLICT (interaction_id) DO UPDATE SET "
                    "cluster = EXCLUDED.cluster, proxy_version = EXCLUDED.proxy_version",
                    [version, np.asarray(id_list)[known].tolist(), clusters[known].tolist()],
                )
        else:
            cursor.executemany(
                f"UPDATE {table} SET proxy_score = %s, proxy_version = %s, scored_at = %s "
                "WHERE id = %s",
                [(s, version, now, i) for i, s in zip(id_list, score_list, strict=True)],
            )
            if known.any():
                InteractionTopic.objects.bulk_create(
                    [
                        InteractionTopic(interaction_id=i, cluster=int(c), proxy_version=version)
                        for i, c, k in zip(id_list, clusters, known, strict=True)
                        if k
                    ],
                    update_conflicts=True,
                    unique_fields=["interaction"],
                    update_fields=["cluster", "proxy_version"],
                )


def interactions_score(
    *, project: Project, interaction_ids: Sequence[int], model: ProxyModel | None = None
) -> int:
    """Score the given interactions of ``project`` with ``model`` (default: the current proxy).

    Returns how many were scored; ids of other projects or deleted rows are ignored.
    """
    if model is None:
        model = proxy_current(project=project)
    version = model.version if model is not None else None
    total = 0
    step = chunk_size()
    ids = sorted({int(i) for i in interaction_ids})
    for start in range(0, len(ids), step):
        chunk = ids[start : start + step]
        rows = list(
            Interaction.objects.filter(project=project, id__in=chunk).values_list(
                "id", *FEATURE_FIELDS
            )
        )
        if not rows:
            continue
        scores, clusters = scores_compute(project=project, rows=[r[1:] for r in rows], model=model)
        scores_write(
            ids=[r[0] for r in rows],
            scores=scores,
            clusters=clusters,
            version=version,
            project_id=project.pk,
        )
        total += len(rows)
    return total


def unscored_ids(*, project: Project, limit: int) -> list[int]:
    return list(
        Interaction.objects.filter(project=project, proxy_score__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def pool_chunk_ids(
    *, project: Project, after_id: int, limit: int, upto_id: int | None = None
) -> list[int]:
    """The next ``limit`` ids of the unconsidered pool after ``after_id`` (and ≤ ``upto_id``)."""
    qs = Interaction.objects.filter(project=project, inclusion__isnull=True, id__gt=after_id)
    if upto_id is not None:
        qs = qs.filter(id__lte=upto_id)
    return list(qs.order_by("id").values_list("id", flat=True)[:limit])


def pool_wave(*, project: Project, after_id: int, chunks: int) -> list[tuple[int, int]]:
    """The next ``chunks`` chunks of the unconsidered pool after ``after_id``, as id ranges.

    Each range ``(after, upto)`` holds the pool ids ``after < id <= upto``, ``chunk_size()`` of
    them (the last range of the pool may hold fewer); consecutive ranges share their bound, so
    the wave covers the pool from ``after_id`` to its last ``upto`` without gap or overlap.
    """
    step = chunk_size()
    ids = pool_chunk_ids(project=project, after_id=after_id, limit=step * chunks)
    ranges = []
    lower = after_id
    for start in range(0, len(ids), step):
        upper = ids[min(start + step, len(ids)) - 1]
        ranges.append((lower, upper))
        lower = upper
    return ranges


def unscored_batches(
    *, chunks_per_project: int = SWEEP_CHUNKS_PER_PROJECT
) -> Iterator[tuple[int, list[int]]]:
    """``(project id, interaction ids)`` chunks (of :func:`chunk_size`) of every project's
    unscored interactions, at most ``chunks_per_project`` per project and sweep: what the score
    sweep hands to scoring tasks (a lost message, Redis down at ingest)."""
    step = chunk_size()
    for project in Project.objects.all():
        ids = unscored_ids(project=project, limit=step * chunks_per_project)
        for start in range(0, len(ids), step):
            yield project.pk, ids[start : start + step]


def _still_current(*, project_id: int, version: int) -> tuple[Project, ProxyModel] | None:
    """The project and its current model if model ``version`` is still current; None when the
    project is gone or a newer model exists (its own re-score takes over)."""
    project = project_by_id(project_id)
    current = proxy_current(project=project) if project else None
    if project is None or current is None or current.version != version:
        return None
    return project, current


def pool_rescore_wave(
    *, project_id: int, version: int, after_id: int, chunks: int
) -> list[tuple[int, int]]:
    """The next wave of :func:`pool_wave` id ranges to re-score with model ``version``; empty
    when the pool is done or ``version`` is no longer current."""
    found = _still_current(project_id=project_id, version=version)
    if found is None:
        return []
    return pool_wave(project=found[0], after_id=after_id, chunks=chunks)


def pool_rescore_range(*, project_id: int, version: int, after_id: int, upto_id: int) -> int:
    """Re-score the pool ids ``after_id < id <= upto_id`` with model ``version`` if it is still
    current; returns how many were scored."""
    found = _still_current(project_id=project_id, version=version)
    if found is None:
        return 0
    project, current = found
    ids = pool_chunk_ids(
        project=project, after_id=after_id, upto_id=upto_id, limit=upto_id - after_id
    )
    return interactions_score(project=project, interaction_ids=ids, model=current)
