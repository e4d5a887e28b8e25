"""The SDK's engineer client against the live server: a sampling run, estimates and reports, and
an export downloaded streamed, resumed from a part file and checked against its sha256. Also the
download endpoint's ``Range`` support that resuming relies on."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from flywheel_sdk import ChecksumMismatch, FlywheelClient, HttpError
from rest_framework.authtoken.models import Token

from labeling.models import Export, Project, Role
from labeling.services.exports import export_create, export_run
from tests.export_fixtures import seed_mixed
from tests.sampling_fixtures import seed_interactions

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")  # + export_reader


def _token(member: Any, role: str) -> str:
    return Token.objects.create(user=member(role)).key


def _done_export(project: Project) -> Export:
    seed_mixed(project)
    export = export_create(project=project, kind="sft", enqueue=False)
    export_run(export_id=export.id)
    return Export.objects.get(pk=export.pk)


def test_sampling_run_estimates_and_reports(live_server: Any, project: Project, member: Any):
    seed_interactions(project, 120)
    client = FlywheelClient(live_server.url, _token(member, Role.ADMIN))
    admin_api = client._post(
        reverse("sampling_api:strategies", kwargs={"slug": project.slug}),
        {
            "name": "sdk",
            "weights": {"uncertainty": 0.6, "coverage": 0.2, "random": 0.2},
            "batch_size": 20,
        },
    )
    run = client.start_sampling_run(project.slug, admin_api["id"], wait=True, poll=0.2)
    assert run["status"] == "done"
    assert run["pool_size"] == 120
    assert client.sampling_run(project.slug, run["id"])["selected_count"] == run["selected_count"]
    estimates = client.estimates(project.slug, by="model_version")
    assert {"target", "method", "level", "groups"} <= set(estimates)
    assert isinstance(client.report(project.slug, "power"), dict)
    with pytest.raises(ValueError, match="bias, power, regression"):
        client.report(project.slug, "nope")
    with pytest.raises(HttpError) as refused:
        client.start_sampling_run(project.slug, 999_999)
    assert refused.value.status == 400
    assert "strategy" in refused.value.body["errors"]
    client.close()


def test_create_and_download_an_export(
    live_server: Any, project: Project, member: Any, tmp_path: Path
):
    seed_mixed(project)
    client = FlywheelClient(live_server.url, _token(member, Role.ENGINEER))
    export = client.create_export(project.slug, "sft", poll=0.2)
    assert export["status"] == "done"
    out = client.download_export(export["id"], tmp_path / "sft.jsonl", progress=True)
    data = out.read_bytes()
    assert hashlib.sha256(data).hexdigest() == export["sha256"]
    assert len(data.splitlines()) == export["rows"]
    assert not (tmp_path / "sft.jsonl.part").exists()


def test_download_resumes_a_part_file_and_checks_the_sha256(
    live_server: Any, project: Project, member: Any, tmp_path: Path
):
    export = _done_export(project)
    whole = Path(export.file_path).read_bytes()
    client = FlywheelClient(live_server.url, _token(member, Role.ENGINEER))
    target = tmp_path / "resumed.jsonl"
    part = tmp_path / "resumed.jsonl.part"

    part.write_bytes(whole[:25])  # an earlier download broke after 25 bytes
    client.download_export(export.pk, target, progress=False)
    assert target.read_bytes() == whole
    assert not part.exists()

    part.write_bytes(b"X" * 25)  # a part file that is not the start of this export
    with pytest.raises(ChecksumMismatch):
        client.download_export(export.pk, target, progress=False)
    assert not part.exists()  # thrown away: the next call starts over

    part.write_bytes(whole + b"extra")  # longer than the file: the server answers 416
    client.download_export(export.pk, target, progress=False)
    assert target.read_bytes() == whole


def test_download_endpoint_serves_ranges(project: Project, api_as: Any):
    export = _done_export(project)
    whole = Path(export.file_path).read_bytes()
    api = api_as(Role.ENGINEER)
    url = reverse("labeling_api:export-download-noslash", kwargs={"export_id": export.pk})

    full = api.get(url)
    assert full.status_code == 200
    assert full["Accept-Ranges"] == "bytes"
    assert b"".join(full.streaming_content) == whole

    tail = api.get(url, HTTP_RANGE="bytes=10-")
    assert tail.status_code == 206
    assert tail["Content-Range"] == f"bytes 10-{len(whole) - 1}/{len(whole)}"
    assert b"".join(tail.streaming_content) == whole[10:]
    assert tail["X-Export-SHA256"] == export.sha256

    beyond = api.get(url, HTTP_RANGE=f"bytes={len(whole) + 5}-")
    assert beyond.status_code == 416
    assert beyond["Content-Range"] == f"bytes */{len(whole)}"
    assert "beyond the end" in beyond.json()["detail"]

    other_form = api.get(url, HTTP_RANGE="bytes=0-9")  # not served as a range: the whole file
    assert other_form.status_code == 200
