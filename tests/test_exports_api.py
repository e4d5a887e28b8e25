"""Exports through the API, the page, the CLI and a Celery worker killed mid-export."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Export, Project, Role
from labeling.services.exports import export_create, export_retry, export_run, manifest_path_for
from tests.conftest import client_for
from tests.export_fixtures import interaction, label, read_jsonl, seed_mixed
from tests.killed_worker import kill_at_pause


@pytest.fixture(autouse=True)
def export_root(settings: Any, tmp_path: Path) -> Path:
    settings.EXPORT_ROOT = tmp_path / "exports"
    return settings.EXPORT_ROOT


def _create(client: APIClient, slug: str, body: dict[str, Any], capture: Any) -> Any:
    with capture(execute=True):
        return client.post(
            reverse("labeling_api:exports", kwargs={"slug": slug}), body, format="json"
        )


# --- API ----------------------------------------------------------------------------------------
def test_create_follow_and_download_through_the_api(
    project: Project, api_as: Callable[..., APIClient], django_capture_on_commit_callbacks: Any
) -> None:
    seed_mixed(project)
    api = api_as(Role.ENGINEER)
    created = _create(api, project.slug, {"kind": "sft"}, django_capture_on_commit_callbacks)
    assert created.status_code == 202
    assert set(created.json()) == {"id", "status"}
    export_id = created.json()["id"]

    detail = api.get(
        reverse("labeling_api:export", kwargs={"export_id": export_id})
    ).json()  # the eager task has run
    assert detail["status"] == "done"
    assert detail["progress"] == 1.0
    assert detail["rows"] == 2
    assert detail["manifest"]["sha256"] == detail["sha256"]
    assert detail["options"] == {
        "gzip": False,
        "dedupe": True,
        "validation_fraction": 0.0,
        "seed": 0,
    }

    listed = api.get(reverse("labeling_api:exports", kwargs={"slug": project.slug})).json()
    assert listed["count"] == 1
    assert listed["results"][0]["id"] == export_id

    download = api.get(reverse("labeling_api:export-download", kwargs={"export_id": export_id}))
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert hashlib.sha256(body).hexdigest() == detail["sha256"]
    assert download["X-Export-SHA256"] == detail["sha256"]
    assert [json.loads(line) for line in body.splitlines()][1]["messages"][-1] == {
        "role": "assistant",
        "content": "Paris.",
    }
    zipped = api.get(
        reverse("labeling_api:export-download", kwargs={"export_id": export_id}) + "?gzip=1"
    )
    assert zipped["Content-Type"] == "application/gzip"
    assert gzip.decompress(b"".join(zipped.streaming_content)) == body


def test_gzip_option_stores_a_gzip_file(
    project: Project, api_as: Callable[..., APIClient], django_capture_on_commit_callbacks: Any
) -> None:
    seed_mixed(project)
    api = api_as(Role.ADMIN)
    body = {"kind": "classification", "options": {"gzip": True}}
    export_id = _create(api, project.slug, body, django_capture_on_commit_callbacks).json()["id"]
    download = api.get(reverse("labeling_api:export-download", kwargs={"export_id": export_id}))
    raw = b"".join(download.streaming_content)
    export = Export.objects.get(id=export_id)
    assert hashlib.sha256(raw).hexdigest() == export.sha256
    assert len(gzip.decompress(raw).splitlines()) == 3


def test_validation_errors_are_keyed_by_field(
    project: Project, api_as: Callable[..., APIClient]
) -> None:
    api = api_as(Role.ENGINEER)
    response = api.post(
        reverse("labeling_api:exports", kwargs={"slug": project.slug}),
        {"kind": "sft", "filters": {"min_agreement": "lots"}, "options": {"seed": "x"}},
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"filters.min_agreement", "options.seed"}
    assert not Export.objects.exists()
    response = api.post(
        reverse("labeling_api:exports", kwargs={"slug": project.slug}), {}, format="json"
    )
    assert response.status_code == 400
    assert "kind" in response.json()["errors"]


def test_download_before_done_is_a_conflict(
    project: Project, api_as: Callable[..., APIClient]
) -> None:
    export = export_create(project=project, kind="sft", enqueue=False)
    response = api_as(Role.ENGINEER).get(
        reverse("labeling_api:export-download", kwargs={"export_id": export.id})
    )
    assert response.status_code == 409
    assert "pending" in response.json()["detail"]


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.REVIEWER])
def test_roles_without_export_get_403(
    project: Project, api_as: Callable[..., APIClient], role: str
) -> None:
    seed_mixed(project)
    export = export_create(project=project, kind="sft", enqueue=False)
    export_run(export_id=export.id)
    api = api_as(role)
    assert (
        api.post(
            reverse("labeling_api:exports", kwargs={"slug": project.slug}), {"kind": "sft"}
        ).status_code
        == 403
    )
    assert (
        api.get(reverse("labeling_api:exports", kwargs={"slug": project.slug})).status_code == 403
    )
    assert (
        api.get(reverse("labeling_api:export", kwargs={"export_id": export.id})).status_code == 403
    )
    assert (
        api.get(
            reverse("labeling_api:export-download", kwargs={"export_id": export.id})
        ).status_code
        == 403
    )


def test_other_projects_exports_are_404(
    project: Project, other_project: Project, member: Callable[..., Any]
) -> None:
    seed_mixed(project)
    export = export_create(project=project, kind="sft", enqueue=False)
    export_run(export_id=export.id)
    outsider = client_for(member(Role.ADMIN, other_project))
    assert (
        outsider.get(reverse("labeling_api:export", kwargs={"export_id": export.id})).status_code
        == 404
    )
    assert (
        outsider.get(
            reverse("labeling_api:export-download", kwargs={"export_id": export.id})
        ).status_code
        == 404
    )
    assert (
        outsider.get(reverse("labeling_api:exports", kwargs={"slug": project.slug})).status_code
        == 404
    )
    assert (
        outsider.post(
            reverse("labeling_api:exports", kwargs={"slug": project.slug}), {"kind": "sft"}
        ).status_code
        == 404
    )
    assert (
        outsider.get(reverse("labeling_api:export", kwargs={"export_id": 999999})).status_code
        == 404
    )


def test_ingest_token_cannot_export(project: Project, ingest_client: APIClient) -> None:
    response = ingest_client.post(
        reverse("labeling_api:exports", kwargs={"slug": project.slug}), {"kind": "sft"}
    )
    assert response.status_code == 403


# --- Page ---------------------------------------------------------------------------------------
def test_exports_page_creates_and_lists(
    project: Project, member: Callable[..., Any], django_capture_on_commit_callbacks: Any
) -> None:
    seed_mixed(project)
    browser = Client()
    browser.force_login(member(Role.ENGINEER))
    page = browser.get(reverse("project-exports", kwargs={"slug": project.slug}))
    assert page.status_code == 200
    assert b'data-testid="export-form"' in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            reverse("project-exports", kwargs={"slug": project.slug}),
            {"kind": "preference", "dedupe": "on", "seed": "0", "segment": "tier=free"},
        )
    assert response.status_code == 302
    export = Export.objects.get()
    assert export.kind == "preference"
    assert export.filters["segment"] == {"tier": ["free"]}
    assert export.status == Export.Status.DONE
    page = browser.get(reverse("project-exports", kwargs={"slug": project.slug}))
    assert f'data-export="{export.id}"'.encode() in page.content
    assert (
        reverse("labeling_api:export-download-noslash", kwargs={"export_id": export.id}).encode()
        in page.content
    )


def test_exports_page_shows_service_errors_on_the_field(
    project: Project, member: Callable[..., Any]
) -> None:
    browser = Client()
    browser.force_login(member(Role.ENGINEER))
    response = browser.post(
        reverse("project-exports", kwargs={"slug": project.slug}),
        {"kind": "sft", "labels": '{"nope": {"gte": 1}}', "seed": "0"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["labels"] == [
        "nope: no such question; known: ['correction', 'failure_modes', 'quality']"
    ]
    assert not Export.objects.exists()
    # The NUL character, typed as its JSON escape, is refused on the field (the database cannot
    # store it in the export's filters).
    response = browser.post(
        reverse("project-exports", kwargs={"slug": project.slug}),
        {"kind": "sft", "labels": '{"quality": {"in": ["4\\u0000"]}}', "seed": "0"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["labels"] == [
        "quality.in[0] contains the NUL character (\\u0000), which cannot be stored"
    ]
    assert not Export.objects.exists()


def test_exports_page_forbidden_for_annotators(
    project: Project, member: Callable[..., Any]
) -> None:
    browser = Client()
    browser.force_login(member(Role.ANNOTATOR))
    assert browser.get(reverse("project-exports", kwargs={"slug": project.slug})).status_code == 403


# --- CLI ----------------------------------------------------------------------------------------
def test_manage_py_export_writes_file_and_manifest(project: Project, tmp_path: Path) -> None:
    seed_mixed(project)
    out = tmp_path / "cli" / "train.jsonl.gz"
    call_command(
        "export",
        "--project",
        project.slug,
        "--kind",
        "sft",
        "--out",
        str(out),
        "--filter",
        'labels={"quality": {"gte": 1}}',
        "--option",
        "validation_fraction=0.5",
        "--no-progress",
    )
    rows = read_jsonl(out)
    assert len(rows) == 2
    assert all(r["split"] in ("train", "validation") for r in rows)
    manifest = json.loads((tmp_path / "cli" / "train.manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert manifest["compression"] == "gzip"
    export = Export.objects.get()
    assert export.file_path == str(out)


def test_manage_py_export_reports_bad_input(project: Project, tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=r"filters\.min_agreement"):
        call_command(
            "export", "--project", project.slug, "--kind", "sft",
            "--out", str(tmp_path / "x.jsonl"), "--filter", "min_agreement=7",
        )  # fmt: skip
    with pytest.raises(CommandError, match="--kind"):
        call_command(
            "export", "--project", project.slug, "--kind", "nope", "--out", str(tmp_path / "x")
        )
    with pytest.raises(
        CommandError, match=r"--filter filter\.labels\.quality\.in\[0\] contains the NUL"
    ):
        call_command(
            "export", "--project", project.slug, "--kind", "sft", "--out", str(tmp_path / "x"),
            "--filter", 'labels={"quality": {"in": ["4\\u0000"]}}',
        )  # fmt: skip
    assert not Export.objects.exists()


# --- A worker killed mid-export (a real subprocess, SIGKILL) -----------------------------------
KILLED_WORKER = r"""
import sys
import django
django.setup()
from django.conf import settings
settings.FLYWHEEL = {**settings.FLYWHEEL, "EXPORT_PROGRESS_EVERY": 50}
from labeling.services import export_dedupe, export_rows
export_dedupe.BLOCK = 50  # rows pass the duplicate check (and reach the file) 50 at a time
from labeling.services.exports import export_run

