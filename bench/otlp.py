"""OTLP benchmark: GenAI spans/s through ``POST /v1/traces`` into PostgreSQL.

Spans are made by the official ``opentelemetry-sdk`` (current GenAI conventions: JSON input and
output messages, usage, model, a segment attribute, ~1 KB of text each) and encoded by its OTLP
protobuf encoder, ``--per-request`` spans per request (the BatchSpanProcessor's default export
size is 512), gzip-compressed as the exporter sends them. gunicorn serves the production settings
on PostgreSQL with Redis as the broker (no worker), as bench/ingest.py does; ``--concurrency``
client threads POST the requests. Throughput = spans / (first request to last answer); every span
must come back as created.

    .venv/bin/python bench/otlp.py                        # 50,000 spans, 512 per request, 2 threads
    .venv/bin/python bench/otlp.py --spans 10000 --protocol json

Prints a Markdown row for bench/RESULTS.md with the load average.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest import WORDS, Server, load_average, machine_note, purge_queue
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from tests.otlp_spans import json_body, protobuf_body, provider


def make_requests(total: int, per_request: int, protocol: str) -> list[bytes]:
    memory = InMemorySpanExporter()
    tracer_provider = provider(memory)
    tracer = tracer_provider.get_tracer("bench.otlp")
    text = " ".join(WORDS)
    bodies = []
    for start in range(0, total, per_request):
        memory.clear()
        for i in range(start, min(total, start + per_request)):
            with tracer.start_as_current_span("chat gpt-4.1") as span:
                span.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4.1",
                        "gen_ai.response.model": "gpt-4.1-2025-04-14",
                        "gen_ai.usage.input_tokens": 120,
                        "gen_ai.usage.output_tokens": 80,
                        "app.tier": "pro" if i % 3 else "free",
                        "gen_ai.input.messages": json.dumps(
                            [{"role": "user", "parts": [{"type": "text", "content": text[:300]}]}]
                        ),
                        "gen_ai.output.messages": json.dumps(
                            [
                                {
                                    "role": "assistant",
                                    "parts": [{"type": "text", "content": f"{i} {text[:420]}"}],
                                }
                            ]
                        ),
                    }
                )
        spans = memory.get_finished_spans()
        raw = protobuf_body(spans) if protocol == "protobuf" else json_body(spans)
        bodies.append(gzip.compress(raw, compresslevel=1))
    tracer_provider.shutdown()
    return bodies


def send(port: int, key: str, bodies: list[bytes], concurrency: int, protocol: str) -> dict:
    content_type = "application/x-protobuf" if protocol == "protobuf" else "application/json"
    todo = list(enumerate(bodies))
    lock = threading.Lock()
    totals = {"created": 0, "duplicates": 0, "rejected": 0, "ignored": 0, "errors": 0}

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                if not todo:
                    break
                _, body = todo.pop()
            conn.request(
                "POST",
                "/v1/traces",
                body=body,
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": content_type,
                    "Content-Encoding": "gzip",
                },
            )
            answer = conn.getresponse()
            answer.read()
            counts = dict(
                part.split("=") for part in (answer.getheader("X-Flywheel-Spans") or "").split()
            )
            with lock:
                if answer.status != 200:
                    totals["errors"] += 1
                for name in ("created", "duplicates", "rejected", "ignored"):
                    totals[name] += int(counts.get(name, 0))
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--per-request", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--protocol", choices=["protobuf", "json"], default="protobuf")
    args = parser.parse_args()
    redis_url = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/3")
    bodies = make_requests(args.spans, args.per_request, args.protocol)
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server("sqlite", Path(tmp), args.workers, redis_url)
        (Path(tmp) / "bench_ingest_settings.py").write_text(
            "from flywheel_site.settings import *  # noqa\n"
        )
        base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
        import psycopg

        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS flywheel_otlp_bench")
            conn.execute("CREATE DATABASE flywheel_otlp_bench")
        server.database_url = server.env["DATABASE_URL"] = f"{base}/flywheel_otlp_bench"
        key = server.prepare()
        server.start()
        try:
            started = time.perf_counter()
            totals = send(server.port, key, bodies, args.concurrency, args.protocol)
            elapsed = time.perf_counter() - started
        finally:
            server.stop()
            purge_queue(redis_url)
    print(
        f"machine: {machine_note()}; load average (1 min) {load_before} before, "
        f"{load_average()} after"
    )
    print("| protocol | spans | per request | client threads | throughput | created / errors |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.protocol} + gzip | {args.spans:,} | {args.per_request} | {args.concurrency} | "
        f"**{args.spans / elapsed:,.0f} spans/s** ({elapsed:.1f} s) | "
        f"{totals['created']:,} / {totals['errors']} |"
    )


if __name__ == "__main__":
    main()
