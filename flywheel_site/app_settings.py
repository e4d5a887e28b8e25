"""Flywheel's own settings: each declared once here with its default, read through :func:`setting`.

``settings.FLYWHEEL`` (built by ``flywheel_site/settings.py`` from ``FLYWHEEL_<NAME>`` environment
variables with :func:`from_environ`) holds the values in force; a name missing from it has its
declared default. Code reads a value at call time, never at import, so a test that sets
``settings.FLYWHEEL = {**settings.FLYWHEEL, "NAME": value}`` changes it:

    from flywheel_site.app_settings import setting
    stale_after = setting("EXPORT_STALE_SECONDS")

Reading a name that is not declared below is a bug and raises ``KeyError``. docs/settings.md
lists every setting; add a row there when you add one here.

This module is a leaf (standard library and ``django.conf`` only): any app may import it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AppSetting:
    name: str
    default: int | float
    doc: str

    @property
    def env(self) -> str:
        return f"FLYWHEEL_{self.name}"

    def parse(self, raw: Any, *, where: str) -> int | float:
        kind = type(self.default)
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {raw!r} is not a valid {kind.__name__}") from None
        if value < 0:
            raise ValueError(f"{where}: must be >= 0, got {raw!r}")
        return value


MIB = 1024**2

DECLARED: tuple[AppSetting, ...] = (
    # Ingestion size limits (labeling.limits).
    AppSetting(
        "MAX_REQUEST_BYTES", 64 * MIB, "request body as sent (compressed or not); over it: 413"
    ),
    AppSetting(
        "MAX_DECOMPRESSED_BYTES", 256 * MIB, "body after gzip decoding (a gzip bomb answers 413)"
    ),
    AppSetting("MAX_ROW_BYTES", 1 * MIB, "one interaction (a JSONL line or an array element)"),
    AppSetting("MAX_FIELD_CHARS", 200_000, "one text field (response, a message's content...)"),
    AppSetting("MAX_ROWS_PER_REQUEST", 100_000, "rows in one ingest request (413 beyond it)"),
    # Login throttling (labeling.views.login).
    AppSetting("LOGIN_WINDOW_SECONDS", 15 * 60, "window in which failed logins are counted"),
    AppSetting("LOGIN_MAX_FAILURES_PER_USER", 10, "failed logins per client IP and username"),
    AppSetting("LOGIN_MAX_FAILURES_PER_IP", 50, "failed logins per client IP, any usernames"),
    # Exports (labeling.services.exports).
    AppSetting(
        "EXPORT_STALE_SECONDS",
        300,
        "a running export whose heartbeat is older is taken as dead: the sweep or a retry "
        "claims it again",
    ),
    AppSetting("EXPORT_PROGRESS_EVERY", 10_000, "rows between progress/heartbeat writes"),
    # Sampling (sampling.services).
    AppSetting("SCORE_CHUNK_SIZE", 5000, "interactions per scoring task"),
    AppSetting(
        "RETRAIN_CHECK_S",
        10.0,
        "submits within this many seconds share one retrain check (sampling.maybe_retrain)",
    ),
    AppSetting(
        "PROXY_CLAIM_TIMEOUT_S",
        3600,
        "a proxy-model training claim older than this is marked failed (its worker died)",
    ),
    # Webhooks (labeling.services.webhooks).
    AppSetting("WEBHOOK_TIMEOUT_S", 10.0, "seconds a receiver has to answer one delivery attempt"),
    AppSetting(
        "WEBHOOK_ALLOW_PRIVATE",
        0,
        "1: webhook receivers may be on loopback, private, link-local or reserved addresses "
        "(0: only public addresses, checked when the URL is saved and before each attempt)",
    ),
    AppSetting("WEBHOOK_MAX_ATTEMPTS", 12, "attempts of one delivery before it is marked failed"),
    AppSetting(
        "WEBHOOK_RETRY_BASE_S",
        10.0,
        "delay before the 2nd attempt; doubles with each attempt (with jitter: half to all of it)",
    ),
    AppSetting("WEBHOOK_RETRY_MAX_S", 6 * 3600.0, "longest delay between two attempts"),
    AppSetting(
        "WEBHOOK_DISABLE_AFTER_FAILURES",
        20,
        "consecutive failed attempts (and WEBHOOK_DISABLE_AFTER_S of failing) that switch a "
        "subscription off",
    ),
    AppSetting(
        "WEBHOOK_DISABLE_AFTER_S",
        3600,
        "a subscription is switched off only after failing for this long without a success",
    ),
    AppSetting(
        "RUN_STALE_AFTER_S",
        600,
        "a sampling run 'running' for longer than this without finishing is claimed again",
    ),
    # LLM judges (sampling.judges.execution).
    AppSetting("JUDGE_LEASE_S", 600, "a judge batch claimed this long ago is resumed"),
    AppSetting("JUDGE_BACKOFF_BASE_S", 0.5, "first retry delay of a judge call; doubles"),
    AppSetting("JUDGE_BACKOFF_CAP_S", 20.0, "longest delay between two retries of a judge call"),
    AppSetting(
        "JUDGE_MAX_RETRY_AFTER_S", 60.0, "a longer Retry-After gives up the call (retried later)"
    ),
    AppSetting("JUDGE_BREAKER_THRESHOLD", 5, "failures in a row that open an endpoint's breaker"),
    AppSetting("JUDGE_BREAKER_COOLDOWN_S", 30.0, "seconds an open breaker waits before a probe"),
)

_BY_NAME: dict[str, AppSetting] = {s.name: s for s in DECLARED}


def from_environ(environ: Mapping[str, str] = os.environ) -> dict[str, int | float]:
    """Every declared setting: ``FLYWHEEL_<NAME>`` when set (and valid), else the default."""
    out: dict[str, int | float] = {}
    for spec in DECLARED:
        raw = environ.get(spec.env, "")
        out[spec.name] = spec.default if raw.strip() == "" else spec.parse(raw, where=spec.env)
    return out


def setting(name: str) -> Any:
    """The value of the declared setting ``name`` in force now."""
    from django.conf import settings

    try:
        spec = _BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a declared Flywheel setting (app_settings.py)") from None
    conf = getattr(settings, "FLYWHEEL", None) or {}
    if name not in conf:
        return spec.default
    return spec.parse(conf[name], where=f"settings.FLYWHEEL[{name!r}]")
