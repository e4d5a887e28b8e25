"""``Flywheel``: log interactions and events from a production service without blocking it.

The caller's thread does only what must happen at call time: it encodes the row to JSON (a
snapshot, so later changes to the caller's objects do not leak in) and appends it to a bounded
in-memory queue. A background thread takes batches by count, bytes or age, gzips them, sends them to
the bulk endpoints and retries with backoff on network errors, 408, 429 and 5xx. Every row carries
an ``external_id`` (every event an ``event_id``), generated when the caller gives none, so a retried
batch never stores a row twice: the server counts it as a duplicate.

Invariants:
- No method called by the host application raises because of Flywheel (bad input is counted in
  ``invalid`` and logged; a full queue is counted in ``dropped`` and logged at most every 10 s).
- Memory is bounded by ``max_queue`` rows and ``max_queue_bytes`` encoded bytes, plus the one batch
  in flight.
"""

from __future__ import annotations

import atexit
import datetime as dt
import gzip
import itertools
import json
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from flywheel_sdk._http import Connection, HttpError, Retryable

log = logging.getLogger("flywheel_sdk")

try:  # orjson is several times faster on the caller's thread; the standard library works too.
    import orjson

    def _dumps(obj: Any) -> bytes:
        # orjson's bytes keep a 16 KB buffer; an exact copy keeps the queue's memory honest.
        return bytes(memoryview(orjson.dumps(obj, default=_default)))

except ImportError:  # pragma: no cover - depends on the environment
    _encoder = json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=False, default=lambda o: _default(o)
    )

    def _dumps(obj: Any) -> bytes:
        return _encoder.encode(obj).encode()


def _default(obj: Any) -> Any:
    if isinstance(obj, dt.datetime):
        return _iso(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.isoformat()


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


# A unique id per row without a system call per row: a random prefix per process and a counter.
_id_prefix = os.urandom(8).hex()
_counter = itertools.count()


def _new_id(kind: str) -> str:
    return f"{kind}-{_id_prefix}-{next(_counter)}"


def _reseed_ids() -> None:  # a forked child must not reuse its parent's ids
    global _id_prefix
    _id_prefix = os.urandom(8).hex()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_ids)


@dataclass
class Stats:
    """Counters since the logger was created (rows, except ``batches`` and ``retries``)."""

    queued: int = 0  # accepted into the queue
    dropped: int = 0  # refused because the queue was full
    invalid: int = 0  # could not be encoded (bad arguments); logged
    created: int = 0  # stored by the server
    duplicates: int = 0  # the server had them already (a retry, or a repeated external_id)
    rejected: int = 0  # refused by the server's validation; logged with the reason
    failed: int = 0  # a batch the server refused as a whole (4xx) or left at close; logged
    batches: int = 0  # requests that succeeded
    retries: int = 0  # requests sent again after a retryable failure
    pending: int = 0  # in the queue or in flight now

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Queue:
    """One bounded FIFO of encoded rows for one endpoint."""

    def __init__(self, path: str, *, jsonl: bool) -> None:
        self.path = path
        self.jsonl = jsonl
        self.rows: deque[bytes] = deque()
        self.bytes = 0


