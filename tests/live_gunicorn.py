"""A real Flywheel server in its own process (gunicorn on loopback, its own SQLite file) that a
test can SIGKILL and start again on the same port, as a crashed or redeployed server would be.

The test process reads the server's database file directly (``count``) to check what arrived.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SETUP = """
from labeling.auth import generate_key, hash_key
from labeling.models import IngestToken
from tests.factories import ProjectFactory
project = ProjectFactory(slug="sdk-live", name="SDK live")
key = generate_key()
IngestToken.objects.create(project=project, name="sdk", prefix=key[:12], key_hash=hash_key(key))
print("KEY", key)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GunicornServer:
    """``setup()`` migrates a fresh database and makes project ``sdk-live`` with an ingestion
    key (``self.key``); ``start()`` / ``kill()`` run and SIGKILL the server."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.workdir = workdir
        self.db = workdir / "flywheel.sqlite3"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("REDIS_URL", "CELERY_BROKER_URL")  # tasks run in-process
        }
        self.env.update(
            DATABASE_URL=f"sqlite:///{self.db}",
            DJANGO_SETTINGS_MODULE="flywheel_site.test_settings",
            FLYWHEEL_VAR_DIR=str(workdir),
            INGEST_RATE_LIMIT="1000000/min",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PYTHONPATH=str(ROOT),
        )

    def setup(self) -> None:
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run(
            [*manage, "migrate", "--noinput"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        out = subprocess.run(
            [*manage, "shell", "-c", SETUP],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        self.key = next(line.split()[1] for line in out.splitlines() if line.startswith("KEY "))

    def start(self, *, timeout: float = 60.0) -> None:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                "flywheel_site.wsgi",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                "1",
                "--threads",
                "4",
                "--graceful-timeout",
                "1",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,  # its own process group: kill() takes arbiter and worker
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not listen on {self.port} within {timeout}s")

    def kill(self) -> None:
        """SIGKILL the whole server (arbiter and worker): no graceful shutdown."""
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
            self.process = None

    def count(self) -> tuple[int, int]:
        """(rows, distinct external ids) in the server's database."""
        with sqlite3.connect(self.db, timeout=30) as conn:
            rows, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT external_id) FROM labeling_interaction"
            ).fetchone()
        return int(rows), int(distinct)
