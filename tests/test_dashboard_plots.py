"""sampling.plots: pure functions from numbers to inline SVG (no CDN, no JavaScript)."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

from sampling import plots

SVG = "{http://www.w3.org/2000/svg}"
WEEKS = [dt.date(2026, 11, 2) + dt.timedelta(weeks=i) for i in range(4)]


def texts(svg: str) -> str:
    """All text of the SVG (fonttype 'none' keeps labels as <text>)."""
    root = ET.fromstring(svg)
    return " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))


def test_quality_plot_is_svg_with_lines_bands_and_legend() -> None:
    svg = plots.quality_over_time(
        bands=[
            plots.Band("model-a", WEEKS, [0.7, 0.72, None, 0.75], [0.6, 0.62, None, 0.7],
                       [0.8, 0.82, None, 0.8]),
            plots.Band("thumbs-up rate", WEEKS, [0.4, 0.42, 0.45, 0.41], dashed=True),
        ]
    )  # fmt: skip
    assert svg.startswith("<svg")
    assert "<?xml" not in svg
    assert "DOCTYPE" not in svg
    words = texts(svg)
    assert "model-a" in words
    assert "thumbs-up rate" in words
    assert "Share of good responses by week" in words
    assert "100%" in words  # the y axis is a share


def test_paired_bars_label_every_category() -> None:
    svg = plots.paired_bars(
        categories=["tier=free", "tier=pro"], first=[0.7, 0.3], second=[0.5, None],
        first_label="share of ratings", second_label="share of traffic", title="Who rates",
        first_low=[0.6, None], first_high=[0.8, None],
    )  # fmt: skip
    words = texts(svg)
    for expected in ("tier=free", "tier=pro", "share of ratings", "share of traffic", "Who rates"):
        assert expected in words


def test_bars_below_minimum_are_red() -> None:
    svg = plots.bars_with_minimum(
        categories=["a", "b"], values=[3, 40], minimums=[10, 10], title="Labels vs minimum"
    )
    assert svg.count(plots.PALETTE[4]) >= 1  # the short bar
    assert svg.count(plots.PALETTE[0]) >= 1  # the one above its minimum


def test_histogram_marks_the_median_and_survives_no_data() -> None:
    assert "median 3.0" in texts(
        plots.histogram(values=[1, 2, 3, 4, 50], title="t", xlabel="hours")
    )
    assert texts(plots.histogram(values=[], title="empty", xlabel="hours")).count("empty") == 1


def test_lines_with_missing_values() -> None:
    svg = plots.lines(x=["v1", "v2"], series={"AUC": [None, 0.7]}, title="Proxy", ylim=(0, 1))
    assert "AUC" in texts(svg)


def test_two_plots_on_one_page_never_share_element_ids() -> None:
    a = plots.histogram(values=[1, 2, 3], title="a", xlabel="x")
    b = plots.histogram(values=[1, 2, 3], title="a", xlabel="x")
    ids_a = set(re.findall(r'id="([^"]+)"', a))
    ids_b = set(re.findall(r'id="([^"]+)"', b))
    assert ids_a
    assert not ids_a & ids_b
    # Every internal reference points at an id of the same SVG.
    for svg, ids in ((a, ids_a), (b, ids_b)):
        refs = set(re.findall(r'(?:url\(|href=")#([^)"]+)', svg))
        assert refs <= ids
