"""Judge execution: what to judge (scope), claiming pending work, one bounded-concurrency batch
against the endpoint, storing scores idempotently, the daily budget and its visible pause.

Invariants:
- one ``JudgeResult`` per (interaction, judge version) (unique constraint): scheduling twice, a
  retried task or a second worker never stores a second score;
- a result row leaves ``pending`` once, by a conditional update (``status = pending``), so a batch
  that lost its lease to another worker writes nothing;
- a worker killed mid-batch leaves its rows ``pending`` with a lease; after ``lease_s`` any worker
  takes them over (the sweep re-enqueues the judge).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from flywheel_site.app_settings import setting
from labeling.models import Interaction
from sampling.judges import prompt
from sampling.judges.client import (
    ChatClient,
    JudgeCallError,
    MinuteLimiter,
    Reply,
    RetryPolicy,
    breaker_for,
)
from sampling.judges.config import judge_pause, judge_resume, judge_version_current
from sampling.judges.models import Judge, JudgeResult, JudgeUsage, JudgeVersion
from sampling.judges.parsing import Parsed, parse_reply
from sampling.models import Inclusion

logger = logging.getLogger(__name__)

TRANSIENT = frozenset({"rate_limited", "server", "timeout", "connection", "circuit_open"})
# A row whose calls failed transiently this many times in total is marked failed (visible, and
# ``judge_retry_failed`` puts it back).
MAX_ROW_ROUNDS = 3
RAW_REPLY_CHARS = 1000
INTERACTION_FIELDS = ("id", "messages", "response", "alt_response", "model_version", "segment")


def _opts() -> dict[str, Any]:
    """Overrides from ``settings.FLYWHEEL["JUDGES"]`` (benchmarks and tests use them); everything
    else comes from the declared ``JUDGE_*`` settings (``FLYWHEEL_JUDGE_*`` in the environment,
    docs/settings.md)."""
    return dict(getattr(settings, "FLYWHEEL", {}).get("JUDGES", {}))


def lease_seconds() -> float:
    return float(_opts().get("LEASE_S", setting("JUDGE_LEASE_S")))


def retry_policy() -> RetryPolicy:
    o = _opts()
    return RetryPolicy(
        base_s=float(o.get("BACKOFF_BASE_S", setting("JUDGE_BACKOFF_BASE_S"))),
        cap_s=float(o.get("BACKOFF_CAP_S", setting("JUDGE_BACKOFF_CAP_S"))),
        max_wait_s=float(o.get("MAX_RETRY_AFTER_S", setting("JUDGE_MAX_RETRY_AFTER_S"))),
    )


def breaker_settings() -> tuple[int, float]:
    o = _opts()
    return (
        int(o.get("BREAKER_THRESHOLD", setting("JUDGE_BREAKER_THRESHOLD"))),
        float(o.get("BREAKER_COOLDOWN_S", setting("JUDGE_BREAKER_COOLDOWN_S"))),
    )


# --- scope -----------------------------------------------------------------------------------


def in_fraction(judge_id: int, interaction_id: int, fraction: float) -> bool:
    """A stable coin: the same interaction is in or out of a judge's random fraction every time."""
    if fraction >= 1:
        return True
    digest = hashlib.blake2b(f"{judge_id}:{interaction_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def judge_schedule(*, judge: Judge, interaction_ids: Iterable[int]) -> int:
    """Queue the interactions the judge's scope takes for its current version; returns how many
    new rows were queued (already queued or judged ones are left alone)."""
    ids = [int(i) for i in interaction_ids]
    if judge.scope == Judge.Scope.FRACTION:
        ids = [i for i in ids if in_fraction(judge.pk, i, judge.fraction)]
    if not ids:
        return 0
    version = judge_version_current(judge=judge)
    ids = list(
        Interaction.objects.filter(project_id=judge.project_id, id__in=ids).values_list(
            "id", flat=True
        )
    )
    before = JudgeResult.objects.filter(version=version, interaction_id__in=ids).count()
    JudgeResult.objects.bulk_create(
        [JudgeResult(judge=judge, version=version, interaction_id=i) for i in ids],
        ignore_conflicts=True,
        batch_size=2000,
    )
    return len(ids) - before


def judges_for_arrivals(*, project_id: int) -> list[Judge]:
    return list(
        Judge.objects.filter(
            project_id=project_id,
            status=Judge.Status.ACTIVE,
            scope__in=[Judge.Scope.ALL, Judge.Scope.FRACTION],
        )
    )


def pool_unjudged_ids(*, judge: Judge, limit: int) -> list[int]:
    """Interactions no sampling run has considered yet and the current version has not queued."""
    version = judge_version_current(judge=judge)
    considered = Inclusion.objects.filter(project_id=judge.project_id).values("interaction_id")
    queued = JudgeResult.objects.filter(version=version).values("interaction_id")
    return list(
        Interaction.objects.filter(project_id=judge.project_id)
        .exclude(id__in=considered)
        .exclude(id__in=queued)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def arrivals_unjudged_ids(*, judge: Judge, limit: int, scan: int = 50_000) -> list[int]:
    """Arrivals since the current version that its scope takes and nothing queued (a hand-over
    lost while the broker was down). Scans at most ``scan`` of the newest interactions."""
    version = judge_version_current(judge=judge)
    queued = JudgeResult.objects.filter(version=version).values("interaction_id")
    ids = (
        Interaction.objects.filter(project_id=judge.project_id, created_at__gte=version.created_at)
        .exclude(id__in=queued)
        .order_by("-id")
        .values_list("id", flat=True)[:scan]
    )
    taken = (
        [i for i in ids if in_fraction(judge.pk, i, judge.fraction)]
        if (judge.scope == Judge.Scope.FRACTION)
        else list(ids)
    )
    return sorted(taken[:limit])


# --- budget ----------------------------------------------------------------------------------


def usage_today(*, judge: Judge) -> tuple[int, int]:
    row = (
        JudgeUsage.objects.filter(judge=judge, day=timezone.now().date())
        .values_list("requests", "tokens")
        .first()
    )
    return (int(row[0]), int(row[1])) if row else (0, 0)


def budget_left(*, judge: Judge) -> tuple[int | None, int | None]:
    """(requests, tokens) left today; None where the judge has no such budget."""
    requests, tokens = usage_today(judge=judge)
    return (
        max(0, judge.daily_request_budget - requests) if judge.daily_request_budget else None,
        max(0, judge.daily_token_budget - tokens) if judge.daily_token_budget else None,
    )


def _budget_reason(judge: Judge) -> str | None:
    requests, tokens = budget_left(judge=judge)
    day = timezone.now().date().isoformat()
    if requests == 0:
        return (
            f"daily request budget of {judge.daily_request_budget:,} reached on {day} (UTC); "
            "resumes tomorrow or when the budget is raised"
        )
    if tokens == 0:
        return (
            f"daily token budget of {judge.daily_token_budget:,} reached on {day} (UTC); "
            "resumes tomorrow or when the budget is raised"
        )
    return None


def _usage_add(*, judge: Judge, requests: int, tokens: int) -> None:
    if not requests and not tokens:
        return
    day = timezone.now().date()
    JudgeUsage.objects.get_or_create(judge=judge, day=day)
    JudgeUsage.objects.filter(judge=judge, day=day).update(
        requests=F("requests") + requests, tokens=F("tokens") + tokens
    )


def budget_pauses_lift() -> int:
    """Resume judges paused by a budget that has room again (a new day, a raised budget)."""
    lifted = 0
    for judge in Judge.objects.filter(status=Judge.Status.PAUSED, pause_kind="budget"):
        if _budget_reason(judge) is None:
            judge_resume(judge=judge)
            lifted += 1
    return lifted


# --- one batch -------------------------------------------------------------------------------


def api_key(judge: Judge) -> str:
    """The key from the worker's environment (never stored). Raises KeyError naming the variable."""
    if not judge.api_key_env:
        return ""
    value = os.environ.get(judge.api_key_env)
    if not value:
        raise KeyError(judge.api_key_env)
    return value


def judge_messages(*, judge: Judge, interaction: dict[str, Any]) -> list[dict[str, str]]:
    project = judge.project
    context = prompt.context_for(
        interaction=interaction,
        schema=project.label_schema,
        guidelines=project.guidelines,
        score_min=judge.score_min,
        score_max=judge.score_max,
    )
    return [
        {
            "role": "user",
            "content": prompt.render(judge.prompt_template, judge.template_syntax, context),
        }
    ]


def normalised(judge: Judge, score: float) -> float:
    """The judge's score on [0, 1]: what ``Interaction.scores['judge:<name>']`` holds."""
    span = judge.score_max - judge.score_min
    return min(1.0, max(0.0, (score - judge.score_min) / span))


def _claim(*, judge: Judge, version: JudgeVersion, limit: int) -> list[int]:
    now = timezone.now()
    stale = now - dt.timedelta(seconds=lease_seconds())
    with transaction.atomic():
        ids = list(
            JudgeResult.objects.select_for_update(skip_locked=True)
            .filter(judge=judge, version=version, status=JudgeResult.Status.PENDING)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale))
            .order_by("id")
            .values_list("id", flat=True)[:limit]
        )
        JudgeResult.objects.filter(id__in=ids).update(claimed_at=now)
    return ids


