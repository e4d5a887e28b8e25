"""Registry of export kinds.

Training kinds are registered by labeling.services.exports; the
``eval`` kind by sampling.evalset (labeling never imports sampling).

A kind provides ``rows(export) -> Iterator[dict]`` (each dict one JSONL line, in a deterministic
order) and optionally ``manifest(export) -> dict`` (extra manifest entries, e.g. the sampling
design).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from labeling.models import Export


@dataclass(frozen=True)
class ExportKind:
    name: str
    rows: Callable[[Export], Iterator[dict[str, Any]]]
    manifest: Callable[[Export], dict[str, Any]] | None = None
    training: bool = True  # training kinds never include eval-only holdout items


_kinds: dict[str, ExportKind] = {}


def export_kind_register(kind: ExportKind) -> None:
    _kinds[kind.name] = kind


def export_kind_get(name: str) -> ExportKind:
    try:
        return _kinds[name]
    except KeyError:
        raise LookupError(f"Unknown export kind {name!r}; known: {sorted(_kinds)}") from None


def export_kinds() -> list[str]:
    return sorted(_kinds)
