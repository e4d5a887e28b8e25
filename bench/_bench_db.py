"""Shared setup of the sampler benchmarks: Django on a dedicated PostgreSQL database.

The schema is created the way the test runner does it (no migration files needed): the database
``test_<name>`` is (re)created with every model's table. Never point this at a real database.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup(db_name: str, *, keep: bool = False) -> None:
    """Configure Django for ``postgres://.../<db_name>`` and create ``test_<db_name>`` fresh."""
    sys.path.insert(0, str(ROOT))
    base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    os.environ["DATABASE_URL"] = f"{base}/{db_name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flywheel_site.test_settings")
    os.environ.setdefault("FLYWHEEL_VAR_DIR", str(ROOT / "var" / "bench"))
    import django
    from django.conf import settings

    django.setup()
    settings.DATABASES["default"].setdefault("TEST", {})["MIGRATE"] = False
    from django.db import connection

    # serialize=False: the test runner would otherwise read every row of a kept database into
    # memory (for TransactionTestCase), which at 10M interactions takes longer than the bench.
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=keep, serialize=False)
    if keep:
        upgrade_kept_schema()


# Data migrations that fill a table or columns added after a kept database was built, keyed by
# (model label, field name or None for the whole table): what ``migrate`` would run.
BACKFILLS = {
    ("sampling.TopicCell", None): "sampling.migrations.0005_topic_cells",
    ("sampling.PopulationCell", "rated"): "sampling.migrations.0006_population_cell_ratings",
}


def upgrade_kept_schema() -> list[str]:
    """A kept database built from older models (the bench builds its schema from the models, not
    from migrations): create the tables and columns the current models add, then run the data
    migrations that fill them (``BACKFILLS``), as ``migrate`` would. Returns what it did."""
    import time
    from importlib import import_module

    from django.apps import apps
    from django.db import connection

    done: list[str] = []
    backfill: list[str] = []
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
    with connection.schema_editor() as editor:
        for model in apps.get_models():
            table = model._meta.db_table
            if not model._meta.managed or model._meta.proxy:
                continue
            if table not in tables:
                editor.create_model(model)
                done.append(f"created {table}")
            if (model._meta.label, None) in BACKFILLS and not model.objects.exists():
                # created now, or empty as the test runner's syncdb created it for a kept db
                backfill.append(BACKFILLS[(model._meta.label, None)])
            if table not in tables:
                continue
            with connection.cursor() as cursor:
                columns = {c.name for c in connection.introspection.get_table_description(
                    cursor, table)}  # fmt: skip
            for field in model._meta.local_fields:
                if field.column not in columns:
                    editor.add_field(model, field)
                    done.append(f"added {table}.{field.column}")
                    if (model._meta.label, field.name) in BACKFILLS:
                        backfill.append(BACKFILLS[(model._meta.label, field.name)])

    class Editor:  # what RunPython hands a migration function: the connection and execute()
        def __init__(self) -> None:
            self.connection = connection

        def execute(self, sql: str) -> None:
            with connection.cursor() as cursor:
                cursor.execute(sql)

    for module in backfill:
        t0 = time.perf_counter()
        import_module(module).backfill(apps, Editor())
        done.append(f"backfilled by {module} in {time.perf_counter() - t0:.1f} s")
    for line in done:
        print(f"kept database upgraded: {line}", file=sys.stderr)
    return done


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0