@dataclass
class Outcome:
    claimed: int = 0
    done: int = 0
    unparseable: int = 0
    failed: int = 0
    released: int = 0
    lost: int = 0  # rows another worker finished first (their lease had expired)
    paused: str = ""
    retry_in: float = 0.0
    more: bool = False
    judged_ids: list[int] = field(default_factory=list)

    @property
    def progress(self) -> int:
        return self.done + self.unparseable + self.failed


@dataclass
class _Call:
    result_id: int
    interaction_id: int
    reply: Reply | None = None
    parsed: Parsed | None = None
    error: JudgeCallError | None = None
    skipped: bool = False


def _lock_key(judge_id: int) -> str:
    return f"judges:batch-lock:{judge_id}"


def judge_run_batch(*, judge_id: int) -> Outcome:
    """Claim and judge one batch of the judge's pending work; see the module invariants.

    Only one batch per judge runs at a time (a cache lock with the lease as timeout), so the
    judge's ``concurrency`` bounds its requests in flight across every worker.
    """
    judge = Judge.objects.select_related("project").filter(pk=judge_id).first()
    if judge is None or judge.status != Judge.Status.ACTIVE:
        return Outcome()
    lock = _lock_key(judge.pk)
    if not cache.add(lock, 1, timeout=int(lease_seconds())):
        return Outcome(more=True, retry_in=5.0)
    try:
        return _run_batch(judge)
    finally:
        cache.delete(lock)


