"""Webhooks against a real receiver on loopback: outbox, signature (verified with the snippet of
docs/webhooks.md), retries with backoff, a receiver that fails, times out and recovers,
auto-disable, a broker outage that loses nothing, the send-test button's service, field errors."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from flywheel_site.celery import app
from labeling.errors import Invalid
from labeling.models import AuditLog, Project, WebhookAttempt, WebhookDelivery, WebhookSubscription
from labeling.services import webhooks
from labeling.services.webhooks import (
    webhook_attempt,
    webhook_deliveries_due,
    webhook_emit,
    webhook_retry_delay,
    webhook_send_test,
    webhook_subscription_create,
    webhook_subscription_update,
)
from labeling.tasks.webhooks import sweep_webhooks
from tests.test_celery_worker import celery_on
from tests.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent


def doc_verify() -> Callable[..., bool]:
    """The verification snippet of docs/webhooks.md, run verbatim."""
    text = (ROOT / "docs" / "webhooks.md").read_text()
    start = text.index("```python\nimport hashlib")
    code = text[start + len("```python\n") :]
    namespace: dict[str, Any] = {}
    exec(compile(code[: code.index("```")], "docs/webhooks.md", "exec"), namespace)
    return namespace["verify"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def fast(settings: Any) -> None:
    settings.FLYWHEEL = {
        **settings.FLYWHEEL,
        "WEBHOOK_TIMEOUT_S": 0.5,
        "WEBHOOK_RETRY_BASE_S": 10.0,
    }


def subscribe(project: Project, url: str, events: Any = None) -> tuple[WebhookSubscription, str]:
    return webhook_subscription_create(
        project=project, url=url, events=events or ["label.submitted", "export.ready"]
    )


def test_emit_writes_nothing_without_listeners_and_rolls_back_with_the_event(
    project: Project, receiver: Receiver
) -> None:
    assert webhook_emit(project, "label.submitted", {"x": 1}) == 0
    subscribe(project, receiver.url, ["export.ready"])
    assert webhook_emit(project, "label.submitted", {"x": 1}) == 0  # not listening to it

    def event_fails() -> None:
        with transaction.atomic():
            assert webhook_emit(project, "export.ready", {"export_id": 1}) == 1
            raise RuntimeError("the event's transaction fails")

    with pytest.raises(RuntimeError):
        event_fails()
    assert not WebhookDelivery.objects.exists()
    assert receiver.requests == []


def test_delivery_is_signed_and_the_documented_snippet_verifies_it(
    project: Project, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    sub, secret = subscribe(project, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        assert webhook_emit(project, "label.submitted", {"annotation_id": 7, "values": {"q": 5}})
    assert len(receiver.requests) == 1
    seen = receiver.requests[0]
    body = json.loads(seen.body)
    assert body["event"] == "label.submitted"
    assert body["project"] == "support-bot"
    assert body["data"] == {"annotation_id": 7, "values": {"q": 5}}
    assert seen.headers["Flywheel-Delivery"] == body["id"]
    assert seen.headers["Flywheel-Event"] == "label.submitted"
    assert seen.headers["Flywheel-Attempt"] == "1"
    verify = doc_verify()
    assert verify(secret, seen.headers, seen.body)
    assert not verify(secret, seen.headers, seen.body.replace(b"7", b"8"))  # tampered body
    assert not verify("whsec_other", seen.headers, seen.body)  # another secret
    old = {**seen.headers, "Flywheel-Timestamp": str(int(seen.headers["Flywheel-Timestamp"]) - 600)}
    assert not verify(secret, old, seen.body)  # a replay, even with the right secret

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "delivered"
    assert delivery.attempts == 1
    assert delivery.response_status == 200
    assert delivery.latency_ms is not None
    assert delivery.latency_ms > 0
    attempt = WebhookAttempt.objects.get()
    assert (attempt.number, attempt.ok, attempt.response_status) == (1, True, 200)
    sub.refresh_from_db()
    assert sub.last_success_at is not None
    assert sub.consecutive_failures == 0


def test_receiver_fails_times_out_and_recovers(
    project: Project, receiver: Receiver, fast: None, django_capture_on_commit_callbacks: Any
) -> None:
    receiver.plan = ["fail", "timeout", "ok"]
    sub, secret = subscribe(project, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        webhook_emit(project, "export.ready", {"export_id": 3})
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending"
    assert delivery.attempts == 1
    assert delivery.response_status == 500
    assert "HTTP 500" in delivery.error
    # Backoff: not due now, due after the first delay (10 s, jittered to 5..10 s).
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 5.0 <= wait <= 10.1
    assert webhook_deliveries_due() == []
    assert webhook_attempt(delivery_id=delivery.pk) is None  # not due: nothing sent
    assert len(receiver.requests) == 1

    later = delivery.next_attempt_at + dt.timedelta(milliseconds=1)
    assert webhook_deliveries_due(now=later) == [delivery.pk]
    outcome = webhook_attempt(delivery_id=delivery.pk, now=later)
    assert outcome is not None
    assert not outcome.ok
    assert outcome.status_code is None
    assert "timeout" in outcome.error
    assert outcome.retry_in is not None
    assert 10.0 <= outcome.retry_in <= 20.0  # the second delay doubles

    delivery.refresh_from_db()
    outcome = webhook_attempt(delivery_id=delivery.pk, now=delivery.next_attempt_at)
    assert outcome is not None
    assert outcome.ok
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert delivery.attempts == 3
    log = list(delivery.attempt_log.values_list("number", "ok", "response_status"))
    assert log == [(1, False, 500), (2, False, None), (3, True, 200)]
    sub.refresh_from_db()
    assert sub.consecutive_failures == 0
    assert sub.active

    # Every attempt sent the same body and id, numbered, each signed for its own timestamp.
    assert len(receiver.requests) == 3
    assert len({r.body for r in receiver.requests}) == 1
    assert {r.headers["Flywheel-Delivery"] for r in receiver.requests} == {delivery.uid}
    assert [r.headers["Flywheel-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    verify = doc_verify()
    assert all(verify(secret, r.headers, r.body) for r in receiver.requests)


def test_retry_delay_doubles_with_jitter_and_is_capped(settings: Any) -> None:
    settings.FLYWHEEL = {
        **settings.FLYWHEEL,
        "WEBHOOK_RETRY_BASE_S": 10.0,
        "WEBHOOK_RETRY_MAX_S": 300.0,
    }
    rng = random.Random(1)
    for attempt, full in [(1, 10), (2, 20), (3, 40), (5, 160), (6, 300), (12, 300)]:
        delays = [webhook_retry_delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= full / 2
        assert max(delays) <= full
        assert max(delays) - min(delays) > full / 4  # jitter spreads them


def test_gives_up_after_max_attempts(
    project: Project, receiver: Receiver, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.FLYWHEEL = {**settings.FLYWHEEL, "WEBHOOK_MAX_ATTEMPTS": 3}
    receiver.default = "fail"
    subscribe(project, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        webhook_emit(project, "export.ready", {})
    delivery = WebhookDelivery.objects.get()
    for _ in range(5):
        delivery.refresh_from_db()
        webhook_attempt(delivery_id=delivery.pk, now=delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.attempts == 3
    assert len(receiver.requests) == 3


def test_auto_disable_after_consecutive_failures_with_a_visible_reason(
    project: Project, receiver: Receiver, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.FLYWHEEL = {
        **settings.FLYWHEEL,
        "WEBHOOK_DISABLE_AFTER_FAILURES": 3,
        "WEBHOOK_DISABLE_AFTER_S": 60,
    }
    receiver.default = "fail"
    sub, _ = subscribe(project, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(3):
            webhook_emit(project, "export.ready", {"export_id": i})
    sub.refresh_from_db()
    # Three failures in a row, but within a minute: a short outage does not disable it.
    assert sub.consecutive_failures == 3
    assert sub.active
    delivery = WebhookDelivery.objects.order_by("id").first()
    assert delivery is not None
    later = timezone.now() + dt.timedelta(minutes=5)
    webhook_attempt(delivery_id=delivery.pk, now=later)
    sub.refresh_from_db()
    assert not sub.active
    assert "4 failed attempts in a row" in sub.disabled_reason
    assert "HTTP 500" in sub.disabled_reason
    assert AuditLog.objects.filter(action="webhook.disabled", object_id=str(sub.pk)).exists()
    # Switched off: new events are not recorded, pending ones wait.
    assert webhook_emit(project, "export.ready", {}) == 0
    assert webhook_deliveries_due(now=later + dt.timedelta(days=1)) == []

    # The URL works again; an admin switches it on: counters cleared, pending ones sent.
    receiver.default = "ok"
    with django_capture_on_commit_callbacks(execute=True):
        webhook_subscription_update(subscription=sub, data={"active": True})
    sub.refresh_from_db()
    assert sub.active
    assert (sub.consecutive_failures, sub.disabled_reason) == (0, "")
    due = webhook_deliveries_due(now=later + dt.timedelta(days=1))
    for delivery_id in due:
        webhook_attempt(delivery_id=delivery_id, now=later + dt.timedelta(days=1))
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_loses_no_delivery(
    project: Project, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    subscribe(project, receiver.url)
    with celery_on("redis://127.0.0.1:1/0"), caplog.at_level(logging.WARNING):
        for i in range(5):
            with transaction.atomic():  # each event commits; its enqueue fails after commit
                webhook_emit(project, "label.submitted", {"annotation_id": i})
    assert receiver.requests == []
    assert WebhookDelivery.objects.filter(status="pending").count() == 5
    # Beat runs the sweep later (here: in-process, as without Redis).
    assert sweep_webhooks.apply().result == 5
    assert WebhookDelivery.objects.filter(status="delivered").count() == 5
    seen = sorted(json.loads(r.body)["data"]["annotation_id"] for r in receiver.requests)
    assert seen == [0, 1, 2, 3, 4]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_retries_with_backoff_until_delivered(
    project: Project, receiver: Receiver, settings: Any
) -> None:
    """Through Redis and a real worker: the task re-schedules itself after a failure."""
    import os
    import time

    from celery.contrib.testing.worker import start_worker

    settings.FLYWHEEL = {**settings.FLYWHEEL, "WEBHOOK_RETRY_BASE_S": 0.2}
    receiver.plan = ["fail", "fail"]
    subscribe(project, receiver.url)
    redis_url = os.environ["REDIS_URL"]
    with celery_on(settings.CELERY_BROKER_URL or redis_url, None):
        with transaction.atomic():
            webhook_emit(project, "export.ready", {"export_id": 9})
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            for _ in range(300):
                if WebhookDelivery.objects.filter(status="delivered").exists():
                    break
                time.sleep(0.1)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "delivered"
    assert delivery.attempts == 3
    assert [r.headers["Flywheel-Attempt"] for r in receiver.requests] == ["1", "2", "3"]


def test_a_claimed_delivery_is_not_sent_twice(project: Project, receiver: Receiver) -> None:
    subscribe(project, receiver.url)
    webhook_emit(project, "export.ready", {})  # no commit hook here: nothing sent yet
    delivery = WebhookDelivery.objects.get()
    soon = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        claimed_until=soon + dt.timedelta(seconds=40)
    )  # another worker is sending it
    assert webhook_deliveries_due(now=soon) == []
    assert webhook_attempt(delivery_id=delivery.pk, now=soon) is None
    # That worker died: after its claim expires the next one sends it.
    outcome = webhook_attempt(delivery_id=delivery.pk, now=soon + dt.timedelta(seconds=41))
    assert outcome is not None
    assert outcome.ok
    assert len(receiver.requests) == 1


def test_connection_refused_is_a_failed_attempt(project: Project, fast: None) -> None:
    closed = Receiver().start()
    url = closed.url
    closed.stop()
    subscribe(project, url)
    webhook_emit(project, "export.ready", {})
    delivery = WebhookDelivery.objects.get()
    outcome = webhook_attempt(delivery_id=delivery.pk)
    assert outcome is not None
    assert not outcome.ok
    assert "Connect" in outcome.error


def test_send_test_reports_the_result_and_does_not_count_against_the_url(
    project: Project, receiver: Receiver, member: Any
) -> None:
    admin = member("admin", username="boss")
    sub, secret = subscribe(project, receiver.url)
    delivery = webhook_send_test(subscription=sub, actor=admin)
    assert delivery.status == "delivered"
    assert delivery.event == "webhook.test"
    assert json.loads(receiver.requests[0].body)["data"]["sent_by"] == "boss"
    assert doc_verify()(secret, receiver.requests[0].headers, receiver.requests[0].body)

    receiver.default = "fail"
    webhook_subscription_update(subscription=sub, data={"active": False})
    delivery = webhook_send_test(subscription=sub, actor=admin)  # also when switched off
    assert delivery.status == "failed"  # one attempt, no retry
    assert "HTTP 500" in delivery.error
    sub.refresh_from_db()
    assert sub.consecutive_failures == 0
    assert sub.disabled_reason == "Switched off by an admin."


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "must start with http:// or https://"),
        ("not a url", "must start with http"),
        ("https://", "must name a host"),
        ("https://user:pw@example.com/x", "must not contain a user name"),
        ("https://example.com:99999/x", "not a valid URL"),
        ("https://intranet/x", "not a full host name"),
        ("", "must be an absolute"),
    ],
)
def test_a_bad_url_is_a_field_error(project: Project, url: str, message: str) -> None:
    with pytest.raises(Invalid) as exc:
        webhook_subscription_create(project=project, url=url, events=["export.ready"])
    assert message in exc.value.errors["url"]


def test_unknown_events_are_field_errors(project: Project) -> None:
    with pytest.raises(Invalid) as exc:
        webhook_subscription_create(
            project=project, url="https://hooks.example.com/f", events=["export.ready", "x.y"]
        )
    assert exc.value.errors == {
        "events[1]": "unknown event 'x.y'; known: ['label.submitted', 'item.completed', "
        "'sampling_run.done', 'export.ready', 'regression.detected']"
    }
    with pytest.raises(Invalid) as exc:
        webhook_subscription_create(project=project, url="https://hooks.example.com/f", events=[])
    assert "events" in exc.value.errors
    with pytest.raises(Invalid) as exc:
        webhook_emit(project, "label.done", {})
    assert "unknown event 'label.done'" in exc.value.errors["event"]
    with pytest.raises(Invalid) as exc:
        webhook_subscription_create(project=project, url="bad", events=["nope"])
    assert set(exc.value.errors) == {"url", "events[0]"}  # every field at once


def test_settings_are_documented() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    for name in settings.FLYWHEEL:
        if name.startswith("WEBHOOK_"):
            assert f"`{name}`" in text


@pytest.fixture
def public_only(settings: Any) -> None:
    """Production's default: receivers only on public addresses."""
    settings.FLYWHEEL = {**settings.FLYWHEEL, "WEBHOOK_ALLOW_PRIVATE": 0, "WEBHOOK_TIMEOUT_S": 0.5}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8000/hook", "127.0.0.1 is a loopback address"),
        ("http://localhost/hook", "localhost is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("https://192.168.0.7:8443/hook", "192.168.0.7 is a private address"),
        ("http://[::1]/hook", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1 is a loopback address"),
        ("http://0.0.0.0/hook", "0.0.0.0 is a private address"),
    ],
)
def test_an_internal_address_is_a_field_error_unless_allowed(
    project: Project, public_only: None, settings: Any, url: str, message: str
) -> None:
    with pytest.raises(Invalid) as exc:
        webhook_subscription_create(project=project, url=url, events=["export.ready"])
    assert message in exc.value.errors["url"]
    assert "FLYWHEEL_WEBHOOK_ALLOW_PRIVATE=1" in exc.value.errors["url"]
    assert not WebhookSubscription.objects.exists()
    settings.FLYWHEEL = {**settings.FLYWHEEL, "WEBHOOK_ALLOW_PRIVATE": 1}
    sub, _ = webhook_subscription_create(project=project, url=url, events=["export.ready"])
    assert sub.url == url
    # A public address is a receiver like any other (nothing is sent here).
    settings.FLYWHEEL = {**settings.FLYWHEEL, "WEBHOOK_ALLOW_PRIVATE": 0}
    webhook_subscription_update(subscription=sub, data={"url": "https://93.184.216.34/hook"})


