"""The API's JSON body parser: DRF's, refusing what the database cannot store (the NUL character).

Set as the first of ``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``. The ingestion endpoints read
their bodies themselves (:mod:`labeling.api.ingest`) and check each field as they validate rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import exceptions, parsers

from labeling.nul import NUL_MESSAGE, nul_path


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a NUL anywhere in the body is a 400 naming its place, e.g.
    ``{"errors": {"values.correction": ["contains the NUL character ..."]}}``, instead of a
    database error when the value is saved."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        data = super().parse(stream, media_type, parser_context)
        where = nul_path(data)
        if where is not None:
            place = where or "body"
            raise exceptions.ValidationError(
                {
                    "detail": f"{place} {NUL_MESSAGE}: remove it and send again.",
                    place: [NUL_MESSAGE],
                }
            )
        return data