class Flywheel:
    """A non-blocking logger of interactions and events for one project.

    ``Flywheel(url, ingest_key)``: ``url`` is the server's base URL (``https://flywheel.example``),
    ``ingest_key`` a project ingestion token (``fwi_...``). The project is the token's (asked of
    the server once) unless ``project`` names it.
    """

    def __init__(
        self,
        url: str,
        ingest_key: str,
        *,
        project: str | None = None,
        batch_size: int = 1000,
        batch_bytes: int = 4 << 20,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        max_queue_bytes: int = 64 << 20,
        timeout: float = 30.0,
        backoff_base: float = 0.25,
        backoff_max: float = 30.0,
        gzip_level: int = 1,
        flush_at_exit: bool = True,
        exit_timeout: float = 5.0,
        senders: int = 2,
        enabled: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self._key = ingest_key
        self.project = project
        self.batch_size = max(1, batch_size)
        self.batch_bytes = max(1, batch_bytes)
        self.flush_interval = flush_interval
        self.max_queue = max(1, max_queue)
        self.max_queue_bytes = max(1, max_queue_bytes)
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.gzip_level = gzip_level
        self.exit_timeout = exit_timeout
        self.enabled = enabled
        self.senders = max(1, senders)
        self._stats = Stats()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._interactions = _Queue("interactions/bulk", jsonl=True)
        self._events = _Queue("events/", jsonl=False)
        self._inflight = 0
        self._closed = False
        self._flush_waiters = 0
        self._last_drop_log = 0.0
        self._last_invalid_log = 0.0
        self._threads: list[threading.Thread] = []
        self._pid = os.getpid()
        if enabled:
            self._start()
        if flush_at_exit:
            atexit.register(_close_at_exit, weakref.ref(self))

    # ------------------------------------------------------------------ caller side (hot path)

    def log_interaction(
        self,
        *,
        messages: Sequence[Mapping[str, Any]],
        response: str,
        external_id: str | None = None,
        occurred_at: dt.datetime | str | None = None,
        model_version: str | None = None,
        conversation_id: str | None = None,
        segment: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        scores: Mapping[str, float] | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
        alt_response: str | None = None,
        alt_model_version: str | None = None,
    ) -> str:
        """Queue one interaction; returns its ``external_id`` (generated when not given) so that
        later events can name it. Never blocks on the network and never raises."""
        ext = external_id or _new_id("fw")
        try:
            row: dict[str, Any] = {
                "external_id": ext,
                "occurred_at": _iso(occurred_at)
                if isinstance(occurred_at, dt.datetime)
                else (occurred_at or _now_iso()),
                "messages": messages,
                "response": response,
            }
            if model_version is not None:
                row["model_version"] = model_version
            if conversation_id is not None:
                row["conversation_id"] = conversation_id
            if segment:
                row["segment"] = segment
            if metadata:
                row["metadata"] = metadata
            if scores:
                row["scores"] = scores
            if events:
                row["events"] = events
            if alt_response is not None:
                row["alt_response"] = alt_response
            if alt_model_version is not None:
                row["alt_model_version"] = alt_model_version
            data = _dumps(row)
        except Exception as exc:
            self._invalid(exc)
            return ext
        self._put(self._interactions, data)
        return ext

    def log_event(
        self,
        external_id: str,
        type: str,
        *,
        value: float | None = None,
        name: str | None = None,
        at: dt.datetime | str | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue one event (a late signal) for the interaction ``external_id``; returns its
        ``event_id`` (generated when not given: a retry never stores it twice)."""
        eid = event_id or _new_id("fwe")
        try:
            row: dict[str, Any] = {"external_id": external_id, "type": type, "event_id": eid}
            if value is not None:
                row["value"] = value
            if name is not None:
                row["name"] = name
            row["at"] = _iso(at) if isinstance(at, dt.datetime) else (at or _now_iso())
            data = _dumps(row)
        except Exception as exc:
            self._invalid(exc)
            return eid
        self._put(self._events, data)
        return eid

    def _put(self, queue: _Queue, data: bytes) -> None:
        if not self.enabled:
            return
        if self._pid != os.getpid():  # forked: the sender thread did not come along
            self._after_fork()
        with self._lock:
            if (
                self._closed
                or len(queue.rows) >= self.max_queue
                or queue.bytes + len(data) > self.max_queue_bytes
            ):
                self._stats.dropped += 1
                self._drop_warning()
                return
            queue.rows.append(data)
            queue.bytes += len(data)
            self._stats.queued += 1
            full = len(queue.rows) >= self.batch_size or queue.bytes >= self.batch_bytes
        if full:
            self._wake.set()

    def _drop_warning(self) -> None:  # called holding the lock
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0:
            self._last_drop_log = now
            log.warning(
                "Flywheel queue full (%d rows / %d bytes) or closed: %d rows dropped so far. "
                "Is %s reachable?",
                self.max_queue,
                self.max_queue_bytes,
                self._stats.dropped,
                self.url,
            )

    def _invalid(self, exc: Exception) -> None:
        with self._lock:
            self._stats.invalid += 1
            now = time.monotonic()
            if now - self._last_invalid_log < 10.0:
                return
            self._last_invalid_log = now
            count = self._stats.invalid
        log.warning("Flywheel could not encode a row (%d so far): %s", count, exc)

    # ------------------------------------------------------------------ control

    def stats(self) -> Stats:
        """A snapshot of the counters."""
        with self._lock:
            snapshot = Stats(**self._stats.as_dict())
            snapshot.pending = (
                len(self._interactions.rows) + len(self._events.rows) + self._inflight
            )
        return snapshot

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far; wait at most ``timeout`` seconds (None: until done).
        Returns whether the queue is empty and nothing is in flight."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if not any(thread.is_alive() for thread in self._threads):
                return self._empty()
            self._flush_waiters += 1
            try:
                self._wake.set()
                while not self._empty():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._idle.wait(remaining if remaining is not None else 1.0)
                    self._wake.set()
                return True
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float | None = None) -> bool:
        """Flush (waiting at most ``timeout``, default ``exit_timeout``) and stop the sender.
        Rows still queued after that are counted in ``failed``. Called at interpreter exit."""
        if self._closed:
            return self._empty()
        done = self.flush(self.exit_timeout if timeout is None else timeout)
        self._stop.set()
        with self._lock:
            self._closed = True
            left = len(self._interactions.rows) + len(self._events.rows)
            if left:
                self._stats.failed += left
                self._interactions.rows.clear()
                self._events.rows.clear()
                self._interactions.bytes = self._events.bytes = 0
        self._wake.set()
        if left:
            log.error("Flywheel closed with %d rows not sent (server unreachable?)", left)
        return done

    def wrap_openai(self, client: Any, **defaults: Any) -> Any:
        """``client = fw.wrap_openai(OpenAI())``: see :func:`flywheel_sdk.wrap_openai`."""
        from flywheel_sdk.openai_wrap import wrap_openai

        return wrap_openai(client, self, **defaults)

    def __enter__(self) -> Flywheel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _empty(self) -> bool:  # called holding the lock
        return not self._interactions.rows and not self._events.rows and not self._inflight

    def _start(self) -> None:
        self._threads = [
            threading.Thread(target=self._run, name=f"flywheel-sender-{n}", daemon=True)
            for n in range(self.senders)
        ]
        for thread in self._threads:
            thread.start()

    def _after_fork(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._inflight = 0
        # The parent sends what was queued before the fork; the child starts empty.
        for queue in (self._interactions, self._events):
            queue.rows.clear()
            queue.bytes = 0
        self._start()

    # ------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        conn = Connection(self.url, timeout=self.timeout)
        last_full_pass = time.monotonic()
        while True:
            wait = self.flush_interval - (time.monotonic() - last_full_pass)
            if wait > 0:
                self._wake.wait(wait)
            self._wake.clear()
            with self._lock:
                closed = self._closed
                everything = self._flush_waiters > 0 or closed
            started = time.monotonic()
            if started - last_full_pass >= self.flush_interval:
                everything = True
            if everything:
                last_full_pass = started
            for queue in (self._interactions, self._events):
                while True:
                    batch = self._take(queue, only_full=not everything)
                    if not batch:
                        break
                    self._send(conn, queue, batch)
            with self._lock:
                self._idle.notify_all()
            if closed:
                conn.close()
                return

    def _take(self, queue: _Queue, *, only_full: bool) -> list[bytes]:
        with self._lock:
            rows = queue.rows
            if not rows or (
                only_full and len(rows) < self.batch_size and queue.bytes < self.batch_bytes
            ):
                return []
            batch: list[bytes] = []
            size = 0
            while rows and len(batch) < self.batch_size and size < self.batch_bytes:
                data = rows.popleft()
                batch.append(data)
                size += len(data)
            queue.bytes -= size
            self._inflight += len(batch)
            return batch

    def _body(self, queue: _Queue, batch: list[bytes]) -> bytes:
        raw = b"\n".join(batch) + b"\n" if queue.jsonl else b"[" + b",".join(batch) + b"]"
        return gzip.compress(raw, compresslevel=self.gzip_level)

    def _send(self, conn: Connection, queue: _Queue, batch: list[bytes]) -> None:
        """Send one batch until it is answered (retrying with backoff) or refused for good."""
        try:
            self._send_until_done(conn, queue, batch)
        finally:
            with self._lock:
                self._inflight -= len(batch)
                self._idle.notify_all()

    def _send_until_done(self, conn: Connection, queue: _Queue, batch: list[bytes]) -> None:
        body = self._body(queue, batch)
        attempt = 0
        while True:
            try:
                path = f"/api/projects/{self._project(conn)}/{queue.path}"
                reply = conn.request(
                    "POST",
                    path,
                    body=body,
                    headers={
                        "Authorization": f"Ingest {self._key}",
                        "Content-Type": "application/x-ndjson"
                        if queue.jsonl
                        else "application/json",
                        "Content-Encoding": "gzip",
                    },
                )
            except Retryable as exc:
                if self._stop.is_set():
                    with self._lock:
                        self._stats.failed += len(batch)
                    log.error("Flywheel closed while retrying: %d rows not sent", len(batch))
                    return
                attempt += 1
                with self._lock:
                    self._stats.retries += 1
                delay = min(self.backoff_max, self.backoff_base * (2 ** min(attempt, 16)))
                delay = random.uniform(delay / 2, delay)  # jitter: clients do not retry in step
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.backoff_max))
                if attempt in (1, 5) or attempt % 20 == 0:
                    log.warning("Flywheel send failed (%s); retry %d in %.1fs", exc, attempt, delay)
                self._stop.wait(delay)
                continue
            except HttpError as exc:
                if exc.status == 413 and len(batch) > 1:
                    half = len(batch) // 2
                    self._send_until_done(conn, queue, batch[:half])
                    self._send_until_done(conn, queue, batch[half:])
                    return
                with self._lock:
                    self._stats.failed += len(batch)
                log.error("Flywheel refused a batch of %d rows: %s", len(batch), exc)
                return
            self._count(reply.json(), len(batch))
            return

    def _count(self, answer: Any, sent: int) -> None:
        if not isinstance(answer, dict):
            answer = {}
        with self._lock:
            self._stats.batches += 1
            self._stats.created += int(answer.get("created", 0))
            self._stats.duplicates += int(answer.get("duplicates", 0))
            self._stats.rejected += int(answer.get("rejected", 0))
        if answer.get("rejected"):
            log.warning(
                "Flywheel rejected %d of %d rows, e.g. %s",
                answer["rejected"],
                sent,
                (answer.get("errors") or [None])[0],
            )

    def _project(self, conn: Connection) -> str:
        """The project slug: given, or the ingestion token's (asked once)."""
        if self.project is None:
            reply = conn.request(
                "GET", "/api/ingest/whoami", headers={"Authorization": f"Ingest {self._key}"}
            )
            self.project = str(reply.json()["project"])
        return self.project


def _close_at_exit(ref: weakref.ref[Flywheel]) -> None:
    fw = ref()
    if fw is not None:
        fw.close()
