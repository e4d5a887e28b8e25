"""Flywheel's Python SDK.

- :class:`Flywheel` (and :class:`AsyncFlywheel`): log interactions and events from production
  without blocking the caller; batches are gzip JSONL, retried, idempotent on ``external_id``.
- :func:`wrap_openai`: log an OpenAI client's chat completions (sync, async, streaming).
- :class:`FlywheelClient`: estimates, reports, sampling runs, exports (resumable, sha256-checked).
"""

from flywheel_sdk._http import FlywheelError, HttpError, Retryable
from flywheel_sdk.aio import AsyncFlywheel
from flywheel_sdk.client import ChecksumMismatch, FlywheelClient
from flywheel_sdk.logger import Flywheel, Stats
from flywheel_sdk.openai_wrap import wrap_openai

__all__ = [
    "AsyncFlywheel",
    "ChecksumMismatch",
    "Flywheel",
    "FlywheelClient",
    "FlywheelError",
    "HttpError",
    "Retryable",
    "Stats",
    "wrap_openai",
]
__version__ = "0.1.0"
