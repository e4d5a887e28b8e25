"""Template filter: a share (labeling.selectors.quality.Share) as "7/9 = 78% [45-94%]" (an en
dash on the page) with a "few labels" warning when it rests on fewer than ten answers."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html

register = template.Library()
DASH = "\u2013"  # the en dash of a range


@register.filter
def share(value: Any) -> str:
    if value is None or not getattr(value, "n", 0):
        return DASH
    low, high = value.interval
    text = format_html(
        '{}/{} = {}% <span class="muted">[{}{}{}%]</span>',
        value.hits,
        value.n,
        round(100 * value.value),
        round(100 * low),
        DASH,
        round(100 * high),
    )
    if value.few:
        text += format_html(' <span class="warn-note">few labels (n = {})</span>', value.n)
    return text
