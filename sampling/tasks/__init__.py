"""Celery tasks of the sampling app, one module per area: thin, idempotent, named; each takes ids
and calls a service (locking rows and deciding schedules are the services' work).

- ``scoring``: ``sampling.score_interactions``, ``sampling.score_sweep``, ``sampling.rescore_pool``,
  ``sampling.rescore_chunk``
- ``proxy``: ``sampling.retrain``, ``sampling.maybe_retrain``, ``sampling.retrain_sweep``
- ``runs``: ``sampling.execute_run``, ``sampling.dispatch_scheduled_runs``,
  ``sampling.resume_pending_runs``
- ``alerts``: ``sampling.evaluate_alerts``
- ``demo``: ``sampling.demo_bootstrap``

A task's registered name is its contract (``labeling.dispatch`` and the beat schedule in
``flywheel_site/settings.py`` use it), so moving a task between modules never touches its callers.
Re-running any of them is harmless: scoring writes the same values, a run that is no longer
pending is left alone, a training that finds a claim skips. The judges' tasks are in
``sampling.judges.tasks``.
"""

from sampling.tasks import alerts, demo, proxy, runs, scoring  # noqa: F401
