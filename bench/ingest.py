"""Bulk ingestion benchmark: ~1 KB interactions over real HTTP into PostgreSQL and SQLite.

For each database the script creates a fresh database and schema, a project and an ingestion
token, starts **gunicorn** (sync workers) on the production settings (DEBUG off, Redis as the
broker, no Celery worker running, so the follow-up work is queued, as in production), and POSTs the
rows as JSONL to ``/api/projects/{slug}/interactions/bulk`` from ``--concurrency`` client threads.
It reports interactions/s (wall clock, first request to last answer), the server's peak RSS
(VmHWM of the largest gunicorn worker, and of all processes together), then times the follow-up
processing (``unprocessed_sweep``, what the Celery task does) in a separate process.

    .venv/bin/python bench/ingest.py                       # 100,000 rows, PostgreSQL and SQLite
    .venv/bin/python bench/ingest.py --rows 20000 --db sqlite --no-write

Writes the "## Ingestion" section of bench/RESULTS.md (other sections are left alone).
PostgreSQL: ``BENCH_PG`` (default postgres://postgres@127.0.0.1:5432), database
``flywheel_ingest_bench`` (dropped and recreated). Redis: ``BENCH_REDIS`` (default
redis://127.0.0.1:6379/1; the queued messages are deleted afterwards).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import queue
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
SLUG = "bench"
_WORD_TEXT = (
    "order refund account password reset billing invoice shipping delivery tracking cancel "
    "subscription upgrade plan support agent please thanks help issue error login email phone "
    "address payment card charge week month today tomorrow could would should the a an to of "
    "and in for on with is are was were be have has it this that you your we our they"
)
WORDS = _WORD_TEXT.split()


def sentence(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out).capitalize() + "."


def make_rows(n: int, seed: int = 7) -> list[bytes]:
    """``n`` JSONL lines of about 1 KB each (deterministic)."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    lines = []
    for i in range(n):
        row = {
            "external_id": f"bench-{i:07d}",
            "conversation_id": f"conv-{i // 3:07d}",
            "occurred_at": (start + dt.timedelta(seconds=i * 7)).isoformat(),
            "model_version": rng.choice(["bot-2026-10", "bot-2026-11"]),
            "messages": [
                {"role": "system", "content": "You are a helpful support assistant."},
                {"role": "user", "content": sentence(rng, 280)},
            ],
            "response": sentence(rng, 420),
            "segment": {
                "tier": rng.choice(["free", "pro", "enterprise"]),
                "locale": rng.choice(["en", "de", "fr"]),
                "surface": rng.choice(["web", "mobile", "api"]),
            },
            "metadata": {"latency_ms": rng.randint(200, 3000), "region": "eu-west-1"},
            "scores": {"judge": round(rng.random(), 4), "reward": round(rng.gauss(0, 1), 4)},
        }
        lines.append(orjson.dumps(row) + b"\n")
    return lines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def machine_note() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; the machine was shared with "
        "other running jobs while measuring"
    )


