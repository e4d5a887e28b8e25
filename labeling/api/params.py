"""URL parameters shared by the labeling API modules (routes are in ``labeling/api/urls.py``)."""

from __future__ import annotations

from django.http import Http404


def url_id(value: int) -> int:
    """A URL id (``<int:...>``); one beyond the database's integer range cannot exist (404, not a
    500)."""
    if value > 2**63 - 1:
        raise Http404("Not found.")
    return value
