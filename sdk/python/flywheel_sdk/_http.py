"""A small HTTP/1.1 client on the standard library: one keep-alive connection per thread-owner.

Errors are sorted once here: :class:`Retryable` (the network, 408, 429, 5xx: send the same
request again later) and :class:`HttpError` (any other 4xx: sending it again cannot help).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

USER_AGENT = "flywheel-sdk-python/0.1"


class FlywheelError(Exception):
    """Base class of the SDK's errors."""


class HttpError(FlywheelError):
    """The server refused the request (a 4xx other than 408/429); retrying cannot help."""

    def __init__(self, status: int, body: Any, message: str = "") -> None:
        self.status = status
        self.body = body
        detail = body.get("detail") if isinstance(body, dict) else None
        super().__init__(message or f"HTTP {status}: {detail or body!r}")


class Retryable(FlywheelError):
    """A network error, 408, 429 or 5xx; ``retry_after`` is the server's hint in seconds."""

    def __init__(self, message: str, *, status: int = 0, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return self.body.decode("utf-8", "replace")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class Connection:
    """Requests to one base URL over a reused connection. Not thread-safe: one per thread."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        full = self.prefix + path
        if query:
            pairs = [(k, v) for k, v in query.items() if v is not None]
            if pairs:
                full += "?" + urlencode(pairs, doseq=True)
        return full

    def open(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> http.client.HTTPResponse:
        """Send a request and return the response unread (for streaming). Raises Retryable on a
        network error; the status is not checked."""
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        # A kept-alive connection the server has closed since fails at once: try a fresh one
        # straight away (every request here is safe to repeat) before calling it a failure.
        for fresh in (self._conn is None, True):
            conn = self._connect()
            try:
                conn.request(method, self.url(path, query), body=body, headers=all_headers)
                return conn.getresponse()
            except (OSError, http.client.HTTPException, socket.timeout) as exc:
                self.close()
                if fresh or isinstance(exc, socket.timeout):
                    raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> Reply:
        """Send a request and read the whole answer; raise Retryable or HttpError unless 2xx."""
        response = self.open(method, path, body=body, headers=headers, query=query)
        try:
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.will_close:
            self.close()
        reply = Reply(response.status, dict(response.getheaders()), data)
        check(reply)
        return reply


def check(reply: Reply) -> None:
    status = reply.status
    if 200 <= status < 300:
        return
    if status in (408, 429) or status >= 500:
        raise Retryable(
            f"HTTP {status}",
            status=status,
            retry_after=_retry_after(reply.headers.get("Retry-After")),
        )
    raise HttpError(status, reply.json())


def json_body(data: Mapping[str, Any] | list[Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
