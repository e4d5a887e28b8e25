"""Browser benchmark: how long after the annotator's keypress the next item is on screen, in real
Chromium, while 15 other annotators label through the API (issue 14: <= 150 ms p95 at 16).

    .venv/bin/python bench/browser_next_item.py [--items 20000] [--items-labelled 60] [--write]

Reuses bench/queue_latency.py: a fresh ``test_flywheel_queue_bench`` PostgreSQL database built
from the models (never point it at a real one), gunicorn with the production settings (DEBUG off,
static files collected, WhiteNoise), 15 API annotators pacing 1-3 s per item. One Chromium
annotator logs in and labels with the keyboard ("3" then Enter); the page itself records, with
``performance.now()``, the time from the Enter keydown to the moment the next item's id is on
``#item`` (the item rendered), so Playwright's own round trips are not counted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import queue_latency as ql

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

# Installed in the page before its scripts run: Enter keydown -> next item rendered.
PROBE = """
window.__nextMs = [];
document.addEventListener("keydown", function (ev) {
  if (ev.key === "Enter") window.__enterAt = performance.now();
}, true);
new MutationObserver(function (records) {
  records.forEach(function (r) {
    if (r.attributeName === "data-assignment" && window.__enterAt !== undefined) {
      window.__nextMs.push(performance.now() - window.__enterAt);
      window.__enterAt = undefined;
    }
  });
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-assignment"] });
"""


def collectstatic(db_name: str) -> None:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "flywheel_site.settings",
            "DATABASE_URL": f"{ql.PG}/{db_name}",
            "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
    )
    subprocess.run(
        [str(ql.ROOT / ".venv" / "bin" / "python"), "manage.py", "collectstatic", "--noinput"],
        cwd=ql.ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def browser_annotator(port: int, labels: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.add_init_script(PROBE)
        page.goto(f"{base}/login/")
        page.fill("#id_username", "annotator0")
        page.fill("#id_password", "x" * 12)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/")
        page.goto(f"{base}/p/bench/label/")
        page.wait_for_selector("#item[data-assignment]")
        for n in range(labels):
            before = page.get_attribute("#item", "data-assignment")
            page.keyboard.press("3")
            page.keyboard.press("Enter")
            page.wait_for_function(
                "(id) => document.getElementById('item').dataset.assignment !== id", arg=before
            )
            page.wait_for_timeout(300 + (n % 5) * 100)  # a (very fast) reader
        timings = page.evaluate("window.__nextMs")
        browser.close()
    return [float(t) for t in timings]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--labels", type=int, default=60, help="items the browser labels")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    ql.setup_django()
    from django.db import connection

    db_name = connection.settings_dict["NAME"]
    tokens = ql.build(args.items, 16)
    # The test settings hash passwords with a fast hasher production does not accept: give the
    # browser's annotator a password the served (production) settings can check.
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    hasher = PBKDF2PasswordHasher()
    get_user_model().objects.filter(username="annotator0").update(
        password=hasher.encode("x" * 12, hasher.salt())
    )
    collectstatic(db_name)
    # Plain http on loopback: the session and CSRF cookies may not be "Secure" or the browser
    # never sends them back (production settings otherwise; nothing else differs).
    server = ql.start_gunicorn(
        args.port,
        args.workers,
        args.threads,
        db_name,
        extra_env={"SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0"},
    )
    try:
        import threading

        api_result: dict = {}
        seconds = 8 + args.labels * 0.9
        api = threading.Thread(
            target=lambda: api_result.update(
                ql.run(args.port, tokens[1:], 15, seconds, warmup=2, think=(1.0, 3.0))
            ),
            daemon=True,
        )
        api.start()
        time.sleep(2)
        timings = browser_annotator(args.port, args.labels)
        api.join(seconds + 60)
    finally:
        server.terminate()
        server.wait(30)
        ql.flush_redis()
    warm = timings[3:]  # the first items warm the page and the workers up
    check = ql.integrity()
    connection.creation.destroy_test_db(db_name, verbosity=0)
    load_after = os.getloadavg()[0]
    line = (
        f"| 1 browser + 15 API (think 1-3 s) | {len(warm)} | {ql.percentile(warm, 0.5):.0f} | "
        f"{ql.percentile(warm, 0.95):.0f} | {ql.percentile(warm, 0.99):.0f} | "
        f"{api_result.get('next_p95', float('nan')):.0f} | {check['over_overlap']} | "
        f"{check['duplicate_pairs']} |"
    )
    print(line)
    print(f"load average {load_before:.1f} before, {load_after:.1f} after; API errors "
          f"{api_result.get('error_count')}")  # fmt: skip
    if args.write:
        write(line, args, load_before, load_after)


HEADER = (
    "| annotators | items timed | browser p50 ms | browser p95 ms | browser p99 ms "
    "| API next p95 ms | over overlap | duplicate pairs |\n|---|---|---|---|---|---|---|---|"
)


def write(line: str, args: argparse.Namespace, load_before: float, load_after: float) -> None:
    results = ql.ROOT / "bench" / "RESULTS.md"
    text = results.read_text()
    section = f"""
## Labelling page: next item in the browser

Time from the Enter keypress to the next item rendered on the labelling page, measured inside
headless Chromium with `performance.now()` (a keydown listener and a MutationObserver on
`#item[data-assignment]`), while 15 other annotators label through the API at 1-3 s per item;
gunicorn ({args.workers} workers x {args.threads} threads, production settings, DEBUG off) on
PostgreSQL, a {args.items:,}-item queue. The browser labels {args.labels} items ("3", Enter, then
0.3-0.7 s); the first 3 are warm-up. Measured {dt.date.today()} on {platform.node()} (2 cores,
Python {platform.python_version()}), a machine shared with other helpers' jobs: 1-minute load
average {load_before:.1f} before and {load_after:.1f} after. Target: p95 <= 150 ms.

{HEADER}
{line}

Command: `.venv/bin/python bench/browser_next_item.py --items {args.items} --labels {args.labels}
--write` (PostgreSQL at `BENCH_PG`, Redis at `BENCH_REDIS`, as bench/queue_latency.py; Chromium at
`CHROMIUM_PATH`, default /usr/bin/chromium).
"""
    results.write_text(text.rstrip("\n") + "\n" + section)


if __name__ == "__main__":
    main()
