"""Benchmark: scoring throughput per worker process and proxy retrain time at 1k/10k/100k labels.

On a dedicated PostgreSQL database (``test_flywheel_bench_scoring``): seeds interactions from
HH-RLHF (cycled with a per-copy suffix so texts differ), labels the first K of them (queue items +
annotations: chosen -> quality 5, rejected -> 1), times ``proxy_train`` end to end (read labels,
featurize, cross-validated metrics, fit, topic clusters, save), and times ``interactions_score``
(DB read, featurize, predict, bulk UPDATE of proxy_score, topic upsert) over unlabelled rows.

    .venv/bin/python bench/scoring.py [--rows 100000] [--labels 1000,10000,100000] [--score 20000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_db
import _hh


def seed(project, rows: int) -> list[tuple[int, int]]:
    from django.utils import timezone

    from labeling.models import Interaction

    source = _hh.load()
    rng = np.random.default_rng(0)
    now = timezone.now()
    out: list[tuple[int, int]] = []
    batch = []
    for i in range(rows):
        row = source[i % len(source)]
        copy = i // len(source)
        messages = [dict(m) for m in row["messages"]]
        if copy and messages:
            messages[0]["content"] += f" (variant {copy})"
        batch.append(
            Interaction(
                project=project,
                external_id=f"hh-{i}",
                conversation_id=f"hh-{row['pair']}",  # copies of a pair: one group
                occurred_at=now - dt.timedelta(seconds=i),
                model_version="hh",
                messages=messages,
                response=row["response"],
                segment={"tier": "pro" if rng.random() < 0.2 else "free"},
                signals={"copy": int(rng.random() < 0.1), "regenerate": int(rng.random() < 0.1)},
                scores={"judge": float(rng.random())},
                metadata={"good": row["good"]},
            )
        )
        if len(batch) == 5000:
            created = Interaction.objects.bulk_create(batch)
            out += [(c.pk, c.metadata["good"]) for c in created]
            batch = []
    if batch:
        created = Interaction.objects.bulk_create(batch)
        out += [(c.pk, c.metadata["good"]) for c in created]
    return out


def label(project, user, rows: list[tuple[int, int]]) -> None:
    from labeling.models import Annotation, QueueItem

    for start in range(0, len(rows), 5000):
        chunk = rows[start : start + 5000]
        items = QueueItem.objects.bulk_create(
            [QueueItem(project=project, interaction_id=i) for i, _ in chunk]
        )
        Annotation.objects.bulk_create(
            [
                Annotation(
                    queue_item=item,
                    interaction_id=i,
                    annotator=user,
                    values={"quality": 5 if good else 1},
                    schema_version=1,
                )
                for item, (i, good) in zip(items, chunk, strict=True)
            ]
        )


def phase_breakdown(project, ids: list[int], model) -> dict[str, float]:
    """The same work as interactions_score, timed per phase (read, featurize+predict, write)."""
    from labeling.models import Interaction
    from sampling.features import FEATURE_FIELDS
    from sampling.services.scoring import chunk_size, scores_compute, scores_write

    phases = {"read": 0.0, "compute": 0.0, "write": 0.0}
    step = chunk_size()
    for start in range(0, len(ids), step):
        t = time.perf_counter()
        rows = list(
            Interaction.objects.filter(id__in=ids[start : start + step]).values_list(
                "id", *FEATURE_FIELDS
            )
        )
        phases["read"] += time.perf_counter() - t
        t = time.perf_counter()
        scores, clusters = scores_compute(project=project, rows=[r[1:] for r in rows], model=model)
        phases["compute"] += time.perf_counter() - t
        t = time.perf_counter()
        scores_write(
            ids=[r[0] for r in rows], scores=scores, clusters=clusters, version=model.version
        )
        phases["write"] += time.perf_counter() - t
    return {k: round(v, 2) for k, v in phases.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--labels", default="1000,10000,100000")
    parser.add_argument("--score", type=int, default=20_000)
    args = parser.parse_args()
    label_steps = [int(x) for x in args.labels.split(",")]
    rows_needed = max(args.rows, max(label_steps) + args.score)
    _bench_db.setup("flywheel_bench_scoring")
    from django.contrib.auth import get_user_model

    from labeling.models import Interaction, Project
    from labeling.schema import DEFAULT_SCHEMA
    from sampling.features import FEATURE_FIELDS, featurize
    from sampling.services.proxy import proxy_train
    from sampling.services.scoring import interactions_score

    project = Project.objects.create(slug="hh", name="HH", label_schema=DEFAULT_SCHEMA)
    user = get_user_model().objects.create(username="bench")
    t0 = time.perf_counter()
    rows = seed(project, rows_needed)
    print(f"seeded {len(rows)} interactions in {time.perf_counter() - t0:.1f}s")
    results: dict = {"retrain": [], "scoring": None}
    labelled = 0
    for step in label_steps:
        label(project, user, rows[labelled:step])
        labelled = step
        t0 = time.perf_counter()
        model = proxy_train(project=project)
        seconds = time.perf_counter() - t0
        cv = model.metrics.get("cv", {})
        entry = {
            "labels": model.n_labels,
            "seconds": round(seconds, 1),
            "cv_auc": round(cv.get("auc") or 0, 3),
            "cv_log_loss": round(cv.get("log_loss") or 0, 3),
            "ece": round(cv.get("calibration", {}).get("ece", 0), 3),
            "peak_rss_mb": round(_bench_db.peak_rss_mb()),
        }
        results["retrain"].append(entry)
        print("retrain", json.dumps(entry))
        if results["scoring"] is None:
            ids = [i for i, _ in rows[-args.score :]]
            # featurize-only throughput on the same rows, for the breakdown
            sample = list(
                Interaction.objects.filter(id__in=ids[:5000]).values_list(*FEATURE_FIELDS)
            )
            t1 = time.perf_counter()
            featurize(sample)
            featurize_rate = len(sample) / (time.perf_counter() - t1)
            t1 = time.perf_counter()
            c1 = time.process_time()
            scored = interactions_score(project=project, interaction_ids=ids, model=model)
            seconds = time.perf_counter() - t1
            cpu = time.process_time() - c1
            assert not Interaction.objects.filter(id__in=ids, proxy_score__isnull=True).exists()
            phases = phase_breakdown(project, ids, model)
            results["scoring"] = {
                "interactions": scored,
                "seconds": round(seconds, 2),
                "per_second": round(scored / seconds),
                "worker_cpu_seconds": round(cpu, 2),
                "per_worker_cpu_second": round(scored / cpu),
                "featurize_only_per_second": round(featurize_rate),
                "phases_s": phases,
                "avg_chars": round(
                    float(
                        np.mean([len(r[1]) + sum(len(m["content"]) for m in r[0]) for r in sample])
                    )
                ),
            }
            print("scoring", json.dumps(results["scoring"]))
    print(json.dumps(results))
    from django.db import connection

    connection.creation.destroy_test_db("flywheel_bench_scoring", verbosity=0)


if __name__ == "__main__":
    main()
