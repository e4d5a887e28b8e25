"""An OpenAI-compatible chat-completions client on plain ``httpx`` with the policy a judge needs.

- Retries with exponential backoff and full jitter on 429, 5xx, timeouts and connection errors;
  a ``Retry-After`` header (seconds or an HTTP date) is honoured up to ``RetryPolicy.max_wait_s``.
- A circuit breaker per endpoint: after ``threshold`` consecutive failed attempts (5xx, timeouts,
  connection errors) calls fail fast for ``cooldown_s``, then one probe is let through.
- Requests- and tokens-per-minute limits shared by every worker through the Django cache (Redis in
  production): fixed one-minute windows.

The API key is a constructor argument read from the environment by the caller; it goes into the
``Authorization`` header only and appears in no error, log line or result.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from django.core.cache import cache

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class JudgeCallError(Exception):
    """A call that did not produce a reply. ``kind``: rate_limited, server, timeout, connection,
    client (a 4xx that retrying cannot fix), auth (401/403), bad_reply, circuit_open."""

    def __init__(self, kind: str, message: str, *, attempts: int = 0, status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.attempts = attempts
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 0.5
    cap_s: float = 20.0
    max_wait_s: float = 60.0  # a longer Retry-After gives up this call instead of blocking

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform on [0, min(cap, base * 2**attempt)]."""
        return rng.uniform(0.0, min(self.cap_s, self.base_s * (2**attempt)))


@dataclass
class Reply:
    text: str
    logprobs: Any
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    attempts: int


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass
class CircuitBreaker:
    threshold: int = 5
    cooldown_s: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self) -> bool:
        with self.lock:
            if self.opened_at is None:
                return True
            if time.monotonic() - self.opened_at < self.cooldown_s or self.probing:
                return False
            self.probing = True  # half-open: one probe at a time
            return True

    def remaining_s(self) -> float:
        with self.lock:
            if self.opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (time.monotonic() - self.opened_at))

    def record_success(self) -> None:
        with self.lock:
            self.failures, self.opened_at, self.probing = 0, None, False

    def record_failure(self) -> None:
        with self.lock:
            self.failures += 1
            if self.probing or self.failures >= self.threshold:
                self.opened_at = time.monotonic()
            self.probing = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(endpoint: str, *, threshold: int = 5, cooldown_s: float = 30.0) -> CircuitBreaker:
    """The process-wide breaker of one endpoint URL."""
    with _breakers_lock:
        breaker = _breakers.get(endpoint)
        if breaker is None:
            breaker = _breakers[endpoint] = CircuitBreaker(
                threshold=threshold, cooldown_s=cooldown_s
            )
        return breaker


def breakers_reset() -> None:
    with _breakers_lock:
        _breakers.clear()


