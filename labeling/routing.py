"""What every ``urls.py`` shares: the ``project`` path converter and slash-less aliases.

The convention (docs/architecture.md, "URLs"): routes are written with ``path()`` only, in the
app's ``urls.py`` (pages) and ``api/urls.py`` (API, namespaced by ``app_name``), and every route
ends with a slash. A project slug in a route is ``<project:slug>``; the converter is registered
once, when the ``labeling`` app is ready (``labeling/apps.py``).

A few API paths were published without the trailing slash and clients depend on them (the SDK,
the OTLP spec, the documented curl examples). :func:`slashless_aliases` adds those forms as
routes to the *same* view, so they answer exactly like the canonical path: no redirect, which
would turn a POST into a GET and lose its body. docs/api.md lists each alias and why it exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.urls import URLPattern, path, register_converter


class ProjectSlugConverter:
    """A project's slug as ``Project.slug`` (a ``SlugField``) stores it; views get the string."""

    regex = "[-a-zA-Z0-9_]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


def register_converters() -> None:
    """Called once from ``LabelingConfig.ready()``, before any URLconf is loaded."""
    register_converter(ProjectSlugConverter, "project")


ALIAS_SUFFIX = "-noslash"


def slashless_aliases(patterns: Iterable[URLPattern], names: Iterable[str]) -> list[URLPattern]:
    """For each named route in ``names``, the same route without its trailing slash, to the same
    view (``callback``, ``default_args``), named ``<name>-noslash``.

    Raises ``ValueError`` for a name that is not among ``patterns`` so a typo cannot silently
    drop an alias clients depend on.
    """
    by_name = {p.name: p for p in patterns if p.name}
    aliases = []
    for name in names:
        if name not in by_name:
            raise ValueError(f"no route named {name!r} to alias")
        original = by_name[name]
        route = str(original.pattern)
        if not route.endswith("/"):
            raise ValueError(f"route {name!r} ({route}) has no trailing slash to drop")
        aliases.append(
            path(
                route.removesuffix("/"),
                original.callback,
                original.default_args,
                name=f"{name}{ALIAS_SUFFIX}",
            )
        )
    return aliases


def schema_without_aliases(endpoints: list[Any], **kwargs: Any) -> list[Any]:
    """drf-spectacular preprocessing hook: the OpenAPI schema documents each operation once, at
    its canonical path (with the slash); the slash-less aliases are listed in docs/api.md."""
    return [endpoint for endpoint in endpoints if endpoint[0].endswith("/")]
