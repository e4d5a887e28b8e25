"""Follow-up work of a submit is coalesced, not per label: one retrain check per project per window
(``labeling.dispatch.enqueue_coalesced``), one judges-calibration decision per window, one read of
the webhook subscriptions per submit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends import locmem
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling import dispatch
from labeling.models import Project, Role, WebhookDelivery, WebhookEvent, WebhookSubscription
from labeling.services.queue import assignment_claim, assignment_submit
from sampling.models import ProxyModel
from sampling.tasks import proxy as tasks
from tests.factories import MembershipFactory, QueueItemFactory, UserFactory

pytestmark = pytest.mark.django_db

RETRAIN = "sampling.maybe_retrain"


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any], dict[str, Any]]]:
    """What would reach the broker: the retrain check is recorded instead of run eagerly."""
    sent: list[tuple[str, list[Any], dict[str, Any]]] = []

    def fake_apply_async(args: list[Any] | None = None, **options: Any) -> None:
        sent.append((RETRAIN, list(args or []), options))

    monkeypatch.setattr(tasks.maybe_retrain, "apply_async", fake_apply_async)
    return sent


@pytest.fixture
def window(settings: Any) -> float:
    settings.FLYWHEEL = {**settings.FLYWHEEL, "RETRAIN_CHECK_S": 10.0}
    return 10.0


def _submit_one(project: Project, capture: Callable[..., Any]) -> None:
    """An annotator labels one item through the services; the commit hooks run."""
    QueueItemFactory(interaction__project=project)
    user = UserFactory()
    MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
    assignment = assignment_claim(project=project, annotator=user)
    assert assignment is not None
    with capture(execute=True):
        assignment_submit(assignment_id=assignment.pk, annotator=user, values={"quality": 4})


def test_submits_within_the_window_enqueue_one_retrain_check(
    project: Project,
    published: list[tuple[str, list[Any], dict[str, Any]]],
    window: float,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    _submit_one(project, django_capture_on_commit_callbacks)
    _submit_one(project, django_capture_on_commit_callbacks)
    _submit_one(project, django_capture_on_commit_callbacks)
    # One check, run at the end of the window: it counts the three labels.
    assert published == [(RETRAIN, [project.pk], {"countdown": window})]

    # The check starts (the window is over): labels from now on enqueue the next check.
    ProxyModel.objects.create(project=project, version=1, status="ready", n_labels=3)
    assert tasks.maybe_retrain(project.pk) is None  # not due
    _submit_one(project, django_capture_on_commit_callbacks)
    _submit_one(project, django_capture_on_commit_callbacks)
    assert len(published) == 2


def test_projects_are_coalesced_separately(
    project: Project,
    other_project: Project,
    published: list[tuple[str, list[Any], dict[str, Any]]],
    window: float,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    _submit_one(project, django_capture_on_commit_callbacks)
    _submit_one(other_project, django_capture_on_commit_callbacks)
    _submit_one(project, django_capture_on_commit_callbacks)
    assert sorted(args[0] for _, args, _ in published) == sorted([project.pk, other_project.pk])


def test_a_lost_check_is_replaced_once_its_mark_expires(
    project: Project,
    published: list[tuple[str, list[Any], dict[str, Any]]],
    window: float,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    _submit_one(project, django_capture_on_commit_callbacks)
    assert len(published) == 1  # ...and this message is lost: the task never starts
    _submit_one(project, django_capture_on_commit_callbacks)
    assert len(published) == 1
    # The pending mark lives 2 * window + 60 s; after that a submit enqueues a check again.
    now = locmem.time.time()
    monkeypatch.setattr(locmem.time, "time", lambda: now + 2 * window + 61)
    _submit_one(project, django_capture_on_commit_callbacks)
    assert len(published) == 2


def test_a_failed_publish_leaves_no_mark(
    project: Project,
    window: float,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    attempts: list[int] = []

    def broker_down(args: list[Any] | None = None, **options: Any) -> None:
        attempts.append(1)
        raise ConnectionError("redis is down")

    monkeypatch.setattr(tasks.maybe_retrain, "apply_async", broker_down)
    _submit_one(project, django_capture_on_commit_callbacks)  # logged, never raised
    _submit_one(project, django_capture_on_commit_callbacks)
    assert len(attempts) == 2  # each submit tried: no stale mark blocked the second


def test_window_zero_checks_after_every_submit(
    project: Project,
    published: list[tuple[str, list[Any], dict[str, Any]]],
    settings: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    settings.FLYWHEEL = {**settings.FLYWHEEL, "RETRAIN_CHECK_S": 0}
    _submit_one(project, django_capture_on_commit_callbacks)
    _submit_one(project, django_capture_on_commit_callbacks)
    assert [args for _, args, _ in published] == [[project.pk], [project.pk]]


def test_without_a_broker_every_submit_checks_at_once(
    project: Project,
    window: float,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    """Eagerly (no broker: tests, `make run`) the check runs at commit and clears its own mark,
    so a retraining that became due is never postponed."""
    assert settings.CELERY_TASK_ALWAYS_EAGER
    checks: list[int] = []

    def retrain_due(*, project: Project) -> bool:
        checks.append(project.pk)
        return False

    monkeypatch.setattr(tasks.proxy_services, "retrain_due", retrain_due)
    _submit_one(project, django_capture_on_commit_callbacks)
    _submit_one(project, django_capture_on_commit_callbacks)
    assert checks == [project.pk, project.pk]
    assert cache.get(dispatch._pending_key(RETRAIN, (project.pk,))) is None


def test_a_submit_reads_the_webhook_subscriptions_once(
    project: Project, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    WebhookSubscription.objects.create(
        project=project,
        url="http://127.0.0.1:9/hook",
        events=[WebhookEvent.LABEL_SUBMITTED, WebhookEvent.ITEM_COMPLETED],
        secret="s" * 32,
    )
    QueueItemFactory(interaction__project=project)  # overlap 1: this label completes it
    user = UserFactory()
    MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
    assignment = assignment_claim(project=project, annotator=user)
    assert assignment is not None
    with CaptureQueriesContext(connection) as ctx, django_capture_on_commit_callbacks():
        assignment_submit(assignment_id=assignment.pk, annotator=user, values={"quality": 4})
    reads = [q["sql"] for q in ctx.captured_queries if "webhooksubscription" in q["sql"]]
    assert len(reads) == 1  # label.submitted and item.completed share it
    assert sorted(WebhookDelivery.objects.values_list("event", flat=True)) == [
        WebhookEvent.ITEM_COMPLETED,
        WebhookEvent.LABEL_SUBMITTED,
    ]


THREADED_FIRST_LOOKUPS = """
import os, threading, django
os.environ["DJANGO_SETTINGS_MODULE"] = "flywheel_site.test_settings"
django.setup()
from labeling import dispatch
failed = []
def look_up():
    try:
        dispatch.task_get("sampling.maybe_retrain")
    except LookupError as exc:
        failed.append(exc)
threads = [threading.Thread(target=look_up) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(failed))
"""


def test_first_task_lookups_from_many_threads_all_find_the_task() -> None:
    """A threaded server's first submits look the task up at the same moment (a fresh process:
    no task module imported yet); every one of them must find it (7 of 8 used to fail)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", THREADED_FIRST_LOOKUPS],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(settings.BASE_DIR),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0"
