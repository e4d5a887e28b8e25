"""``manage.py ingest FILE.jsonl --project SLUG``: the bulk endpoint's rules from the shell."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.limits import Limits, current_limits
from labeling.models import Project
from labeling.services.ingest import BadBody, BodyTooLarge, interactions_ingest_jsonl

CHUNK = 1 << 20


def _chunks(handle: BinaryIO, bar: tqdm) -> Iterator[bytes]:
    while True:
        data = handle.read(CHUNK)
        if not data:
            return
        bar.update(len(data))
        yield data


def open_input(path: str) -> tuple[BinaryIO, int | None, bool]:
    """``(handle, size in bytes or None for stdin, gzipped)`` for a file path or ``-``."""
    if path == "-":
        handle: BinaryIO = sys.stdin.buffer
        size = None
    else:
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"No such file: {path}")
        handle = file.open("rb")
        size = file.stat().st_size
    head = handle.peek(2)[:2] if hasattr(handle, "peek") else b""
    return handle, size, head == b"\x1f\x8b" or path.endswith(".gz")


def shell_limits() -> Limits:
    """The shell has no request size limit: only the per-row and per-field limits apply."""
    base = current_limits()
    return Limits(
        max_request_bytes=sys.maxsize,
        max_decompressed_bytes=sys.maxsize,
        max_row_bytes=base.max_row_bytes,
        max_field_chars=base.max_field_chars,
        max_rows_per_request=sys.maxsize,
    )


class Command(BaseCommand):
    help = "Ingest interactions from a JSONL file (.gz allowed; '-' reads stdin)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="JSONL file, optionally gzip-compressed; - for stdin")
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument(
            "--max-errors", type=int, default=50, help="rejected lines to print (default 50)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r}.")
        handle, size, gzipped = open_input(options["file"])
        limits = shell_limits()
        try:
            with tqdm(
                total=size, unit="B", unit_scale=True, desc=project.slug, file=sys.stderr
            ) as bar:
                result = interactions_ingest_jsonl(
                    project=project, chunks=_chunks(handle, bar), gzipped=gzipped, limits=limits
                )
        except (BodyTooLarge, BadBody) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if handle is not sys.stdin.buffer:
                handle.close()
        self.stdout.write(
            f"created {result.created}, duplicates {result.duplicates}, "
            f"rejected {result.rejected}, events {result.events_created}"
        )
        for error in result.errors[: options["max_errors"]]:
            self.stdout.write(f"  line {error['line']}: {error['errors']}")
        if result.rejected > options["max_errors"]:
            self.stdout.write(
                f"  ... {result.rejected - options['max_errors']} more rejected lines"
            )
