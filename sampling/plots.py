"""Server-side plots for the dashboards: matplotlib (Agg) rendered to an inline SVG string.

No CDN and no JavaScript charting: every plot is a pure function from plain Python data (numbers
already computed by the selectors the API uses) to an ``<svg>`` string that templates embed with
``|safe``. Text stays text (``svg.fonttype = none``) so the numbers are searchable and crisp, and
each figure gets its own id salt so several inline SVGs on one page never share element ids.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

PALETTE = ("#2457d6", "#d97706", "#067647", "#9333ea", "#b42318", "#0e7490", "#6b7280")
MUTED = "#5b6475"
_salt = itertools.count()

plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.edgecolor": "#9aa3b5",
        "axes.titlesize": 10,
        "axes.titleweight": "bold",
        "axes.titlelocation": "left",
        "axes.grid": True,
        "grid.color": "#e6e9f0",
        "grid.linewidth": 0.8,
        "legend.frameon": False,
        "legend.fontsize": 8,
    }
)


@dataclass(frozen=True)
class Band:
    """One line with its confidence band: x values, estimates and interval ends (None: no point)."""

    name: str
    x: Sequence[date | datetime]
    y: Sequence[float | None]
    low: Sequence[float | None] = field(default_factory=tuple)
    high: Sequence[float | None] = field(default_factory=tuple)
    dashed: bool = False


# One font scale for every plot: figures are drawn at the width of the panel that shows them and
# the page displays them at their natural size (``.plot svg { max-width: 100% }``, never scaled
# up), so 9 pt text is 9 pt in every plot. FULL fits a full-width panel of the 1200 px layout,
# HALF a panel of the two-column grid.
FULL_WIDTH = 11.5
HALF_WIDTH = 5.6


def _figure(width: float = FULL_WIDTH, height: float = 2.8) -> tuple[Figure, plt.Axes]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    prefix = f"fw{next(_salt)}-"
    with plt.rc_context({"svg.hashsalt": prefix}):
        fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    # Drop the XML prolog and DOCTYPE: the SVG is embedded in an HTML page.
    text = text[text.index("<svg") :]
    # matplotlib numbers its ids per figure (figure_1, axes_1, ...): prefix them and every
    # reference, so several inline SVGs on one page never share (or cross-reference) an id.
    text = _ID.sub(lambda m: f'{m.group(1)}="{prefix}{m.group(2)}"', text)
    text = _REF.sub(lambda m: f"{m.group(1)}#{prefix}{m.group(2)}", text)
    return text


_ID = re.compile(r'\b(id)="([^"]+)"')
_REF = re.compile(r'(url\(|xlink:href="|href=")#([^)"]+)')


def _legend_below(ax: plt.Axes, *, ncols: int) -> None:
    """The legend under the axes, where it never hides a bar or a line: a figure legend placed
    "outside", which the constrained layout makes room for (never clipped)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.figure.legend(handles, labels, loc="outside lower center", ncols=ncols)


