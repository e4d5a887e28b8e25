"""Settings for ``bench/judges.py kill``: production settings (Redis broker and cache from
``REDIS_URL``, PostgreSQL from ``DATABASE_URL``) with a 10 s judge lease, so the restarted worker
takes over the killed worker's batch within the benchmark. Never use them for anything else."""

import os

os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from flywheel_site.settings import *  # noqa: F403
from flywheel_site.settings import FLYWHEEL

FLYWHEEL = {**FLYWHEEL, "JUDGES": {"LEASE_S": 10, "BACKOFF_BASE_S": 0.05}}  # type: ignore[dict-item]
