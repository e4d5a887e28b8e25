"""Benchmark: 1,000 webhook deliveries to a receiver that fails 30% of the time (PostgreSQL).

A real HTTP receiver on loopback (tests/webhook_receiver.py) answers 500 to a random 30% of the
requests and, with ``--timeout-share``, sleeps past the sender's timeout on a few more (it *did*
process those: the sender counts a failure and retries, which is the at-least-once duplicate the
receiver must deduplicate). Events are emitted one transaction each through ``webhook_emit``;
the first attempt runs after commit (tasks in-process); retries are then sent by
``webhook_attempt`` from ``--workers`` threads in rounds, with a virtual clock that jumps to the
next ``next_attempt_at`` + ``--window`` (no attempt is sent before it is due; the wall-clock wait
is skipped).

    .venv/bin/python bench/webhooks.py --events 1000 --fail 0.3
    .venv/bin/python bench/webhooks.py --events 1000 --fail 0.3 --timeout-share 0.02

Checks and prints: every delivery delivered exactly once as the sender sees it; the receiver saw
each delivery id once per recorded attempt; the ids it *processed* more than once are exactly the
deliveries with a recorded timed-out attempt (at-least-once retries, recorded as such).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--fail", type=float, default=0.3, help="share of requests answered 500")
    parser.add_argument("--timeout-share", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--window", type=float, default=5.0, help="virtual seconds swept per retry round"
    )
    parser.add_argument("--db", default="flywheel_bench_webhooks")
    args = parser.parse_args()

    from bench._bench_db import setup

    setup(args.db)
    from django.conf import settings
    from django.db import connection, transaction
    from django.db.models import Count, Max, Q

    from labeling.models import WebhookAttempt, WebhookDelivery
    from labeling.services.webhooks import (
        webhook_attempt,
        webhook_emit,
        webhook_subscription_create,
    )
    from tests.factories import ProjectFactory
    from tests.webhook_receiver import Receiver

    settings.FLYWHEEL = {
        **settings.FLYWHEEL,
        "WEBHOOK_TIMEOUT_S": 0.5,
        "WEBHOOK_MAX_ATTEMPTS": 20,  # at 30% failures, 20 attempts all failing: 0.3^20
        "WEBHOOK_DISABLE_AFTER_FAILURES": 0,  # this receiver is flaky, not dead
    }
    rng = random.Random(args.seed)
    lock = threading.Lock()

    def mode(number: int, headers: dict[str, str], body: bytes) -> str:
        with lock:
            draw = rng.random()
        if draw < args.fail:
            return "fail"
        if draw < args.fail + args.timeout_share:
            return "timeout"
        return "ok"

    receiver = Receiver(default=mode, hang_s=0.8).start()
    project = ProjectFactory(slug="bench-webhooks")
    webhook_subscription_create(project=project, url=receiver.url, events=["label.submitted"])

    t0 = time.perf_counter()
    for i in range(args.events):
        with transaction.atomic():  # the first attempt is sent after commit (in-process)
            webhook_emit(project, "label.submitted", {"n": i})
    t_first = time.perf_counter()

    def attempt(delivery_id: int, now: dt.datetime) -> None:
        try:
            webhook_attempt(delivery_id=delivery_id, now=now)
        finally:
            connection.close()

    rounds = 0
    pool = ThreadPoolExecutor(max_workers=args.workers)
    while True:
        pending = WebhookDelivery.objects.filter(status="pending")
        nxt = pending.order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
        if nxt is None:
            break
        rounds += 1
        # Jump the virtual clock to the next due time plus a window; send what is due by then.
        now = nxt + dt.timedelta(seconds=args.window)
        due = list(pending.filter(next_attempt_at__lte=now).values_list("id", flat=True))
        list(pool.map(attempt, due, [now] * len(due)))
    pool.shutdown()
    elapsed = time.perf_counter() - t0
    receiver.stop()

    deliveries = WebhookDelivery.objects.all()
    status = collections.Counter(deliveries.values_list("status", flat=True))
    attempts = WebhookAttempt.objects.count()
    ok_per = dict(
        WebhookAttempt.objects.values("delivery__uid")
        .annotate(ok=Count("id", filter=Q(ok=True)))
        .values_list("delivery__uid", "ok")
    )
    timeouts = set(
        WebhookAttempt.objects.filter(error__startswith="timeout").values_list(
            "delivery__uid", flat=True
        )
    )
    recorded = dict(deliveries.values_list("uid", "attempts"))
    seen = collections.Counter(r.headers["Flywheel-Delivery"] for r in receiver.requests)
    processed = collections.Counter(
        r.headers["Flywheel-Delivery"] for r in receiver.requests if r.mode in ("ok", "timeout")
    )
    duplicates = {uid for uid, n in processed.items() if n > 1}
    max_attempts = deliveries.aggregate(m=Max("attempts"))["m"]
    latencies = sorted(WebhookAttempt.objects.filter(ok=True).values_list("latency_ms", flat=True))

    checks = {
        "all delivered": status == {"delivered": args.events},
        "one ok attempt per delivery": set(ok_per.values()) == {1} and len(ok_per) == args.events,
        "receiver saw each id once per recorded attempt": seen == collections.Counter(recorded),
        "every id processed at least once": len(processed) == args.events,
        "duplicates only where a timed-out attempt is recorded": duplicates <= timeouts,
    }
    fail_share = sum(1 for r in receiver.requests if r.mode == "fail") / len(receiver.requests)
    print(
        f"events {args.events}, receiver failing {args.fail:.0%}, timeouts {args.timeout_share:.0%}"
    )
    print(
        f"deliveries: {dict(status)}; attempts recorded {attempts}; receiver requests "
        f"{len(receiver.requests)} (answered 500: {fail_share:.1%}); max attempts of one "
        f"delivery {max_attempts}; retry rounds {rounds}"
    )
    print(
        f"processed twice or more by the receiver: {len(duplicates)} ids, all with a recorded "
        f"timed-out attempt: {duplicates <= timeouts}"
    )
    print(
        f"wall time {elapsed:.1f} s (first attempts {t_first - t0:.1f} s), "
        f"{attempts / elapsed:.0f} attempts/s; latency of delivered attempts p50 "
        f"{statistics.median(latencies):.1f} ms, p95 {latencies[int(0.95 * len(latencies))]:.1f} ms"
    )
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAILED'}] {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
