"""Labelling capacity: labels/s flat out and next-item latency at a human pace, with CPU per label.

    .venv/bin/python bench/label_capacity.py [--items 100000] [--clients 16] [--seconds 30]
        [--human-seconds 90] [--think 2,6] [--workers 4] [--threads 4] [--write]

Builds ``test_<BENCH_DB>`` (default ``test_flywheel_label_capacity``; never a real database) on
PostgreSQL at ``BENCH_PG`` with a project, ``--clients`` annotators with API tokens and a queue of
``--items`` interactions (bench/queue_latency.py's ``build``: 10 % with overlap 3, random
priorities), a ready proxy model and no retraining due (``bench_project_setup``). Starts gunicorn
(production settings, DEBUG off) and one real Celery worker (``-c 1``) on Redis at
``BENCH_REDIS`` (default db 3), then runs two phases, each client looping ``queue/next`` ->
``submit`` (5 % skip) over a keep-alive connection:

1. **flat out**: no pause between calls for ``--seconds``: labels/s;
2. **human pace**: each annotator reads for ``--think`` seconds (uniform) before submitting, for
   ``--human-seconds``: next and submit p50/p95/p99.

After each phase it waits until the worker has drained the queue, then reports the CPU time the
server (gunicorn master and workers) and the worker (main process and child) spent in the phase,
per label stored. The client threads share the machine's cores; their CPU is not counted. The
1-minute load average before and after each phase is printed: other jobs on the machine inflate
latency and deflate labels/s, not CPU per label (much). Integrity (no item over its overlap, no
annotator twice on an item, counters in step) is checked at the end. ``--write`` replaces the
"## Labelling capacity" section of bench/RESULTS.md with a new row for the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_DB", "flywheel_label_capacity")
import queue_latency as ql

ROOT = ql.ROOT
TICKS = os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(root: int) -> float:
    """User + system CPU of ``root`` and its live descendants (each counted once: own time plus
    the time of children that already exited and were waited for)."""
    total = 0
    for pid in _tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / TICKS


def db_cpu_seconds(db_name: str) -> float:
    """CPU of the PostgreSQL backends connected to ``db_name`` (their process title names the
    database). Shared processes (WAL writer, checkpointer) are not counted."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            title = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            if not title.startswith("postgres: ") or f" {db_name} " not in title:
                continue
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def start_worker(db_name: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "flywheel_site.settings",
            "DATABASE_URL": f"{ql.PG}/{db_name}",
            "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            "DEBUG": "0",
            "REDIS_URL": ql.REDIS,
            "LOG_LEVEL": "WARNING",
        }
    )
    env.pop("CELERY_BROKER_URL", None)
    cmd = [
        str(ROOT / ".venv" / "bin" / "celery"),
        "-A",
        "flywheel_site",
        "worker",
        "-Q",
        "flywheel,judges",
        "-c",
        "1",
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    return subprocess.Popen(cmd, env=env, cwd=str(ROOT))


def wait_idle(*pids: int, timeout: float = 120.0) -> None:
    """Until the processes (and their children) use less than 2 % of a core over 2 s."""
    deadline = time.monotonic() + timeout
    last = sum(cpu_seconds(p) for p in pids)
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = sum(cpu_seconds(p) for p in pids)
        if now - last < 0.04:
            return
        last = now


def broker_backlog() -> int:
    """Messages waiting in the worker's queues plus those it holds unacknowledged."""
    import redis

    r = redis.Redis.from_url(ql.REDIS)
    return int(r.llen("flywheel")) + int(r.llen("judges")) + int(r.hlen("unacked"))


def wait_drained(timeout: float = 300.0) -> float:
    start = time.monotonic()
    while broker_backlog() and time.monotonic() - start < timeout:
        time.sleep(0.5)
    time.sleep(1.0)  # the last task's own bookkeeping
    return time.monotonic() - start


def connection_db() -> str:
    from django.db import connection

    return str(connection.settings_dict["NAME"])


def annotations() -> int:
    from labeling.models import Annotation

    return Annotation.objects.filter(assignment__isnull=False).count()


def phase(
    *,
    name: str,
    port: int,
    tokens: list[str],
    clients: int,
    seconds: float,
    warmup: int,
    think: tuple[float, float],
    server: subprocess.Popen,
    worker: subprocess.Popen,
) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    labels_before = annotations()
    db_name = connection_db()
    server_cpu, worker_cpu = cpu_seconds(server.pid), cpu_seconds(worker.pid)
    db_cpu = db_cpu_seconds(db_name)
    result = ql.run(port, tokens, clients, seconds, warmup=warmup, think=think)
    labels = annotations() - labels_before
    server_cpu = cpu_seconds(server.pid) - server_cpu
    drained_after = wait_drained()
    worker_cpu = cpu_seconds(worker.pid) - worker_cpu
    db_cpu = db_cpu_seconds(db_name) - db_cpu
    result.update(
        phase=name,
        labels=labels,
        labels_per_s=labels / result["seconds"],
        server_cpu_s=server_cpu,
        worker_cpu_s=worker_cpu,
        server_ms_per_label=1000 * server_cpu / max(labels, 1),
        worker_ms_per_label=1000 * worker_cpu / max(labels, 1),
        cpu_ms_per_label=1000 * (server_cpu + worker_cpu) / max(labels, 1),
        db_ms_per_label=1000 * db_cpu / max(labels, 1),
        drained_after_s=drained_after,
        load_before=load_before,
        load_after=os.getloadavg()[0],
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0, help="flat-out phase")
    parser.add_argument("--human-seconds", type=float, default=90.0, help="human-pace phase")
    parser.add_argument("--think", default="2,6", help="human pace: seconds per item LOW,HIGH")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8733)
    parser.add_argument("--label", default="", help="what was measured (the table's first column)")
    parser.add_argument("--write", action="store_true", help="add the row to bench/RESULTS.md")
    args = parser.parse_args()

    ql.setup_django()
    from django.db import connection

    db_name = connection.settings_dict["NAME"]
    t0 = time.perf_counter()
    tokens = ql.build(args.items, args.clients)
    ql.bench_project_setup()
    print(f"built {args.items} queued items in {time.perf_counter() - t0:.1f}s ({db_name})")
    ql.flush_redis()
    server = ql.start_gunicorn(args.port, args.workers, args.threads, db_name)
    worker = start_worker(db_name)
    # Start-up (Django set-up, task imports, the pool's fork) must not count as labelling CPU.
    wait_idle(server.pid, worker.pid)
    low, high = (float(x) for x in args.think.split(","))
    results = []
    try:
        results.append(
            phase(
                name="flat out",
                port=args.port,
                tokens=tokens,
                clients=args.clients,
                seconds=args.seconds,
                warmup=5,
                think=(0.0, 0.0),
                server=server,
                worker=worker,
            )
        )
        results.append(
            phase(
                name=f"human pace ({low:g}-{high:g} s)",
                port=args.port,
                tokens=tokens,
                clients=args.clients,
                seconds=args.human_seconds,
                warmup=1,
                think=(low, high),
                server=server,
                worker=worker,
            )
        )
    finally:
        for proc in (server, worker):
            proc.terminate()
        for proc in (server, worker):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        ql.flush_redis()
    checks = ql.integrity()
    for r in results:
        print(
            f"{r['phase']:22s} labels {r['labels']:5d} in {r['seconds']:5.1f} s = "
            f"{r['labels_per_s']:5.1f} labels/s | next p50/p95/p99 {r['next_p50']:.1f} / "
            f"{r['next_p95']:.1f} / {r['next_p99']:.1f} ms | submit p50/p95/p99 "
            f"{r['submit_p50']:.1f} / {r['submit_p95']:.1f} / {r['submit_p99']:.1f} ms | CPU per "
            f"label {r['cpu_ms_per_label']:.1f} ms (server {r['server_ms_per_label']:.1f}, worker "
            f"{r['worker_ms_per_label']:.1f}; PostgreSQL {r['db_ms_per_label']:.1f}; drained "
            f"{r['drained_after_s']:.0f} s after) | "
            f"load {r['load_before']:.1f} -> {r['load_after']:.1f} | errors {r['error_count']}"
        )
        if r["error_count"]:
            print("  errors:", r["errors"])
    print("integrity:", checks)
    if args.write:
        write(args, results, checks)
    connection.close()
    connection.creation.destroy_test_db(db_name, verbosity=0)


