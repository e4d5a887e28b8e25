"""Settings for the test suite: the production settings plus what tests need.

DATABASE_URL and REDIS_URL still come from the environment, so the same suite runs on SQLite (fresh
machine) and on PostgreSQL + Redis (CI). Tasks run eagerly unless a test starts a real worker.
"""

import os

os.environ.setdefault("FLYWHEEL_TESTING", "1")
os.environ.setdefault(
    "FLYWHEEL_VAR_DIR", os.path.join(os.path.dirname(__file__), "..", "var", "test")
)

# Webhook receivers in the tests listen on loopback; tests/test_webhooks.py switches this off to
# check that production refuses internal addresses.
os.environ.setdefault("FLYWHEEL_WEBHOOK_ALLOW_PRIVATE", "1")

from .settings import *  # noqa: F403

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
