"""Settings come from the environment, with safe defaults and no side effects on import.

Each case imports ``flywheel_site.settings`` in a fresh interpreter with a controlled environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json
import flywheel_site.settings as s
print(json.dumps({
    "engine": s.DATABASES["default"]["ENGINE"],
    "name": str(s.DATABASES["default"]["NAME"]),
    "eager": s.CELERY_TASK_ALWAYS_EAGER,
    "broker": s.CELERY_BROKER_URL,
    "debug": s.DEBUG,
    "hosts": s.ALLOWED_HOSTS,
    "ssl_redirect": s.SECURE_SSL_REDIRECT,
    "secure_cookies": s.SESSION_COOKIE_SECURE and s.CSRF_COOKIE_SECURE,
}))
"""


def run_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "FLYWHEEL"))}
    for key in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG"):
        clean.pop(key, None)
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_defaults_are_sqlite_under_var_and_eager_celery(tmp_path: Path) -> None:
    var = tmp_path / "var-not-created"
    done = run_settings({"DEBUG": "1", "FLYWHEEL_VAR_DIR": str(var)})
    assert done.returncode == 0, done.stderr
    values = json.loads(done.stdout)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(var / "flywheel.sqlite3")
    assert values["eager"] is True
    assert values["broker"] == ""
    # No side effects on import: not even the var/ directory is created.
    assert not var.exists()


def test_default_var_dir_is_in_the_checkout() -> None:
    done = run_settings({"DEBUG": "1"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == str(ROOT / "var" / "flywheel.sqlite3")


def test_services_from_the_environment() -> None:
    done = run_settings(
        {
            "DEBUG": "1",
            "DATABASE_URL": "postgres://u:p@db.example:5432/fly",
            "REDIS_URL": "redis://cache.example:6379/3",
        }
    )
    assert done.returncode == 0, done.stderr
    values = json.loads(done.stdout)
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["name"] == "fly"
    assert values["eager"] is False
    assert values["broker"] == "redis://cache.example:6379/3"


def test_secret_key_is_required_when_debug_is_off() -> None:
    done = run_settings({})
    assert done.returncode != 0
    assert "SECRET_KEY must be set" in done.stderr


def test_production_defaults_are_strict() -> None:
    done = run_settings({"SECRET_KEY": "x" * 50})
    assert done.returncode == 0, done.stderr
    values = json.loads(done.stdout)
    assert values["debug"] is False
    assert values["hosts"] == []
    assert values["ssl_redirect"] is True
    assert values["secure_cookies"] is True


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_debug_off_spellings(value: str) -> None:
    done = run_settings({"DEBUG": value, "SECRET_KEY": "k" * 50})
    assert json.loads(done.stdout)["debug"] is False
