"""Drop exact duplicate export rows in flat memory, whatever the export's size.

An export with ``dedupe`` on must remember every distinct row it has written. Remembering them in a
Python set costs about 70 MB per million rows (bench/RESULTS.md, "Exports"), so a 10-million-row
export would need most of a gigabyte. :class:`DuplicateFilter` keeps an 8-byte hash per distinct
row in an on-disk SQLite table (a B-tree keyed by the hash, page cache capped at
``CACHE_KIB``) instead, and checks rows in blocks of ``BLOCK`` so that one SQL round trip serves a
few thousand rows. Memory stays flat (the block plus SQLite's capped cache); the file is deleted
when the filter closes.

The first occurrence of a row wins and the output order is the input order, so an export rerun
on the same data is byte-identical. Two different rows share a 64-bit BLAKE2b hash with
probability about n^2 / 2^65 (1 in 37 million at 1 million rows): such a row would be dropped as a
duplicate, and counted as one.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

# Rows checked per SQL round trip, and SQLite's page cache (KiB) for the hash table.
BLOCK = 1024
CACHE_KIB = 2048
_IN_CHUNK = 900  # bound parameters per "IN (...)": under SQLite's oldest limit of 999


def row_key(body: bytes) -> int:
    """A signed 64-bit hash of a serialised row (SQLite integers are signed 64-bit)."""
    return int.from_bytes(hashlib.blake2b(body, digest_size=8).digest(), "big", signed=True)


class DuplicateFilter:
    """Yields ``(item, body)`` pairs whose ``body`` was not seen before, in input order.

    Use as a context manager (the temporary file is removed on exit)::

        with DuplicateFilter() as unique:
            for item, body in unique.filter(pairs):
                ...
        unique.duplicates  # how many were dropped
    """

    def __init__(
        self, directory: str | Path | None = None, prefix: str = "flywheel-dedupe-"
    ) -> None:
        # The ".tmp" suffix lets the export writer's cleanup of a killed run remove it too.
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".dedupe.tmp", dir=directory)
        os.close(fd)
        self.path = Path(name)
        self.duplicates = 0
        self._db = sqlite3.connect(name, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("PRAGMA temp_store = FILE")
        self._db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        self._db.execute("CREATE TABLE seen (h INTEGER PRIMARY KEY) WITHOUT ROWID")

    def __enter__(self) -> DuplicateFilter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()
        self.path.unlink(missing_ok=True)

    def _known(self, keys: list[int]) -> set[int]:
        found: set[int] = set()
        for start in range(0, len(keys), _IN_CHUNK):
            chunk = keys[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                h for (h,) in self._db.execute(f"SELECT h FROM seen WHERE h IN ({marks})", chunk)
            )
        return found

    def _block(self, block: list[tuple[object, bytes]]) -> list[tuple[object, bytes]]:
        keys = [row_key(body) for _, body in block]
        known = self._known(list(set(keys)))
        fresh: list[int] = []
        out: list[tuple[object, bytes]] = []
        for key, pair in zip(keys, block, strict=True):
            if key in known:
                self.duplicates += 1
                continue
            known.add(key)  # a later copy inside the same block is a duplicate too
            fresh.append(key)
            out.append(pair)
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO seen (h) VALUES (?)", ((k,) for k in fresh))
        self._db.execute("COMMIT")
        return out

    def filter(self, pairs: Iterable[tuple[object, bytes]]) -> Iterator[tuple[object, bytes]]:
        block: list[tuple[object, bytes]] = []
        for pair in pairs:
            block.append(pair)
            if len(block) >= BLOCK:
                yield from self._block(block)
                block = []
        if block:
            yield from self._block(block)
