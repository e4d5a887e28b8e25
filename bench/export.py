"""Benchmark: export throughput (rows/s) and peak memory at 100k and 1M labelled rows, PostgreSQL.

Seeds a dedicated database (default ``flywheel_bench_export``) with one project per size, each
with N interactions (~1 KB), N queue items and N annotations, using INSERT ... SELECT
generate_series (seconds, not the ORM). Then exports each project in a fresh subprocess, so the
peak RSS (``ru_maxrss``) belongs to that export alone, and samples the RSS at every progress step.

    .venv/bin/python bench/export.py --sizes 100000 1000000 --kind sft
    .venv/bin/python bench/export.py --sizes 1000000 --option dedupe=false

Needs a PostgreSQL server (``--server postgres://postgres@127.0.0.1:5432``). Prints a Markdown
table to paste under "## Exports" in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flywheel_site.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def ensure_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def ensure_schema() -> None:
    """Create the tables without migration files (the lead generates them at integration)."""
    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    if "labeling_interaction" in connection.introspection.table_names():
        return
    settings.MIGRATION_MODULES = {app.label: None for app in apps.get_app_configs()}
    call_command("migrate", run_syncdb=True, verbosity=0)


def seed(size: int) -> str:
    """Project ``bench-<size>`` with ``size`` labelled interactions (all good, all distinct)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from labeling.models import Annotation, Project
    from labeling.schema import DEFAULT_SCHEMA

    slug = f"bench-{size}"
    project, _ = Project.objects.get_or_create(
        slug=slug, defaults={"name": slug, "label_schema": DEFAULT_SCHEMA}
    )
    have = Annotation.objects.filter(interaction__project=project).count()
    if have == size:
        return slug
    user, _ = get_user_model().objects.get_or_create(username="bench-annotator")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "DELETE FROM labeling_annotation WHERE interaction_id IN "
            "(SELECT id FROM labeling_interaction WHERE project_id = %s)",
            [project.id],
        )
        cur.execute("DELETE FROM labeling_queueitem WHERE project_id = %s", [project.id])
        cur.execute("DELETE FROM labeling_interaction WHERE project_id = %s", [project.id])
        cur.execute(
            """
            INSERT INTO labeling_interaction (
                project_id, external_id, conversation_id, occurred_at, model_version, messages,
                response, alt_response, alt_model_version, segment, metadata, scores, signals,
                created_at)
            SELECT %(p)s, 'req-' || g, 'conv-' || (g / 3), now() - g * interval '1 second',
                   'model-' || (g %% 3),
                   jsonb_build_array(
                     jsonb_build_object('role', 'system', 'content', 'You are a support bot.'),
                     jsonb_build_object('role', 'user', 'content',
                       'Question ' || g || ': ' || repeat('how do I change my billing plan? ', 8))),
                   'Answer ' || g || ': ' || repeat('Open Settings, then Billing, then Plan. ', 14),
                   '', '',
                   jsonb_build_object('tier', CASE WHEN g %% 2 = 0 THEN 'free' ELSE 'pro' END,
                                      'locale', 'en'),
                   '{}'::jsonb, '{}'::jsonb, '{}'::jsonb, now()
            FROM generate_series(1, %(n)s) AS g
            """,
            {"p": project.id, "n": size},
        )
        cur.execute(
            """
            INSERT INTO labeling_queueitem (
                project_id, interaction_id, overlap, priority, status, done_count, leased_count,
                skip_count, is_gold, holdout, created_at, updated_at)
            SELECT project_id, id, 1, 0, 'done', 1, 0, 0, false, false, now(), now()
            FROM labeling_interaction WHERE project_id = %s
            """,
            [project.id],
        )
        cur.execute(
            """
            INSERT INTO labeling_annotation (
                queue_item_id, interaction_id, annotator_id, kind, values, schema_version,
                version, is_current, time_spent_ms, created_at)
            SELECT q.id, q.interaction_id, %s, 'label',
                   jsonb_build_object('quality', 4 + (q.id %% 2), 'failure_modes', '[]'::jsonb),
                   1, 1, true, 1000, now()
            FROM labeling_queueitem q WHERE q.project_id = %s
            """,
            [user.id, project.id],
        )
    with connection.cursor() as cur:
        for table in ("labeling_interaction", "labeling_queueitem", "labeling_annotation"):
            cur.execute(f"ANALYZE {table}")
    print(f"seeded {slug}: {size} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return slug


def measure(slug: str, kind: str, options: dict[str, object], out_dir: str) -> dict[str, object]:
    """Run one export in this process; return rows/s and memory figures."""
    from labeling.models import Export, Project
    from labeling.services.exports import export_create, export_run

    project = Project.objects.get(slug=slug)
    export = export_create(project=project, kind=kind, options=options, enqueue=False)
    rss_before = _rss_mb()
    samples: list[tuple[int, float]] = []

    def progress(current: Export, scan: object, rows: int) -> None:
        samples.append((rows, _rss_mb()))

    out = Path(out_dir) / f"{slug}-{kind}.jsonl"
    load_before = os.getloadavg()[0]
    cpu_before = time.process_time()
    started = time.perf_counter()
    done = export_run(export_id=export.id, out_path=out, progress=progress)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    if done is None or done.status != Export.Status.DONE:
        raise SystemExit(f"export failed: {done.error if done else 'missing'}")
    out.unlink()
    mid = [rss for rows, rss in samples if rows >= done.rows // 2]
    return {
        "rows": done.rows,
        "bytes": done.bytes,
        "seconds": round(seconds, 2),
        "rows_per_s": round(done.rows / seconds),
        "cpu_seconds": round(cpu, 2),
        "rows_per_cpu_s": round(done.rows / cpu),
        "load": f"{load_before:.1f}-{os.getloadavg()[0]:.1f}",
        "rss_before_mb": round(rss_before, 1),
        "rss_at_half_mb": round(mid[0], 1) if mid else None,
        "rss_end_mb": round(samples[-1][1], 1) if samples else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--kind", default="sft")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="flywheel_bench_export")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: project slug
    args = parser.parse_args()
    options = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.option)}
    url = f"{args.server}/{args.db}"

    if args.measure:
        _setup_django(url)
        with tempfile.TemporaryDirectory(prefix="bench-export-") as out_dir:
            print(json.dumps(measure(args.measure, args.kind, options, out_dir)))
        return

    ensure_database(args.server, args.db)
    _setup_django(url)
    ensure_schema()
    slugs = [seed(size) for size in args.sizes]
    print(
        "| rows | kind | options | seconds | rows/s | exporter CPU s | rows/CPU-s | load avg"
        " | RSS before | RSS 50% | RSS end | peak RSS |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for slug in slugs:
        cmd = [sys.executable, __file__, "--measure", slug, "--kind", args.kind]
        cmd += ["--db", args.db, "--server", args.server]
        cmd += [f"--option={o}" for o in args.option]
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(
            f"| {result['rows']:,} | {args.kind} | {json.dumps(options) if options else 'defaults'}"
            f" | {result['seconds']} | {result['rows_per_s']:,} | {result['cpu_seconds']}"
            f" | {result['rows_per_cpu_s']:,} | {result['load']} | {result['rss_before_mb']} MB"
            f" | {result['rss_at_half_mb']} MB | {result['rss_end_mb']} MB"
            f" | {result['peak_rss_mb']} MB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
