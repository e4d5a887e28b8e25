"""SDK benchmark: interactions/s from one Python process through ``flywheel_sdk.Flywheel`` into a
real server, and how long the caller's ``log_interaction`` takes.

Starts gunicorn (production settings, PostgreSQL, Redis as the broker with no worker, as
bench/ingest.py does), then in this one process:

- **burst**: ``--rows`` calls as fast as the loop goes; throughput = rows / (first call to the
  end of ``flush()``), every row confirmed by the server (created + duplicates);
- **paced**: ``--rate`` calls/s for ``--seconds`` while the senders work beside the caller: the
  per-call latency distribution of ``log_interaction`` (what a request handler would feel).

    .venv/bin/python bench/sdk.py                  # 100,000 rows burst; 10,000/s for 10 s paced
    .venv/bin/python bench/sdk.py --rows 20000 --seconds 3

Prints a Markdown table; copy it into bench/RESULTS.md with the load average it prints.
PostgreSQL: ``BENCH_PG`` (database ``flywheel_sdk_bench``, dropped and recreated); Redis:
``BENCH_REDIS`` (default redis://127.0.0.1:6379/3, the queued messages are deleted afterwards).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sdk" / "python"))

from flywheel_sdk import Flywheel
from ingest import WORDS, Server, load_average, machine_note, purge_queue


def texts(n: int, seed: int = 3) -> list[tuple[str, str]]:
    rng = random.Random(seed)

    def sentence(chars: int) -> str:
        out: list[str] = []
        while sum(len(w) + 1 for w in out) < chars:
            out.append(rng.choice(WORDS))
        return " ".join(out)

    pool = [(sentence(280), sentence(420)) for _ in range(200)]
    return [pool[i % len(pool)] for i in range(n)]


def call(fw: Flywheel, i: int, prompt: str, answer: str, prefix: str) -> None:
    fw.log_interaction(
        external_id=f"{prefix}-{i}",
        messages=[
            {"role": "system", "content": "You are a helpful support assistant."},
            {"role": "user", "content": prompt},
        ],
        response=answer,
        model_version="bot-2026-11",
        segment={"tier": "pro" if i % 3 else "free", "locale": "en", "surface": "web"},
        metadata={"latency_ms": 800 + i % 900, "region": "eu-west-1"},
        scores={"judge": (i % 100) / 100},
    )


def percentiles(ns: list[int]) -> dict[str, float]:
    ordered = sorted(ns)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0

    return {"p50": at(0.5), "p99": at(0.99), "p99.9": at(0.999), "max": ordered[-1] / 1000.0}


def burst(fw: Flywheel, rows: int) -> dict[str, Any]:
    data = texts(rows)
    lat: list[int] = []
    clock = time.perf_counter_ns
    start = time.perf_counter()
    for i, (prompt, answer) in enumerate(data):
        t0 = clock()
        call(fw, i, prompt, answer, "burst")
        lat.append(clock() - t0)
    logged = time.perf_counter() - start
    assert fw.flush(timeout=600), fw.stats()
    elapsed = time.perf_counter() - start
    stats = fw.stats()
    return {
        "rows": rows,
        "seconds": elapsed,
        "rate": rows / elapsed,
        "caller_seconds": logged,
        "confirmed": stats.created + stats.duplicates,
        "dropped": stats.dropped,
        **percentiles(lat),
    }


def paced(fw: Flywheel, rate: int, seconds: float) -> dict[str, Any]:
    total = int(rate * seconds)
    data = texts(total, seed=5)
    lat: list[int] = []
    clock = time.perf_counter_ns
    start = time.perf_counter()
    for i, (prompt, answer) in enumerate(data):
        due = start + i / rate
        while time.perf_counter() < due:  # pacing the caller, as a service's requests arrive
            pass
        t0 = clock()
        call(fw, i, prompt, answer, "paced")
        lat.append(clock() - t0)
    assert fw.flush(timeout=600), fw.stats()
    return {"rows": total, "rate_target": rate, **percentiles(lat)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--senders", type=int, default=2, help="SDK sender threads")
    args = parser.parse_args()
    redis_url = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/3")
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server("sqlite", Path(tmp), args.workers, redis_url)
        # Migrate as in production (bench/ingest.py's model-only schema no longer resolves: the
        # judges app's migrations depend on labeling's).
        (Path(tmp) / "bench_ingest_settings.py").write_text(
            "from flywheel_site.settings import *  # noqa\n"
        )
        base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
        _recreate(base, "flywheel_sdk_bench")
        server.database_url = f"{base}/flywheel_sdk_bench"
        server.env["DATABASE_URL"] = server.database_url
        key = server.prepare()
        server.start()
        try:
            url = f"http://127.0.0.1:{server.port}"
            fw = Flywheel(
                url,
                key,
                max_queue=args.rows + 1,
                max_queue_bytes=1 << 30,
                senders=args.senders,
                flush_at_exit=False,
            )
            b = burst(fw, args.rows)
            p = paced(fw, args.rate, args.seconds)
            fw.close()
        finally:
            server.stop()
            purge_queue(redis_url)
    load_after = load_average()
    print(
        f"machine: {machine_note()}; load average (1 min) {load_before} before, {load_after} after"
    )
    print("| run | rows | throughput | log_interaction p50 / p99 / p99.9 / max |")
    print("|---|---|---|---|")
    print(
        f"| burst | {b['rows']:,} ({b['confirmed']:,} confirmed, {b['dropped']} dropped) | "
        f"**{b['rate']:,.0f} interactions/s** ({b['seconds']:.1f} s; caller done in "
        f"{b['caller_seconds']:.1f} s) | {b['p50']:.1f} / {b['p99']:.1f} / {b['p99.9']:.1f} / "
        f"{b['max']:.0f} µs |"
    )
    print(
        f"| paced {p['rate_target']:,}/s | {p['rows']:,} | (senders working beside the caller) | "
        f"{p['p50']:.1f} / **{p['p99']:.1f}** / {p['p99.9']:.1f} / {p['max']:.0f} µs |"
    )


def _recreate(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")


if __name__ == "__main__":
    main()
