"""The NUL character: JSON may carry it (as ``\\u0000``), PostgreSQL cannot store it.

PostgreSQL refuses it in ``text`` ("invalid byte sequence") and in ``jsonb`` ("unsupported Unicode
escape sequence"), so a value holding it would fail on save with a database error, and take the
rest of its batch with it. Every way in refuses it first, as a field error that names the place:
ingestion per field (:mod:`labeling.services.ingest.validation`, :mod:`labeling.services.events`),
the API's JSON bodies in their parser (:mod:`labeling.api.parsers`). The web forms' text fields
refuse it already (Django's ``ProhibitNullCharactersValidator``).
"""

from __future__ import annotations

from typing import Any

NUL = "\x00"
NUL_MESSAGE = "contains the NUL character (\\u0000), which cannot be stored"
NUL_ESCAPE = b"\\u0000"  # how JSON text carries it: a quick test before the exact walk


def nul_path(value: Any, path: str = "") -> str | None:
    """Where a parsed JSON value holds the NUL character (in a string or a key), as a field path
    (``note``, ``items[2].name``, ``""`` for a top-level string); None when it holds none.

    Iterative (no recursion limit), depth first.
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if type(node) is str:
            if NUL in node:
                return where
        elif isinstance(node, dict):
            for key, child in node.items():
                shown = str(key).replace(NUL, "\\u0000")
                name = f"{where}.{shown}" if where else shown
                if type(key) is str and NUL in key:
                    return name
                stack.append((child, name))
        elif isinstance(node, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(node))
    return None
