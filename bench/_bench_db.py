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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0
