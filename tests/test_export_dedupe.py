"""The export's duplicate filter: first occurrence wins, order kept, across block boundaries,
nothing left on disk."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from labeling.services import export_dedupe
from labeling.services.export_dedupe import DuplicateFilter


def reference(bodies: list[bytes]) -> list[bytes]:
    seen: set[bytes] = set()
    out = []
    for body in bodies:
        if body not in seen:
            seen.add(body)
            out.append(body)
    return out


@pytest.mark.parametrize("block", [1, 7, 4096])
def test_matches_a_set_in_order_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(export_dedupe, "BLOCK", block)
    rng = random.Random(block)
    # Many repeats, some inside one block, some far apart (well beyond one block).
    bodies = [f'{{"row": {rng.randrange(300)}}}'.encode() for _ in range(2000)]
    with DuplicateFilter(tmp_path) as unique:
        kept = [body for _, body in unique.filter((i, b) for i, b in enumerate(bodies))]
        dropped = unique.duplicates
    assert kept == reference(bodies)
    assert dropped == len(bodies) - len(kept)
    assert list(tmp_path.iterdir()) == []  # the hash table is removed on close


def test_items_travel_with_their_rows(tmp_path: Path) -> None:
    pairs = [("train", b"a"), ("validation", b"b"), ("validation", b"a"), (None, b"c")]
    with DuplicateFilter(tmp_path) as unique:
        assert list(unique.filter(pairs)) == [("train", b"a"), ("validation", b"b"), (None, b"c")]


def test_file_removed_when_the_consumer_stops_early(tmp_path: Path) -> None:
    def lines():
        with DuplicateFilter(tmp_path) as unique:
            yield from unique.filter((i, str(i).encode()) for i in range(10_000))

    gen = lines()
    next(gen)
    assert len(list(tmp_path.iterdir())) == 1
    gen.close()  # a failed or cancelled export
    assert list(tmp_path.iterdir()) == []