def row(args: argparse.Namespace, results: list[dict[str, Any]], checks: dict[str, int]) -> str:
    flat, human = results
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"| {args.label or commit} | {when} | {flat['labels_per_s']:.1f} | "
        f"{flat['cpu_ms_per_label']:.1f} ({flat['server_ms_per_label']:.1f} + "
        f"{flat['worker_ms_per_label']:.1f}) | {flat['db_ms_per_label']:.1f} | "
        f"{human['next_p50']:.1f} / {human['next_p95']:.1f} / "
        f"{human['next_p99']:.1f} ({human['next_n']}) | {human['submit_p50']:.1f} / "
        f"{human['submit_p95']:.1f} | {human['cpu_ms_per_label']:.1f} | "
        f"{flat['load_before']:.1f}-{flat['load_after']:.1f} / "
        f"{human['load_before']:.1f}-{human['load_after']:.1f} | "
        f"{checks['over_overlap']} / {checks['duplicate_pairs']} / {checks['counter_drift']} |"
    )


HEADER = (
    "| code | measured | flat out labels/s | CPU ms per label, flat out (server + worker) | "
    "human pace next p50 / p95 / p99 ms (calls) | human pace submit p50 / p95 ms | "
    "CPU ms per label, human pace | load (1 min) flat / human | over overlap / duplicate pairs / "
    "counter drift |\n|---|---|---|---|---|---|---|---|---|---|"
)


def write(args: argparse.Namespace, results: list[dict[str, Any]], checks: dict[str, int]) -> None:
    """Append a row to the table of the "## Labelling capacity" section (created if missing)."""
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text()
    marker = "\n## Labelling capacity\n"
    new_row = row(args, results, checks)
    if marker not in text:
        command = " ".join(
            [".venv/bin/python", "bench/label_capacity.py", *map(shlex.quote, sys.argv[1:])]
        )
        text = (
            text.rstrip("\n")
            + f"\n{marker}\nCommand: `{command}` on {platform.node()} ({os.cpu_count()} cores).\n\n"
            + HEADER
            + "\n"
            + new_row
            + "\n"
        )
    else:
        start = text.index(marker)
        table_end = text.index("|\n\n", text.index(HEADER.splitlines()[0], start)) + 2
        text = text[:table_end] + new_row + "\n" + text[table_end:]
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
