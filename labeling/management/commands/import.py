"""``manage.py import FILE --project SLUG --format FORMAT``: other tools' logs as interactions.

Formats: openai-chat, openai-batch (with ``--requests INPUT.jsonl``), langfuse, langsmith
(:mod:`labeling.services.importers`). The file is streamed (``.gz`` detected; ``-`` reads stdin)
with a progress bar; errors name their line, as ``manage.py ingest`` does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.errors import Invalid
from labeling.management.commands.ingest import _chunks, open_input, shell_limits
from labeling.models import Project
from labeling.services.importers import FORMATS, records_import
from labeling.services.ingest import BadBody, BodyTooLarge


class RequestIndex:
    """custom_id -> the request body of a batch input file, read from disk when asked (only the
    offsets are kept in memory, so a large input file is not loaded)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offsets: dict[str, int] = {}
        with path.open("rb") as handle:
            offset = 0
            for line in handle:
                if b'"custom_id"' in line:
                    try:
                        custom_id = orjson.loads(line).get("custom_id")
                    except (orjson.JSONDecodeError, AttributeError):
                        custom_id = None
                    if isinstance(custom_id, str):
                        self.offsets[custom_id] = offset
                offset += len(line)
        self.handle = path.open("rb")

    def __call__(self, custom_id: str) -> Any:
        offset = self.offsets.get(custom_id)
        if offset is None:
            return None
        self.handle.seek(offset)
        return orjson.loads(self.handle.readline()).get("body")

    def close(self) -> None:
        self.handle.close()


class Command(BaseCommand):
    help = "Import OpenAI, Langfuse or LangSmith logs (JSONL; .gz allowed; '-' reads stdin)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="JSONL file, optionally gzip-compressed; - for stdin")
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--format", required=True, choices=sorted(FORMATS), dest="fmt")
        parser.add_argument(
            "--requests", help="openai-batch: the batch input file (to join prompts by custom_id)"
        )
        parser.add_argument(
            "--max-errors", type=int, default=50, help="rejected lines to print (default 50)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r}.")
        index = None
        if options["requests"]:
            requests_path = Path(options["requests"])
            if not requests_path.is_file():
                raise CommandError(f"No such file: {requests_path}")
            index = RequestIndex(requests_path)
        handle, size, gzipped = open_input(options["file"])
        try:
            with tqdm(
                total=size, unit="B", unit_scale=True, desc=project.slug, file=sys.stderr
            ) as bar:
                result = records_import(
                    project=project,
                    fmt=options["fmt"],
                    chunks=_chunks(handle, bar),
                    gzipped=gzipped,
                    limits=shell_limits(),
                    requests=index,
                )
        except (BodyTooLarge, BadBody) as exc:
            raise CommandError(str(exc)) from exc
        except Invalid as exc:
            raise CommandError(exc.text()) from exc
        finally:
            if handle is not sys.stdin.buffer:
                handle.close()
            if index is not None:
                index.close()
        counts = result.ingest
        self.stdout.write(
            f"created {counts.created}, duplicates {counts.duplicates}, "
            f"rejected {counts.rejected}, skipped {result.skipped}"
        )
        for error in counts.errors[: options["max_errors"]]:
            self.stdout.write(f"  line {error['line']}: {error['errors']}")
        if counts.rejected > options["max_errors"]:
            self.stdout.write(
                f"  ... {counts.rejected - options['max_errors']} more rejected lines"
            )
