"""Sampling runs: create one, and execute it as a single all-or-nothing transaction.

Invariants:
- An interaction is considered by at most one committed run: ``Inclusion.interaction`` is unique.
  On PostgreSQL runs of one project also take a transaction-level advisory lock, so a second run
  waits and then reads the pool the first one left; should two runs still collide (another
  database, a lock skipped), the loser's transaction rolls back on the unique constraint and it
  retries on the remaining pool.
- A run is claimed by a committed conditional ``UPDATE ... SET status = 'running'
  WHERE status = 'pending'`` (so the API shows it running); then one transaction, holding the run
  row locked, reads the pool and writes every Inclusion row, the queue items and the results. A
  worker killed mid-run rolls that transaction back: nothing of the run counts, it stays
  ``running`` and is claimed again once stale (setting ``RUN_STALE_AFTER_S``;
  ``sampling.resume_pending_runs`` re-enqueues it). A duplicate delivery finds the run claimed
  and does nothing.
- Every pool item gets an Inclusion row with ``f`` (the stored proxy score, or the prior if
  unscored) and ``pi`` (NULL in deterministic mode), selected or not; the run's population cells
  (``sampling.models.PopulationCell``) are aggregated from those rows, and its selected rows are
  copied with their interactions' columns (``sampling.models.SelectedItem``), in the same
  transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from flywheel_site.app_settings import setting
from labeling import dispatch
from labeling.models import Interaction, Project, WebhookEvent
from labeling.services.queue import queue_items_enqueue
from labeling.services.webhooks import webhook_emit
from sampling import design
from sampling.features import FEATURE_FIELDS, featurize
from sampling.models import (
    Inclusion,
    PoolWatermark,
    PopulationCell,
    SamplingRun,
    SamplingStrategy,
)
from sampling.selectors.pool import coverage_counts, filters_narrow, pool_read, proxy_current
from sampling.services.population import population_cells_write, selected_items_write
from sampling.services.strategies import crontab_parse, strategy_snapshot
from sampling.services.topic_cells import topic_cells_write, topic_cells_write_arrays

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
PENDING_GRACE_S = 300  # a run still pending this long after it was created lost its message
_ADVISORY_NAMESPACE = 0x53414D50  # "SAMP": keeps our advisory keys apart from other users'


def run_stale_after() -> dt.timedelta:
    """A run still "running" this long after its claim lost its worker may be claimed again
    (the ``RUN_STALE_AFTER_S`` setting)."""
    return dt.timedelta(seconds=setting("RUN_STALE_AFTER_S"))


class RunConflict(Exception):
    """Another run considered some of the same interactions first (the unique constraint)."""


@transaction.atomic
def sampling_run_create(
    *, project: Project, strategy: SamplingStrategy, user: User | None = None
) -> SamplingRun:
    """A pending run with the strategy's snapshot and a fresh seed (executed by a task)."""
    return SamplingRun.objects.create(
        project=project,
        strategy=strategy,
        strategy_snapshot=strategy_snapshot(strategy),
        deterministic=strategy.mode == SamplingStrategy.Mode.DETERMINISTIC,
        seed=secrets.randbits(62),
        created_by=user if getattr(user, "pk", None) else None,
    )


