"""Run a script in a separate process on the test database and SIGKILL it at a chosen point.

The script prints ``PAUSED`` (and then blocks reading stdin) where the kill should land; the helper
waits for that line and kills the process, as a worker dying mid-task would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def kill_at_pause(script: str, *args: str, env: dict[str, str] | None = None) -> None:
    """Run ``python -c script *args`` against the current PostgreSQL test database; SIGKILL it
    as soon as it prints ``PAUSED``."""
    db = connection.settings_dict
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flywheel_site.test_settings",
        "DATABASE_URL": (
            f"postgres://{quote(db['USER'] or '')}:{quote(db['PASSWORD'] or '')}"
            f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        **(env or {}),
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=full_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "PAUSED"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
