"""URL parameters shared by the labeling API modules: the project slug pattern and numeric ids."""

from __future__ import annotations

from django.http import Http404

SLUG = r"(?P<slug>[-a-zA-Z0-9_]+)"


def url_id(raw: str) -> int:
    """A URL id; one beyond the database's integer range cannot exist (404, not a 500)."""
    value = int(raw)
    if value > 2**63 - 1:
        raise Http404("Not found.")
    return value
