"""``FlywheelClient``: a thin client for engineers (a user API token, not an ingestion key).

Estimates and reports, starting a sampling run, creating an export and downloading it: streamed to
disk, resumed after a broken connection (HTTP ``Range``), its sha256 checked against the server's,
with a progress bar (tqdm when installed, a plain one on stderr otherwise).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from flywheel_sdk._http import (
    Connection,
    FlywheelError,
    HttpError,
    Reply,
    Retryable,
    check,
    json_body,
)

REPORTS = ("bias", "power", "regression")


class ChecksumMismatch(FlywheelError):
    """The downloaded file's sha256 is not the one the server announced."""


class _Progress:
    """tqdm when installed; otherwise a line on stderr redrawn at most every half second."""

    def __init__(self, total: int | None, initial: int, desc: str, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self.done = initial
        self.desc = desc
        self._bar: Any = None
        self._last = 0.0
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self._bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=desc)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= 0.5:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            share = self.done / self.total
            bar = "#" * int(30 * share)
            sys.stderr.write(f"\r{self.desc} [{bar:<30}] {share:6.1%} {self.done:,} B")
        else:
            sys.stderr.write(f"\r{self.desc} {self.done:,} B")
        sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self._draw()
            sys.stderr.write("\n")


class FlywheelClient:
    """``FlywheelClient(url, token)`` with a user's API token (``manage.py createuser --token``).

    Every method raises :class:`~flywheel_sdk.HttpError` for a refused request (its ``body`` is
    the server's ``{"detail", "errors"}``) and :class:`~flywheel_sdk.Retryable` for a network
    error or a 5xx.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._auth = {"Authorization": f"Token {token}"}
        self.timeout = timeout
        self._conn = Connection(self.url, timeout=timeout)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> FlywheelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plain calls

    def _get(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        return self._conn.request("GET", path, headers=self._auth, query=query).json()

    def _post(self, path: str, data: Mapping[str, Any]) -> Any:
        headers = {**self._auth, "Content-Type": "application/json"}
        return self._conn.request("POST", path, body=json_body(data), headers=headers).json()

    def estimates(
        self,
        project: str,
        *,
        by: str | None = None,
        method: str | None = None,
        level: float | None = None,
        **filters: Any,
    ) -> dict[str, Any]:
        """``GET /api/projects/{project}/estimates/``: ``{"target", "method", "level",
        "groups": [{"group", "estimate", "ci_low", "ci_high", "n_labels", ...}]}``."""
        query = {"by": by, "method": method, "level": level, **filters}
        return dict(self._get(f"/api/projects/{project}/estimates/", query))

    def report(self, project: str, kind: str, **params: Any) -> dict[str, Any]:
        """One of the reports: ``bias``, ``power`` or ``regression``."""
        if kind not in REPORTS:
            raise ValueError(f"kind must be one of {', '.join(REPORTS)}")
        return dict(self._get(f"/api/projects/{project}/reports/{kind}/", params))

    def start_sampling_run(
        self,
        project: str,
        strategy: int,
        *,
        wait: bool = False,
        timeout: float = 600.0,
        poll: float = 1.0,
    ) -> dict[str, Any]:
        """Start a run of ``strategy`` (its id; admins only). With ``wait``, poll until it is
        ``done`` or ``failed`` and return the final run."""
        run = dict(self._post(f"/api/projects/{project}/sampling-runs/", {"strategy": strategy}))
        if wait:
            path = f"/api/projects/{project}/sampling-runs/{run['id']}/"
            run = self._wait(path, ("done", "failed"), timeout, poll)
        return run

    def sampling_run(self, project: str, run_id: int) -> dict[str, Any]:
        return dict(self._get(f"/api/projects/{project}/sampling-runs/{run_id}/"))

    def create_export(
        self,
        project: str,
        kind: str,
        *,
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        wait: bool = True,
        timeout: float = 3600.0,
        poll: float = 1.0,
    ) -> dict[str, Any]:
        """Create an export (``sft``, ``preference``, ``classification``, ``eval``...); with
        ``wait`` (default) poll until it is ``done`` (or ``failed``) and return it."""
        export = dict(
            self._post(
                f"/api/projects/{project}/exports/",
                {"kind": kind, "filters": dict(filters or {}), "options": dict(options or {})},
            )
        )
        if wait:
            export = self._wait(f"/api/exports/{export['id']}/", ("done", "failed"), timeout, poll)
        return export

    def export(self, export_id: int) -> dict[str, Any]:
        return dict(self._get(f"/api/exports/{export_id}/"))

    def _wait(
        self, path: str, final: tuple[str, ...], timeout: float, poll: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                obj = dict(self._get(path))
                if obj.get("status") in final:
                    return obj
            except Retryable:
                pass  # a restarting server: ask again until the deadline
            if time.monotonic() >= deadline:
                raise FlywheelError(f"{path} not {' or '.join(final)} after {timeout:.0f}s")
            time.sleep(poll)

    # ------------------------------------------------------------------ download

    def download_export(
        self,
        export_id: int,
        path: str | os.PathLike[str],
        *,
        progress: bool = True,
        retries: int = 10,
        chunk_size: int = 1 << 20,
    ) -> Path:
        """Download a finished export to ``path``, streamed.

        Bytes go to ``path + ".part"`` first; after a broken connection (or a new call after a
        crash) the download resumes where the part file ends. The whole file's sha256 must equal
        the server's (``X-Export-SHA256``) before the part file is renamed to ``path``; on a
        mismatch the part file is deleted and :class:`ChecksumMismatch` raised.
        """
        target = Path(path)
        part = target.with_name(target.name + ".part")
        attempt = 0
        while True:
            try:
                return self._download_once(export_id, target, part, progress, chunk_size)
            except Retryable:
                attempt += 1
                if attempt > retries:
                    raise
                time.sleep(min(30.0, 0.5 * 2**attempt))

    def _download_once(
        self, export_id: int, target: Path, part: Path, progress: bool, chunk_size: int
    ) -> Path:
        have = part.stat().st_size if part.exists() else 0
        headers = dict(self._auth)
        if have:
            headers["Range"] = f"bytes={have}-"
        response = self._conn.open("GET", f"/api/exports/{export_id}/download", headers=headers)
        if response.status == 416:  # the part file is already whole (or longer than the file)
            response.read()
            have = 0
            part.unlink()
            response = self._conn.open(
                "GET", f"/api/exports/{export_id}/download", headers=dict(self._auth)
            )
        if response.status not in (200, 206):
            reply = Reply(response.status, dict(response.getheaders()), response.read())
            self._conn.close()
            check(reply)
            raise HttpError(response.status, reply.json())
        expected = response.getheader("X-Export-SHA256") or ""
        digest = hashlib.sha256()
        mode = "ab"
        if response.status == 206 and have:
            with part.open("rb") as done:  # hash what is already on disk
                for block in iter(lambda: done.read(chunk_size), b""):
                    digest.update(block)
        else:
            have, mode = 0, "wb"  # the server sent the whole file: start over
        length = response.getheader("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        bar = _Progress(total, have, f"export {export_id}", progress)
        try:
            with part.open(mode) as out:
                self._copy(response, out, digest, bar, chunk_size)
        finally:
            bar.close()
        if expected and digest.hexdigest() != expected:
            part.unlink()
            raise ChecksumMismatch(
                f"export {export_id}: sha256 {digest.hexdigest()} != server's {expected}"
            )
        part.replace(target)
        return target

    def _copy(
        self, response: Any, out: IO[bytes], digest: Any, bar: _Progress, chunk_size: int
    ) -> None:
        try:
            while True:
                block = response.read(chunk_size)
                if not block:
                    break
                out.write(block)
                digest.update(block)
                bar.update(len(block))
            incomplete = response.length not in (None, 0)
        except (OSError, http.client.HTTPException) as exc:  # e.g. IncompleteRead
            self._conn.close()
            raise Retryable(f"download interrupted: {exc}") from exc
        if incomplete:
            self._conn.close()
            raise Retryable("download interrupted: connection closed early")
