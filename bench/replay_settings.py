"""Settings for the replay simulator's server: production settings on a fresh SQLite file.

Only for ``bench/replay.py e2e``: plain HTTP on 127.0.0.1, Celery eager (no broker), and the
project's apps created with ``migrate --run-syncdb`` (the repository ships no migration files
during development). Never use these settings for anything else.
"""

import os
from pathlib import Path

_DB = Path(os.environ["REPLAY_DB"])
os.environ.setdefault("SECRET_KEY", "replay-bench-only-not-a-secret")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("FLYWHEEL_VAR_DIR", str(_DB.parent / "var"))
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("INGEST_RATE_LIMIT", "1000000/min")
os.environ["DATABASE_URL"] = f"sqlite:///{_DB}"

from flywheel_site.settings import *  # noqa: E402,F403

MIGRATION_MODULES = {"labeling": None, "sampling": None, "judges": None}
