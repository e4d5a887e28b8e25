"""``AsyncFlywheel``: the logger for asyncio code.

``log_interaction`` and ``log_event`` never block (they only encode and enqueue), so coroutines
call them directly; ``flush`` and ``aclose`` wait in a worker thread so the event loop keeps
running.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flywheel_sdk.logger import Flywheel, Stats


class AsyncFlywheel:
    """``async with AsyncFlywheel(url, ingest_key) as fw: fw.log_interaction(...)``."""

    def __init__(self, url: str, ingest_key: str, **options: Any) -> None:
        self.sync = Flywheel(url, ingest_key, **options)
        self.log_interaction = self.sync.log_interaction
        self.log_event = self.sync.log_event

    def stats(self) -> Stats:
        return self.sync.stats()

    async def flush(self, timeout: float | None = None) -> bool:
        return await asyncio.get_running_loop().run_in_executor(None, self.sync.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> bool:
        return await asyncio.get_running_loop().run_in_executor(None, self.sync.close, timeout)

    async def __aenter__(self) -> AsyncFlywheel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
