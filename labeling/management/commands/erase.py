"""``manage.py erase FILE --project SLUG``: forget interactions by external id (one per line; ``-``
reads stdin), as ``POST /api/projects/{slug}/interactions/erase/`` does, in calls of 10,000."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from labeling.errors import Invalid
from labeling.models import Project
from labeling.services.erasure import MAX_IDS, interactions_erase


class Command(BaseCommand):
    help = "Erase interactions (with their labels, events and sampling records) by external id."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="external ids, one per line; - for stdin")
        parser.add_argument("--project", required=True, help="project slug")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r}.")
        path = options["file"]
        if path == "-":
            text = sys.stdin.read()
        elif Path(path).is_file():
            text = Path(path).read_text(encoding="utf-8")
        else:
            raise CommandError(f"No such file: {path}")
        ids = [line.strip() for line in text.splitlines() if line.strip()]
        if not ids:
            raise CommandError("No external ids in the input.")
        totals = {"erased": 0, "labels_erased": 0, "events_erased": 0}
        not_found: list[str] = []
        for start in range(0, len(ids), MAX_IDS):
            try:
                result = interactions_erase(
                    project=project, external_ids=ids[start : start + MAX_IDS], actor=None
                )
            except Invalid as exc:  # a bad id: name its line
                errors = {
                    (f"line {start + int(k.split('[')[1].rstrip(']')) + 1}" if "[" in k else k): v
                    for k, v in exc.errors.items()
                }
                raise CommandError("; ".join(f"{k}: {v}" for k, v in errors.items())) from exc
            for key in totals:
                totals[key] += result.as_dict()[key]
            not_found += result.not_found
        self.stdout.write(
            f"{project.slug}: erased {totals['erased']} interactions "
            f"({totals['labels_erased']} labels), {totals['events_erased']} events of ids that "
            f"never arrived; {len(not_found)} ids not found"
        )
        for external_id in not_found[:20]:
            self.stdout.write(f"  not found: {external_id}")
