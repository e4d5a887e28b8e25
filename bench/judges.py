"""Judges benchmark: orchestration overhead against a stub that answers instantly, and exactly one
stored score per (interaction, judge version) after a real Celery worker is SIGKILLed mid-batch.

Both on a dedicated PostgreSQL database (``test_flywheel_judges_bench``; never a real one) with
the OpenAI-compatible stub of the test suite (``tests/judge_server.py``).

- ``throughput``: the stub in its own process (so its CPU is not this process's GIL), ``--rows``
  interactions queued for one judge with ``concurrency`` 32, then ``judge_run_batch`` until
  nothing is pending: the whole product path per interaction (claim with a lease, read, render
  the prompt, HTTP call through the retrying client, parse, store the result row, the score in
  ``Interaction.scores`` and the daily usage). Judged interactions per second, wall clock.
- ``kill``: Redis db ``--redis-db`` as broker and cache, a real ``celery worker -Q judges``
  (settings ``bench.judges_settings``: a 10 s lease), a stub answering after ``--delay`` s; the
  worker is SIGKILLed (its whole process group) while a batch is in flight, restarted, the beat's
  ``judges.sweep`` is sent, and the run must end with every interaction judged once: one result
  row per (interaction, version), all ``done``, one score each; calls in flight at the kill are
  made again (counted), never stored twice.

    .venv/bin/python bench/judges.py throughput [--rows 5000] [--concurrency 32] [--repeat 3]
    .venv/bin/python bench/judges.py kill [--rows 2000] [--delay 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent
PORT = 18401  # this helper's port range (PROTOCOL.md: 18400-18499)
DB = "flywheel_judges_bench"


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def seed(rows: int, *, slug: str) -> int:
    import datetime as dt

    from django.utils import timezone

    from labeling.models import Interaction, Project

    project = Project.objects.create(slug=slug, name=slug)
    now = timezone.now()
    Interaction.objects.bulk_create(
        [
            Interaction(
                project=project,
                external_id=f"{slug}-{i}",
                occurred_at=now - dt.timedelta(seconds=i),
                model_version="bench",
                messages=[
                    {"role": "user", "content": f"Question {i}: how do I reset my password?"}
                ],
                response=f"Answer {i}: open Settings, then Security. [[score={i % 10}]]",
                segment={"tier": "pro" if i % 3 else "free"},
            )
            for i in range(rows)
        ],
        batch_size=5000,
    )
    return project.pk


def _judge(project_id: int, base_url: str, **extra: object):  # type: ignore[no-untyped-def]
    from labeling.models import Interaction, Project
    from sampling.judges.config import judge_create
    from sampling.judges.execution import judge_schedule

    project = Project.objects.get(pk=project_id)
    judge = judge_create(
        project=project,
        data={"name": "bench", "base_url": base_url, "model": "stub", "score_min": 0.0, **extra},
    )
    ids = list(Interaction.objects.filter(project=project).values_list("id", flat=True))
    queued = judge_schedule(judge=judge, interaction_ids=ids)
    return judge, queued


def throughput(args: argparse.Namespace) -> None:
    import _bench_db

    _bench_db.setup(DB)
    from sampling.judges.execution import judge_run_batch
    from sampling.judges.models import JudgeResult

    stub = subprocess.Popen(
        [sys.executable, "-m", "tests.judge_server", str(args.port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = (stub.stdout.readline() if stub.stdout else "").strip()
        rates = []
        for rep in range(args.repeat):
            project_id = seed(args.rows, slug=f"tp-{rep}")
            judge, queued = _judge(
                project_id, url, concurrency=args.concurrency, batch_size=args.batch
            )
            t0 = time.perf_counter()
            batches = 0
            while True:
                outcome = judge_run_batch(judge_id=judge.pk)
                batches += 1
                if not outcome.more:
                    break
            seconds = time.perf_counter() - t0
            done = JudgeResult.objects.filter(judge=judge, status="done").count()
            rates.append(done / seconds)
            print(
                f"rep {rep}: {done}/{queued} judged in {seconds:.2f} s = {done / seconds:,.0f}/s "
                f"({batches} batches of {args.batch}, concurrency {args.concurrency}); "
                f"load {load()}",
                flush=True,
            )
        rates.sort()
        print(
            json.dumps(
                {
                    "figure": "judged interactions/s against the instant stub",
                    "rows": args.rows,
                    "concurrency": args.concurrency,
                    "median": round(rates[len(rates) // 2]),
                    "min": round(rates[0]),
                    "max": round(rates[-1]),
                    "load_after": load(),
                }
            )
        )
    finally:
        stub.terminate()
        stub.wait(timeout=10)


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(ROOT / ".venv/bin/celery"), "-A", "flywheel_site", "worker", "-Q", "judges",
         "-c", "1", "-l", "warning", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def kill(args: argparse.Namespace) -> None:
    redis = f"redis://127.0.0.1:6379/{args.redis_db}"
    subprocess.run(["redis-cli", "-n", str(args.redis_db), "flushdb"], check=True)
    os.environ["REDIS_URL"] = redis
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.judges_settings"
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    import _bench_db

    _bench_db.setup(DB)
    from django.conf import settings
    from django.db import connection
    from django.db.models import Count

    from flywheel_site.celery import app
    from labeling.models import Interaction
    from sampling.judges.models import JudgeResult
    from tests.judge_server import StubJudge

    stub = StubJudge(record=False, delay_s=args.delay).start(args.port)
    project_id = seed(args.rows, slug="kill")
    judge, queued = _judge(
        project_id, stub.url, concurrency=args.concurrency, batch_size=args.batch
    )
    db_name = settings.DATABASES["default"]["NAME"]
    base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    env = dict(os.environ, DATABASE_URL=f"{base}/{db_name}", REDIS_URL=redis,
               DJANGO_SETTINGS_MODULE="bench.judges_settings", LOG_LEVEL="WARNING")  # fmt: skip
    log = ROOT / "var" / "bench" / "judges-kill-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    connection.close()
    results = JudgeResult.objects.filter(judge=judge)
    t0 = time.perf_counter()
    worker = _worker(env, log)
    app.send_task("judges.run", args=[judge.pk], queue="judges")
    in_flight = results.filter(status="pending", claimed_at__isnull=False)

    def mid_batch() -> bool:  # a batch claimed, a quarter of its calls answered, none stored
        done = results.filter(status="done").count()
        return done >= args.kill_after and stub.served - done >= args.batch // 4

    while not mid_batch():
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited; see {log}")
        time.sleep(0.05)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    done_at_kill = results.filter(status="done").count()
    claimed = in_flight.count()
    served_at_kill = stub.served
    print(
        f"SIGKILL after {time.perf_counter() - t0:.1f} s: {done_at_kill} done, {claimed} "
        f"claimed in flight, {served_at_kill} calls served; load {load()}",
        flush=True,
    )
    time.sleep(1)
    worker = _worker(env, log)
    app.send_task("judges.sweep", queue="judges")  # what beat sends every minute
    deadline = time.monotonic() + args.timeout
    try:
        while results.filter(status="pending").exists():
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for the restarted worker")
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited; see {log}")
            time.sleep(0.5)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        stub.stop()
    by_status = dict(
        results.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    doubles = (
        results.values("interaction_id", "version_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    scored = Interaction.objects.filter(
        project_id=project_id, scores__has_key="judge:bench"
    ).count()
    outcome = {
        "figure": "one stored score per (interaction, judge version) after SIGKILL + restart",
        "rows": args.rows,
        "queued": queued,
        "done_at_kill": done_at_kill,
        "claimed_in_flight_at_kill": claimed,
        "result_rows": results.count(),
        "by_status": by_status,
        "pairs_with_more_than_one_row": doubles,
        "interactions_with_a_score": scored,
        "calls_served": stub.served,
        "calls_made_again": stub.served - queued,
        "seconds": round(time.perf_counter() - t0, 1),
        "load_after": load(),
    }
    print(json.dumps(outcome))
    ok = (
        by_status == {"done": args.rows}
        and doubles == 0
        and scored == args.rows
        and results.count() == args.rows
    )
    print("exactly one stored score per interaction: " + ("YES" if ok else "NO"))
    if not ok:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["throughput", "kill"])
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--delay", type=float, default=0.05, help="kill: stub seconds per call")
    parser.add_argument("--kill-after", type=int, default=300, help="kill: done rows before")
    parser.add_argument("--redis-db", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    if args.what == "throughput":
        args.rows = args.rows or 5000
        args.batch = args.batch or 500
        throughput(args)
    else:
        args.rows = args.rows or 2000
        args.batch = args.batch or 200
        args.concurrency = 8 if args.concurrency == 32 else args.concurrency
        kill(args)


if __name__ == "__main__":
    main()
