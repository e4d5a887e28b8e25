"""Parquet beside the JSONL of every export kind: the same rows read back with pyarrow and with
``datasets.load_dataset("parquet")``, the manifest's entry, byte-identical reruns, the download,
the Hub one-liner in docs/exports.md, and the awkward JSON shapes (mixed types, empty objects)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Export, Project, Role
from labeling.services.export_parquet import parquet_write
from labeling.services.exports import export_create, export_run, parquet_path_for
from tests.estimate_fixtures import seed_project
from tests.export_fixtures import interaction, label, read_jsonl, seed_mixed

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def export_root(settings: Any, tmp_path: Path) -> Path:
    settings.EXPORT_ROOT = tmp_path / "exports"
    return settings.EXPORT_ROOT


def same(value: Any) -> Any:
    """What Parquet keeps of a JSON value: nulls and absent keys alike, ints as numbers."""
    if isinstance(value, dict):
        kept = {k: same(v) for k, v in value.items()}
        kept = {k: v for k, v in kept.items() if v is not None}
        return kept or None
    if isinstance(value, list):
        return [same(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def run(project: Project, kind: str, **params: Any) -> Export:
    export = export_create(project=project, kind=kind, enqueue=False, **params)
    done = export_run(export_id=export.id)
    assert done is not None
    assert done.status == Export.Status.DONE, done.error
    return done


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["sft", "preference", "classification", "eval"])
@pytest.mark.parametrize("compress", [False, True])
def test_every_kind_reads_back_with_pyarrow_and_datasets(
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    compress: bool,
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    if kind == "eval":
        seed_project(project, seed=3, n_items=120)
    else:
        seed_mixed(project)
    export = run(project, kind, options={"gzip": compress})
    rows = read_jsonl(export.file_path)
    assert rows
    path = parquet_path_for(Path(export.file_path))
    assert path.name == f"export-{export.id}-{kind}.parquet"

    entry = export.manifest["parquet"]  # the same manifest describes both files
    assert entry["file"] == path.name
    assert entry["rows"] == export.rows == len(rows)
    assert entry["sha256"] == sha256(path)
    assert entry["bytes"] == path.stat().st_size
    on_disk = json.loads(
        Path(export.file_path).with_name(f"export-{export.id}-{kind}.manifest.json").read_text()
    )
    assert on_disk["parquet"] == entry

    table = pq.read_table(path)
    assert table.num_rows == len(rows)
    assert table.column_names == entry["columns"]
    assert [same(r) for r in table.to_pylist()] == [same(r) for r in rows]

    ds = datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    assert ds.num_rows == len(rows)
    assert [same(r) for r in ds.to_list()] == [same(r) for r in rows]


def test_a_rerun_writes_the_same_parquet_bytes(project: Project) -> None:
    seed_mixed(project)
    first = run(project, "classification", options={"validation_fraction": 0.5, "seed": 3})
    second = export_create(
        project=project,
        kind="classification",
        options={"validation_fraction": 0.5, "seed": 3},
        enqueue=False,
    )
    label(interaction(project, response="later"), {"quality": 1})  # outside the snapshot
    done = export_run(export_id=second.id)
    assert done is not None
    assert done.sha256 == first.sha256  # the JSONL, as before
    assert done.manifest["parquet"]["sha256"] == first.manifest["parquet"]["sha256"]
    a = parquet_path_for(Path(first.file_path)).read_bytes()
    b = parquet_path_for(Path(done.file_path)).read_bytes()
    assert a == b


def test_mixed_types_become_json_text_and_empty_objects_null(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "hi"}], "segment": {}, "n": 1, "x": None},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "yo"}]}], "n": 2.5},
        {"messages": [], "segment": {"tier": "pro"}, "n": 3, "x": True},
    ]
    src = tmp_path / "rows.jsonl.gz"
    src.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in rows), mtime=0))
    entry = parquet_write(jsonl_path=src, out_path=tmp_path / "rows.parquet")
    assert entry["json_columns"] == ["messages"]
    assert entry["columns"] == ["messages", "segment", "n", "x"]
    table = pq.read_table(tmp_path / "rows.parquet")
    assert str(table.schema.field("n").type) == "double"
    got = table.to_pylist()
    assert [json.loads(r["messages"]) for r in got] == [r["messages"] for r in rows]
    assert [r["segment"] for r in got] == [None, None, {"tier": "pro"}]
    assert [r["x"] for r in got] == [None, None, True]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_an_empty_export_still_has_a_parquet_file(project: Project) -> None:
    export = run(project, "sft")
    assert export.rows == 0
    path = parquet_path_for(Path(export.file_path))
    assert pq.read_table(path).num_rows == 0
    assert export.manifest["parquet"]["rows"] == 0


def test_download_as_parquet(project: Project, api_as: Any) -> None:
    seed_mixed(project)
    export = run(project, "sft")
    api: APIClient = api_as(Role.ENGINEER)
    detail = api.get(reverse("labeling_api:export", kwargs={"export_id": export.id})).json()
    assert (
        detail["parquet_url"]
        == reverse("labeling_api:export-download-noslash", kwargs={"export_id": export.id})
        + "?file=parquet"
    )
    response = api.get(detail["parquet_url"])
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == response["X-Export-SHA256"]
    assert response["X-Export-SHA256"] == export.manifest["parquet"]["sha256"]
    assert f'filename="export-{export.id}-sft.parquet"' in response["Content-Disposition"]
    bad = api.get(
        reverse("labeling_api:export-download", kwargs={"export_id": export.id}) + "?file=csv"
    )
    assert bad.status_code == 400
    assert "file" in bad.json()["errors"]


def test_hub_one_liner_is_documented_and_names_the_parquet_file() -> None:
    """docs/exports.md's push to the Hugging Face Hub (not run: no network in tests)."""
    text = (ROOT / "docs" / "exports.md").read_text()
    start = text.index('```python\nfrom datasets import load_dataset\n\nload_dataset("parquet"')
    snippet = text[start:].split("```")[1]
    assert "push_to_hub(" in snippet
    assert ".parquet" in snippet
    compile(snippet.removeprefix("python\n"), "docs/exports.md", "exec")  # valid Python
