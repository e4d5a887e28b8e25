"""A small registry through which ``labeling`` hands work to other apps without importing them.

``sampling`` registers its receivers in ``SamplingConfig.ready()``; ``labeling`` fires events after
commit. Receivers must be cheap (enqueue a Celery task) and idempotent.

Events:
- ``interactions_processed(project_id: int, interaction_ids: list[int])`` — new or changed
  interactions whose signal aggregates are up to date (score them).
- ``labels_submitted(project_id: int, count: int)`` — annotations were submitted (maybe retrain).
  Fired once per submit: a receiver must coalesce what it enqueues (one task per project per
  window, ``labeling.dispatch.enqueue_coalesced``), not publish a task per label.

Called in the caller's transaction (``call``: a receiver's error propagates and rolls the caller's
write back, so what the receiver keeps stays consistent with it):
- ``interactions_processing(interaction_ids: list[int])`` — processing is about to lock these
  interactions' rows (sampling takes its run lock of their projects shared first).
- ``ratings_changed(changes: list[tuple[int, int | None, int | None]])`` — processing wrote these
  interactions' ``explicit_rating`` (id, old, new) (sampling moves them in its population cells).

Providers answer questions labeling cannot answer itself (``provide`` / ``ask``):
- ``strategy_names(project_id: int) -> dict[int, str]`` — the project's sampling strategies (the
  queues page lists them as the strategies that may feed a queue).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_receivers: dict[str, list[Callable[..., Any]]] = defaultdict(list)


def connect(event: str, receiver: Callable[..., Any]) -> None:
    if receiver not in _receivers[event]:
        _receivers[event].append(receiver)


_providers: dict[str, Callable[..., Any]] = {}


def provide(question: str, provider: Callable[..., Any]) -> None:
    _providers[question] = provider


def ask(question: str, default: Any, **kwargs: Any) -> Any:
    """The registered provider's answer, or ``default`` when no app provides one."""
    provider = _providers.get(question)
    return default if provider is None else provider(**kwargs)


def call(event: str, **kwargs: Any) -> None:
    """Call every receiver now, inside the caller's transaction; an error is raised to the caller
    (its transaction rolls back and is retried). For receivers that keep state in step with the
    caller's write; they must be fast (a few statements)."""
    for receiver in list(_receivers[event]):
        receiver(**kwargs)


def fire(event: str, **kwargs: Any) -> None:
    """Call every receiver. A failing receiver (e.g. Redis down) is logged, never raised: the
    database is the source of truth and the periodic sweeps pick up what was not handed over."""
    for receiver in list(_receivers[event]):
        try:
            receiver(**kwargs)
        except Exception:
            logger.exception("hook %s receiver %r failed; the sweep will catch up", event, receiver)