def scheduled_runs_start() -> int:
    """Create a run for every active strategy whose crontab ``schedule`` is due, each executed
    (task ``sampling.execute_run``) once its transaction commits; returns how many were started.

    The last run of the strategy is the schedule's memory; the strategy row is locked while
    deciding, so two overlapping dispatchers start one run, not two. A strategy whose schedule
    does not parse is logged and skipped.
    """
    started = 0
    due_ids = (
        SamplingStrategy.objects.filter(active=True, schedule__isnull=False)
        .exclude(schedule="")
        .values_list("pk", flat=True)
    )
    for strategy_id in due_ids:
        with transaction.atomic():
            strategy = (
                SamplingStrategy.objects.select_for_update()
                .select_related("project")
                .filter(pk=strategy_id)
                .first()
            )
            if strategy is None or not strategy.schedule:
                continue
            last = (
                SamplingRun.objects.filter(strategy=strategy)
                .order_by("-created_at")
                .values_list("created_at", flat=True)
                .first()
            ) or strategy.created_at
            try:
                schedule = crontab_parse(strategy.schedule)
            except ValueError:
                logger.error(
                    "strategy %s has an invalid schedule %r", strategy.pk, strategy.schedule
                )
                continue
            if schedule.remaining_estimate(last).total_seconds() > 0:
                continue
            run = sampling_run_create(project=strategy.project, strategy=strategy)
            dispatch.enqueue_on_commit("sampling.execute_run", run.pk)
            started += 1
    return started


def runs_to_resume(*, older_than_s: int = PENDING_GRACE_S, limit: int = 100) -> list[int]:
    """Ids of runs whose message was lost (still pending ``older_than_s`` after creation: Redis
    down when the run was started) or whose worker died mid-run (running and stale, see
    :func:`run_stale_after`). Executing them again is harmless for a run that is still executing:
    its claim fails."""
    now = timezone.now()
    cutoff = now - dt.timedelta(seconds=older_than_s)
    return list(
        SamplingRun.objects.filter(
            Q(status=SamplingRun.Status.PENDING, created_at__lt=cutoff)
            | Q(status=SamplingRun.Status.RUNNING, started_at__lt=now - run_stale_after())
        ).values_list("pk", flat=True)[:limit]
    )


def sampling_run_claim(*, run_id: int, now: dt.datetime) -> bool:
    """Mark the run ``running`` (committed, so the API shows it) if it is pending, or running but
    stale (its worker died more than :func:`run_stale_after` ago). ``started_at = now`` is the
    claim's token: only the execution holding it may write the run's results."""
    return bool(
        SamplingRun.objects.filter(pk=run_id)
        .filter(
            Q(status=SamplingRun.Status.PENDING)
            | Q(status=SamplingRun.Status.RUNNING, started_at__lt=now - run_stale_after())
        )
        .update(status=SamplingRun.Status.RUNNING, started_at=now, error="")
    )


def sampling_run_execute(*, run_id: int) -> SamplingRun | None:
    """Claim a pending (or stale running) run and execute it; any other run is left as it is.

    Returns the run, or None if it does not exist. A failure other than a collision marks the run
    ``failed`` with the error (nothing of it is kept) and re-raises.
    """
    claimed_at = timezone.now()
    if not sampling_run_claim(run_id=run_id, now=claimed_at):
        return SamplingRun.objects.filter(pk=run_id).first()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return _execute(run_id=run_id, claimed_at=claimed_at, attempt=attempt)
        except IntegrityError as exc:
            logger.warning(
                "sampling run %s collided with another run (attempt %s)", run_id, attempt
            )
            last: Exception = exc
        except Exception as exc:
            SamplingRun.objects.filter(pk=run_id, started_at=claimed_at).update(
                status=SamplingRun.Status.FAILED, error=repr(exc)[:2000], finished_at=timezone.now()
            )
            raise
    SamplingRun.objects.filter(pk=run_id, started_at=claimed_at).update(
        status=SamplingRun.Status.FAILED,
        error=f"collided with concurrent runs {MAX_ATTEMPTS} times: {last!r}"[:2000],
        finished_at=timezone.now(),
    )
    return SamplingRun.objects.filter(pk=run_id).first()


