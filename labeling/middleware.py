"""The one place domain errors (:mod:`labeling.errors`) become HTTP responses for pages.

An uncaught :class:`~labeling.errors.NotFound` from a page view becomes Django's 404 page and a
:class:`~labeling.errors.Forbidden` its 403 page, exactly as if the view had raised ``Http404`` or
``PermissionDenied``. :class:`~labeling.errors.Invalid` and :class:`~labeling.errors.Conflict`
belong beside a form or in a message, so a page view catches them (``exc.text()``); one that
escapes is a bug and stays a 500. The API never gets here: DRF handles its views' exceptions in
:func:`labeling.api.errors.exception_handler`.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from labeling.errors import Forbidden, NotFound


class DomainErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if isinstance(exception, NotFound):
            raise Http404(exception.message) from exception
        if isinstance(exception, Forbidden):
            raise PermissionDenied(exception.message) from exception
