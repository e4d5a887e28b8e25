"""A task's registered name is its contract: ``labeling.dispatch``, the receivers and the beat
schedule enqueue by name, and messages already in Redis carry it. Moving a task between modules
(``sampling/tasks.py`` became the package ``sampling/tasks/``) must keep every name."""

from __future__ import annotations

from django.conf import settings

from flywheel_site.celery import app
from labeling import dispatch

# Every task name registered on main before the split (issue 11, item 6).
NAMES = {
    "judges.calibrate",
    "judges.calibrate_sweep",
    "judges.run",
    "judges.schedule",
    "judges.sweep",
    "labeling.deliver_webhook",
    "labeling.expire_leases",
    "labeling.process_interactions",
    "labeling.run_export",
    "labeling.sweep_exports",
    "labeling.sweep_unprocessed",
    "labeling.sweep_webhooks",
    "sampling.demo_bootstrap",
    "sampling.dispatch_scheduled_runs",
    "sampling.evaluate_alerts",
    "sampling.execute_run",
    "sampling.maybe_retrain",
    "sampling.rescore_chunk",
    "sampling.rescore_pool",
    "sampling.resume_pending_runs",
    "sampling.retrain",
    "sampling.retrain_sweep",
    "sampling.score_interactions",
    "sampling.score_sweep",
}


def _registered() -> dict[str, str]:
    app.loader.import_default_modules()  # what a worker does at start (autodiscover_tasks)
    return {
        name: task.__module__ for name, task in app.tasks.items() if not name.startswith("celery.")
    }


def test_the_registered_task_names_are_the_same_set_as_before() -> None:
    assert set(_registered()) == NAMES


def test_sampling_tasks_live_in_the_tasks_package() -> None:
    modules = {m for n, m in _registered().items() if n.startswith("sampling.")}
    assert modules == {
        "sampling.tasks.alerts",
        "sampling.tasks.demo",
        "sampling.tasks.proxy",
        "sampling.tasks.runs",
        "sampling.tasks.scoring",
    }


def test_every_beat_entry_and_dispatch_lookup_names_a_registered_task() -> None:
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled <= NAMES
    assert scheduled >= {
        "sampling.score_sweep",
        "sampling.dispatch_scheduled_runs",
        "sampling.retrain_sweep",
        "sampling.evaluate_alerts",
    }
    for name in NAMES:
        assert dispatch.task_get(name).name == name
