"""Bounded load test on loopback: ingestion at a target rate plus 16 annotators labelling at once.

Builds a fresh PostgreSQL database (``test_flywheel_load_bench``) with a project, 16 annotators
and a queue (bench/queue_latency.py's ``build``), starts gunicorn on the production settings, then
for ``--seconds`` runs at the same time:

- one ingestion client POSTing JSONL batches of ``--batch`` rows to the bulk endpoint, paced to
  ``--rate`` rows/s (each external_id sent once);
- 16 annotator threads looping ``queue/next`` -> ``submit`` (5 % skip), 1-3 s think time unless
  ``--no-think``.

Reports errors (target 0), latency percentiles per call, and checks the database afterwards:
interactions stored == rows sent (each once), annotations == submits answered 201, no assignment
leased twice. Not run in CI (it takes minutes); run by hand:

    .venv/bin/python bench/load.py --seconds 60
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import queue_latency as ql

ql.DB = "flywheel_load_bench"
ql.REDIS = ql.os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/4")


class Ingester(threading.Thread):
    def __init__(self, port: int, key: str, rate: float, batch: int, stop_at: float) -> None:
        super().__init__(daemon=True)
        self.port, self.key, self.rate, self.batch, self.stop_at = port, key, rate, batch, stop_at
        self.latency_ms: list[float] = []
        self.errors: list[str] = []
        self.sent = 0
        self.created = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        start = time.monotonic()
        n = 0
        while time.monotonic() < self.stop_at:
            due = start + (n * self.batch) / self.rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing to the target rate (not an assertion)
            body = b"".join(
                json.dumps(
                    {
                        "external_id": f"load-{n}-{i}",
                        "occurred_at": "2026-11-20T10:00:00Z",
                        "model_version": "m1",
                        "messages": [{"role": "user", "content": f"Load question {n}-{i}"}],
                        "response": "An answer of ordinary length. " * 20,
                        "segment": {"tier": "free"},
                    }
                ).encode()
                + b"\n"
                for i in range(self.batch)
            )
            t0 = time.perf_counter()
            try:
                conn.request(
                    "POST",
                    "/api/projects/bench/interactions/bulk",
                    body=body,
                    headers={
                        "Authorization": f"Ingest {self.key}",
                        "Content-Type": "application/x-ndjson",
                        "Host": "127.0.0.1",
                    },
                )
                response = conn.getresponse()
                data = response.read()
            except (http.client.HTTPException, ConnectionError) as exc:
                self.errors.append(f"ingest {exc!r}")
                conn.close()
                n += 1
                continue
            self.latency_ms.append((time.perf_counter() - t0) * 1000)
            self.sent += self.batch
            if response.status != 201:
                self.errors.append(f"ingest {response.status} {data[:200]!r}")
            else:
                self.created += json.loads(data)["created"]
            n += 1
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=200.0, help="ingested rows per second")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--annotators", type=int, default=16)
    parser.add_argument("--items", type=int, default=20_000, help="queued items at the start")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--no-think", action="store_true")
    parser.add_argument("--port", type=int, default=8771)
    args = parser.parse_args()

    ql.setup_django()
    tokens = ql.build(args.items, args.annotators)
    from labeling.auth import generate_key, hash_key
    from labeling.models import Annotation, IngestToken, Interaction, Project

    project = Project.objects.get(slug="bench")
    key = generate_key()
    IngestToken.objects.create(
        project=project, name="load", prefix=key[:12], key_hash=hash_key(key)
    )
    from django.conf import settings

    db_name = settings.DATABASES["default"]["NAME"]
    before = Interaction.objects.count()
    server = ql.start_gunicorn(args.port, args.workers, args.threads, db_name)
    try:
        stop_at = time.monotonic() + args.seconds
        ingester = Ingester(args.port, key, args.rate, args.batch, stop_at)
        ingester.start()
        think = (0.0, 0.0) if args.no_think else (1.0, 3.0)
        labelled = ql.run(args.port, tokens, args.annotators, args.seconds, 0, think)
        ingester.join(args.seconds + 120)
    finally:
        server.terminate()
        server.wait(30)
        ql.flush_redis()
    stored = Interaction.objects.count() - before
    annotations = Annotation.objects.filter(assignment__isnull=False).count()
    integrity = ql.integrity()
    result: dict[str, Any] = {
        "seconds": args.seconds,
        "target_rate": args.rate,
        "rows_sent": ingester.sent,
        "rows_created": ingester.created,
        "rows_stored": stored,
        "ingest_rate": round(ingester.sent / args.seconds, 1),
        "ingest_p50_ms": round(ql.percentile(ingester.latency_ms, 0.5), 1),
        "ingest_p95_ms": round(ql.percentile(ingester.latency_ms, 0.95), 1),
        "ingest_p99_ms": round(ql.percentile(ingester.latency_ms, 0.99), 1),
        "ingest_errors": ingester.errors[:5],
        "label": labelled,
        "annotations_stored": annotations,
        "integrity": integrity,
        "machine": f"{platform.machine()}, {ql.os.cpu_count()} cores, shared with other sessions",
    }
    print(json.dumps(result, indent=2, default=str))
    ok = (
        not ingester.errors
        and labelled["error_count"] == 0
        and stored == ingester.sent == ingester.created
        and annotations == labelled["submit_n"]
        and not any(v for k, v in integrity.items() if k != "annotations")
    )
    print("LOAD HELD" if ok else "LOAD FAILED")


if __name__ == "__main__":
    main()
