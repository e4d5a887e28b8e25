"""Scale benchmark: a project with millions of interactions, 20 sampling runs and 50,000 labels.

    .venv/bin/python bench/scale.py --interactions 10000000 [--arrivals 1000000] [--labels 50000]
        [--runs 20] [--repeat 3] [--write]

Builds ``test_flywheel_scale`` on PostgreSQL from the models (no migration files needed; never
point this at a real database). Interactions are written with ``INSERT ... SELECT
generate_series`` (about 1 KB each: a system and a user turn and a ~600-character answer, 30 days
of timestamps, two model versions, 3 tiers x 2 locales, a proxy score), in ``--runs`` waves; after
each wave a real sampling run (``sampling_run_create`` + ``sampling_run_execute``: pool read, pi,
draw, COPY of the Inclusion rows, queue items) considers it, so every interaction but the last
``--arrivals`` has its Inclusion row with ``f`` and ``pi``. ``--labels`` selected items are then
labelled (annotation rows in bulk, quality drawn from the proxy score so the estimates have
something to find). Then, with a warm connection, it times:

- the estimates API (``by=model_version`` and ``by=week``) through the Django test client, cold
  (statistics cache cleared) and warm;
- the dashboard page, cold and warm;
- a sampling run over the ``--arrivals`` newest interactions (the real service);
- an eval-set export of every labelled item (the real service, to a temporary file);
- database size per million interactions (tables with their indexes).

Prints a Markdown table; ``--write`` replaces the "## Scale" section of bench/RESULTS.md.
``--reuse`` measures the project an earlier run left in ``test_flywheel_scale`` (same sizes)
instead of building it again, after bringing a database built by older code up to the current
models (:func:`reuse_upgrade`: new tables are created by Django's test-database setup, and filled
here as their migrations would); the measured sampling run is rolled back, so the
arrivals stay new for the next measurement. ``--estimates-only`` times the estimates API and
stops (no dashboard, sampling run, export or sizes).
Throughput of exports at 1M rows, of ingestion, of scoring and of the queue at 16 annotators do not
depend on the project's size and are measured by bench/export.py, bench/ingest.py,
bench/scoring.py and bench/load.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import _bench_db  # noqa: E402

DB = "flywheel_scale"
BRIN_NAME = "ix_inclusion_project_brin"
SLUG = "scale"


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def seed_wave(
    project_id: int, start: int, count: int, days: int, total: int, topics: bool = False
) -> None:
    """Interactions ``start .. start + count - 1``; ids spread evenly over ``days`` days; with
    ``topics`` each gets a topic cluster (one of 8, as scoring writes them)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM labeling_interaction")
        last = cur.fetchone()[0]
        cur.execute(
            """
            INSERT INTO labeling_interaction (project_id, external_id, conversation_id,
                occurred_at, model_version, messages, response, alt_response, alt_model_version,
                segment, metadata, scores, signals, explicit_rating, proxy_score, proxy_version,
                scored_at, processed_at, created_at)
            SELECT %(p)s, 'req-' || g, 'conv-' || (g / 3),
                now() - make_interval(secs => (%(total)s - g)::float8 * %(span)s / %(total)s),
                CASE WHEN g %% 5 = 0 THEN 'canary' ELSE 'stable' END,
                jsonb_build_array(
                    jsonb_build_object('role', 'system', 'content',
                        'You are a helpful support assistant for an online shop.'),
                    jsonb_build_object('role', 'user', 'content',
                        'Question ' || g || ': ' || repeat(md5(g::text), 3))),
                repeat(md5((g * 7)::text) || ' ', 18), '', '',
                jsonb_build_object(
                    'tier', (ARRAY['free', 'free', 'pro', 'enterprise'])[1 + g %% 4],
                    'locale', CASE WHEN g %% 3 = 0 THEN 'de' ELSE 'en' END),
                jsonb_build_object('latency_ms', 200 + g %% 1800), '{}'::jsonb, '{}'::jsonb,
                CASE WHEN g %% 40 = 0 THEN -1 WHEN g %% 67 = 0 THEN 1 END,
                0.15 + 0.8 * ((g * 2654435761::bigint) %% 1000) / 1000.0, 1, now(), now(), now()
            FROM generate_series(%(a)s, %(b)s) AS g
            """,
            {
                "p": project_id,
                "a": start,
                "b": start + count - 1,
                "total": total,
                "span": days * 86400,
            },
        )
        if topics:
            cur.execute(
                "INSERT INTO sampling_interactiontopic (interaction_id, cluster, proxy_version) "
                "SELECT id, ((id * 2654435761::bigint) %% 8)::smallint, 1 "
                "FROM labeling_interaction WHERE project_id = %s AND id > %s",
                [project_id, last],
            )