def _clean(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _interval(ax: plt.Axes, xs: Any, ys: list[float], band: Band, color: str) -> None:
    """A band between the points and an error bar at each point, so a point without neighbours
    (one labelled week) still shows its interval."""
    lows, highs = _clean(band.low), _clean(band.high)
    ax.fill_between(xs, lows, highs, color=color, alpha=0.15, lw=0)
    below = [
        max(0.0, y - lo) if not math.isnan(lo) else 0.0 for y, lo in zip(ys, lows, strict=True)
    ]
    above = [
        max(0.0, hi - y) if not math.isnan(hi) else 0.0 for y, hi in zip(ys, highs, strict=True)
    ]
    ax.errorbar(
        xs, ys, yerr=[below, above], fmt="none", ecolor=color, elinewidth=1.2, capsize=3,
        alpha=0.9,
    )  # fmt: skip


def difference_over_time(
    *, bands: Sequence[Band], title: str = "Difference to the baseline, watched daily"
) -> str:
    """Per version, the running difference to the baseline with its always-valid band, and 0."""
    fig, ax = _figure()
    ax.axhline(0, color="#10182b", linewidth=1)
    for band, color in zip(bands, itertools.cycle(PALETTE), strict=False):
        xs = mdates.date2num(list(band.x))
        ys = _clean(band.y)
        ax.plot(xs, ys, color=color, label=band.name, linewidth=1.6, marker="o", markersize=2.5)
        _interval(ax, xs, ys, band, color)
    ax.set_title(title)
    # The first looks' bands are very wide (few labels): keep the axis on the differences.
    ends = [abs(v) for b in bands for v in (*_clean(b.y), *_clean(b.low), *_clean(b.high))]
    span = max([0.1, *(v for v in ends if not math.isnan(v))])
    ax.set_ylim(-min(span, 0.5), min(span, 0.5))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    ax.set_ylabel("difference in share good")
    if bands:
        _legend_below(ax, ncols=min(4, len(bands)))
    return _svg(fig)


def quality_over_time(
    *, bands: Sequence[Band], title: str = "Share of good responses by week"
) -> str:
    """Lines per model version with interval bands, plus dashed lines (e.g. the thumbs-up rate)."""
    fig, ax = _figure()
    for band, color in zip(bands, itertools.cycle(PALETTE), strict=False):
        xs = mdates.date2num(list(band.x))
        ys = _clean(band.y)
        ax.plot(
            xs,
            ys,
            marker="o" if not band.dashed else None,
            markersize=3.5,
            linestyle="--" if band.dashed else "-",
            color=color,
            label=band.name,
            linewidth=1.6,
        )
        if band.low and band.high:
            _interval(ax, xs, ys, band, color)
    ax.set_title(title)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    if bands:
        _legend_below(ax, ncols=min(4, len(bands)))
    return _svg(fig)


def paired_bars(
    *,
    categories: Sequence[str],
    first: Sequence[float | None],
    second: Sequence[float | None],
    first_label: str,
    second_label: str,
    title: str,
    percent: bool = True,
    first_low: Sequence[float | None] | None = None,
    first_high: Sequence[float | None] | None = None,
) -> str:
    """Two bars per category (e.g. raters' share against traffic share), optional error bars."""
    height = max(2.0, 0.9 + 0.36 * len(categories))
    fig, ax = _figure(width=HALF_WIDTH, height=height)
    ys = range(len(categories))
    thickness = 0.38
    a = _clean(first)
    b = _clean(second)
    xerr = None
    if first_low is not None and first_high is not None:
        lows, highs = _clean(first_low), _clean(first_high)
        xerr = [
            [
                max(0.0, v - lo) if not math.isnan(lo) else 0.0
                for v, lo in zip(a, lows, strict=True)
            ],
            [
                max(0.0, hi - v) if not math.isnan(hi) else 0.0
                for v, hi in zip(a, highs, strict=True)
            ],
        ]
    ax.barh(
        [y - thickness / 2 for y in ys],
        a,
        height=thickness,
        color=PALETTE[0],
        label=first_label,
        xerr=xerr,
        error_kw={"ecolor": "#10182b", "elinewidth": 1, "capsize": 2},
    )
    ax.barh(
        [y + thickness / 2 for y in ys], b, height=thickness, color="#9aa3b5", label=second_label
    )
    ax.set_yticks(list(ys), [str(c) for c in categories])
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    if percent:
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_title(title)
    _legend_below(ax, ncols=2)
    return _svg(fig)


def bars_with_minimum(
    *,
    categories: Sequence[str],
    values: Sequence[float],
    minimums: Sequence[float | None],
    title: str,
    value_label: str = "labels",
) -> str:
    """Horizontal bars (labels per group) with a tick at each group's minimum; short ones in red."""
    height = max(2.0, 0.9 + 0.32 * len(categories))
    fig, ax = _figure(width=HALF_WIDTH, height=height)
    ys = list(range(len(categories)))
    colors = [
        PALETTE[4] if m is not None and v < m else PALETTE[0]
        for v, m in zip(values, minimums, strict=True)
    ]
    ax.barh(ys, list(values), color=colors, height=0.6, label=value_label)
    marks = [(y, m) for y, m in zip(ys, minimums, strict=True) if m is not None]
    if marks:
        ax.scatter(
            [m for _, m in marks],
            [y for y, _ in marks],
            marker="|",
            s=260,
            color="#10182b",
            label="minimum",
            zorder=3,
        )
        _legend_below(ax, ncols=2)
    ax.set_yticks(ys, [str(c) for c in categories])
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    ax.set_title(title)
    return _svg(fig)


def histogram(*, values: Sequence[float], title: str, xlabel: str, bins: int = 20) -> str:
    """A histogram with the median marked (e.g. hours from interaction to label)."""
    fig, ax = _figure(width=HALF_WIDTH, height=2.4)
    data = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if data:
        ax.hist(data, bins=bins, color=PALETTE[0], alpha=0.85)
        median = sorted(data)[len(data) // 2]
        ax.axvline(median, color=PALETTE[1], linestyle="--", label=f"median {median:.1f}")
        ax.legend(loc="upper right")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _svg(fig)


def lines(
    *,
    x: Sequence[float | int | str],
    series: dict[str, Sequence[float | None]],
    title: str,
    xlabel: str = "",
    ylim: tuple[float, float] | None = None,
) -> str:
    """A few named series over a common x (e.g. proxy AUC and calibration error per version)."""
    fig, ax = _figure(height=2.4)
    positions = list(range(len(x)))
    for (name, values), color in zip(series.items(), itertools.cycle(PALETTE), strict=False):
        ax.plot(positions, _clean(values), marker="o", markersize=4, color=color, label=name)
    ax.set_xticks(positions, [str(v) for v in x])
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if series:
        _legend_below(ax, ncols=len(series))
    return _svg(fig)


@dataclass(frozen=True)
class Plot:
    """A plot to draw later: the drawing function's name and its arguments (picklable, so a
    dashboard's sections cache it). The page shows a placeholder; the browser asks
    ``/p/<slug>/dashboard/plots/<section>/<name>.svg`` for the SVG (:func:`render`), so the page
    answers before any plot is drawn."""

    kind: str
    kwargs: dict[str, Any]


DRAWERS = {
    "quality_over_time": quality_over_time,
    "difference_over_time": difference_over_time,
    "paired_bars": paired_bars,
    "bars_with_minimum": bars_with_minimum,
    "histogram": histogram,
    "lines": lines,
}


def later(kind: str, **kwargs: Any) -> Plot:
    if kind not in DRAWERS:
        raise ValueError(f"unknown plot {kind!r}")
    return Plot(kind=kind, kwargs=kwargs)


def render(plot: Plot) -> str:
    """The SVG of a :class:`Plot`."""
    draw: Any = DRAWERS[plot.kind]
    return str(draw(**plot.kwargs))