class Server:
    """A database with the schema, a project and token, and gunicorn serving it."""

    def __init__(self, db: str, workdir: Path, workers: int, redis_url: str) -> None:
        self.db = db
        self.workdir = workdir
        self.workers = workers
        self.port = free_port()
        settings = workdir / "bench_ingest_settings.py"
        # The tables are created from the models (no migration files needed).
        settings.write_text(
            "from flywheel_site.settings import *  # noqa\n"
            "MIGRATION_MODULES = {'labeling': None, 'sampling': None, 'judges': None}\n"
        )
        if db == "postgres":
            base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
            self.database_url = f"{base}/flywheel_ingest_bench"
            self._recreate_pg(base)
        else:
            self.database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        self.env = {
            **os.environ,
            "PYTHONPATH": f"{workdir}:{ROOT}:{ROOT / 'bench'}",
            "DJANGO_SETTINGS_MODULE": "bench_ingest_settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": redis_url,
            "FLYWHEEL_LOCAL_CACHE": "1",
            "DEBUG": "0",
            "SECRET_KEY": "bench-" + "x" * 40,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "INGEST_RATE_LIMIT": "1000000/min",
            "LOG_LEVEL": "WARNING",
            "FLYWHEEL_VAR_DIR": str(workdir / "var"),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _recreate_pg(base: str) -> None:
        import psycopg

        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS flywheel_ingest_bench")
            conn.execute("CREATE DATABASE flywheel_ingest_bench")

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [PY, str(ROOT / "manage.py"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def prepare(self) -> str:
        # Migrated apps first (auth), then the tables of apps without migration files.
        self.manage("migrate", "-v0")
        self.manage("migrate", "--run-syncdb", "-v0")
        code = (
            "from labeling.services.projects import project_create, ingest_token_create\n"
            f"p = project_create(slug={SLUG!r}, name='Bench', created_by=None,"
            " segment_keys=['tier', 'locale', 'surface'])\n"
            "t, key = ingest_token_create(project=p, name='bench', created_by=None)\n"
            "print('KEY=' + key)\n"
        )
        out = self.manage("shell", "-c", code)
        match = re.search(r"KEY=(\S+)", out)
        if not match:
            raise RuntimeError(f"no key in {out!r}")
        return match.group(1)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                GUNICORN,
                "flywheel_site.wsgi",
                "--workers",
                str(self.workers),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "600",
                "--log-level",
                "warning",
            ],
            env=self.env,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/api/projects/")
                conn.getresponse().read()
                conn.close()
                if len(children(self.proc.pid)) >= self.workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)  # waiting for a server to boot, not for a result
        raise RuntimeError("gunicorn did not start")

    def peak_rss(self) -> tuple[float, float]:
        """(largest worker's peak RSS, master + workers' peaks summed), in MB."""
        assert self.proc is not None
        workers = [vm_hwm_mb(pid) for pid in children(self.proc.pid)]
        return max(workers or [0.0]), sum(workers) + vm_hwm_mb(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None


def send_all(port: int, key: str, bodies: list[bytes], concurrency: int) -> dict[str, int]:
    work: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        work.put(body)
    totals = {"created": 0, "duplicates": 0, "rejected": 0}
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            conn.request(
                "POST",
                f"/api/projects/{SLUG}/interactions/bulk",
                body=body,
                headers={
                    "Content-Type": "application/x-ndjson",
                    "Authorization": f"Ingest {key}",
                    "Content-Length": str(len(body)),
                },
            )
            response = conn.getresponse()
            data = response.read()
            if response.status not in (200, 201):
                failures.append(f"{response.status}: {data[:300]!r}")
                continue
            result = json.loads(data)
            with lock:
                for k in totals:
                    totals[k] += result[k]
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, first: {failures[0]}")
    return totals


def purge_queue(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete("flywheel", "celery")


def run_one(db: str, lines: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    bodies = [
        b"".join(lines[i : i + args.per_request]) for i in range(0, len(lines), args.per_request)
    ]
    workdir = Path(tempfile.mkdtemp(prefix=f"flywheel-bench-ingest-{db}-"))
    server = Server(db, workdir, args.workers, args.redis)
    try:
        key = server.prepare()
        purge_queue(args.redis)
        server.start()
        started = time.perf_counter()
        totals = send_all(server.port, key, bodies, args.concurrency)
        elapsed = time.perf_counter() - started
        worker_peak, total_peak = server.peak_rss()
        server.stop()
        if totals["created"] != len(lines):
            raise RuntimeError(f"created {totals['created']} of {len(lines)}")
        # The follow-up work the Celery task does (attach events, aggregates, processed_at),
        # timed in one process: what one worker sustains.
        code = (
            "import time\n"
            "from labeling.services.processing import unprocessed_sweep\n"
            "from labeling.models import Interaction\n"
            "t = time.perf_counter(); n = unprocessed_sweep(); t = time.perf_counter() - t\n"
            "print(f'SWEEP={n} {t:.3f} {Interaction.objects.count()}')\n"
        )
        out = server.manage("shell", "-c", code)
        match = re.search(r"SWEEP=(\d+) ([\d.]+) (\d+)", out)
        assert match, out
        processed, sweep_s, stored = int(match.group(1)), float(match.group(2)), int(match.group(3))
        if stored != len(lines):
            raise RuntimeError(f"{stored} rows stored, expected {len(lines)}")
        copy_rate = 0.0
        if db == "postgres":
            # The reference of the same run: these rows COPYed straight into the same table of the
            # same database (fresh project; every index and the foreign key, no conflict check).
            rows_file = workdir / "rows.jsonl"
            rows_file.write_bytes(b"".join(lines))
            code = (
                "from pathlib import Path\n"
                "from _copy_reference import reference_rate\n"
                f"lines = Path({str(rows_file)!r}).read_bytes().splitlines()\n"
                "print(f'COPY={reference_rate(lines, \"copy-reference\"):.1f}')\n"
            )
            copy_match = re.search(r"COPY=([\d.]+)", server.manage("shell", "-c", code))
            assert copy_match
            copy_rate = float(copy_match.group(1))
        return {
            "db": db,
            "rows": len(lines),
            "mb": sum(len(b) for b in bodies) / 1e6,
            "requests": len(bodies),
            "elapsed_s": elapsed,
            "rate": len(lines) / elapsed,
            "worker_peak_mb": worker_peak,
            "total_peak_mb": total_peak,
            "processed": processed,
            "process_rate": processed / sweep_s if sweep_s else 0.0,
            "copy_rate": copy_rate,
        }
    finally:
        server.stop()
        purge_queue(args.redis)
        shutil.rmtree(workdir, ignore_errors=True)


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def write_results(results: list[dict[str, Any]], command: str, loads: tuple[str, str]) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    lines = [
        "## Ingestion",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_note()} (1-minute load average {loads[0]} before, {loads[1]} after, "
        f"on {os.cpu_count()} cores). Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "Real HTTP: gunicorn (sync workers) on the production settings (DEBUG off), Redis as the "
        "broker with no worker running (follow-up tasks are queued), JSONL bodies of "
        "`per_request` rows, each row about 1 KB. Rate = rows / wall clock from the first request "
        "to the last answer. Peak RSS = VmHWM of the largest gunicorn worker (all processes "
        "summed in brackets). Follow-up = `unprocessed_sweep` (the task's work: attach events, "
        "recompute aggregates, set processed_at) in one process afterwards.",
        "",
        "Each database is measured `--repeat` times from scratch (fresh database and server); "
        "the machine's load from other jobs makes single runs vary a lot, so the table gives the "
        "median and the best run, and every run.",
        "",
        "| database | rows per run | body MB | requests | interactions/s median | best | all runs "
        "| worker peak RSS MB | follow-up rows/s | raw COPY rows/s (same runs) | median x COPY |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['db']} | {r['rows']:,} | {r['mb']:.1f} | {r['requests']} | "
            f"**{r['median_rate']:,.0f}** | {r['rate']:,.0f} | "
            f"{', '.join(f'{x:,.0f}' for x in r['all_rates'])} | {r['worker_peak_mb']:.0f} "
            f"({r['total_peak_mb']:.0f}) | {r['process_rate']:,.0f} | {copy_cells(r)} |"
        )
    lines += [
        "",
        "Targets: >= 15,000 interactions/s into PostgreSQL, and >= 0.6 x raw `COPY`. The "
        "reference is measured in each PostgreSQL run, after the server stopped: the same rows, "
        "validated beforehand, `COPY`ed in one transaction straight into `labeling_interaction` "
        "of the same database for a fresh project (its foreign key and every index; no conflict "
        "check, no `RETURNING`); the ratio is the median HTTP rate over the median COPY rate. "
        "Label Studio 1.23 imports about 3,200 tasks/s.",
        "",
    ]
    section = "\n".join(lines)
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    pattern = re.compile(r"^## Ingestion\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def copy_cells(r: dict[str, Any]) -> str:
    """The reference columns: COPY rates of the runs and the medians' ratio (PostgreSQL only)."""
    copies = [c for c in r.get("all_copy_rates", []) if c]
    if not copies:
        return "- | -"
    median = sorted(copies)[len(copies) // 2]
    return f"{', '.join(f'{c:,.0f}' for c in copies)} | **{r['median_rate'] / median:.2f}**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--per-request", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--db", nargs="+", default=["postgres", "sqlite"])
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/1")
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per database (fresh each)")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args()
    lines = make_rows(args.rows)
    avg = sum(len(line) for line in lines) / len(lines)
    print(f"{len(lines):,} rows, {avg:.0f} bytes per row on average")
    results = []
    load_before = load_average()
    for db in args.db:
        runs = [run_one(db, lines, args) for _ in range(args.repeat)]
        rates = sorted(r["rate"] for r in runs)
        result = dict(max(runs, key=lambda r: r["rate"]))
        result["median_rate"] = rates[len(rates) // 2]
        result["all_rates"] = [r["rate"] for r in runs]
        result["all_copy_rates"] = [r["copy_rate"] for r in runs]
        result["worker_peak_mb"] = max(r["worker_peak_mb"] for r in runs)
        result["total_peak_mb"] = max(r["total_peak_mb"] for r in runs)
        print(
            f"{db}: {result['rows']:,} rows; interactions/s per run "
            f"{', '.join(f'{r:,.0f}' for r in result['all_rates'])}; worker peak RSS "
            f"{result['worker_peak_mb']:.0f} MB (all {result['total_peak_mb']:.0f} MB); "
            f"follow-up {result['process_rate']:,.0f} rows/s; "
            f"raw COPY and ratio {copy_cells(result)}"
        )
        results.append(result)
    if not args.no_write:
        command = " ".join([".venv/bin/python bench/ingest.py", *sys.argv[1:]])
        write_results(results, command, (load_before, load_average()))


if __name__ == "__main__":
    main()
