"""How fast the dashboard answers on the demo project, cold (empty cache) and warm.

    FLYWHEEL_VAR_DIR=/tmp/fw-demo .venv/bin/python bench/dashboard_demo.py [--repeat 5]

Uses the SQLite database under ``FLYWHEEL_VAR_DIR`` (migrated, and loaded with ``load_demo`` when
the demo project is missing: the first run takes a few minutes). Each repetition clears the cache,
then times over the Django test client, signed in as the demo admin: the page (statistics,
sentences, tables: what the browser shows first), every plot the page then fetches
(``/dashboard/plots/<section>/<name>.svg``, one after another; a browser fetches them in
parallel), and the page again (warm). Prints the medians, in wall-clock seconds and the CPU
seconds of this process (the machine is shared: wall time grows with its load).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from html import unescape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flywheel_site.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client

    from labeling.models import Project

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    if not Project.objects.filter(slug="support-bot").exists():
        call_command("load_demo")
    client = Client()
    assert client.login(username="manager", password="manager-demo")
    url = "/p/support-bot/dashboard/"
    rows: dict[str, list[float]] = {k: [] for k in ("page", "page_cpu", "plots", "warm")}
    n_plots = 0
    for _ in range(args.repeat):
        cache.clear()
        t, c = time.perf_counter(), time.process_time()
        response = client.get(url)
        rows["page"].append(time.perf_counter() - t)
        rows["page_cpu"].append(time.process_time() - c)
        assert response.status_code == 200
        html = response.content.decode()
        sources = [unescape(s) for s in re.findall(r'data-plot-src="([^"]+)"', html)]
        n_plots = len(sources)
        t = time.perf_counter()
        for src in sources:
            assert client.get(src).status_code in (200, 204)
        rows["plots"].append(time.perf_counter() - t)
        t = time.perf_counter()
        client.get(url)
        rows["warm"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(
        f"demo dashboard, median of {args.repeat}: cold page {med['page']:.2f} s "
        f"({med['page_cpu']:.2f} s CPU), then {n_plots} plots {med['plots']:.2f} s in sequence, "
        f"warm page {med['warm']:.2f} s; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