def build(args: argparse.Namespace) -> tuple[Any, Any, dict[str, float]]:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from labeling.models import Annotation, Membership, Project, QueueItem, Role
    from labeling.schema import DEFAULT_SCHEMA
    from sampling.services.runs import sampling_run_create, sampling_run_execute
    from sampling.services.strategies import strategy_create

    timings: dict[str, float] = {}
    project = Project.objects.create(
        slug=SLUG, name="Scale", label_schema=DEFAULT_SCHEMA, segment_keys=["tier", "locale"]
    )
    users = get_user_model()
    admin = users.objects.create_user(username="admin", password="x")
    annotator = users.objects.create_user(username="annotator", password="x")
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    history = args.interactions - args.arrivals
    per_run = max(1, args.labels // args.runs)
    strategy = strategy_create(
        project=project,
        data={
            "name": "scale",
            "weights": {"uncertainty": 0.5, "coverage": 0.3, "random": 0.2},
            "batch_size": per_run,
            "segment_minimums": {"tier": 100},
            "overlap_fraction": 0.0,
            "holdout_fraction": 0.0,
        },
    )
    wave = history // args.runs
    seed_s = run_s = 0.0
    for i in range(args.runs):
        start = 1 + i * wave
        count = wave if i < args.runs - 1 else history - i * wave
        t0 = time.perf_counter()
        seed_wave(project.pk, start, count, 30, args.interactions, topics=args.topics)
        seed_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        run = sampling_run_create(project=project, strategy=strategy)
        sampling_run_execute(run_id=run.pk)
        run_s += time.perf_counter() - t0
        print(f"  wave {i + 1}/{args.runs}: {count:,} rows, load {load()}", file=sys.stderr)
    timings["seed history s"] = seed_s
    timings[f"{args.runs} historical runs s"] = run_s
    t0 = time.perf_counter()
    # Label the selected items: quality from the proxy score, a little worse for the canary in
    # German (so versions and segments differ). Annotation rows through the ORM (new fields keep
    # their defaults).
    items = list(
        QueueItem.objects.filter(project=project)
        .order_by("id")
        .values_list(
            "id",
            "interaction_id",
            "interaction__proxy_score",
            "interaction__model_version",
            "interaction__segment",
        )[: args.labels]
    )
    Annotation.objects.bulk_create(
        [
            Annotation(
                queue_item_id=item_id,
                interaction_id=interaction_id,
                annotator=annotator,
                values={
                    "quality": min(
                        5,
                        max(
                            1,
                            1
                            + int(
                                5
                                * (proxy or 0.5)
                                * (
                                    0.8
                                    if version == "canary" and (segment or {}).get("locale") == "de"
                                    else 1.0
                                )
                            ),
                        ),
                    )
                },
                schema_version=1,
                time_spent_ms=20000,
            )
            for item_id, interaction_id, proxy, version, segment in items
        ],
        batch_size=5000,
    )
    QueueItem.objects.filter(id__in=[i[0] for i in items]).update(status="done", done_count=1)
    with connection.cursor() as cur:
        seed_wave(project.pk, history + 1, args.arrivals, 30, args.interactions, args.topics)
        cur.execute("ANALYZE")
    timings["labels + arrivals s"] = time.perf_counter() - t0
    return project, admin, timings


def reuse_upgrade(project_id: int) -> None:
    """Bring a database built by older code up to the current models, as the migrations would.

    ``--reuse`` keeps the database; Django's test-database setup (migrations off) then creates the
    tables of models added since the build, empty, and changes nothing else. What a migration
    would also do is done here, and printed with its time:
    - ``sampling.SelectedItem`` (migration 0007): filled from the selected Inclusion rows
      (``selected_items_rebuild``, the migration's backfill for one project) when it is empty.
    - Migration 0008: the b-tree ``ix_inclusion_project`` dropped, the BRIN index on
      (project, run) created (the migration's own SQL).
    - Migration 0006: the population cells' rating columns added (default 0) and filled by the
      migration's own backfill.
    Migration 0005's backfill of ``sampling.TopicCell`` is run by ``_bench_db.setup`` when it
    creates that table on a kept database (``upgrade_kept_schema``, 26 s at 10M); should the
    table still be empty here, a warning says that the dashboard's per-topic coverage misses the
    historical runs.
    """
    from types import SimpleNamespace

    from django.db import connection

    from sampling.models import Inclusion, SelectedItem, TopicCell
    from sampling.services.population import selected_items_rebuild

    columns = {
        c.name
        for c in connection.introspection.get_table_description(
            connection.cursor(), "sampling_populationcell"
        )
    }
    if "rated" not in columns:
        t0 = time.perf_counter()
        with connection.cursor() as cur:
            cur.execute(
                "ALTER TABLE sampling_populationcell ADD COLUMN rated integer NOT NULL DEFAULT 0, "
                "ADD COLUMN down integer NOT NULL DEFAULT 0, "
                "ADD COLUMN rated_f double precision NOT NULL DEFAULT 0, "
                "ADD COLUMN rated_excluded integer NOT NULL DEFAULT 0"
            )
            ratings = import_module("sampling.migrations.0006_population_cell_ratings")
            ratings.backfill(None, SimpleNamespace(connection=connection, execute=cur.execute))
        print(
            f"reuse: population cells' rating columns added and filled "
            f"in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
    if not TopicCell.objects.filter(project_id=project_id).exists():
        print(
            "reuse: sampling_topiccell is empty (migration 0005's backfill not run): the "
            "dashboard's per-topic coverage would miss the historical runs",
            file=sys.stderr,
        )

    if (
        not SelectedItem.objects.filter(project_id=project_id).exists()
        and Inclusion.objects.filter(project_id=project_id, selected=True).exists()
    ):
        t0 = time.perf_counter()
        rows = selected_items_rebuild(project=project_id)
        with connection.cursor() as cur:
            cur.execute(f"ANALYZE {SelectedItem._meta.db_table}")
        print(
            f"reuse: filled {SelectedItem._meta.db_table} with {rows:,} rows "
            f"in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
    brin = import_module("sampling.migrations.0008_inclusion_project_brin")
    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass('ix_inclusion_project'), to_regclass(%s)", [BRIN_NAME])
        btree, has_brin = cur.fetchone()
        if btree or not has_brin:
            t0 = time.perf_counter()
            cur.execute("DROP INDEX IF EXISTS ix_inclusion_project")
            cur.execute(brin.BRIN_SQL)
            print(
                f"reuse: ix_inclusion_project replaced by {BRIN_NAME} "
                f"in {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )


def backend_cpu_s() -> float | None:
    """CPU seconds of this connection's PostgreSQL backend (None unless it runs on this host)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), runs


def sizes(project_id: int) -> dict[str, int]:
    from django.db import connection

    out = {}
    with connection.cursor() as cur:
        for table in (
            "labeling_interaction",
            "sampling_inclusion",
            "sampling_interactiontopic",
            "labeling_queueitem",
            "labeling_annotation",
        ):
            cur.execute("SELECT pg_total_relation_size(%s)", [table])
            out[table] = int(cur.fetchone()[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--arrivals", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    parser.add_argument(
        "--db",
        default=DB,
        help=f"database name; the bench builds test_<db> (default {DB}), so a 1M and a 10M "
        "project can be kept side by side",
    )
    parser.add_argument(
        "--topics",
        action="store_true",
        help="give every interaction a topic cluster (as scoring does), so the dashboard's "
        "per-topic coverage counts real rows",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the project a previous run built (same sizes) instead of building it again",
    )
    parser.add_argument(
        "--estimates-only",
        action="store_true",
        help="time the estimates API only (skip the dashboard, the sampling run and the export)",
    )
    parser.add_argument(
        "--run-only",
        action="store_true",
        help="with --reuse: time only the sampling run over the arrivals, --repeat times",
    )
    args = parser.parse_args()
    load_before = load()
    os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")
    _bench_db.setup(args.db, keep=args.reuse)
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]  # the test client's host; this process serves nobody
    from django.db import connections

    if "export_reader" in connections:  # the export's snapshot reader: same (test) database
        name = connections["default"].settings_dict["NAME"]
        connections["export_reader"].settings_dict["NAME"] = name

    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection, transaction
    from django.test import Client

    from labeling.models import Annotation, Interaction, Project
    from labeling.services.exports import export_create, export_run
    from sampling.models import SamplingStrategy
    from sampling.services.runs import sampling_run_create, sampling_run_execute

    t0 = time.perf_counter()
    project = Project.objects.filter(slug=SLUG).first() if args.reuse else None
    if project is not None:
        admin = get_user_model().objects.get(username="admin")
        timings = {"reused": 1.0}
        reuse_upgrade(project.pk)
    elif args.reuse:
        raise SystemExit(
            f"--reuse: no project {SLUG!r} in test_{args.db}; run once without --reuse"
        )
    else:
        project, admin, timings = build(args)
    build_s = time.perf_counter() - t0
    n = Interaction.objects.filter(project=project).count()
    labels = Annotation.objects.filter(queue_item__project=project).count()
    print(f"built {n:,} interactions, {labels:,} labels in {build_s:.0f} s", file=sys.stderr)

    client = Client()
    client.force_login(admin)
    rows: list[tuple[str, str, str]] = []

    def get(url: str) -> Callable[[], None]:
        def fn() -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        return fn

    def cold(fn: Callable[[], None]) -> Callable[[], None]:
        def wrapped() -> None:
            cache.clear()
            fn()

        return wrapped

    targets = {
        "estimates by model_version": f"/api/projects/{SLUG}/estimates/?by=model_version",
        "estimates by week": f"/api/projects/{SLUG}/estimates/?by=week",
        "dashboard page": f"/p/{SLUG}/dashboard/",
    }
    if args.estimates_only:
        del targets["dashboard page"]
    if args.run_only:
        targets = {}
    for url in targets.values():  # imports and first-query plans out of the way
        get(url)()
    for name, url in targets.items():
        median, runs = timed(cold(get(url)), args.repeat)
        rows.append(
            (f"{name}, cold", f"{median * 1000:,.0f} ms", ", ".join(f"{r:.2f}" for r in runs))
        )
        get(url)()
        median, runs = timed(get(url), args.repeat)
        rows.append(
            (f"{name}, warm", f"{median * 1000:,.0f} ms", ", ".join(f"{r:.2f}" for r in runs))
        )

    if args.estimates_only:
        print("\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows))
        print(f"load {load_before} before, {load()} after")
        return
    strategy = SamplingStrategy.objects.get(project=project, name="scale")
    # Rolled back afterwards, so the arrivals stay new and --reuse can measure them again.
    for _ in range(args.repeat if args.run_only else 1):
        with transaction.atomic():
            run = sampling_run_create(project=project, strategy=strategy)
            cpu0, backend0 = time.process_time(), backend_cpu_s()
            t0 = time.perf_counter()
            sampling_run_execute(run_id=run.pk)
            run_s = time.perf_counter() - t0
            cpu = f"CPU: python {time.process_time() - cpu0:.1f} s"
            if backend0 is not None:  # PostgreSQL on this host: its backend's CPU time too
                cpu += f", postgres {(backend_cpu_s() or 0.0) - backend0:.1f} s"
            run.refresh_from_db()
            transaction.set_rollback(True)
        rows.append(
            (
                f"sampling run over {run.pool_size:,} new arrivals",
                f"{run_s:.1f} s",
                ", ".join(
                    f"{k} {v:.2f}" for k, v in sorted(run.timings.items()) if k.endswith("_s")
                )
                + f"; {cpu}",
            )
        )
        print(f"  {rows[-1]}, load {load()}", file=sys.stderr)
    if args.run_only:
        print("\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows))
        return

    with tempfile.TemporaryDirectory() as tmp:
        export = export_create(project=project, kind="eval", options={}, enqueue=False)
        t0 = time.perf_counter()
        export = export_run(export_id=export.pk, out_path=Path(tmp) / "eval.jsonl")
        export_s = time.perf_counter() - t0
        assert export is not None
        assert export.status == "done", export.error
        rows.append(
            (
                f"eval export ({export.rows:,} rows)",
                f"{export_s:.1f} s",
                f"{export.rows / export_s:,.0f} rows/s",
            )
        )

    size = sizes(project.pk)
    per_million = sum(size.values()) / (n / 1e6)
    rows.append(
        (
            "database size per million interactions",
            f"{per_million / 2**30:.2f} GiB",
            ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in size.items()),
        )
    )
    connection.close()
    load_after = load()

    command = "bench/scale.py " + " ".join(sys.argv[1:])
    lines = [
        "## Scale",
        "",
        f"Command: `.venv/bin/python {command}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"PostgreSQL on the same host; load average (1/5/15 min) {load_before} before, "
        f"{load_after} after. Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Project: {n:,} interactions over 30 days, {args.runs} sampling runs (build "
        f"{build_s:.0f} s: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()) + f"), "
        f"{labels:,} labels, {args.arrivals:,} new arrivals not yet considered.",
        "",
        f"| measurement | median of {args.repeat} | runs / detail |",
        "|---|---:|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if args.write:
        path = ROOT / "bench" / "RESULTS.md"
        text = path.read_text()
        pattern = re.compile(r"^## Scale\n.*?(?=^## |\Z)", re.S | re.M)
        if pattern.search(text):
            text = pattern.sub(lambda _: section + "\n", text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + section
        path.write_text(text)


if __name__ == "__main__":
    main()
