"""Where a label's CPU goes: ``queue/next`` + ``submit`` in-process, and the tasks they enqueue.

    .venv/bin/python bench/label_profile.py [--labels 200] [--items 5000] [--top 25] [--no-profile]

Builds ``test_<BENCH_DB>`` (default ``test_flywheel_label_profile``) on PostgreSQL at ``BENCH_PG``
with a project, two annotators and a queue (bench/queue_latency.py's ``build``), then runs
``--labels`` rounds of ``POST queue/next`` -> ``POST submit`` through Django's full request stack
(middleware, DRF token authentication, the views) with the test client. The tasks a submit hands
to Celery are recorded instead of published (``labeling.dispatch.enqueue``) and run afterwards
in-process, one by one, as a worker would. Prints:

- SQL statements per request and per task (``CaptureQueriesContext``), with the statements of the
  last round;
- CPU per label split into next, submit, tasks (``time.process_time``);
- with profiling on, the top functions by cumulative time of each part (cProfile).

The database is dropped at the end. Never point it at a real database.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_DB", "flywheel_label_profile")
import queue_latency as ql


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--show-sql", action="store_true", help="print the last round's SQL")
    parser.add_argument("--callees", default="", help="also print what this function calls")
    args = parser.parse_args()

    ql.setup_django()
    from django.conf import settings
    from django.db import connection
    from django.test.client import Client
    from django.test.utils import CaptureQueriesContext

    from labeling import dispatch

    db_name = connection.settings_dict["NAME"]
    tokens = ql.build(args.items, 2)
    ql.bench_project_setup()
    from celery import Task

    # (due time, task name, args): what a broker would hold; a delayed (coalesced) task runs
    # once its countdown has passed, as a worker would run it.
    enqueued: list[tuple[float, str, tuple[Any, ...]]] = []

    def record(self: Task, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        due = time.monotonic() + float(options.get("countdown") or 0)
        enqueued.append((due, self.name, tuple(args or ())))

    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    Task.apply_async = record  # type: ignore[method-assign]
    client = Client(HTTP_AUTHORIZATION=f"Token {tokens[0]}", HTTP_HOST="127.0.0.1")
    profiles = {part: cProfile.Profile(time.process_time) for part in ("next", "submit", "tasks")}
    cpu: dict[str, float] = defaultdict(float)
    queries: dict[str, list[int]] = defaultdict(list)
    task_queries: dict[str, list[int]] = defaultdict(list)
    last_sql: dict[str, list[str]] = {}
    rounds = args.warmup + args.labels

    def measure(part: str, fn: Any, measured: bool) -> Any:
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.process_time()
            profiled = measured and not args.no_profile
            result = profiles[part].runcall(fn) if profiled else fn()
            spent = time.process_time() - t0
        if measured:
            cpu[part] += spent
            queries[part].append(len(ctx.captured_queries))
            last_sql[part] = [q["sql"] for q in ctx.captured_queries]
        return result, ctx

    for n in range(rounds):
        measured = n >= args.warmup
        response, _ = measure(
            "next",
            lambda: client.post("/api/projects/bench/queue/next", content_type="application/json"),
            measured,
        )
        assert response.status_code == 200, response.content
        assignment_id = response.json()["id"]
        response, _ = measure(
            "submit",
            lambda aid=assignment_id: client.post(
                f"/api/assignments/{aid}/submit",
                {"values": {"quality": 1 + aid % 5}, "time_spent_ms": 1000},
                content_type="application/json",
            ),
            measured,
        )
        assert response.status_code == 201, response.content
        now = time.monotonic()
        pending = [e for e in enqueued if e[0] <= now]
        enqueued[:] = [e for e in enqueued if e[0] > now]
        for _due, name, task_args in pending:
            task = dispatch.task_get(name)
            _, ctx = measure("tasks", lambda t=task, a=task_args: t.apply(args=list(a)), measured)
            if measured:
                task_queries[name].append(len(ctx.captured_queries))
                last_sql[f"task {name}"] = [q["sql"] for q in ctx.captured_queries]
        if measured:
            task_queries["(tasks per label)"].append(len(pending))

    labels = args.labels
    print(f"\n{labels} labels measured after {args.warmup} warm-up rounds ({db_name})")
    print("\nCPU per label (ms, in-process, test client):")
    for part in ("next", "submit", "tasks"):
        print(f"  {part:7s} {1000 * cpu[part] / labels:7.2f}")
    print(f"  {'total':7s} {1000 * sum(cpu.values()) / labels:7.2f}")
    print("\nSQL statements per call (median; min-max):")
    for part, counts in [*queries.items(), *task_queries.items()]:
        ordered = sorted(counts)
        print(f"  {part:32s} {ordered[len(ordered) // 2]:4d}  ({ordered[0]}-{ordered[-1]})")
    if args.show_sql:
        for part, sqls in last_sql.items():
            print(f"\n--- {part}: {len(sqls)} statements")
            for sql in sqls:
                print("   ", sql[:220])
    else:
        for part, sqls in last_sql.items():
            kinds = Counter(_shape(sql) for sql in sqls)
            print(f"\n--- {part}: " + "; ".join(f"{k} x{v}" for k, v in kinds.most_common()))
    if not args.no_profile:
        for part, profile in profiles.items():
            for order in ("cumulative", "tottime"):
                out = io.StringIO()
                stats = pstats.Stats(profile, stream=out).strip_dirs().sort_stats(order)
                stats.print_stats(args.top)
                print(f"\n===== cProfile: {part} ({order}) =====")
                print("\n".join(line for line in out.getvalue().splitlines()[6:] if line))
            if args.callees:
                out = io.StringIO()
                stats = pstats.Stats(profile, stream=out).strip_dirs().sort_stats("cumulative")
                stats.print_callees(args.callees)
                print(f"\n===== cProfile: {part}, callees of {args.callees} =====")
                print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    connection.close()
    from django.db import connections

    connections.close_all()
    connection.creation.destroy_test_db(db_name, verbosity=0)


def _shape(sql: str) -> str:
    """A short name for a statement: its verb and first table."""
    words = sql.replace('"', "").split()
    verb = words[0].upper() if words else "?"
    table = next(
        (w for w in words if w.startswith(("labeling_", "sampling_", "auth", "judges_"))), ""
    )
    return f"{verb} {table}".strip()


if __name__ == "__main__":
    main()