def _execute(*, run_id: int, claimed_at: dt.datetime, attempt: int) -> SamplingRun | None:
    """The run's work, inside one transaction, holding the run row locked.

    A second execution of the same run (a stale re-claim racing a slow first one) waits on the row
    lock and then finds the token changed or the run done, and does nothing.
    """
    t0 = time.perf_counter()
    run = SamplingRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None or run.status != SamplingRun.Status.RUNNING or run.started_at != claimed_at:
        return run
    started = claimed_at
    project = run.project
    _lock_project(project.pk)
    snapshot = run.strategy_snapshot
    minimums = {k: int(v) for k, v in (snapshot.get("segment_minimums") or {}).items()}
    # Only coverage reads segments: skip the JSON extraction when it has nothing to do.
    weights = snapshot.get("weights") or {}
    segment_keys = sorted(minimums) if weights.get("coverage") and not run.deterministic else []
    model = proxy_current(project=project)
    filters = snapshot.get("filters") or {}
    mark = PoolWatermark.objects.filter(project_id=project.pk).first()
    settled = mark is not None and _settled(mark)  # checked before the pool is read
    t_lock = time.perf_counter()
    pool = pool_read(
        project=project,
        filters=filters,
        segment_keys=segment_keys,
        after_id=mark.floor if mark else 0,
        cell_keys=True,
    )
    seen_at = _db_now()
    t_read = time.perf_counter()
    rng = np.random.default_rng(run.seed)
    n = float(snapshot.get("batch_size") or 0)
    if run.deterministic:
        pi, draw = _deterministic(project=project, pool=pool, n=int(n), snapshot=snapshot, rng=rng)
    else:
        counts = coverage_counts(project=project, segment_minimums=minimums)
        # A useless proxy (say a judge that lost its weight and text that explains nothing):
        # sample towards random instead of spreading pi by noise.
        weights, fallback = design.weights_for_proxy(weights, model.metrics if model else None)
        if fallback:
            run.strategy_snapshot = {**snapshot, "effective_weights": weights, "fallback": fallback}
        plan = design.plan(
            pool,
            weights=weights,
            n=n,
            measure=snapshot.get("uncertainty_measure") or "sqrt",
            counts=counts,
        )
        pi = plan.pi
        draw = design.poisson_draw(
            pi,
            rng,
            holdout_fraction=float(snapshot.get("holdout_fraction") or 0.0),
            overlap_fraction=float(snapshot.get("overlap_fraction") or 0.0),
        )
    t_compute = time.perf_counter()
    _write_inclusions(run=run, pool=pool, pi=pi, draw=draw)
    if not filters_narrow(filters):  # this run considers every unconsidered interaction
        _watermark_advance(
            project_id=project.pk, mark=mark, settled=settled, pool=pool, seen_at=seen_at
        )
    t_write = time.perf_counter()
    if pool.size and pool.cells is not None:  # the estimates read these aggregates
        _write_cells(run=run, pool=pool, pi=pi)
        if pool.clusters is not None:
            topic_cells_write_arrays(run=run, ids=pool.ids, keys=pool.cells, clusters=pool.clusters)
        else:
            topic_cells_write(run_id=run.pk)
    elif pool.size:
        population_cells_write(run_id=run.pk)
        topic_cells_write(run_id=run.pk)
    t_cells = time.perf_counter()
    if draw.selected.any():  # the labelled side of the estimates reads these rows
        selected_items_write(run_id=run.pk)
    t_selected = time.perf_counter()
    selected_ids = pool.ids[draw.selected]
    overlap_k = int(snapshot.get("overlap_k") or 1)
    # Random priorities: annotators work through a run in random order, so a backlog left
    # unlabelled is a random subset (ignorable non-response), not the newest items.
    priorities = rng.random(len(selected_ids))
    queue_items_enqueue(
        project=project,
        interaction_ids=[int(i) for i in selected_ids],
        overlap_by_id={int(i): overlap_k for i in pool.ids[draw.overlap]},
        priority_by_id={int(i): float(p) for i, p in zip(selected_ids, priorities, strict=True)},
        holdout_ids=[int(i) for i in pool.ids[draw.holdout]],
        sampling_run_id=run.pk,
        strategy_id=run.strategy_id,
    )
    t_enqueue = time.perf_counter()
    webhook_emit(
        project,
        WebhookEvent.SAMPLING_RUN_DONE,
        {
            "run_id": run.pk,
            "strategy": snapshot.get("name") or "",
            "pool_size": int(pool.size),
            "selected_count": int(draw.selected.sum()),
            "holdout_count": int(draw.holdout.sum()),
        },
    )
    run.status = SamplingRun.Status.DONE
    run.started_at = started
    run.finished_at = timezone.now()
    run.proxy_model = model
    run.pool_size = pool.size
    run.expected_size = (
        float(np.nansum(pi)) if not run.deterministic else float(draw.selected.sum())
    )
    run.selected_count = int(draw.selected.sum())
    run.holdout_count = int(draw.holdout.sum())
    run.error = ""
    run.timings = {
        "lock_s": round(t_lock - t0, 4),
        "read_s": round(t_read - t_lock, 4),
        "compute_s": round(t_compute - t_read, 4),
        "write_s": round(t_write - t_compute, 4),
        "cells_s": round(t_cells - t_write, 4),
        "selected_s": round(t_selected - t_cells, 4),
        "enqueue_s": round(t_enqueue - t_selected, 4),
        "total_s": round(time.perf_counter() - t0, 4),
        "attempt": attempt,
        "unscored": pool.n_prior,
    }
    if pool.size:
        run.timings["min_pi"] = None if run.deterministic else float(np.min(pi))
    run.save()
    return run