real = export_rows.labelled_items

def pausing(*args, **kwargs):
    for n, item in enumerate(real(*args, **kwargs)):
        if n == 150:
            print("PAUSED", flush=True)
            sys.stdin.readline()  # blocks until killed
        yield item

export_rows.labelled_items = pausing
export_run(export_id=int(sys.argv[1]))
"""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, databases="__all__")  # + export_reader
def test_sigkilled_export_leaves_nothing_complete_and_a_rerun_matches(
    project: Project, settings: Any, export_root: Path
) -> None:
    settings.FLYWHEEL = {**settings.FLYWHEEL, "EXPORT_PROGRESS_EVERY": 50}
    for i in range(400):
        label(interaction(project, response=f"answer number {i}"), {"quality": 5})
    clean = export_create(project=project, kind="sft", enqueue=False)
    clean = export_run(export_id=clean.id)
    assert clean is not None
    export = export_create(project=project, kind="sft", enqueue=False)

    kill_at_pause(KILLED_WORKER, str(export.id), env={"EXPORT_ROOT": str(export_root)})

    export.refresh_from_db()
    assert export.status == Export.Status.RUNNING  # the dead worker never finished
    assert export.rows == 150  # progress was reported before the kill
    folder = export_root / project.slug
    final = folder / f"export-{export.id}-sft.jsonl"
    leftovers = [p for p in folder.iterdir() if p.name.startswith(f".{final.name}.")]
    assert all(p.name.endswith(".tmp") for p in leftovers)
    partial = [p for p in leftovers if not p.name.endswith(".dedupe.tmp")]
    assert len(partial) == 1  # the half-written file (beside the duplicate check's hash table)
    assert not final.exists()
    assert not manifest_path_for(final).exists()

    # The heartbeat is now stale: the export may be reclaimed.
    settings.FLYWHEEL = {**settings.FLYWHEEL, "EXPORT_STALE_SECONDS": 0}
    export_retry(export=export, enqueue=False)
    done = export_run(export_id=export.id)
    assert done is not None
    assert done.status == Export.Status.DONE
    assert done.sha256 == clean.sha256
    assert not [p for p in folder.iterdir() if p.name.startswith(f".{final.name}.")]
    assert hashlib.sha256(final.read_bytes()).hexdigest() == clean.sha256
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_retry_a_failed_export_through_the_api(
    project: Project,
    api_as: Callable[..., APIClient],
    django_capture_on_commit_callbacks: Any,
    export_root: Path,
) -> None:
    seed_mixed(project)
    export = export_create(project=project, kind="sft", enqueue=False)
    export_root.mkdir(parents=True)
    (export_root / project.slug).write_text("a file where the folder should be")
    failed = export_run(export_id=export.id)
    assert failed is not None
    assert failed.status == Export.Status.FAILED
    assert failed.error

    api = api_as(Role.ENGINEER)
    (export_root / project.slug).unlink()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(reverse("labeling_api:export-retry", kwargs={"export_id": export.id}))
    assert response.status_code == 202
    assert (
        api.get(reverse("labeling_api:export", kwargs={"export_id": export.id})).json()["status"]
        == "done"
    )
    again = api.post(
        reverse("labeling_api:export-retry", kwargs={"export_id": export.id})
    )  # a done export is not retried
    assert again.status_code == 400
    assert "status" in again.json()["errors"]
    assert (
        api_as(Role.ANNOTATOR)
        .post(reverse("labeling_api:export-retry", kwargs={"export_id": export.id}))
        .status_code
        == 403
    )


def test_retry_button_on_the_page(
    project: Project, member: Callable[..., Any], django_capture_on_commit_callbacks: Any
) -> None:
    seed_mixed(project)
    export = export_create(project=project, kind="sft", enqueue=False)
    Export.objects.filter(id=export.id).update(status=Export.Status.FAILED, error="boom")
    browser = Client()
    browser.force_login(member(Role.ENGINEER))
    url = reverse("project-export-retry", kwargs={"slug": project.slug, "export_id": export.id})
    assert (
        url.encode()
        in browser.get(reverse("project-exports", kwargs={"slug": project.slug})).content
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert browser.post(url).status_code == 302
    export.refresh_from_db()
    assert export.status == Export.Status.DONE


# --- A real Celery worker on Redis --------------------------------------------------------------
@pytest.mark.redis
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_export_runs_in_a_real_worker_and_a_redelivery_is_harmless(project: Project) -> None:
    from celery.contrib.testing.worker import start_worker
    from django.conf import settings as django_settings

    from flywheel_site.celery import app
    from labeling.tasks.exports import run_export
    from tests.test_celery_worker import celery_on

    seed_mixed(project)
    redis_url = os.environ["REDIS_URL"]
    broker = django_settings.CELERY_BROKER_URL or redis_url
    with celery_on(broker, django_settings.CELERY_RESULT_BACKEND or redis_url):
        export = export_create(project=project, kind="preference", enqueue=False)
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            assert run_export.delay(export.id).get(timeout=60) == "done"
            export.refresh_from_db()
            finished_at = export.finished_at
            # The same message delivered twice (acks_late redelivery): the claim makes it a no-op.
            assert run_export.delay(export.id).get(timeout=60) == "done"
    export.refresh_from_db()
    assert export.finished_at == finished_at
    assert export.status == Export.Status.DONE
    assert export.rows == 3
    assert hashlib.sha256(Path(export.file_path).read_bytes()).hexdigest() == export.sha256
