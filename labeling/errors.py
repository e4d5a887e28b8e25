"""Domain errors: what services, selectors, ``labeling.schema`` and ``labeling.access`` raise.

They know nothing of HTTP, Django views or DRF. Each entry point maps them once:

- the API: :func:`labeling.api.errors.exception_handler` (DRF's ``EXCEPTION_HANDLER``) turns
  :class:`Invalid` into 400 ``{"detail": "Invalid input.", "errors": {...}}``, :class:`NotFound`
  into 404, :class:`Forbidden` into 403 and :class:`Conflict` into 409, each
  ``{"detail": message, "errors": {...}}``;
- pages: :class:`labeling.middleware.DomainErrorMiddleware` turns an uncaught :class:`NotFound`
  into Django's 404 page and :class:`Forbidden` into its 403 page; a view that shows a problem
  beside a form catches :class:`Invalid` (``labeling.forms.SERVICE_ERRORS``) and puts
  ``exc.errors`` on the form's fields (``labeling.forms.attach_errors``) or shows
  :meth:`DomainError.text`;
- management commands print :meth:`DomainError.text`.

``errors`` maps a location (a field, ``filters.min_agreement``, ``questions[2].scale``) to a
message, a list of messages or a nested mapping; the API returns it as given (strings in lists,
as DRF always did).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DomainError(Exception):
    """Base class. ``message`` is one sentence for a person; ``errors`` the details by location;
    ``code`` a stable machine-readable reason."""

    default_message = "The request failed."
    default_code = "error"

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: Mapping[str, Any] | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.errors: dict[str, Any] = dict(errors or {})
        self.code = code or self.default_code
        super().__init__(self.message)

    def text(self) -> str:
        """The message with each location's problem, for a page or a terminal."""
        if not self.errors:
            return self.message
        return "; ".join(f"{key}: {_flat(value)}" for key, value in self.errors.items())


class Invalid(DomainError):
    """Input that breaks a rule; ``errors`` names each field and what is wrong with it.

    ``Invalid({"field": "message"})`` (the common case) or ``Invalid("message")`` for a problem of
    the whole input, which the API reports under ``non_field_errors``.
    """

    default_message = "Invalid input."
    default_code = "invalid"

    def __init__(
        self,
        errors: Mapping[str, Any] | str | list[str] | None = None,
        *,
        message: str | None = None,
        code: str | None = None,
    ) -> None:
        if isinstance(errors, str):
            errors = {"non_field_errors": [errors]}
        elif isinstance(errors, list):
            errors = {"non_field_errors": errors}
        super().__init__(message, errors=errors, code=code)


class Conflict(DomainError):
    """The action is valid in general but not in the current state (already submitted, not
    flagged, an old version); ``code`` says which state."""

    default_message = "The request conflicts with the current state."
    default_code = "conflict"


class NotFound(DomainError):
    """The object does not exist, or the caller may not know that it does."""

    default_message = "Not found."
    default_code = "not_found"


class Forbidden(DomainError):
    """The caller is known to exist and may see the object but lacks the capability."""

    default_message = "You do not have permission to perform this action."
    default_code = "permission_denied"


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_flat(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "; ".join(_flat(v) for v in value)
    return str(value)
