"""One error shape for the whole API: ``{"detail": "...", "errors": {...}}`` with a 4xx status.

The one place domain errors (:mod:`labeling.errors`) become HTTP responses for the API: Invalid
400, Forbidden 403, NotFound 404, Conflict 409.
"""

from __future__ import annotations

from typing import Any

from django import db
from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from labeling import errors as domain


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = (
        "The database connection was lost while handling the request. Work committed before it "
        "is kept, the step in progress was rolled back; retrying the same request is safe."
    )
    default_code = "database_unavailable"


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def invalid_values(exc: domain.Invalid) -> exceptions.ValidationError:
    """A 400 for answers that break the label schema, each error under ``values``."""
    return exceptions.ValidationError(
        {"detail": "Some answers are invalid: see the marked questions.", "values": exc.errors}
    )


def domain_to_api(exc: domain.DomainError) -> exceptions.APIException:
    """The DRF exception that answers a domain error (the body shape is set below)."""
    if isinstance(exc, domain.Invalid):
        invalid = exceptions.ValidationError(exc.errors or {"non_field_errors": [exc.message]})
        if exc.message != domain.Invalid.default_message:
            invalid.detail = {"detail": exc.message, **invalid.detail}  # type: ignore[dict-item]
        return invalid
    if isinstance(exc, domain.NotFound):
        return exceptions.NotFound(exc.message)
    if isinstance(exc, domain.Forbidden):
        return exceptions.PermissionDenied(exc.message)
    if isinstance(exc, domain.Conflict):
        return ConflictError(exc.message, exc.code)
    return exceptions.ValidationError({"non_field_errors": [exc.message]})


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, (db.OperationalError, db.InterfaceError)):
        exc = DatabaseUnavailable()
    if isinstance(exc, domain.DomainError):
        exc = domain_to_api(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = data if isinstance(data, dict) else {"non_field_errors": data}
        detail = errors.pop("detail", None) if isinstance(errors, dict) else None
        response.data = {"detail": str(detail or "Invalid input."), "errors": errors}
    elif isinstance(data, dict) and "detail" in data:
        response.data = {"detail": str(data["detail"]), "errors": data.get("errors", {})}
    else:
        response.data = {"detail": "Request failed.", "errors": data}
    return response
