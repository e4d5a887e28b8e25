"""Registry of export kinds.

Training kinds are registered by labeling.services.exports; the
``eval`` kind by sampling.evalset (labeling never imports sampling).

A kind provides ``rows(export) -> Iterator[dict]`` (each dict one JSONL line, in a deterministic
order) and optionally ``manifest(export) -> dict`` (extra manifest entries, e.g. the sampling
design).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from labeling.models import Export


@dataclass(frozen=True)
class ExportKind:
    name: str
    rows: Callable[[Export], Iterator[dict[str, Any]]]
    manifest: Callable[[Export], dict[str, Any]] | None = None
    training: bool = True  # training kinds never include eval-only holdout items
    # Filters this kind refuses, with the reason given to the caller (e.g. eval sets cannot drop
    # rows by their labels: the design fields would no longer describe the rows).
    refused_filters: Mapping[str, str] = field(default_factory=dict)
    # Filters this kind always sets (validated input cannot change them).
    fixed_filters: Mapping[str, Any] = field(default_factory=dict)


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
