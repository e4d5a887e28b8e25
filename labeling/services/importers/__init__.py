"""Import other tools' logs as interactions: ``manage.py import`` and ``POST .../import``.

Formats (a registry: name → a function from one decoded JSONL record to interaction objects):

- ``openai-chat``: chat-completions request/response logs (:mod:`.openai`);
- ``openai-batch``: Batch API output JSONL, joined with the batch input file (:mod:`.openai`);
- ``langfuse``: a Langfuse traces (or observations) export (:mod:`.langfuse`);
- ``langsmith``: a LangSmith runs export (:mod:`.langsmith`).

Every format goes through the ingestion pipeline
(:func:`labeling.services.ingest.interactions_ingest`): the body is streamed line by line, rows
are validated and stored in batches, a line that cannot become an interaction is reported by its
1-based line number with the field errors, and the ``external_id`` comes from the source's own
id, so importing the same file again stores nothing new. Records that are not LLM calls (a
LangSmith chain run, a Langfuse span) are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from labeling.errors import Invalid
from labeling.limits import Limits, current_limits
from labeling.models import Project
from labeling.services.importers import langfuse, langsmith, openai
from labeling.services.importers.common import Context, Converted
from labeling.services.ingest import (
    IngestResult,
    ParseError,
    decompressed_chunks,
    interactions_ingest,
    jsonl_items,
)

FORMATS: dict[str, Callable[[Any, Context], Converted]] = {
    "openai-chat": openai.chat_record,
    "openai-batch": openai.batch_record,
    "langfuse": langfuse.record,
    "langsmith": langsmith.record,
}


@dataclass
class ImportResult:
    """The ingestion counts plus ``skipped`` (records that are not LLM calls, or batch inputs)."""

    ingest: IngestResult
    skipped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.ingest.as_dict(), "skipped": self.skipped}


def import_format(name: str) -> Callable[[Any, Context], Converted]:
    try:
        return FORMATS[name]
    except KeyError:
        raise Invalid({"format": f"must be one of {', '.join(FORMATS)}"}) from None


def records_import(
    *,
    project: Project,
    fmt: str,
    chunks: Iterable[bytes],
    gzipped: bool = False,
    limits: Limits | None = None,
    requests: Callable[[str], Any] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import a JSONL stream of ``fmt`` records into ``project``.

    ``requests`` (openai-batch): finds a batch input line's request body by ``custom_id`` (the
    command line indexes the input file); without it, input lines must come first in the stream.
    """
    convert = import_format(fmt)
    limits = limits or current_limits()
    stream = decompressed_chunks(chunks, limits=limits) if gzipped else chunks
    context = Context(segment_keys=[str(k) for k in project.segment_keys or []], lookup=requests)
    skipped = 0

    def items() -> Iterator[tuple[int, Any]]:
        nonlocal skipped
        for line, obj in jsonl_items(stream, limits=limits):
            if type(obj) is ParseError:
                yield line, obj
                continue
            try:
                converted = convert(obj, context)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                converted = ParseError(
                    {"line": f"not a {fmt} record ({type(exc).__name__}: {exc})"}
                )
            if converted is None:
                skipped += 1
            elif isinstance(converted, list):
                for row in converted:
                    yield line, row
            else:
                yield line, converted

    result = interactions_ingest(
        project=project, items=items(), loc_key="line", limits=limits, on_progress=on_progress
    )
    return ImportResult(ingest=result, skipped=skipped)