def _run_batch(judge: Judge) -> Outcome:
    reason = _budget_reason(judge)
    if reason:
        judge_pause(judge=judge, reason=reason, kind="budget")
        return Outcome(paused=reason)
    try:
        key = api_key(judge)
    except KeyError as missing:
        reason = f"environment variable {missing.args[0]} (api_key_env) is not set on the worker"
        judge_pause(judge=judge, reason=reason, kind="config")
        return Outcome(paused=reason)
    version = judge_version_current(judge=judge)
    requests_left, tokens_left = budget_left(judge=judge)
    limit = judge.batch_size if requests_left is None else min(judge.batch_size, requests_left)
    ids = _claim(judge=judge, version=version, limit=limit)
    outcome = Outcome(claimed=len(ids))
    if not ids:
        return outcome
    rows = dict(JudgeResult.objects.filter(id__in=ids).values_list("id", "interaction_id"))
    interactions = {
        row["id"]: row
        for row in Interaction.objects.filter(id__in=list(rows.values())).values(
            *INTERACTION_FIELDS
        )
    }
    calls = [_Call(result_id=r, interaction_id=i) for r, i in sorted(rows.items())]
    threshold, cooldown = breaker_settings()
    breaker = breaker_for(
        judge.base_url.rstrip("/") + "/chat/completions", threshold=threshold, cooldown_s=cooldown
    )
    stop = threading.Event()
    stop_reason: list[str] = []
    tokens_used = [0]
    tokens_lock = threading.Lock()

    def one(call: _Call) -> None:
        if stop.is_set():
            call.skipped = True
            return
        interaction = interactions.get(call.interaction_id)
        if interaction is None:
            call.skipped = True
            return
        try:
            reply = client.complete(
                judge_messages(judge=judge, interaction=interaction),
                temperature=judge.temperature,
                max_tokens=judge.max_tokens,
                logprobs=judge.request_logprobs,
            )
        except JudgeCallError as exc:
            call.error = exc
            if exc.kind in ("auth", "circuit_open"):
                stop.set()
                if exc.kind == "auth":
                    stop_reason.append(str(exc))
            return
        call.reply = reply
        call.parsed = parse_reply(
            reply.text, reply.logprobs, score_min=judge.score_min, score_max=judge.score_max
        )
        with tokens_lock:
            tokens_used[0] += reply.prompt_tokens + reply.completion_tokens
            if tokens_left is not None and tokens_used[0] >= tokens_left:
                stop.set()

    limiter = MinuteLimiter(str(judge.pk), rpm=judge.rpm_limit, tpm=judge.tpm_limit)
    with (
        ChatClient(
            base_url=judge.base_url,
            model=judge.model,
            api_key=key,
            timeout_s=judge.timeout_s,
            max_retries=judge.max_retries,
            concurrency=judge.concurrency,
            policy=retry_policy(),
            breaker=breaker,
            limiter=limiter,
        ) as client,
        ThreadPoolExecutor(max_workers=min(judge.concurrency, len(calls))) as pool,
    ):
        list(pool.map(one, calls))
    _store(judge=judge, calls=calls, outcome=outcome)
    if stop_reason:
        outcome.paused = stop_reason[0]
        judge_pause(judge=judge, reason=stop_reason[0], kind="auth")
    else:
        reason = _budget_reason(judge)
        if reason:
            outcome.paused = reason
            judge_pause(judge=judge, reason=reason, kind="budget")
    if breaker.is_open:
        outcome.retry_in = max(1.0, breaker.remaining_s())
    outcome.more = JudgeResult.objects.filter(
        judge=judge, version=version, status=JudgeResult.Status.PENDING
    ).exists()
    return outcome