def _lock_project(project_id: int) -> None:
    """Serialise runs of one project (PostgreSQL advisory lock, released at commit/rollback).

    On SQLite the IMMEDIATE transaction already serialises writers.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [_ADVISORY_NAMESPACE, project_id]
            )


def _db_now() -> dt.datetime:
    """The database's clock now (what ``pg_stat_activity.xact_start`` is compared with)."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def _settled(mark: PoolWatermark) -> bool:
    """Whether every interaction with an id up to ``mark.candidate`` is committed and visible.

    The candidate was the largest id a run read; an interaction with a smaller id that the read
    did not see took its id (the sequence gives ids in order) before that read, so its
    transaction was open at ``candidate_seen_at``. Settled when no transaction of this database
    that was open then is still open (a session of another role whose state this role may not
    see counts as open). On SQLite the run's IMMEDIATE transaction excludes every other writer,
    so whatever was committed is visible and nothing is half-written.
    """
    if mark.candidate <= mark.floor or mark.candidate_seen_at is None:
        return False
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT NOT EXISTS (
                SELECT 1 FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND (xact_start < %(seen)s
                       OR (state IS NULL AND backend_type = 'client backend'))
            ) AND NOT EXISTS (
                SELECT 1 FROM pg_prepared_xacts
                WHERE database = current_database() AND prepared < %(seen)s
            )
            """,
            {"seen": mark.candidate_seen_at},
        )
        return bool(cursor.fetchone()[0])


def _watermark_advance(
    *,
    project_id: int,
    mark: PoolWatermark | None,
    settled: bool,
    pool: design.Pool,
    seen_at: dt.datetime,
) -> None:
    """After a run that considered every unconsidered interaction above the floor (no filters).

    If the previous candidate was settled before this run read the pool, the read saw every
    interaction up to it, and this run considered all of them that no earlier run had: the
    candidate becomes the floor. The largest id this run read becomes the next candidate.
    """
    floor = mark.floor if mark else 0
    candidate = mark.candidate if mark else 0
    seen = mark.candidate_seen_at if mark else None
    if settled and mark is not None:
        floor = max(floor, mark.candidate)
    if pool.size and int(pool.ids[-1]) > candidate:
        candidate, seen = int(pool.ids[-1]), seen_at
    PoolWatermark.objects.update_or_create(
        project_id=project_id,
        defaults={"floor": floor, "candidate": candidate, "candidate_seen_at": seen},
    )


def _deterministic(
    *, project: Project, pool: design.Pool, n: int, snapshot: dict, rng: np.random.Generator
) -> tuple[np.ndarray, design.Draw]:
    """modAL ranked batch on the top-K uncertain candidates; no pi (training data only)."""
    from modAL.batch import uncertainty_batch_sampling
    from modAL.models import ActiveLearner

    size = pool.size
    pi = np.full(size, np.nan)
    selected = np.zeros(size, dtype=bool)
    if size and n > 0:
        measure = snapshot.get("uncertainty_measure") or "sqrt"
        k = min(size, max(design.DETERMINISTIC_CANDIDATES, 0))
        candidates = design.top_uncertain(pool.f, k, measure)
        if len(candidates) <= n:
            selected[candidates] = True
        else:
            cand_ids = [int(i) for i in pool.ids[candidates]]
            rows = {
                r[0]: r[1:]
                for r in Interaction.objects.filter(id__in=cand_ids).values_list(
                    "id", *FEATURE_FIELDS
                )
            }
            features = featurize([rows[i] for i in cand_ids], judge=project.primary_judge or None)
            # Column 0 carries the stored f, which _StoredProxy turns into probabilities; the
            # topic vectors give modAL the distances for its diversity term.
            X = sp.hstack(
                [sp.csr_matrix(pool.f[candidates][:, None]), features.topic], format="csr"
            )
            learner = ActiveLearner(
                estimator=_StoredProxy()
            )  # never .teach(): broken on sklearn 1.9
            picked = uncertainty_batch_sampling(learner, X, n_instances=n)
            picked = np.asarray(picked[0] if isinstance(picked, tuple) else picked)
            selected[candidates[picked]] = True
    overlap_fraction = float(snapshot.get("overlap_fraction") or 0.0)
    draw = design.Draw(
        selected=selected,
        holdout=np.zeros(size, dtype=bool),
        overlap=design._random_subset(selected, overlap_fraction, rng),
    )
    return pi, draw


class _StoredProxy:
    """A fitted-estimator stand-in for modAL: P(good) is column 0 of X (the stored f)."""

    def fit(self, X: Any, y: Any) -> _StoredProxy:
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        f = np.asarray(X[:, 0].todense() if sp.issparse(X) else X[:, 0], dtype=float).reshape(-1)
        return design.StoredScores().predict_proba(f)

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def _write_inclusions(
    *, run: SamplingRun, pool: design.Pool, pi: np.ndarray, draw: design.Draw
) -> None:
    """One Inclusion row per pool item: COPY on PostgreSQL, bulk_create elsewhere."""
    if pool.size == 0:
        return
    if connection.vendor == "postgresql":
        _copy_inclusions(run=run, pool=pool, pi=pi, draw=draw)
        return
    Inclusion.objects.bulk_create(
        [
            Inclusion(
                run_id=run.pk,
                project_id=run.project_id,
                interaction_id=int(i),
                f=float(f),
                pi=None if np.isnan(p) else float(p),
                selected=bool(s),
                holdout=bool(h),
            )
            for i, f, p, s, h in zip(pool.ids, pool.f, pi, draw.selected, draw.holdout, strict=True)
        ],
        batch_size=2000,
    )


def _write_cells(*, run: SamplingRun, pool: design.Pool, pi: np.ndarray) -> None:
    """The run's population cells from the arrays it read (PostgreSQL): the rows
    ``population_cells_write`` would aggregate from its Inclusion rows (count of items with pi,
    their f summed in id order, count without pi, per model version x segment x UTC day), without
    joining the inclusions back to the interactions. Each cell's model version, segment (the
    stored jsonb) and day are copied from one of its interactions.
    """
    keys = pool.cells
    assert keys is not None
    order = np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0]))  # stable: smallest id first
    ordered = keys[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    group = np.empty(len(order), dtype=np.int64)
    group[order] = np.cumsum(starts) - 1
    size = int(starts.sum())
    with_pi = ~np.isnan(pi)
    n = np.bincount(group, weights=with_pi, minlength=size)
    f_total = np.bincount(group, weights=np.where(with_pi, pool.f, 0.0), minlength=size)
    excluded = np.bincount(group, weights=~with_pi, minlength=size)
    # Explicit feedback as the run read it (scoring and rating changes wait for the run's lock).
    ratings = pool.ratings if pool.ratings is not None else np.zeros(pool.size, dtype=np.int8)
    rated = ratings != 0
    rated_n = np.bincount(group, weights=rated & with_pi, minlength=size)
    down = np.bincount(group, weights=(ratings < 0) & with_pi, minlength=size)
    rated_f = np.bincount(group, weights=np.where(rated & with_pi, pool.f, 0.0), minlength=size)
    rated_excluded = np.bincount(group, weights=rated & ~with_pi, minlength=size)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PopulationCell._meta.db_table} "
            "(run_id, project_id, model_version, segment, day, n, f_total, excluded, "
            "rated, down, rated_f, rated_excluded) "
            "SELECT %s, %s, i.model_version, i.segment, (i.occurred_at AT TIME ZONE 'UTC')::date, "
            "v.n, v.f_total, v.excluded, v.rated, v.down, v.rated_f, v.rated_excluded "
            "FROM unnest(%s::bigint[], %s::int[], %s::float8[], %s::int[], "
            "%s::int[], %s::int[], %s::float8[], %s::int[]) "
            "AS v(id, n, f_total, excluded, rated, down, rated_f, rated_excluded) "
            f"JOIN {Interaction._meta.db_table} i ON i.id = v.id",
            [
                run.pk,
                run.project_id,
                [int(i) for i in pool.ids[order[starts]]],
                [int(x) for x in n],
                [float(x) for x in f_total],
                [int(x) for x in excluded],
                [int(x) for x in rated_n],
                [int(x) for x in down],
                [float(x) for x in rated_f],
                [int(x) for x in rated_excluded],
            ],
        )


_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_PGCOPY_TRAILER = (-1).to_bytes(2, "big", signed=True)


def _copy_inclusions(
    *, run: SamplingRun, pool: design.Pool, pi: np.ndarray, draw: design.Draw
) -> None:
    """COPY the rows in PostgreSQL's binary format, built by numpy (no Python object per row).

    Every field has a fixed width; in deterministic mode the pi column is NULL for all rows
    (length -1 and no value bytes).
    """
    with_pi = not np.isnan(pi).all()
    fields = [
        ("n", ">i2"),
        ("l_run", ">i4"),
        ("run", ">i8"),
        ("l_project", ">i4"),
        ("project", ">i8"),
        ("l_interaction", ">i4"),
        ("interaction", ">i8"),
        ("l_f", ">i4"),
        ("f", ">f8"),
        ("l_pi", ">i4"),
    ]
    if with_pi:
        fields.append(("pi", ">f8"))
    fields += [("l_selected", ">i4"), ("selected", "u1"), ("l_holdout", ">i4"), ("holdout", "u1")]
    rows = np.empty(pool.size, dtype=np.dtype(fields))
    rows["n"] = 7
    rows["l_run"] = rows["l_project"] = rows["l_interaction"] = rows["l_f"] = 8
    rows["run"] = run.pk
    rows["project"] = run.project_id
    rows["interaction"] = pool.ids
    rows["f"] = pool.f
    if with_pi:
        rows["l_pi"] = 8
        rows["pi"] = pi
    else:
        rows["l_pi"] = -1
    rows["l_selected"] = rows["l_holdout"] = 1
    rows["selected"] = draw.selected
    rows["holdout"] = draw.holdout
    table = Inclusion._meta.db_table
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor
        with raw.copy(
            f"COPY {table} (run_id, project_id, interaction_id, f, pi, selected, holdout) "
            "FROM STDIN (FORMAT binary)"
        ) as copy:
            copy.write(_PGCOPY_HEADER)
            data = memoryview(rows.tobytes())
            step = 8 * 1024 * 1024
            for start in range(0, len(data), step):
                copy.write(data[start : start + step])
            copy.write(_PGCOPY_TRAILER)
