"""Webhooks through the API and the pages, and the events Flywheel emits (label.submitted,
item.completed, export.ready, sampling_run.done), each delivered to a real receiver on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Project, QueueItem, Role, WebhookDelivery
from labeling.services.annotations import annotation_adjudicate
from labeling.services.exports import export_create
from labeling.services.queue import assignment_claim, assignment_submit
from sampling.services.runs import sampling_run_create, sampling_run_execute
from sampling.services.strategies import strategy_create
from tests.factories import InteractionFactory
from tests.sampling_fixtures import seed_interactions
from tests.test_webhooks import doc_verify
from tests.webhook_receiver import Receiver

ALL = ["label.submitted", "item.completed", "sampling_run.done", "export.ready"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _create(api: APIClient, slug: str, body: dict[str, Any]) -> Any:
    return api.post(reverse("labeling_api:webhooks", kwargs={"slug": slug}), body, format="json")


def bodies(receiver: Receiver, event: str) -> list[dict[str, Any]]:
    out = [json.loads(r.body) for r in receiver.requests]
    return [b for b in out if b["event"] == event]


def test_create_list_change_and_delete(
    project: Project, api_as: Callable[..., APIClient], receiver: Receiver
) -> None:
    api = api_as(Role.ADMIN)
    created = _create(api, project.slug, {"url": receiver.url, "events": ["export.ready"]})
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["active"] is True
    assert body["summary"] == {"pending": 0, "delivered": 0, "failed": 0, "median_latency_ms": None}
    listed = api.get(reverse("labeling_api:webhooks", kwargs={"slug": project.slug})).json()
    assert listed["count"] == 1
    assert "secret" not in listed["results"][0]  # shown once
    url = reverse("labeling_api:webhook", kwargs={"slug": project.slug, "webhook_id": body["id"]})
    assert "secret" not in api.get(url).json()

    changed = api.patch(url, {"events": ["item.completed", "label.submitted"]}, format="json")
    assert changed.status_code == 200
    assert changed.json()["events"] == ["label.submitted", "item.completed"]
    off = api.patch(url, {"active": False}, format="json").json()
    assert (off["active"], off["disabled_reason"]) == (False, "Switched off by an admin.")
    rotated = api.post(url + "rotate-secret")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] not in (body["secret"], "")
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


def test_bad_input_gets_field_errors(project: Project, api_as: Callable[..., APIClient]) -> None:
    api = api_as(Role.ADMIN)
    bad_url = _create(api, project.slug, {"url": "ftp://x.example.com", "events": ["export.ready"]})
    assert bad_url.status_code == 400
    assert bad_url.json()["errors"] == {"url": "must start with http:// or https://"}
    bad_event = _create(
        api, project.slug, {"url": "https://hooks.example.com/x", "events": ["label.done"]}
    )
    assert bad_event.status_code == 400
    assert "unknown event 'label.done'" in bad_event.json()["errors"]["events[0]"]
    missing = _create(api, project.slug, {"url": "https://hooks.example.com/x"})
    assert missing.status_code == 400
    assert "events" in missing.json()["errors"]
    ok = _create(
        api, project.slug, {"url": "https://hooks.example.com/x", "events": "export.ready"}
    )
    assert ok.status_code == 201
    url = reverse(
        "labeling_api:webhook", kwargs={"slug": project.slug, "webhook_id": ok.json()["id"]}
    )
    patched = api.patch(url, {"active": "yes", "colour": "red"}, format="json")
    assert patched.status_code == 400
    assert set(patched.json()["errors"]) == {"active", "colour"}
    log = api.get(url + "deliveries/?status=lost")
    assert log.status_code == 400
    assert "status" in log.json()["errors"]


def test_only_admins_manage_webhooks(project: Project, api_as: Callable[..., APIClient]) -> None:
    for role in (Role.ANNOTATOR, Role.REVIEWER, Role.ENGINEER):
        api = api_as(role)
        assert (
            api.get(reverse("labeling_api:webhooks", kwargs={"slug": project.slug})).status_code
            == 403
        )


def test_send_test_and_the_delivery_log(
    project: Project, api_as: Callable[..., APIClient], receiver: Receiver
) -> None:
    api = api_as(Role.ADMIN)
    created = _create(api, project.slug, {"url": receiver.url, "events": ["export.ready"]}).json()
    base = reverse(
        "labeling_api:webhook", kwargs={"slug": project.slug, "webhook_id": created["id"]}
    )
    sent = api.post(base + "test")
    assert sent.status_code == 200
    delivery = sent.json()
    assert delivery["status"] == "delivered"
    assert delivery["event"] == "webhook.test"
    assert delivery["response_status"] == 200
    assert delivery["attempt_log"][0]["ok"] is True
    assert doc_verify()(created["secret"], receiver.requests[0].headers, receiver.requests[0].body)
    receiver.default = "fail"
    failed = api.post(base + "test").json()
    assert failed["status"] == "failed"
    assert failed["error"].startswith("HTTP 500")

    log = api.get(base + "deliveries/").json()
    assert log["count"] == 2
    assert [d["status"] for d in log["results"]] == ["failed", "delivered"]  # newest first
    assert {"attempts", "latency_ms", "response_status", "error"} <= set(log["results"][0])
    only = api.get(base + "deliveries/?status=delivered").json()
    assert only["count"] == 1
    one = api.get(base + f"deliveries/{only['results'][0]['id']}/").json()
    assert one["body"]["data"]["subscription_id"] == created["id"]
    assert len(one["attempt_log"]) == 1
    summary = api.get(base).json()["summary"]
    assert (summary["delivered"], summary["failed"]) == (1, 1)


def test_label_submitted_and_item_completed(
    project: Project,
    api_as: Callable[..., APIClient],
    member: Callable[..., Any],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _create(api_as(Role.ADMIN), project.slug, {"url": receiver.url, "events": ALL})
    interaction = InteractionFactory(project=project)
    item = QueueItem.objects.create(project=project, interaction=interaction, overlap=2)
    first, second = member(Role.ANNOTATOR, username="ann1"), member(Role.ANNOTATOR, username="ann2")
    for user, quality in ((first, 4), (second, 5)):
        assignment = assignment_claim(project=project, annotator=user)
        assert assignment is not None
        with django_capture_on_commit_callbacks(execute=True):
            assignment_submit(
                assignment_id=assignment.pk, annotator=user, values={"quality": quality}
            )
    submitted = bodies(receiver, "label.submitted")
    assert [b["data"]["annotator"] for b in submitted] == ["ann1", "ann2"]
    assert submitted[0]["data"]["values"] == {"quality": 4}
    assert submitted[0]["data"]["external_id"] == interaction.external_id
    assert [b["data"]["done_count"] for b in submitted] == [1, 2]
    completed = bodies(receiver, "item.completed")
    assert len(completed) == 1  # only when the last of the overlap is in
    assert completed[0]["data"]["reason"] == "overlap_done"
    assert completed[0]["data"]["queue_item_id"] == item.pk

    reviewer = member(Role.REVIEWER, username="rev")
    with django_capture_on_commit_callbacks(execute=True):
        annotation_adjudicate(queue_item=item, reviewer=reviewer, values={"quality": 5})
    completed = bodies(receiver, "item.completed")
    assert [b["data"]["reason"] for b in completed] == ["overlap_done", "adjudicated"]
    assert completed[1]["data"]["values"] == {"quality": 5}
    assert completed[1]["data"]["adjudicated_by"] == "rev"


def test_export_ready(
    project: Project,
    api_as: Callable[..., APIClient],
    receiver: Receiver,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _create(api_as(Role.ADMIN), project.slug, {"url": receiver.url, "events": ["export.ready"]})
    with override_settings(EXPORT_ROOT=tmp_path), django_capture_on_commit_callbacks(execute=True):
        export = export_create(project=project, kind="classification")
    ready = bodies(receiver, "export.ready")
    assert len(ready) == 1
    data = ready[0]["data"]
    export.refresh_from_db()
    assert data["export_id"] == export.pk
    assert data["sha256"] == export.sha256
    assert data["download_url"] == reverse(
        "labeling_api:export-download-noslash", kwargs={"export_id": export.pk}
    )


def test_sampling_run_done(
    project: Project,
    api_as: Callable[..., APIClient],
    receiver: Receiver,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _create(api_as(Role.ADMIN), project.slug, {"url": receiver.url, "events": ALL})
    seed_interactions(project, 60)
    strategy = strategy_create(
        project=project,
        data={"name": "nightly", "weights": {"random": 1.0}, "batch_size": 10},
    )
    with override_settings(MODEL_ROOT=tmp_path), django_capture_on_commit_callbacks(execute=True):
        run = sampling_run_create(project=project, strategy=strategy)
        sampling_run_execute(run_id=run.pk)
    done = bodies(receiver, "sampling_run.done")
    assert len(done) == 1
    run.refresh_from_db()
    assert done[0]["data"]["run_id"] == run.pk
    assert done[0]["data"]["strategy"] == "nightly"
    assert done[0]["data"]["selected_count"] == run.selected_count
    assert done[0]["data"]["pool_size"] == run.pool_size
    assert (
        WebhookDelivery.objects.filter(event="sampling_run.done", status="delivered").count() == 1
    )


def test_pages_create_show_secret_once_test_and_log(
    project: Project, member: Callable[..., Any], receiver: Receiver
) -> None:
    browser = Client()
    browser.force_login(member(Role.ADMIN))
    page = reverse("project-webhooks", kwargs={"slug": project.slug})
    bad = browser.post(page, {"url": "gopher://x.example.com", "events": ["export.ready"]})
    assert bad.status_code == 200
    assert "must start with http:// or https://" in bad.content.decode()
    created = browser.post(page, {"url": receiver.url, "events": ["export.ready"]}, follow=True)
    html = created.content.decode()
    assert 'data-testid="new-secret"' in html
    assert created["Cache-Control"] == "no-store"
    again = browser.get(created.redirect_chain[-1][0]).content.decode()
    assert 'data-testid="new-secret"' not in again  # shown once
    sub_id = int(created.redirect_chain[-1][0].rstrip("/").split("/")[-1])
    action = reverse("project-webhook-action", kwargs={"slug": project.slug, "webhook_id": sub_id})
    tested = browser.post(action, {"action": "test"}, follow=True).content.decode()
    assert "Test delivered: HTTP 200" in tested
    assert 'data-status="delivered"' in tested
    assert "webhook.test" in tested