# The columns a finished result sets (with their PostgreSQL types for the VALUES list).
_RESULT_COLUMNS = (
    ("status", "varchar"),
    ("score", "double precision"),
    ("method", "varchar"),
    ("reason", "text"),
    ("raw_reply", "text"),
    ("error", "text"),
    ("attempts", "integer"),
    ("latency_ms", "integer"),
    ("prompt_tokens", "integer"),
    ("completion_tokens", "integer"),
)
WRITE_CHUNK = 200


def _results_write(rows: list[JudgeResult], now: dt.datetime) -> None:
    """Finish many result rows, ``WRITE_CHUNK`` per ``UPDATE ... FROM (VALUES ...)`` statement
    (PostgreSQL, SQLite >= 3.33): ``bulk_update``'s CASE expressions cost seconds per batch."""
    if not rows:
        return
    table = connection.ops.quote_name(JudgeResult._meta.db_table)
    stamp = JudgeResult._meta.get_field("finished_at").get_db_prep_save(now, connection)
    names = [name for name, _ in _RESULT_COLUMNS]
    one = "(" + ", ".join(["%s"] * (len(names) + 1)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), WRITE_CHUNK):
            chunk = rows[start : start + WRITE_CHUNK]
            params: list[Any] = [stamp]
            for row in chunk:
                params += [row.pk, *(getattr(row, name) for name in names)]
            values = ", ".join([one] * len(chunk))
            if connection.vendor == "postgresql":
                sets = ", ".join(f"{n} = v.{n}::{t}" for n, t in _RESULT_COLUMNS)
                sql = (
                    f"UPDATE {table} AS t SET {sets}, finished_at = %s, claimed_at = NULL "
                    f"FROM (VALUES {values}) AS v(id, {', '.join(names)}) WHERE t.id = v.id"
                )
            else:
                sets = ", ".join(f"{n} = v.column{i + 2}" for i, n in enumerate(names))
                sql = (
                    f"UPDATE {table} SET {sets}, finished_at = %s, claimed_at = NULL "
                    f"FROM (VALUES {values}) AS v WHERE {table}.id = v.column1"
                )
            cursor.execute(sql, params)


def _scores_write(key: str, scores: dict[int, float]) -> None:
    """Set ``Interaction.scores[key]`` of many interactions in the database (a merge, so another
    key written at the same time is kept)."""
    table = connection.ops.quote_name(Interaction._meta.db_table)
    items = sorted(scores.items())
    with connection.cursor() as cursor:
        for start in range(0, len(items), WRITE_CHUNK):
            chunk = items[start : start + WRITE_CHUNK]
            params: list[Any] = [key]
            for pk, value in chunk:
                params += [pk, float(value)]
            values = ", ".join(["(%s, %s)"] * len(chunk))
            if connection.vendor == "postgresql":
                sql = (
                    f"UPDATE {table} AS t SET scores = COALESCE(t.scores, '{{}}'::jsonb) || "
                    "jsonb_build_object(%s::text, v.score::double precision) "
                    f"FROM (VALUES {values}) AS v(id, score) WHERE t.id = v.id"
                )
            else:
                params[0] = '$."' + key + '"'
                sql = (
                    f"UPDATE {table} SET scores = json_set(COALESCE({table}.scores, '{{}}'), "
                    f"%s, v.column2) FROM (VALUES {values}) AS v WHERE {table}.id = v.column1"
                )
            cursor.execute(sql, params)


