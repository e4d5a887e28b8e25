"""Ingestion's PostgreSQL write path against COPY, on the same rows, in the same run.

    .venv/bin/python bench/ingest_paths.py [--rows 20000] [--batch 2000] [--repeat 3]

Three ways to store the same validated ~1 KB interaction rows (``interaction_clean`` output), in
batches of ``--batch`` rows, each batch one transaction, into a fresh project of
``test_flywheel_ingest_paths`` (created from the models; never point it at a real database):

- ``unnest`` — what ingestion does (``labeling.services.bulk.insert_returning``): one
  ``INSERT ... SELECT FROM unnest(array per column) ON CONFLICT DO NOTHING RETURNING``;
- ``copy+insert`` — ``COPY`` into a session-local temporary staging table, then
  ``INSERT ... SELECT FROM staging ON CONFLICT DO NOTHING RETURNING`` (same guarantees);
- ``raw COPY`` — ``COPY`` into a bare table of the same shape with only the unique key: the
  reference that no idempotent path can beat (no conflict check, no RETURNING, no other indexes).

Each repetition alternates the paths on fresh projects, checks that both idempotent paths created
every row and that a second pass over the first batch creates none. Prints rows/s per path.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import _bench_db  # noqa: E402
from _copy_reference import copy_into_interactions, validated_rows  # noqa: E402


def copy_then_insert(rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> int:
    """The staging-table alternative; returns how many rows it created."""
    from django.db import connection, transaction
    from django.utils import timezone

    cols = ", ".join(columns)
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor
        raw.execute(
            "CREATE TEMP TABLE IF NOT EXISTS stage_interaction ON COMMIT DELETE ROWS AS "
            f"SELECT {cols} FROM labeling_interaction WITH NO DATA"
        )
        with raw.copy(f"COPY stage_interaction ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        raw.execute(
            f"INSERT INTO labeling_interaction ({cols}, signals, created_at) "
            f"SELECT {cols}, '{{}}'::jsonb, %s FROM stage_interaction "
            "ON CONFLICT (project_id, external_id) DO NOTHING RETURNING id, external_id",
            [timezone.now()],
        )
        created = len(raw.fetchall())
        raw.execute("DELETE FROM stage_interaction")
    return created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")
    _bench_db.setup("flywheel_ingest_paths")

    import ingest as ingest_bench
    from django.db import connection, transaction

    from labeling.models import Interaction, Project
    from labeling.services.bulk import insert_returning
    from labeling.services.ingest.validation import INSERT_COLUMNS

    lines = ingest_bench.make_rows(args.rows)
    rates: dict[str, list[float]] = {
        "unnest": [],
        "copy+insert": [],
        "raw COPY, same table": [],
        "raw COPY": [],
    }
    load_before = os.getloadavg()[0]
    for rep in range(args.repeat):
        for path in ("unnest", "copy+insert"):
            project = Project.objects.create(slug=f"p{rep}{path[0]}", name="P")
            rows = validated_rows(lines, project.pk)

            def store(batch: Sequence[Sequence[Any]], path: str = path) -> int:
                if path == "copy+insert":
                    return copy_then_insert(batch, INSERT_COLUMNS)
                with transaction.atomic():
                    return len(
                        insert_returning(
                            model=Interaction,
                            columns=INSERT_COLUMNS,
                            rows=batch,
                            conflict=("project_id", "external_id"),
                            returning=("id", "external_id"),
                        )
                    )

            t0 = time.perf_counter()
            created = sum(store(rows[i : i + args.batch]) for i in range(0, len(rows), args.batch))
            rates[path].append(len(rows) / (time.perf_counter() - t0))
            assert created == len(rows), (path, created)
            assert store(rows[: args.batch]) == 0, path  # a retry creates nothing
        # "raw COPY of the same rows into the same database" (the reference): straight
        # into labeling_interaction, its foreign key and every index, for a fresh project.
        project = Project.objects.create(slug=f"p{rep}r", name="P")
        rates["raw COPY, same table"].append(copy_into_interactions(rows, project.pk))
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TABLE IF EXISTS copy_ref; CREATE TABLE copy_ref AS SELECT * FROM "
                "labeling_interaction WITH NO DATA; "
                "CREATE UNIQUE INDEX ON copy_ref (project_id, external_id)"
            )
        t0 = time.perf_counter()
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY copy_ref ({', '.join(INSERT_COLUMNS)}) FROM STDIN") as cp,
        ):
            for row in rows:
                cp.write_row(row)
        rates["raw COPY"].append(len(rows) / (time.perf_counter() - t0))
    print(
        f"{args.rows:,} rows in batches of {args.batch:,}, {args.repeat} repetitions, "
        f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after, "
        f"{os.cpu_count()} cores"
    )
    ref = statistics.median(rates["raw COPY"])
    print("| path | rows/s median | runs | x raw COPY |")
    print("|---|---:|---|---:|")
    for path, runs in rates.items():
        median = statistics.median(runs)
        print(
            f"| {path} | {median:,.0f} | {', '.join(f'{r:,.0f}' for r in runs)} | "
            f"{median / ref:.2f} |"
        )


if __name__ == "__main__":
    main()