def test_a_host_name_that_resolves_inside_is_never_called(
    project: Project, receiver: Receiver, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """A name passes when the URL is saved (names resolve differently over time: DNS can point a
    public name at 127.0.0.1 later); every attempt resolves it again and refuses an internal
    address before connecting, so the receiver on loopback never sees a request."""
    port = receiver.url.split(":")[2].split("/")[0]
    sub, _ = subscribe(project, f"http://localhost:{port}/hooks/flywheel")  # saved while allowed
    settings.FLYWHEEL = {**settings.FLYWHEEL, "WEBHOOK_ALLOW_PRIVATE": 0, "WEBHOOK_TIMEOUT_S": 0.5}
    with django_capture_on_commit_callbacks(execute=True):
        assert webhook_emit(project, "label.submitted", {"annotation_id": 1}) == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending"  # a failed attempt, retried later like any other
    assert delivery.error.startswith("blocked: localhost resolves to ")
    assert "a loopback address" in delivery.error
    assert receiver.requests == []
    test = webhook_send_test(subscription=sub)
    assert test.status == "failed"
    assert "blocked:" in test.error
    assert receiver.requests == []

    settings.FLYWHEEL = {**settings.FLYWHEEL, "WEBHOOK_ALLOW_PRIVATE": 1}
    assert webhook_send_test(subscription=sub).status == "delivered"
    assert len(receiver.requests) == 1


def test_an_attempt_connects_to_the_address_it_checked(
    project: Project, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name answers a public address to the check and an internal one a moment
    later, when the HTTP client would resolve it again. The attempt connects to the address it
    checked, with the name in the Host header, so the service inside never sees the request.

    On loopback: 127.0.0.1 plays the receiver's public address, 127.0.0.2 (the same port) a
    service inside the server's network."""
    public = Receiver().start()
    inside = Receiver(host="127.0.0.2", port=public.bound_port).start()
    try:
        url = f"http://hooks.example.test:{public.bound_port}/hooks/flywheel"
        sub, _ = subscribe(project, url)
        settings.FLYWHEEL = {**settings.FLYWHEEL, "WEBHOOK_ALLOW_PRIVATE": 0}
        monkeypatch.setattr(
            webhooks,
            "_internal_reason",
            lambda address: None if str(address) == "127.0.0.1" else "an internal address",
        )
        real = socket.getaddrinfo
        answers = iter(["127.0.0.1"])  # the first lookup; every later one answers 127.0.0.2

        def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host == "hooks.example.test":
                return real(next(answers, "127.0.0.2"), port, *args, **kwargs)
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        assert webhook_send_test(subscription=sub).status == "delivered"
        assert inside.requests == []
        [seen] = public.requests
        assert seen.headers["Host"] == f"hooks.example.test:{public.bound_port}"
        assert seen.path == "/hooks/flywheel"
    finally:
        public.stop()
        inside.stop()


def test_an_https_receiver_keeps_its_name_for_tls(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pinned to the checked address, an https POST still names the host for SNI and for the
    certificate check (httpcore's ``sni_hostname``), and in the Host header."""
    settings.FLYWHEEL = {**settings.FLYWHEEL, "WEBHOOK_ALLOW_PRIVATE": 0}
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:2800:220:1::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
        ],
    )
    target = webhooks.receiver_target("https://Hooks.Example.com/in?x=1")
    assert target == webhooks.ReceiverTarget(
        "https://[2606:2800:220:1::1]/in?x=1",
        headers={"Host": "hooks.example.com"},
        extensions={"sni_hostname": "hooks.example.com"},
    )
    target = webhooks.receiver_target("http://hooks.example.com:8080/in")
    assert (target.url, target.headers, target.extensions) == (
        "http://[2606:2800:220:1::1]:8080/in",
        {"Host": "hooks.example.com:8080"},
        {},
    )
    # One internal answer among public ones blocks the attempt.
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port)),
        ],
    )
    blocked = webhooks.receiver_target("https://hooks.example.com/in").blocked
    assert blocked.startswith("blocked: hooks.example.com resolves to 10.0.0.5, a private address")


def test_an_attempt_does_not_log_each_request_at_info(
    project: Project, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx logs every request at INFO; the worker's log would hold a line per attempt."""
    sub, _ = subscribe(project, receiver.url)
    with caplog.at_level(logging.INFO):
        assert webhook_send_test(subscription=sub).status == "delivered"
    assert [r.name for r in caplog.records if r.name.startswith(("httpx", "httpcore"))] == []