@transaction.atomic
def _store(*, judge: Judge, calls: list[_Call], outcome: Outcome) -> None:
    """Write the batch: each row leaves pending once; scores go to ``Interaction.scores``."""
    now = timezone.now()
    still_pending = set(
        JudgeResult.objects.select_for_update()
        .filter(id__in=[c.result_id for c in calls], status=JudgeResult.Status.PENDING)
        .values_list("id", flat=True)
    )
    previous = dict(JudgeResult.objects.filter(id__in=still_pending).values_list("id", "attempts"))
    updates: list[JudgeResult] = []
    release: list[int] = []
    scores: dict[int, float] = {}
    requests = tokens = 0
    for call in calls:
        if call.result_id not in still_pending:
            outcome.lost += 1
            continue
        if call.skipped:
            release.append(call.result_id)
            continue
        row = JudgeResult(id=call.result_id, finished_at=now, claimed_at=None)
        if call.reply is not None:
            reply = call.reply
            requests += 1
            tokens += reply.prompt_tokens + reply.completion_tokens
            row.attempts = previous[call.result_id] + reply.attempts
            row.latency_ms = reply.latency_ms
            row.prompt_tokens, row.completion_tokens = reply.prompt_tokens, reply.completion_tokens
            if call.parsed is not None:
                row.status, row.score = JudgeResult.Status.DONE, call.parsed.score
                row.method, row.reason = call.parsed.method, call.parsed.reason
                row.raw_reply, row.error = "", ""
                scores[call.interaction_id] = normalised(judge, call.parsed.score)
                outcome.done += 1
            else:
                row.status, row.score, row.method, row.reason = "unparseable", None, "", ""
                row.raw_reply, row.error = reply.text[:RAW_REPLY_CHARS], "no score on the scale"
                outcome.unparseable += 1
        else:
            error = call.error
            assert error is not None
            row.attempts = previous[call.result_id] + error.attempts
            rounds_exhausted = row.attempts >= MAX_ROW_ROUNDS * (judge.max_retries + 1)
            if error.kind in TRANSIENT and not rounds_exhausted:
                # Back to the queue (no lease): the next batch tries again.
                JudgeResult.objects.filter(id=call.result_id).update(
                    claimed_at=None, attempts=row.attempts, error=str(error)[:500]
                )
                outcome.released += 1
                continue
            row.status, row.score, row.method, row.reason, row.raw_reply = (
                "failed",
                None,
                "",
                "",
                "",
            )
            row.error = f"{error.kind}: {error}"[:500]
            row.latency_ms = row.prompt_tokens = row.completion_tokens = None
            outcome.failed += 1
        updates.append(row)
    if release:
        JudgeResult.objects.filter(id__in=release).update(claimed_at=None)
        outcome.released += len(release)
    _results_write(updates, now)
    if scores:
        _scores_write(judge.score_key, scores)
        outcome.judged_ids = sorted(scores)
    _usage_add(judge=judge, requests=requests, tokens=tokens)


def judge_retry_failed(*, judge: Judge) -> int:
    """Put failed and unparseable results of the current version back in the queue."""
    version = judge_version_current(judge=judge)
    return JudgeResult.objects.filter(
        version=version, status__in=[JudgeResult.Status.FAILED, JudgeResult.Status.UNPARSEABLE]
    ).update(status=JudgeResult.Status.PENDING, claimed_at=None, attempts=0, error="")


def judge_test_connection(*, judge: Judge) -> dict[str, Any]:
    """One real call with a tiny sample: the reply's parsed score, or a clear error for the page.

    Never raises for an endpoint problem; the error names what failed (and never the key).
    """
    sample = {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "response": "The capital of France is Paris.",
        "model_version": "test",
        "segment": {},
    }
    try:
        key = api_key(judge)
    except KeyError as missing:
        return {"ok": False, "error": f"environment variable {missing.args[0]} is not set"}
    started = time.perf_counter()
    try:
        with ChatClient(
            base_url=judge.base_url,
            model=judge.model,
            api_key=key,
            timeout_s=min(judge.timeout_s, 15.0),
            max_retries=0,
            concurrency=1,
            breaker=breaker_for(f"test:{judge.base_url}", threshold=10**6),
        ) as client:
            reply = client.complete(
                judge_messages(judge=judge, interaction=sample),
                temperature=judge.temperature,
                max_tokens=judge.max_tokens,
                logprobs=judge.request_logprobs,
            )
    except JudgeCallError as exc:
        return {"ok": False, "error": f"{exc.kind}: {exc}"}
    parsed = parse_reply(
        reply.text, reply.logprobs, score_min=judge.score_min, score_max=judge.score_max
    )
    return {
        "ok": parsed is not None,
        "latency_ms": int((time.perf_counter() - started) * 1000),
        "score": parsed.score if parsed else None,
        "method": parsed.method if parsed else "",
        "reason": parsed.reason if parsed else "",
        "error": "" if parsed else "the reply has no score on the judge's scale",
        "reply": reply.text[:RAW_REPLY_CHARS],
    }
