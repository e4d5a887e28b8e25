"""``manage.py load_demo``: build the demo project and users (idempotent)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from labeling.demo import DEMO_USERS, demo_load


class Command(BaseCommand):
    help = "Load the demo project (HH-RLHF harmless conversations with simulated signals)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--limit", type=int, default=None, help="Only the first N conversations (tests)."
        )

    def handle(self, *args: Any, limit: int | None = None, **options: Any) -> None:
        started = time.perf_counter()
        result = demo_load(limit=limit)
        ingest = result.ingest
        took = time.perf_counter() - started
        project = result.project
        self.stdout.write(
            f"Demo project '{project.slug}' "
            f"({'created' if result.project_created else 'already there'}): "
            f"{ingest.created} interactions created, {ingest.duplicates} already present, "
            f"{ingest.rejected} rejected, {ingest.events_created} events, in {took:.1f}s."
        )
        for error in ingest.errors[:10]:
            self.stderr.write(f"  rejected line {error.get('line')}: {error['errors']}")
        self.stdout.write("Demo logins (change these passwords on anything but a laptop):")
        for username, role, password in DEMO_USERS:
            label = "superuser" if role is None else role
            note = "" if username in result.users_created else " (existing user, unchanged)"
            self.stdout.write(f"  {username:<11} {password:<16} {label}{note}")
