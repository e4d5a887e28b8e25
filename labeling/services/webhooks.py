"""Webhooks: subscriptions, the outbox (:func:`webhook_emit`) and delivery attempts.

Any code that wants to tell the outside world about an event calls
``webhook_emit(project, event, payload)`` *inside the transaction that makes the event true* (a
label saved, an export done). It writes one :class:`WebhookDelivery` row per matching active
subscription in that same transaction and enqueues ``labeling.deliver_webhook`` after commit. A
broker that is down loses nothing: the periodic ``labeling.sweep_webhooks`` sends every due row
(see docs/webhooks.md).

Invariants:
- A delivery is sent only by the worker that claimed it: a conditional UPDATE (pending, due,
  subscription active, not claimed or claim expired) sets ``claimed_until`` and counts the attempt.
  Two workers never POST the same delivery at once; a worker killed mid-send leaves a claim that
  expires, and the next claim is attempt + 1 (recorded: the receiver may see it twice).
- Every attempt writes one :class:`WebhookAttempt` row (status, latency, error).
- Retries: exponential backoff with jitter, up to ``WEBHOOK_MAX_ATTEMPTS``; then ``failed``.
- ``consecutive_failures`` counts failed attempts since the last success; with
  ``WEBHOOK_DISABLE_AFTER_FAILURES`` of them and ``WEBHOOK_DISABLE_AFTER_S`` of failing the
  subscription is switched off with a reason an admin sees. Its pending deliveries wait (they are
  sent when it is switched on again); new events are not recorded for it meanwhile.

``sampling`` (which may import labeling) calls :func:`webhook_emit` directly; ``labeling`` never
imports ``sampling``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from flywheel_site.app_settings import setting
from labeling import dispatch
from labeling.errors import Conflict, Invalid
from labeling.models import (
    WEBHOOK_TEST_EVENT,
    AuditLog,
    Project,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)

logger = logging.getLogger(__name__)

EVENTS: tuple[str, ...] = tuple(WebhookEvent.values)
SIGNATURE_HEADER = "Flywheel-Signature"
TIMESTAMP_HEADER = "Flywheel-Timestamp"
DELIVERY_HEADER = "Flywheel-Delivery"
EVENT_HEADER = "Flywheel-Event"
ATTEMPT_HEADER = "Flywheel-Attempt"
USER_AGENT = "Flywheel-Webhooks/1"
MAX_SUBSCRIPTIONS_PER_PROJECT = 20
# A claim outlives the request's timeout by this much before another worker may take the row.
CLAIM_SLACK_S = 30.0


# --- Validation ----------------------------------------------------------------------------------
def webhook_url_validate(url: Any) -> str:
    """An absolute http(s) URL with a host; no credentials in it. Raises Invalid on ``url``."""
    if not isinstance(url, str) or not url.strip():
        raise Invalid({"url": "must be an absolute http:// or https:// URL"})
    url = url.strip()
    if len(url) > 2000:
        raise Invalid({"url": "must be at most 2000 characters"})
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise Invalid({"url": f"not a valid URL: {exc}"}) from None
    if parts.scheme not in ("http", "https"):
        raise Invalid({"url": "must start with http:// or https://"})
    if not parts.hostname:
        raise Invalid({"url": "must name a host, e.g. https://hooks.example.com/flywheel"})
    if parts.username or parts.password:
        raise Invalid(
            {"url": "must not contain a user name or password (the signature is the credential)"}
        )
    if any(c.isspace() for c in url):
        raise Invalid({"url": "must not contain spaces"})
    if port == 0:
        raise Invalid({"url": "port 0 is not a valid port"})
    host = parts.hostname
    literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        if "." not in host and host != "localhost":
            raise Invalid({"url": f"{host!r} is not a full host name"}) from None
        literal = ipaddress.ip_address("127.0.0.1") if host == "localhost" else None
    if literal is not None and (reason := _internal_reason(literal)) is not None:
        raise Invalid({"url": f"{host} is {reason}; {_ALLOW_HINT}"})
    return url


# --- Where a receiver may be --------------------------------------------------------------------
# A project admin chooses the URL and sees the start of each answer in the deliveries list, so an
# unguarded sender would let them reach (and read) services inside the server's own network: the
# cloud metadata endpoint, an admin port on loopback, the database. Receivers must resolve to
# public addresses unless the operator allows internal ones (FLYWHEEL_WEBHOOK_ALLOW_PRIVATE=1,
# e.g. a receiver on the same private network). Checked when the URL is saved (literal addresses)
# and before every attempt (what the host name resolves to then).
_ALLOW_HINT = (
    "webhook receivers must be on public addresses (an operator can allow internal ones "
    "with FLYWHEEL_WEBHOOK_ALLOW_PRIVATE=1)"
)


def _internal_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` is not a public one (None when it is), unless internal ones are allowed."""
    if setting("WEBHOOK_ALLOW_PRIVATE"):
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(address, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address"
    return None


@dataclass(frozen=True)
class ReceiverTarget:
    """Where one attempt sends its POST (see :func:`receiver_target`)."""

    url: str  # what the HTTP client connects to
    headers: dict[str, str] = field(default_factory=dict)  # the Host header, when pinned
    extensions: dict[str, Any] = field(default_factory=dict)  # the TLS server name, when pinned
    blocked: str = ""  # why not to send at all ("" when allowed)


def receiver_target(url: str) -> ReceiverTarget:
    """Resolve ``url``'s host once, check every address, and pin the connection to one of them.

    Checking what a name resolves to and then letting the HTTP client resolve it again would leave
    a window: a name whose DNS answers change (a short TTL, "DNS rebinding") passes the check with
    a public address and is then connected to an internal one. So the POST goes to the checked
    address itself, with the URL's host kept where it matters: the ``Host`` header and, for https,
    the TLS server name and the certificate check (httpcore's ``sni_hostname``). A literal address
    was checked when the URL was saved and is checked again here, without DNS.
    """
    if setting("WEBHOOK_ALLOW_PRIVATE"):
        return ReceiverTarget(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        reason = _internal_reason(literal)
        return ReceiverTarget(
            url, blocked=f"blocked: {host} is {reason}; {_ALLOW_HINT}" if reason else ""
        )
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return ReceiverTarget(url, blocked=f"ConnectError: cannot resolve {host!r}: {exc}")
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if (reason := _internal_reason(address)) is not None:
            return ReceiverTarget(
                url, blocked=f"blocked: {host} resolves to {address}, {reason}; {_ALLOW_HINT}"
            )
        addresses.append(address)
    if not addresses:
        return ReceiverTarget(url, blocked=f"ConnectError: {host!r} resolves to no address")
    pinned = addresses[0]
    shown = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_host = host
    return ReceiverTarget(
        urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")),
        headers={"Host": f"{ascii_host}:{parts.port}" if parts.port else ascii_host},
        extensions={"sni_hostname": ascii_host} if parts.scheme == "https" else {},
    )


def webhook_events_validate(events: Any) -> list[str]:
    """A non-empty list of known events (a single string is taken as a list of one)."""
    if isinstance(events, str):
        events = [events]
    if not isinstance(events, list | tuple) or not events:
        raise Invalid({"events": f"choose at least one event; known: {list(EVENTS)}"})
    errors: dict[str, str] = {}
    for i, event in enumerate(events):
        if event not in EVENTS:
            errors[f"events[{i}]"] = f"unknown event {event!r}; known: {list(EVENTS)}"
    if errors:
        raise Invalid(errors)
    return [e for e in EVENTS if e in events]  # known order, no duplicates


def _secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def _audit(subscription: WebhookSubscription, actor: User | None, action: str, **data: Any) -> None:
    AuditLog.objects.create(
        project_id=subscription.project_id,
        actor=actor,
        action=action,
        object_type="webhook",
        object_id=str(subscription.pk),
        data={"url": subscription.url, **data},
    )


# --- Subscriptions -------------------------------------------------------------------------------
@transaction.atomic
def webhook_subscription_create(
    *,
    project: Project,
    url: Any,
    events: Any,
    description: str = "",
    created_by: User | None = None,
) -> tuple[WebhookSubscription, str]:
    """Subscribe ``url`` to ``events``; returns the subscription and its secret (shown once)."""
    errors: dict[str, Any] = {}
    clean_url, clean_events = "", []
    try:
        clean_url = webhook_url_validate(url)
    except Invalid as exc:
        errors.update(exc.errors)
    try:
        clean_events = webhook_events_validate(events)
    except Invalid as exc:
        errors.update(exc.errors)
    if len(description or "") > 200:
        errors["description"] = "must be at most 200 characters"
    if errors:
        raise Invalid(errors)
    if WebhookSubscription.objects.filter(project=project).count() >= (
        MAX_SUBSCRIPTIONS_PER_PROJECT
    ):
        raise Conflict(
            f"A project has at most {MAX_SUBSCRIPTIONS_PER_PROJECT} webhooks; delete one first.",
            code="too_many_webhooks",
        )
    secret = _secret()
    subscription = WebhookSubscription.objects.create(
        project=project,
        url=clean_url,
        events=clean_events,
        description=(description or "").strip(),
        secret=secret,
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    _audit(subscription, created_by, "webhook.created", events=clean_events)
    return subscription, secret


@transaction.atomic
def webhook_subscription_update(
    *, subscription: WebhookSubscription, data: dict[str, Any], actor: User | None = None
) -> WebhookSubscription:
    """Change ``url``, ``events``, ``description`` or ``active``.

    Switching a subscription on again clears its failure count and reason; its pending
    deliveries are sent by the sweep (and enqueued now).
    """
    sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    errors: dict[str, Any] = {}
    changed: dict[str, Any] = {}
    unknown = sorted(set(data) - {"url", "events", "description", "active"})
    for key in unknown:
        errors[key] = "unknown field; known: active, description, events, url"
    if "url" in data:
        try:
            changed["url"] = webhook_url_validate(data["url"])
        except Invalid as exc:
            errors.update(exc.errors)
    if "events" in data:
        try:
            changed["events"] = webhook_events_validate(data["events"])
        except Invalid as exc:
            errors.update(exc.errors)
    if "description" in data:
        if not isinstance(data["description"], str) or len(data["description"]) > 200:
            errors["description"] = "must be a string of at most 200 characters"
        else:
            changed["description"] = data["description"].strip()
    if "active" in data:
        if not isinstance(data["active"], bool):
            errors["active"] = "must be true or false"
        else:
            changed["active"] = data["active"]
    if errors:
        raise Invalid(errors)
    was_active = sub.active
    resumed = changed.get("active") is True and not was_active
    for key, value in changed.items():
        setattr(sub, key, value)
    if resumed:
        sub.disabled_reason, sub.disabled_at = "", None
        sub.consecutive_failures, sub.failing_since = 0, None
    elif changed.get("active") is False and was_active:
        sub.disabled_reason = "Switched off by an admin."
        sub.disabled_at = timezone.now()
    sub.save()
    if changed:
        _audit(sub, actor, "webhook.updated", changed=sorted(changed))
    if resumed:
        # Waiting deliveries go out now, not at the end of their backoff.
        now = timezone.now()
        WebhookDelivery.objects.filter(
            subscription=sub, status=WebhookDelivery.Status.PENDING, next_attempt_at__gt=now
        ).update(next_attempt_at=now)
        for delivery_id in webhook_deliveries_due(now=now, subscription_id=sub.pk, limit=1000):
            dispatch.enqueue_on_commit("labeling.deliver_webhook", delivery_id)
    return sub


@transaction.atomic
def webhook_secret_rotate(*, subscription: WebhookSubscription, actor: User | None = None) -> str:
    """A new secret (shown once); the old one stops signing at once."""
    secret = _secret()
    WebhookSubscription.objects.filter(pk=subscription.pk).update(secret=secret)
    subscription.secret = secret
    _audit(subscription, actor, "webhook.secret_rotated")
    return secret


@transaction.atomic
def webhook_subscription_delete(
    *, subscription: WebhookSubscription, actor: User | None = None
) -> None:
    """Delete the subscription with its delivery log (pending deliveries are dropped)."""
    _audit(subscription, actor, "webhook.deleted", events=subscription.events)
    subscription.delete()


# --- The outbox ----------------------------------------------------------------------------------
def _json_safe(value: Any) -> Any:
    try:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except TypeError as exc:
        raise Invalid({"payload": f"must be JSON-serialisable: {exc}"}) from None


def _envelope(*, uid: str, event: str, project: Project, data: Any, now: dt.datetime) -> dict:
    return {
        "id": uid,
        "event": event,
        "created_at": now.isoformat().replace("+00:00", "Z"),
        "project": project.slug,
        "data": data,
    }


def webhook_listeners(project: Project) -> list[tuple[int, list[str]]]:
    """``(subscription id, events)`` of the project's active subscriptions: read once by a caller
    that emits several events in one transaction (a submit that also completes its item)."""
    # Every submit asks, so the statement is SQL (labeling.rows says why).
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, events FROM {WebhookSubscription._meta.db_table} "
            "WHERE project_id = %s AND active",
            [project.pk],
        )
        rows = cursor.fetchall()
    return [
        (sub_id, list((json.loads(events) if isinstance(events, str | bytes) else events) or []))
        for sub_id, events in rows
    ]


def webhook_emit(
    project: Project,
    event: str,
    payload: dict[str, Any],
    *,
    listeners: list[tuple[int, list[str]]] | None = None,
) -> int:
    """Record ``event`` with ``payload`` (its ``data``) for every active subscription of
    ``project`` that listens to it, in the caller's transaction; deliver after commit.

    ``listeners``: :func:`webhook_listeners` read earlier in the same transaction (else it is read
    here). Returns how many deliveries were written (0 when nobody listens: one cheap query).
    Raises Invalid on an unknown event or a payload that is not JSON.
    """
    if event not in EVENTS:
        raise Invalid({"event": f"unknown event {event!r}; known: {list(EVENTS)}"})
    event = str(event)  # a WebhookEvent member -> its value
    if listeners is None:
        listeners = webhook_listeners(project)
    targets = [sub_id for sub_id, events in listeners if event in events]
    if not targets:
        return 0
    data = _json_safe(payload)
    now = timezone.now()
    rows = []
    for sub_id in targets:
        uid = f"dlv_{uuid.uuid4().hex}"
        rows.append(
            WebhookDelivery(
                project_id=project.pk,
                subscription_id=sub_id,
                event=event,
                uid=uid,
                payload=_envelope(uid=uid, event=event, project=project, data=data, now=now),
                next_attempt_at=now,
            )
        )
    with transaction.atomic():
        created = WebhookDelivery.objects.bulk_create(rows)
        for row in created:
            dispatch.enqueue_on_commit("labeling.deliver_webhook", row.pk)
    return len(created)


# --- Signing -------------------------------------------------------------------------------------
def webhook_body(delivery: WebhookDelivery) -> bytes:
    """The exact bytes POSTed for a delivery (the same on every attempt)."""
    return orjson.dumps(delivery.payload, option=orjson.OPT_SORT_KEYS)


def webhook_signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` keyed by the secret."""
    signed = f"{timestamp}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def webhook_headers(
    *, delivery: WebhookDelivery, secret: str, body: bytes, timestamp: int, attempt: int
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: delivery.uid,
        ATTEMPT_HEADER: str(attempt),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: webhook_signature(secret, timestamp, body),
    }


# --- Delivery ------------------------------------------------------------------------------------
def webhook_retry_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): ``base * 2**(n-1)``,
    capped, then "equal jitter" (uniformly between half of it and all of it), so receivers that
    come back are not hit by every delivery at the same instant."""
    base = float(setting("WEBHOOK_RETRY_BASE_S"))
    cap = float(setting("WEBHOOK_RETRY_MAX_S"))
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    draw = (rng or random).random()
    return delay / 2 + draw * delay / 2


_local = threading.local()


def _client() -> httpx.Client:
    """One HTTP client per thread (connection reuse; created after a worker forks)."""
    client = getattr(_local, "client", None)
    if client is None:
        client = httpx.Client(follow_redirects=False, trust_env=False)
        _local.client = client
    return client


@dataclass(frozen=True)
class AttemptOutcome:
    delivery_id: int
    attempt: int
    ok: bool
    status_code: int | None
    latency_ms: float
    error: str
    # Seconds until the next attempt; None when there is none (delivered or given up).
    retry_in: float | None
    disabled: bool = False


def _claim(*, delivery_id: int, now: dt.datetime, test: bool) -> bool:
    timeout = float(setting("WEBHOOK_TIMEOUT_S"))
    qs = WebhookDelivery.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
        pk=delivery_id,
        status=WebhookDelivery.Status.PENDING,
    )
    if not test:
        qs = qs.filter(next_attempt_at__lte=now, subscription__active=True)
    return bool(
        qs.update(
            claimed_until=now + dt.timedelta(seconds=timeout + CLAIM_SLACK_S),
            attempts=F("attempts") + 1,
            last_attempt_at=now,
        )
    )


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str, float]:
    """POST once; (status code or None, error text or "", latency in ms)."""
    timeout = float(setting("WEBHOOK_TIMEOUT_S"))
    t0 = time.perf_counter()
    target = receiver_target(url)
    if target.blocked:
        return None, target.blocked[:1000], (time.perf_counter() - t0) * 1e3
    try:
        response = _client().post(
            target.url,
            content=body,
            headers={**headers, **target.headers},
            timeout=timeout,
            extensions=target.extensions,
        )
    except httpx.TimeoutException:
        return None, f"timeout: no answer within {timeout:g} s", (time.perf_counter() - t0) * 1e3
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None, error[:1000], (time.perf_counter() - t0) * 1e3
    latency = (time.perf_counter() - t0) * 1e3
    if 200 <= response.status_code < 300:
        return response.status_code, "", latency
    snippet = response.text[:300].strip()
    error = f"HTTP {response.status_code}" + (f": {snippet}" if snippet else "")
    return response.status_code, error[:1000], latency


def webhook_attempt(
    *, delivery_id: int, now: dt.datetime | None = None, rng: random.Random | None = None
) -> AttemptOutcome | None:
    """Claim and POST one delivery once; record the attempt and what comes next.

    Returns None when there is nothing to do (delivered, failed, not due, claimed by another
    worker, or its subscription is switched off). Never raises for a receiver's failure.
    """
    now = now or timezone.now()
    test = WebhookDelivery.objects.filter(pk=delivery_id, event=WEBHOOK_TEST_EVENT).exists()
    if not _claim(delivery_id=delivery_id, now=now, test=test):
        return None
    delivery = WebhookDelivery.objects.select_related("subscription").get(pk=delivery_id)
    sub = delivery.subscription
    body = webhook_body(delivery)
    attempt = delivery.attempts
    headers = webhook_headers(
        delivery=delivery,
        secret=sub.secret,
        body=body,
        timestamp=int(time.time()),
        attempt=attempt,
    )
    status_code, error, latency_ms = _post(sub.url, body, headers)
    ok = not error
    return _record(
        delivery=delivery,
        attempt=attempt,
        started=now,
        ok=ok,
        status_code=status_code,
        error=error,
        latency_ms=latency_ms,
        test=test,
        rng=rng,
    )


@transaction.atomic
def _record(
    *,
    delivery: WebhookDelivery,
    attempt: int,
    started: dt.datetime,
    ok: bool,
    status_code: int | None,
    error: str,
    latency_ms: float,
    test: bool,
    rng: random.Random | None,
) -> AttemptOutcome:
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=attempt,
        started_at=started,
        response_status=status_code,
        latency_ms=round(latency_ms, 2),
        ok=ok,
        error=error,
    )
    finished = started + dt.timedelta(milliseconds=latency_ms)
    common: dict[str, Any] = {
        "claimed_until": None,
        "response_status": status_code,
        "latency_ms": round(latency_ms, 2),
        "error": error,
    }
    subs = WebhookSubscription.objects.filter(pk=delivery.subscription_id)
    if ok:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.DELIVERED, delivered_at=finished, **common
        )
        subs.update(consecutive_failures=0, failing_since=None, last_success_at=finished)
        return AttemptOutcome(delivery.pk, attempt, True, status_code, latency_ms, "", None)
    retry_in: float | None = None
    if test or attempt >= int(setting("WEBHOOK_MAX_ATTEMPTS")):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.FAILED, **common
        )
    else:
        retry_in = webhook_retry_delay(attempt, rng)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=finished + dt.timedelta(seconds=retry_in), **common
        )
    disabled = False
    if not test:  # a test that fails says so on the page; it does not count against the URL
        subs.update(
            consecutive_failures=F("consecutive_failures") + 1,
            failing_since=Coalesce(F("failing_since"), started),
        )
        disabled = _maybe_disable(delivery.subscription_id, now=finished, error=error)
    return AttemptOutcome(
        delivery.pk, attempt, False, status_code, latency_ms, error, retry_in, disabled
    )


def _maybe_disable(subscription_id: int, *, now: dt.datetime, error: str) -> bool:
    sub = WebhookSubscription.objects.select_for_update().get(pk=subscription_id)
    limit = int(setting("WEBHOOK_DISABLE_AFTER_FAILURES"))
    failing_for = (now - sub.failing_since).total_seconds() if sub.failing_since else 0.0
    if (
        not sub.active
        or not limit
        or sub.consecutive_failures < limit
        or failing_for < float(setting("WEBHOOK_DISABLE_AFTER_S"))
    ):
        return False
    sub.active = False
    sub.disabled_at = now
    sub.disabled_reason = (
        f"Switched off automatically on {now:%Y-%m-%d %H:%M} UTC after "
        f"{sub.consecutive_failures} failed attempts in a row over {_duration(failing_for)} "
        f"without a success. Last error: {error[:300]}"
    )
    sub.save(update_fields=["active", "disabled_at", "disabled_reason", "updated_at"])
    _audit(sub, None, "webhook.disabled", reason=sub.disabled_reason)
    logger.warning("webhook %s disabled: %s", sub.pk, sub.disabled_reason)
    return True


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def webhook_deliveries_due(
    *,
    now: dt.datetime | None = None,
    limit: int = 500,
    subscription_id: int | None = None,
) -> list[int]:
    """Ids of pending deliveries that are due and not held by a live claim, oldest first."""
    now = now or timezone.now()
    qs = WebhookDelivery.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at__lte=now,
        subscription__active=True,
    )
    if subscription_id is not None:
        qs = qs.filter(subscription_id=subscription_id)
    return list(qs.order_by("next_attempt_at", "id").values_list("id", flat=True)[:limit])


def webhook_send_test(
    *, subscription: WebhookSubscription, actor: User | None = None
) -> WebhookDelivery:
    """POST a ``webhook.test`` event now (also to a switched-off subscription, to check it before
    switching it on again) and return the delivery with its result; one attempt, no retries."""
    now = timezone.now()
    uid = f"dlv_{uuid.uuid4().hex}"
    data = {
        "message": "A test delivery from Flywheel.",
        "subscription_id": subscription.pk,
        "sent_by": actor.get_username() if actor is not None else None,
    }
    delivery = WebhookDelivery.objects.create(
        project_id=subscription.project_id,
        subscription=subscription,
        event=WEBHOOK_TEST_EVENT,
        uid=uid,
        payload=_envelope(
            uid=uid, event=WEBHOOK_TEST_EVENT, project=subscription.project, data=data, now=now
        ),
        next_attempt_at=now,
    )
    webhook_attempt(delivery_id=delivery.pk, now=now)
    delivery.refresh_from_db()
    return delivery
