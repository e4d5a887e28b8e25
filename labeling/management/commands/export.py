"""``manage.py export --project SLUG --kind KIND --out FILE``: write an export in-process.

Runs the same services as the API (``export_create`` + ``export_run``), so the file, its manifest
(``FILE`` without ``.jsonl[.gz]`` + ``.manifest.json``) and the Export row are the same; only the
destination differs. Filters and options are ``key=value`` pairs whose values are parsed as JSON
when they can be (``--filter model_versions='["m1","m2"]'``, ``--filter min_agreement=0.7``,
``--filter labels='{"quality": {"gte": 4}}'``, ``--option validation_fraction=0.1``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from labeling.errors import Invalid
from labeling.models import Export, Project
from labeling.nul import NUL_MESSAGE, nul_path
from labeling.selectors.exports import ExportScan
from labeling.services.export_kinds import export_kinds
from labeling.services.exports import (
    export_create,
    export_run,
    manifest_path_for,
    parquet_path_for,
)


def parse_pairs(pairs: list[str], what: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (JSON values where they parse)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--{what} {pair!r}: write key=value")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
        if (where := nul_path(out[key], f"{what}.{key}")) is not None:
            raise CommandError(f"--{what} {where} {NUL_MESSAGE}")
    return out


class Command(BaseCommand):
    help = "Write a versioned JSONL export (sft, preference, classification, eval) to a file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--kind", required=True, help="export kind, e.g. sft")
        parser.add_argument("--out", required=True, help="destination file (.jsonl or .jsonl.gz)")
        parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--gzip", action="store_true", help="gzip the file")
        parser.add_argument("--user", help="record this username as the creator")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            project = Project.objects.get(slug=opts["project"])
        except Project.DoesNotExist:
            raise CommandError(f"--project: no project {opts['project']!r}") from None
        if opts["kind"] not in export_kinds():
            raise CommandError(f"--kind: unknown kind; known: {export_kinds()}")
        filters = parse_pairs(opts["filter"], "filter")
        options = parse_pairs(opts["option"], "option")
        out = Path(opts["out"]).expanduser().resolve()
        if opts["gzip"] or out.name.endswith(".gz"):
            options["gzip"] = True
        user = None
        if opts["user"]:
            user = get_user_model().objects.filter(username=opts["user"]).first()
            if user is None:
                raise CommandError(f"--user: no user {opts['user']!r}")
        try:
            export = export_create(
                project=project,
                kind=opts["kind"],
                filters=filters,
                options=options,
                created_by=user,
                enqueue=False,
            )
        except Invalid as exc:
            raise CommandError(f"invalid export: {json.dumps(exc.errors)}") from None

        bar = tqdm(
            total=100,
            unit="%",
            desc=f"export #{export.id} {export.kind}",
            disable=opts["no_progress"],
            file=self.stderr._out,
        )

        def progress(current: Export, scan: ExportScan, rows: int) -> None:
            bar.n = round(current.progress * 100)
            bar.set_postfix_str(f"rows={rows:,} scanned={scan.done:,}/{scan.total:,}")
            bar.refresh()

        done = export_run(export_id=export.id, out_path=out, progress=progress)
        bar.close()
        if done is None or done.status != Export.Status.DONE:
            raise CommandError(f"export #{export.id} failed: {done.error if done else 'missing'}")
        self.stdout.write(
            f"export #{done.id}: {done.rows} rows, {done.bytes} bytes, sha256 {done.sha256}\n"
            f"  data:     {done.file_path}\n"
            f"  parquet:  {parquet_path_for(Path(done.file_path))}\n"
            f"  manifest: {manifest_path_for(Path(done.file_path))}"
        )
