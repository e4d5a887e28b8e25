"""Hand work to Celery by task name: the one place services, receivers and views enqueue from.

A leaf module: it imports no service, selector, view or task of any app, so a service can enqueue a
task whose module imports that same service without an import cycle (``services -> tasks ->
services``). Tasks are looked up by their registered name (``"labeling.run_export"``); the name is
the contract, so moving a task between modules never touches its callers.

- :func:`enqueue` publishes now and raises the broker's error if it is unreachable.
- :func:`enqueue_on_commit` publishes after the current transaction commits; a broker error is
  logged, never raised into the committing request (the periodic sweeps catch up).
- :func:`enqueue_guarded` publishes with a quick connection check and a per-process breaker and
  returns False instead of raising when the broker is down (for large uploads: one failed
  connection attempt per ``BROKER_RETRY_AFTER_S``, not one per batch).
- :func:`enqueue_coalesced` publishes after commit, delayed by a window, unless the same task with
  the same arguments is already waiting (a pending mark in the cache): a burst of calls, one per
  submitted label, becomes one task per window. The task calls :func:`coalesced_started` first.

With no broker configured (``CELERY_TASK_ALWAYS_EAGER``) the task runs here, in-process, and its
exceptions propagate (``task_eager_propagates``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis.exceptions
from celery import Celery, Task
from django.core.cache import cache
from django.db import transaction
from kombu.exceptions import OperationalError as KombuOperationalError

logger = logging.getLogger(__name__)

# What a publish raises when the broker is unreachable; anything else is a bug and propagates.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    KombuOperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)

# After a failed publish, skip the broker for this long (per process): a large upload to a server
# whose Redis is down must not wait for a connection attempt on every batch.
BROKER_RETRY_AFTER_S = 30.0
_broker_down_until = 0.0


def _app() -> Celery:
    from flywheel_site.celery import app

    return app


_import_lock = threading.Lock()


def task_get(name: str) -> Task:
    """The registered task called ``name``; imports every app's task modules on first use.

    Under a lock: in a threaded server the first requests arrive together, and a thread that
    calls ``import_default_modules`` while another is still importing finds the task modules
    started but their tasks not registered yet (seven of eight threads failed without it)."""
    app = _app()
    if name not in app.tasks:
        with _import_lock:
            app.loader.import_default_modules()  # runs autodiscover_tasks()
    try:
        return app.tasks[name]
    except KeyError:
        raise LookupError(f"no Celery task is registered under the name {name!r}") from None


def enqueue(name: str, *args: Any) -> None:
    """Publish task ``name`` with positional ``args`` now (eager mode: run it now)."""
    task_get(name).apply_async(args=list(args))


def enqueue_on_commit(name: str, *args: Any) -> None:
    """Publish task ``name`` after the current transaction commits (now if there is none).

    A broker that is down is logged, never raised (``robust=True``): the database is the source of
    truth and the periodic sweeps pick up what was not handed over.
    """
    task_get(name)  # an unknown name is a bug: fail in the caller, not after commit

    # A function, not a functools.partial: Django logs a robust callback's failure with its
    # ``__qualname__``, which a partial lacks (the AttributeError would reach the caller).
    def publish() -> None:
        enqueue(name, *args)

    publish.__qualname__ = f"enqueue_on_commit({name!r})"
    transaction.on_commit(publish, robust=True)


def _pending_key(name: str, args: tuple[Any, ...]) -> str:
    return "dispatch:pending:" + ":".join([name, *(str(a) for a in args)])


def enqueue_coalesced(name: str, *args: Any, window_s: float) -> None:
    """After commit, publish task ``name`` to run ``window_s`` seconds later, unless the same task
    with the same arguments is already waiting to run: then the waiting one covers this call too.

    For follow-up work that looks at the state rather than at the call (a retrain check counts
    the labels when it runs): N calls within a window cost one task instead of N. The task must
    call :func:`coalesced_started` with the same arguments before it reads anything, so a call
    made after that enqueues the next task (nothing committed is ever left uncovered). The pending
    mark expires after ``2 * window_s + 60`` seconds, so a lost message delays the next task at
    most that long (the periodic sweeps cover it meanwhile). Like :func:`enqueue_on_commit`, a
    broker or cache that is down is logged, never raised. ``window_s`` 0: one task per call, now.
    With no broker the task runs eagerly at commit (no delay) and clears its mark itself.
    """
    task_get(name)
    if window_s <= 0:
        enqueue_on_commit(name, *args)
        return
    key = _pending_key(name, args)

    def publish() -> None:
        if not cache.add(key, 1, timeout=int(2 * window_s) + 60):
            return  # one is waiting: it will see what this transaction committed
        try:
            task_get(name).apply_async(args=list(args), countdown=window_s)
        except BaseException:
            cache.delete(key)  # not published: let the next call try
            raise

    publish.__qualname__ = f"enqueue_coalesced({name!r})"
    transaction.on_commit(publish, robust=True)


def coalesced_started(name: str, *args: Any) -> None:
    """Called first by a task published through :func:`enqueue_coalesced`: calls from now on
    publish the next one (what they commit may be too late for this run to see)."""
    cache.delete(_pending_key(name, args))


def broker_breaker_reset() -> None:
    """Forget an earlier broker failure (tests; an operator who just restarted Redis)."""
    global _broker_down_until
    _broker_down_until = 0.0


def enqueue_guarded(name: str, *args: Any, what: str = "work") -> bool:
    """Publish task ``name`` unless the broker is unreachable; then log ``what`` is left for the
    sweep and return False (and skip the broker for ``BROKER_RETRY_AFTER_S``). Eager mode runs the
    task here and its exceptions propagate."""
    global _broker_down_until
    app = _app()
    task = task_get(name)
    if app.conf.task_always_eager:
        task.apply(args=list(args))  # raises: task_eager_propagates
        return True
    if time.monotonic() < _broker_down_until:
        logger.warning("broker unreachable (recently), %s left for the sweep", what)
        return False
    try:
        # One quick connection check instead of kombu's default publish retries (seconds).
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2)
        task.apply_async(args=list(args))
    except BROKER_ERRORS as exc:
        _broker_down_until = time.monotonic() + BROKER_RETRY_AFTER_S
        logger.warning("broker unreachable, %s left for the sweep: %s", what, exc)
        return False
    return True
