"""CPU of one cold dashboard page on a project bench/scale.py kept (load-independent figure).

    .venv/bin/python bench/dashboard_cold_cpu.py [--db flywheel_scale1m] [--repeat 1] [--serial]
        [--src DIR] [--after-label]

On a shared machine the wall time of a cold page follows the other sessions' load (at load 10 on
two cores a process gets a fifth of a core). This prints, per cold page (statistics cache cleared),
the wall time, the CPU time of this process (Python: Django, the selectors, the template) and of
its PostgreSQL backend (read from /proc, so PostgreSQL must run on this host). ``--serial`` sets
``max_parallel_workers_per_gather = 0`` for the session so that all of PostgreSQL's work is done
by (and counted in) the backend. ``--src`` measures the code of another checkout (e.g. an export
of main) against the same database, for a before/after in the same minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="flywheel_scale1m")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--serial", action="store_true")
    parser.add_argument("--src", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument(
        "--after-label",
        action="store_true",
        help="also time pages that find only the selected items cached (what a new label leaves)",
    )
    args = parser.parse_args()
    src = str(Path(args.src).resolve())
    sys.path.insert(0, src + "/bench")
    sys.path.insert(0, src)
    os.chdir(src)
    os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")
    import _bench_db

    _bench_db.setup(args.db, keep=True)
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]  # the test client's host; this process serves nobody
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
        if args.serial:
            cur.execute("SET max_parallel_workers_per_gather = 0")
    tick = os.sysconf("SC_CLK_TCK")

    def pg_cpu() -> float:
        with open(f"/proc/{backend}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    url = "/p/scale/dashboard/"
    cache.clear()
    client.get(url)  # imports and first-query plans out of the way

    def after_label() -> None:
        """Drop what a new label makes stale (its key changes): the statistics and the labels
        of the selected items; keep the selected items themselves (keyed by the finished runs)."""
        store = getattr(cache, "_cache", {})  # LocMemCache (the bench settings)
        for key in list(store):
            if ":dashboard:" in key or ":selected-labels:" in key:
                cache.delete(key.split(":", 2)[2])

    for _ in range(args.repeat):
        cache.clear()
        wall, cpu, pg = time.perf_counter(), time.process_time(), pg_cpu()
        response = client.get(url)
        assert response.status_code == 200, response.status_code
        print(
            f"cold page: wall {time.perf_counter() - wall:.2f} s, python cpu "
            f"{time.process_time() - cpu:.2f} s, postgres backend cpu {pg_cpu() - pg:.2f} s, "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    for _ in range(args.repeat if args.after_label else 0):
        after_label()
        wall, cpu, pg = time.perf_counter(), time.process_time(), pg_cpu()
        client.get(url)
        print(
            f"after a new label: wall {time.perf_counter() - wall:.2f} s, python cpu "
            f"{time.process_time() - cpu:.2f} s, postgres backend cpu {pg_cpu() - pg:.2f} s",
            flush=True,
        )
    wall = time.perf_counter()
    client.get(url)
    print(f"warm page: wall {time.perf_counter() - wall:.2f} s")


if __name__ == "__main__":
    main()