class MinuteLimiter:
    """Requests- and tokens-per-minute for one judge, counted in the shared cache."""

    def __init__(self, key: str, *, rpm: int, tpm: int, max_wait_s: float = 65.0):
        self.key, self.rpm, self.tpm, self.max_wait_s = key, rpm, tpm, max_wait_s

    def _count(self, name: str, window: int, amount: int) -> int:
        key = f"judges:limit:{self.key}:{name}:{window}"
        cache.add(key, 0, timeout=120)
        try:
            return int(cache.incr(key, amount))
        except ValueError:  # expired between add and incr
            cache.set(key, amount, timeout=120)
            return amount

    def acquire(self, tokens: int) -> None:
        """Block until one request of about ``tokens`` tokens fits this minute's window."""
        if not self.rpm and not self.tpm:
            return
        deadline = time.monotonic() + self.max_wait_s
        while True:
            now = time.time()
            window = int(now // 60)
            ok = True
            if self.rpm and self._count("rpm", window, 1) > self.rpm:
                ok = False
            if ok and self.tpm and self._count("tpm", window, tokens) > self.tpm:
                ok = False
            if ok:
                return
            wait = (window + 1) * 60 - now + 0.01
            if time.monotonic() + wait > deadline:
                raise JudgeCallError("rate_limited", "the judge's per-minute limit is exhausted")
            time.sleep(wait)


class ChatClient:
    """POST ``{base_url}/chat/completions``; thread-safe (one pooled ``httpx.Client``)."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout_s: float = 30.0,
        max_retries: int = 4,
        concurrency: int = 4,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        limiter: MinuteLimiter | None = None,
        seed: int | None = None,
    ):
        self.endpoint = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_retries = max_retries
        self.policy = policy or RetryPolicy()
        self.breaker = breaker or breaker_for(self.endpoint)
        self.limiter = limiter
        self._rng = random.Random(seed)
        self._secret = api_key
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def _scrub(self, text: str) -> str:
        """``text`` without the key: an endpoint or proxy that echoes the request's Authorization
        header in an error or a reply never gets the key into a stored row, a page or a log."""
        return text.replace(self._secret, "[api key]") if self._secret else text

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float = 0.0,
        max_tokens: int = 256,
        logprobs: bool = False,
    ) -> Reply:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = 5
        payload = orjson.dumps(body)
        estimate = sum(len(m.get("content", "")) for m in messages) // 4 + max_tokens
        attempt = 0
        last: JudgeCallError | None = None
        while attempt <= self.max_retries:
            if not self.breaker.allow():
                raise JudgeCallError(
                    "circuit_open",
                    f"circuit open for this endpoint after repeated failures; retry in "
                    f"{self.breaker.remaining_s():.0f} s",
                    attempts=attempt,
                )
            if self.limiter is not None:
                self.limiter.acquire(estimate)
            attempt += 1
            started = time.perf_counter()
            wait: float | None = None
            try:
                response = self._http.post(self.endpoint, content=payload)
            except httpx.TimeoutException:
                self.breaker.record_failure()
                last = JudgeCallError(
                    "timeout", "the endpoint did not answer in time", attempts=attempt
                )
            except httpx.TransportError as exc:
                self.breaker.record_failure()
                last = JudgeCallError(
                    "connection",
                    f"cannot reach the endpoint: {type(exc).__name__}",
                    attempts=attempt,
                )
            else:
                latency_ms = int((time.perf_counter() - started) * 1000)
                status = response.status_code
                if status == 200:
                    self.breaker.record_success()
                    return self._reply(response, latency_ms, attempt)
                if status in (401, 403):
                    self.breaker.record_success()  # the endpoint is up; the key is not accepted
                    raise JudgeCallError(
                        "auth",
                        f"the endpoint refused the API key (HTTP {status})",
                        attempts=attempt,
                        status=status,
                    )
                if status not in RETRYABLE_STATUS:
                    self.breaker.record_success()
                    raise JudgeCallError(
                        "client",
                        f"HTTP {status}: {self._scrub(_error_text(response))}",
                        attempts=attempt,
                        status=status,
                    )
                if status >= 500:
                    self.breaker.record_failure()
                kind = "rate_limited" if status == 429 else "server"
                last = JudgeCallError(kind, f"HTTP {status}", attempts=attempt, status=status)
                wait = retry_after_seconds(response.headers.get("retry-after"))
                if wait is not None and wait > self.policy.max_wait_s:
                    last = JudgeCallError(
                        kind,
                        f"HTTP {status} with Retry-After {wait:.0f} s (over the "
                        f"{self.policy.max_wait_s:.0f} s a call waits)",
                        attempts=attempt,
                        status=status,
                    )
                    break
            if attempt > self.max_retries:
                break
            time.sleep(wait if wait is not None else self.policy.backoff(attempt - 1, self._rng))
        assert last is not None
        raise last

    def _reply(self, response: httpx.Response, latency_ms: int, attempts: int) -> Reply:
        try:
            data = orjson.loads(response.content)
            choice = data["choices"][0]
            text = choice["message"]["content"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise JudgeCallError(
                "bad_reply",
                f"not a chat-completions reply ({type(exc).__name__})",
                attempts=attempts,
            ) from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return Reply(
            text=self._scrub(text) if isinstance(text, str) else "",
            logprobs=choice.get("logprobs"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_ms=latency_ms,
            attempts=attempts,
        )


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
    except ValueError:
        message = None
    return str(message or response.text)[:300]
