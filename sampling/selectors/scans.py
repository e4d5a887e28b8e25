"""The Inclusion scans of the estimates' population side, read once per page.

``sampling.selectors.estimates`` reads the population side from the population cells except for the
rows it must read from Inclusion joined to Interaction: the partial days at the ends of a
``since``/``until`` that is not a UTC midnight (the explicitly rated items were read here too until
the cells kept their ratings, issue 16). A page such as the dashboard asks for a dozen groupings
under the same filters, and each grouping used to read those rows again (about a second each at a
million interactions). Inside :func:`shared_scans` each such read is made once per project, filters
and kind, at the finest grain any grouping needs (run x model version x the segment keys' values x
day x rated), and regrouped for each grouping by the caller. The group values are computed by the
database with the same expressions as the direct read (``estimates._group_expr``), so every count
is the same; sums of ``f`` may differ in their last bits (another order of addition).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.db.models import Case, Count, F, Q, QuerySet, Sum, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDate

from sampling.models import Inclusion

FineRow = dict[str, Any]

_memo: ContextVar[dict[str, Any] | None] = ContextVar("shared_scans", default=None)
T = TypeVar("T")


@contextmanager
def shared_scans() -> Iterator[None]:
    """Within this block :func:`fine_rows` reads each (project, filters, kind) once, and
    :func:`shared` computes each key once (their results must not be changed by callers)."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def shared(key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """``compute()``, once per ``key`` inside :func:`shared_scans` (every call outside it)."""
    memo = _memo.get()
    if memo is None:
        return compute()
    name = json.dumps(["shared", *key], default=str)
    if name not in memo:
        memo[name] = compute()
    result: T = memo[name]
    return result


def fine_field(name: str, segment_keys: Sequence[str]) -> str | None:
    """The field of a fine row that holds grouping ``name``'s raw value (as the direct read's
    expression gives it), or None when the fine rows do not carry it."""
    if name == "model_version":
        return "mv"
    if name in ("day", "week"):  # the UTC date; its ISO week is the week's label
        return "day"
    if name == "run":
        return "run_id"
    if name == "rated":
        return "rated"
    key = name[len("segment.") :] if name.startswith("segment.") else None
    if key is not None and key in segment_keys:
        return f"s{list(segment_keys).index(key)}"
    return None


def fine_rows(
    base: QuerySet[Inclusion],
    *,
    memo_key: tuple[Any, ...],
    by: Sequence[str],
    segment_keys: Sequence[str],
) -> list[FineRow] | None:
    """The rows of ``base`` aggregated per run x model version x day x rated x each of
    ``segment_keys``' values (``n``, ``f_total``, ``excluded``, ``rated_n``, ``down``, as
    ``estimates._population_scan`` counts them), read once per ``memo_key`` inside
    :func:`shared_scans`. None outside it, or when ``by`` groups by a segment key the fine rows do
    not carry (the caller then reads directly)."""
    memo = _memo.get()
    keys = list(segment_keys)
    if memo is None or any(fine_field(name, keys) is None for name in by):
        return None
    key = json.dumps([*memo_key, keys], sort_keys=True, default=str)
    if key not in memo:
        memo[key] = _read(base, keys)
    return memo[key]


def _read(base: QuerySet[Inclusion], segment_keys: list[str]) -> list[FineRow]:
    exprs: dict[str, Any] = {
        "mv": F("interaction__model_version"),
        "day": TruncDate("interaction__occurred_at"),
        "rated": Case(
            When(interaction__explicit_rating__isnull=True, then=Value("no")),
            default=Value("yes"),
        ),
        **{
            f"s{i}": KeyTextTransform(key, "interaction__segment")
            for i, key in enumerate(segment_keys)
        },
    }
    return list(
        base.annotate(**exprs)
        .values(*exprs, "run_id")
        .annotate(**population_aggregates())
        .order_by()
    )


def population_aggregates() -> dict[str, Any]:
    """The population side of Inclusion rows: items with a pi (``n``) and their sum of ``f``,
    items without (``excluded``), items with a pi and an explicit rating (``rated_n``) or a
    thumbs-down (``down``)."""
    has_pi, no_pi = Q(pi__isnull=False), Q(pi__isnull=True)
    return {
        "n": Count("id", filter=has_pi),
        "f_total": Sum("f", filter=has_pi),
        "excluded": Count("id", filter=no_pi),
        "rated_n": Count("id", filter=has_pi & Q(interaction__explicit_rating__isnull=False)),
        "down": Count("id", filter=has_pi & Q(interaction__explicit_rating__lt=0)),
    }
