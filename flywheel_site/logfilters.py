"""Logging filters: a refused request is routine, not an error worth a traceback."""

from __future__ import annotations

import logging


class ForbiddenWithoutTraceback(logging.Filter):
    """Keep the one-line "Forbidden: /path" warning Django logs for a 403, without the traceback
    of the PermissionDenied that caused it (every refused page used to log a full stack)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True
