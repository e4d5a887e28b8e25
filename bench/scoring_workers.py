"""Re-scoring throughput with 1 and 2 Celery workers: does scoring scale with workers?

    .venv/bin/python bench/scoring_workers.py [--rows 200000] [--labels 2000] [--workers 1,2]
                                              [--repeat 2]

On a dedicated PostgreSQL database (``test_flywheel_bench_scoring_workers``, created fresh): seeds
``--rows`` HH-RLHF interactions (bench/scoring.py's seed), labels ``--labels`` of them and trains a
proxy. Then, for each worker count, ``--repeat`` times: clears every ``proxy_version``, starts that
many real Celery worker processes (``celery worker -P solo``, one task at a time each, production
settings, Redis as the broker), sends ``sampling.rescore_pool`` — which fans the pool out into
``sampling.rescore_chunk`` tasks of ``SCORE_CHUNK_SIZE`` ids — and times until every interaction
carries the model's version (polled every 0.25 s). Reports interactions/s, the speed-up over one
worker, and the workers' CPU seconds (from /proc) per 1,000 interactions.

Redis: ``BENCH_REDIS`` (default redis://127.0.0.1:6379/11; flushed before each run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import _bench_db  # noqa: E402

DB = "flywheel_bench_scoring_workers"
CELERY = str(ROOT / ".venv" / "bin" / "celery")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (clock ticks → seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    procs = [
        subprocess.Popen(
            [
                CELERY,
                "-A",
                "flywheel_site",
                "worker",
                "-P",
                "solo",
                "-Q",
                "flywheel",
                "-n",
                f"bench{i}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "WARNING",
            ],
            env=env,
            cwd=ROOT,
        )
        for i in range(count)
    ]
    return procs


def wait_ready(app, count: int) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= count:
            return
    raise RuntimeError(f"{count} workers did not answer a ping")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--labels", type=int, default=2_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    redis_url = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/11")
    _bench_db.setup(DB)

    import redis
    import scoring as scoring_bench
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection

    from flywheel_site.celery import app
    from labeling.models import Interaction, Project
    from labeling.schema import DEFAULT_SCHEMA
    from sampling.services.proxy import proxy_train
    from sampling.services.scoring import chunk_size

    project = Project.objects.create(slug="hh", name="HH", label_schema=DEFAULT_SCHEMA)
    user = get_user_model().objects.create(username="bench")
    t0 = time.perf_counter()
    rows = scoring_bench.seed(project, args.rows)
    scoring_bench.label(project, user, rows[: args.labels])
    model = proxy_train(project=project)
    assert model is not None
    print(
        f"seeded {len(rows):,}, labelled {args.labels:,}, "
        f"trained in {time.perf_counter() - t0:.0f}s"
    )
    connection.close()  # the workers need the database; this process only polls

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flywheel_site.settings",
        "DATABASE_URL": os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/test_{DB}",
        "REDIS_URL": redis_url,
        "DEBUG": "0",
        "SECRET_KEY": "bench-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "MODEL_ROOT": str(settings.MODEL_ROOT),
        "LOG_LEVEL": "WARNING",
    }
    app.conf.broker_url = redis_url
    app.conf.result_backend = None
    app.conf.task_always_eager = False
    broker = redis.Redis.from_url(redis_url)
    pending = Interaction.objects.filter(project=project).exclude(proxy_version=model.version)
    results: dict[int, list[dict[str, float]]] = {}
    load_before = os.getloadavg()
    for count in [int(w) for w in args.workers.split(",")]:
        for _ in range(args.repeat):
            broker.flushdb()
            Interaction.objects.filter(project=project).update(proxy_version=None)
            procs = start_workers(count, env)
            try:
                wait_ready(app, count)
                cpu0 = [cpu_seconds(p.pid) for p in procs]
                started = time.perf_counter()
                app.send_task("sampling.rescore_pool", args=[project.pk, model.version, 0])
                while pending.exists():
                    time.sleep(0.25)  # polling for completion, not pacing the work
                elapsed = time.perf_counter() - started
                cpu = sum(cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True))
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(timeout=60)
            run = {"seconds": elapsed, "rate": len(rows) / elapsed, "cpu": cpu}
            results.setdefault(count, []).append(run)
            print(
                f"{count} worker(s): {len(rows):,} re-scored in {elapsed:.1f}s = "
                f"{run['rate']:,.0f}/s, workers' CPU {cpu:.1f}s",
                flush=True,
            )
    load_after = os.getloadavg()
    base = statistics.median(r["rate"] for r in results[min(results)])
    print(
        f"\n{len(rows):,} interactions, chunks of {chunk_size():,}; "
        f"{os.cpu_count()} cores; load average {load_before[0]:.1f}/{load_before[1]:.1f} before, "
        f"{load_after[0]:.1f}/{load_after[1]:.1f} after"
    )
    print("| workers | interactions/s median | runs | speed-up | worker CPU s per 1,000 |")
    print("|---:|---:|---|---:|---:|")
    for count, runs in results.items():
        median = statistics.median(r["rate"] for r in runs)
        rates = ", ".join(f"{r['rate']:,.0f}" for r in runs)
        cpu_k = statistics.median(r["cpu"] for r in runs) / len(rows) * 1000
        print(f"| {count} | {median:,.0f} | {rates} | {median / base:.2f}x | {cpu_k:.2f} |")
    connection.creation.destroy_test_db(DB, verbosity=0)


if __name__ == "__main__":
    main()
