"""Benchmark: one sampling run over a 1,000,000-interaction pool from stored scores (PostgreSQL).

Seeds 1M interaction rows of about 1 KB with ``generate_series`` SQL (plus their topic clusters)
into a dedicated database ``test_flywheel_bench_sampling``, then times ``sampling_run_execute``
(read the pool, compute pi, Poisson draw, COPY one Inclusion row per item, enqueue the selected),
repeated after clearing the inclusions. Reports the timings and the process's peak RSS.

    .venv/bin/python bench/sampling_run.py [--rows 1000000] [--repeat 3]

Target (docs/performance.md): <= 10 s for 1,000,000 items.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_db


def seed(rows: int) -> int:
    from django.db import connection

    from labeling.models import Project
    from labeling.schema import DEFAULT_SCHEMA

    project = Project.objects.create(
        slug="bench", name="Bench", label_schema=DEFAULT_SCHEMA, segment_keys=["tier", "locale"]
    )
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO labeling_interaction (project_id, external_id, conversation_id, occurred_at,
                model_version, messages, response, alt_response, alt_model_version, segment,
                metadata, scores, signals, explicit_rating, proxy_score, proxy_version, scored_at,
                created_at)
            SELECT %s, 'req-' || g, 'conv-' || (g / 3), now() - (g || ' seconds')::interval,
                CASE WHEN g %% 2 = 0 THEN 'model-a' ELSE 'model-b' END,
                jsonb_build_array(jsonb_build_object('role', 'user', 'content',
                    'Question ' || g || ': ' || repeat(md5(g::text), 4))),
                repeat(md5((g * 7)::text) || ' ', 20), '', '',
                jsonb_build_object('tier', CASE WHEN g %% 10 = 0 THEN 'pro' ELSE 'free' END,
                                   'locale', CASE WHEN g %% 3 = 0 THEN 'de' ELSE 'en' END),
                '{}'::jsonb, jsonb_build_object('judge', random()), '{}'::jsonb, NULL,
                random(), 1, now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [project.pk, rows],
        )
        cursor.execute(
            "INSERT INTO sampling_interactiontopic (interaction_id, cluster, proxy_version) "
            "SELECT id, (id %% 12)::smallint, 1 FROM labeling_interaction WHERE project_id = %s",
            [project.pk],
        )
        cursor.execute("ANALYZE")
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('labeling_interaction')), "
            "avg(pg_column_size(i.*))::int FROM labeling_interaction i"
        )
        size, avg_row = cursor.fetchone()
    print(
        f"seeded {rows} interactions ({size}, {avg_row} B/row) in {time.perf_counter() - t0:.1f}s"
    )
    return project.pk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    _bench_db.setup("flywheel_bench_sampling")
    from django.db import connection

    from labeling.models import Project, QueueItem
    from sampling.models import Inclusion
    from sampling.services.runs import sampling_run_create, sampling_run_execute
    from sampling.services.strategies import strategy_create

    project = Project.objects.get(pk=seed(args.rows))
    strategy = strategy_create(
        project=project,
        data={
            "name": "bench",
            "weights": {"uncertainty": 0.6, "coverage": 0.2, "random": 0.2},
            "batch_size": args.batch,
            "segment_minimums": {"tier": 100},
            "overlap_fraction": 0.1,
            "overlap_k": 2,
            "holdout_fraction": 0.1,
        },
    )
    results = []
    for i in range(args.repeat):
        with connection.cursor() as cursor:
            # The watermark too: it says the truncated inclusions' interactions were considered.
            cursor.execute(
                "TRUNCATE sampling_inclusion, labeling_queueitem, sampling_poolwatermark CASCADE"
            )
        rss_before = _bench_db.current_rss_mb()
        run = sampling_run_create(project=project, strategy=strategy)
        t0 = time.perf_counter()
        run = sampling_run_execute(run_id=run.pk)
        wall = time.perf_counter() - t0
        assert run is not None
        assert run.status == "done", run.error
        assert Inclusion.objects.filter(run=run).count() == args.rows
        assert QueueItem.objects.filter(sampling_run_id=run.pk).count() == run.selected_count
        results.append(
            {
                "wall_s": round(wall, 2),
                **run.timings,
                "selected": run.selected_count,
                "expected": round(run.expected_size, 1),
                "rss_before_mb": round(rss_before),
            }
        )
        print(f"run {i + 1}: {json.dumps(results[-1])}")
    walls = [r["wall_s"] for r in results]
    print(
        json.dumps(
            {
                "rows": args.rows,
                "median_wall_s": statistics.median(walls),
                "min_wall_s": min(walls),
                "peak_rss_mb": round(_bench_db.peak_rss_mb()),
            }
        )
    )
    if not args.keep:
        connection.creation.destroy_test_db("flywheel_bench_sampling", verbosity=0)


if __name__ == "__main__":
    main()
