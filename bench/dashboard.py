"""Dashboard benchmark: how long the dashboard page takes on a project with real volume.

    .venv/bin/python bench/dashboard.py [--interactions 50000] [--batch 2000] [--labels 1500]
        [--repeat 3] [--write]

Builds ``test_flywheel_dash_bench`` on PostgreSQL from the models (no migration files needed; never
point this at a real database): ``--interactions`` interactions over 8 weeks in 3 tiers x 2
locales and 3 model versions, ~4 % with a thumbs rating; one probabilistic sampling run of
``--batch`` (through the real service, so every interaction of the pool gets its Inclusion row);
``--labels`` of the selected items labelled (annotation rows written in bulk). Then it times, with
a warm connection, each dashboard section's numbers (``sampling.selectors.dashboard``) and the
whole page over the Django test client (selectors + presenter + template), ``--repeat`` times, and
prints the medians. ``--write`` appends them under "## Dashboard" in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB = "flywheel_dash_bench"


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    os.environ["DATABASE_URL"] = f"{base}/{DB}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "flywheel_site.test_settings"
    os.environ.setdefault("FLYWHEEL_VAR_DIR", str(ROOT / "var" / "bench"))
    import django
    from django.conf import settings

    django.setup()
    settings.DATABASES["default"].setdefault("TEST", {})["MIGRATE"] = False
    settings.ALLOWED_HOSTS = ["*"]  # the test client's host; this process serves nobody
    from django.db import connection

    connection.creation.create_test_db(verbosity=0, autoclobber=True)


def build(n: int, batch: int, labels: int) -> tuple[Any, Any]:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from labeling.models import Annotation, Interaction, Membership, Project, QueueItem, Role
    from labeling.schema import DEFAULT_SCHEMA
    from sampling.services.runs import sampling_run_create, sampling_run_execute
    from sampling.services.strategies import strategy_create

    rng = random.Random(1)
    project = Project.objects.create(
        slug="bench", name="Bench", label_schema=DEFAULT_SCHEMA, segment_keys=["tier", "locale"]
    )
    users = get_user_model()
    admin = users.objects.create_user(username="admin", password="x")
    annotator = users.objects.create_user(username="annotator", password="x")
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    now = timezone.now()
    rows = []
    for i in range(n):
        rating = rng.random()
        rows.append(
            Interaction(
                project=project,
                external_id=f"req-{i}",
                conversation_id=f"conv-{i}",
                occurred_at=now - dt.timedelta(minutes=rng.randrange(0, 8 * 7 * 24 * 60)),
                model_version=rng.choice(["bot-09", "bot-10", "bot-11"]),
                messages=[{"role": "user", "content": f"question {i} about billing"}],
                response=f"answer {i}",
                segment={
                    "tier": rng.choice(["free", "free", "pro", "enterprise"]),
                    "locale": rng.choice(["en", "de"]),
                },
                explicit_rating=(-1 if rating < 0.025 else 1 if rating < 0.04 else None),
                proxy_score=rng.uniform(0.2, 0.95),
            )
        )
    Interaction.objects.bulk_create(rows, batch_size=5000)
    strategy = strategy_create(
        project=project,
        data={
            "name": "bench",
            "weights": {"uncertainty": 0.5, "coverage": 0.3, "random": 0.2},
            "batch_size": batch,
            "segment_minimums": {"tier": 200},
            "overlap_fraction": 0.0,
            "holdout_fraction": 0.0,
        },
    )
    run = sampling_run_create(project=project, strategy=strategy)
    sampling_run_execute(run_id=run.pk)
    items = list(
        QueueItem.objects.filter(project=project).order_by("id").values_list("id", "interaction_id")
    )[:labels]
    Annotation.objects.bulk_create(
        [
            Annotation(
                queue_item_id=item_id,
                interaction_id=interaction_id,
                annotator=annotator,
                values={"quality": rng.choice([1, 2, 3, 4, 4, 5, 5])},
                schema_version=1,
                time_spent_ms=rng.randrange(3000, 60000),
            )
            for item_id, interaction_id in items
        ],
        batch_size=2000,
    )
    QueueItem.objects.filter(id__in=[i for i, _ in items]).update(status="done", done_count=1)
    return project, admin


def timed(fn: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--labels", type=int, default=1_500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    setup_django()
    from django.test import Client

    from sampling.selectors import dashboard as dash

    t0 = time.perf_counter()
    project, admin = build(args.interactions, args.batch, args.labels)
    build_s = time.perf_counter() - t0
    filters = dash.DashboardFilters(range="90d")
    sections = {
        "quality": lambda: dash._quality(project=project, filters=filters),
        "coverage": lambda: dash._coverage(project=project, filters=filters),
        "bias": lambda: dash._bias(project=project, filters=filters),
        "power": lambda: dash._power(project=project, filters=filters),
        "queue": lambda: dash._queue(project=project, filters=filters),
        "proxy": lambda: dash._proxy(project=project),
    }
    results = {name: timed(fn, args.repeat) for name, fn in sections.items()}
    client = Client()
    client.force_login(admin)
    url = f"/p/{project.slug}/dashboard/?range=90d"

    from django.core.cache import cache

    def page() -> None:
        response = client.get(url)
        assert response.status_code == 200, response.status_code

    def cold_page() -> None:
        cache.clear()
        page()

    results["whole page, cold (HTTP, selectors, plots, template)"] = timed(cold_page, args.repeat)
    page()
    results["whole page, warm (statistics from the cache, queue read fresh)"] = timed(
        page, args.repeat
    )
    lines = [
        f"- {args.interactions:,} interactions, run of {args.batch:,} (pool = all), "
        f"{args.labels:,} labels; build {build_s:.1f} s; median of {args.repeat}:",
        *(f"  - {name}: {seconds * 1000:,.0f} ms" for name, seconds in results.items()),
    ]
    print("\n".join(lines))
    if args.write:
        machine = (
            f"{platform.node()}, {os.cpu_count()} cores shared with ~6 other helpers, "
            f"PostgreSQL local, Python {platform.python_version()}"
        )
        command = (
            f".venv/bin/python bench/dashboard.py --interactions {args.interactions} "
            f"--batch {args.batch} --labels {args.labels} --repeat {args.repeat} --write"
        )
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        with open(ROOT / "bench" / "RESULTS.md", "a") as fh:
            fh.write(
                f"\n## Dashboard\n\n{stamp}; machine: {machine}.\nCommand: `{command}`\n\n"
                + "\n".join(lines)
                + "\n"
            )


if __name__ == "__main__":
    main()
