"""Training exports: each kind field by field, filters, splits, holdout, snapshots, crashes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from labeling.errors import Invalid
from labeling.models import Annotation, Export, Project
from labeling.services import export_rows
from labeling.services.export_rows import (
    conversation_split,
    openai_chat_problems,
)
from labeling.services.exports import (
    export_create,
    export_retry,
    export_run,
    manifest_path_for,
    parquet_path_for,
)
from tests.export_fixtures import interaction, label, read_jsonl, seed_mixed, utc
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def export_root(settings: Any, tmp_path: Path) -> Path:
    settings.EXPORT_ROOT = tmp_path / "exports"
    return settings.EXPORT_ROOT


def run(project: Project, kind: str, **params: Any) -> tuple[Export, list[dict[str, Any]]]:
    export = export_create(project=project, kind=kind, enqueue=False, **params)
    done = export_run(export_id=export.id)
    assert done is not None
    assert done.status == Export.Status.DONE, done.error
    return done, read_jsonl(done.file_path)


# --- Kinds, field by field ----------------------------------------------------------------------
def test_sft_rows_field_by_field(project: Project) -> None:
    seed_mixed(project)
    export, rows = run(project, "sft")
    assert rows == [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi?"},
                {"role": "assistant", "content": "Hello!"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris."},
            ]
        },
    ]
    assert export.rows == 2
    m = export.manifest
    assert m["kind"] == "sft"
    assert m["training"] is True
    assert m["excluded"]["holdout_excluded"] == 1
    assert m["excluded"]["gold_excluded"] == 1
    assert m["skipped"] == {"not_good_no_correction": 1}


def test_every_sft_row_follows_the_openai_chat_rules(project: Project) -> None:
    seed_mixed(project)
    # A prompt turn with empty content cannot be fine-tuned on: skipped and counted.
    broken = interaction(project, messages=[{"role": "user", "content": ""}], response="Fine.")
    label(broken, {"quality": 5})
    weird_role = interaction(project, messages=[{"role": "robot", "content": "x"}])
    label(weird_role, {"quality": 5})
    export, rows = run(project, "sft")
    assert len(rows) == 2
    for row in rows:
        assert openai_chat_problems(row) == []
        assert set(row) == {"messages"}
        assert row["messages"][-1]["role"] == "assistant"
        assert all(m["role"] in {"system", "user", "assistant", "tool"} for m in row["messages"])
        assert all(isinstance(m["content"], str) and m["content"] for m in row["messages"])
    assert export.manifest["skipped"]["invalid_chat"] == 2


def test_openai_chat_rules() -> None:
    ok = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert openai_chat_problems(ok) == []
    assert openai_chat_problems({"messages": []}) == ["messages: must be a non-empty list"]
    last_user = {"messages": [{"role": "user", "content": "q"}]}
    assert openai_chat_problems(last_user) == [
        "messages: the last message must be from the assistant"
    ]
    empty = {"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "a"}]}
    assert openai_chat_problems(empty) == ["messages[0].content: must be a non-empty string"]
    role = {"messages": [{"role": "bot", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert "messages[0].role" in openai_chat_problems(role)[0]
    no_user = {
        "messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]
    }
    assert openai_chat_problems(no_user) == ["messages: needs at least one user message"]
    extra_key = {"role": "user", "content": "q", "x": 1}
    extra = {"messages": [extra_key, {"role": "assistant", "content": "a"}]}
    assert openai_chat_problems(extra) == ["messages[0]: unexpected keys ['x']"]


def test_preference_rows_field_by_field(project: Project) -> None:
    seed_mixed(project)
    export, rows = run(project, "preference")
    assert rows == [
        {  # pairwise "a": the response wins
            "prompt": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi?"},
            ],
            "chosen": [{"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "assistant", "content": "Hey."}],
        },
        {  # a correction beats the original
            "prompt": [{"role": "user", "content": "Capital of France?"}],
            "chosen": [{"role": "assistant", "content": "Paris."}],
            "rejected": [{"role": "assistant", "content": "Lyon."}],
        },
        {  # pairwise "b": the alternative wins
            "prompt": [{"role": "user", "content": "2+2?"}],
            "chosen": [{"role": "assistant", "content": "4"}],
            "rejected": [{"role": "assistant", "content": "5"}],
        },
    ]
    assert export.manifest["excluded"]["holdout_excluded"] == 1


def test_preference_ties_dropped_or_kept_with_a_flag(project: Project) -> None:
    seed_mixed(project)
    tie = interaction(project, response="One.", alt_response="Two.")
    label(tie, {"quality": 3, "preferred": "tie"})
    export, rows = run(project, "preference")
    assert len(rows) == 3
    assert export.manifest["skipped"]["ties_dropped"] == 1
    _, kept = run(project, "preference", options={"keep_ties": True})
    assert len(kept) == 4
    assert [r["tie"] for r in kept] == [False, False, False, True]
    assert kept[-1]["chosen"] == [{"role": "assistant", "content": "One."}]
    assert kept[-1]["rejected"] == [{"role": "assistant", "content": "Two."}]


def test_classification_rows_field_by_field(project: Project) -> None:
    items = seed_mixed(project)
    _, rows = run(project, "classification")
    assert [r["response"] for r in rows] == ["Hello!", "Lyon.", "5"]
    first = rows[0]
    assert first == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi?"},
        ],
        "response": "Hello!",
        # final_values treats an empty multi_choice answer as unanswered (null).
        "labels": {"quality": 5.0, "failure_modes": None, "correction": None, "preferred": "a"},
        "good": True,
        "weight": 1.0,
    }
    assert rows[1]["labels"] == {
        "quality": 2.0,
        "failure_modes": ["hallucination"],
        "correction": "Paris.",
        "preferred": None,
    }
    assert rows[1]["good"] is False
    assert items["holdout"].response not in {r["response"] for r in rows}


def test_classification_weight_by_agreement(project: Project) -> None:
    item = interaction(project, response="Maybe.")
    for quality in (5, 4, 1):  # mean 3.33 -> not good; one of three annotators agrees
        label(item, {"quality": quality})
    _, rows = run(project, "classification", options={"weight": "agreement"})
    assert rows[0]["good"] is False
    assert rows[0]["weight"] == pytest.approx(1 / 3)


def test_adjudication_wins_and_edits_after_creation_do_not_change_the_snapshot(
    project: Project,
) -> None:
    item = interaction(project, response="Draft.")
    first = label(item, {"quality": 2})
    label(item, {"quality": 5}, kind=Annotation.Kind.ADJUDICATION, annotator=UserFactory())
    export = export_create(project=project, kind="classification", enqueue=False)
    # An edit after creation: a new version supersedes the first label.
    Annotation.objects.filter(id=first.id).update(is_current=False)
    Annotation.objects.create(
        queue_item=first.queue_item,
        interaction=item,
        annotator=first.annotator,
        values={"quality": 1},
        schema_version=1,
        version=2,
        supersedes=first,
    )
    done = export_run(export_id=export.id)
    assert done is not None
    rows = read_jsonl(done.file_path)
    assert rows[0]["labels"]["quality"] == 5  # the adjudication
    assert rows[0]["good"] is True


# --- HuggingFace datasets reads every kind ------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "columns", "n"),
    [
        ("sft", {"messages"}, 2),
        ("preference", {"prompt", "chosen", "rejected"}, 3),
        ("classification", {"messages", "response", "labels", "good", "weight"}, 3),
    ],
)
@pytest.mark.parametrize("gzip", [False, True])
def test_huggingface_datasets_loads_every_kind(
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    columns: set[str],
    n: int,
    gzip: bool,
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    seed_mixed(project)
    export, rows = run(project, kind, options={"gzip": gzip})
    assert export.file_path.endswith(".jsonl.gz" if gzip else ".jsonl")
    ds = datasets.load_dataset(
        "json", data_files=export.file_path, split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    assert ds.num_rows == n
    assert set(ds.column_names) == columns
    assert ds.to_list() == rows


def test_huggingface_reads_split_column(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    for i in range(40):
        label(interaction(project, conversation_id=f"c{i}", response=f"r{i}"), {"quality": 5})
    export, _rows = run(project, "sft", options={"validation_fraction": 0.3, "seed": 7})
    ds = datasets.load_dataset(
        "json", data_files=export.file_path, split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    assert set(ds.column_names) == {"messages", "split"}
    validation = ds.filter(lambda r: r["split"] == "validation")
    assert validation.num_rows == export.manifest["splits"]["validation"]
    assert validation.num_rows + export.manifest["splits"]["train"] == 40


# --- Splits -------------------------------------------------------------------------------------
def test_conversation_split_is_a_pure_function_of_seed_and_key() -> None:
    assert conversation_split(key="c1", seed=1, validation_fraction=0.0) == "train"
    sides = [conversation_split(key=f"c{i}", seed=3, validation_fraction=0.25) for i in range(4000)]
    assert 0.22 < sides.count("validation") / 4000 < 0.28
    again = [conversation_split(key=f"c{i}", seed=3, validation_fraction=0.25) for i in range(4000)]
    assert sides == again
    other_seed = [
        conversation_split(key=f"c{i}", seed=4, validation_fraction=0.25) for i in range(4000)
    ]
    assert sides != other_seed


def test_no_conversation_on_both_sides_of_the_split(project: Project) -> None:
    conversation_of: dict[str, str] = {}
    for conv in range(30):
        for turn in range(4):
            text = f"conv {conv} turn {turn}"
            item = interaction(
                project,
                conversation_id=f"conv-{conv}",
                messages=[{"role": "user", "content": text}],
                response=f"answer {conv}.{turn}",
            )
            conversation_of[text] = item.conversation_id
            label(item, {"quality": 5})
    export, rows = run(project, "sft", options={"validation_fraction": 0.5, "seed": 11})
    sides: dict[str, set[str]] = {}
    for row in rows:
        conv = conversation_of[row["messages"][0]["content"]]
        sides.setdefault(conv, set()).add(row["split"])
    assert all(len(s) == 1 for s in sides.values())
    assert {"train", "validation"} == set().union(*sides.values())
    assert export.manifest["splits"]["train"] + export.manifest["splits"]["validation"] == 120
    assert export.manifest["split"] == {
        "by": "conversation_id",
        "seed": 11,
        "validation_fraction": 0.5,
    }


# --- Holdout ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sft", "preference", "classification"])
def test_holdout_never_in_a_training_export_whatever_the_filters(
    project: Project, kind: str
) -> None:
    items = seed_mixed(project)
    label(items["holdout"], {"quality": 5, "preferred": "a"}, annotator=UserFactory())
    with pytest.raises(Invalid) as excinfo:
        export_create(project=project, kind=kind, filters={"include_holdout": True}, enqueue=False)
    assert "filters.include_holdout" in excinfo.value.errors
    for filters in ({}, {"include_gold": True}, {"labels": {"quality": {"gte": 5}}}):
        _, rows = run(project, kind, filters=filters)
        text = repr(rows)
        assert "Held out" not in text


# --- Filters ------------------------------------------------------------------------------------
def _responses(rows: list[dict[str, Any]]) -> list[str]:
    return [r["response"] for r in rows]


def test_filters_select_the_right_items(project: Project) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    a = interaction(project, occurred_at=utc(0), model_version="m1", response="A",
                    segment={"tier": "free", "locale": "en"})  # fmt: skip
    b = interaction(project, occurred_at=utc(2), model_version="m2", response="B",
                    segment={"tier": "pro", "locale": "de"})  # fmt: skip
    c = interaction(project, occurred_at=utc(4), model_version="m2", response="C",
                    segment={"tier": "pro", "locale": "en"})  # fmt: skip
    gold = interaction(project, occurred_at=utc(1), response="G")
    label(a, {"quality": 5, "failure_modes": []}, annotator=alice)
    label(a, {"quality": 5, "failure_modes": []}, annotator=bob)
    label(b, {"quality": 3, "failure_modes": ["hallucination"]}, annotator=alice)
    label(b, {"quality": 5, "failure_modes": ["hallucination"]}, annotator=bob)
    label(c, {"quality": 4, "failure_modes": ["refusal"]}, annotator=bob)
    label(gold, {"quality": 4}, annotator=alice, is_gold=True)

    def only(**filters: Any) -> list[str]:
        return _responses(run(project, "classification", filters=filters)[1])

    assert only() == ["A", "B", "C"]
    assert only(include_gold=True) == ["A", "B", "C", "G"]  # id order
    assert only(since="2026-11-02T00:00:00Z") == ["B", "C"]
    assert only(until="2026-11-03") == ["A"]
    assert only(model_versions=["m2"]) == ["B", "C"]
    assert only(segment={"tier": ["pro"], "locale": "en"}) == ["C"]
    assert only(labels={"quality": {"gte": 4.5}}) == ["A"]
    assert only(labels={"failure_modes": {"includes": "hallucination"}}) == ["B"]
    assert only(labels={"failure_modes": {"excludes": "refusal"}}) == ["A", "B"]
    # B: alice says not good (3), bob good (5), the mean 4 is good -> agreement 0.5.
    assert only(min_agreement=0.75) == ["A", "C"]
    assert only(annotators=["alice"]) == ["A", "B"]
    # With alice's labels only, B's final quality is 3.
    rows = run(project, "classification", filters={"annotators": ["alice"]})[1]
    assert rows[1]["labels"]["quality"] == 3.0


def test_validation_errors_name_the_field(project: Project) -> None:
    cases = [
        ({"kind": "nope"}, "kind"),
        ({"filters": {"since": "yesterday"}}, "filters.since"),
        ({"filters": {"min_agreement": 2}}, "filters.min_agreement"),
        ({"filters": {"labels": {"nope": {"gte": 1}}}}, "filters.labels.nope"),
        ({"filters": {"labels": {"quality": {"about": 1}}}}, "filters.labels.quality.about"),
        ({"filters": {"labels": {"quality": {"includes": 1}}}}, "filters.labels.quality.includes"),
        ({"filters": {"segment": {"planet": ["mars"]}}}, "filters.segment.planet"),
        ({"filters": {"annotators": ["ghost"]}}, "filters.annotators"),
        ({"filters": {"colour": "red"}}, "filters.colour"),
        ({"options": {"validation_fraction": 1}}, "options.validation_fraction"),
        ({"options": {"weight": "heavy"}}, "options.weight"),
        ({"options": {"snapshot": {}}}, "options.snapshot"),
    ]
    for params, field in cases:
        params = {"kind": "sft", **params}
        with pytest.raises(Invalid) as excinfo:
            export_create(project=project, enqueue=False, **params)
        assert field in excinfo.value.errors, (params, excinfo.value.errors)
    assert not Export.objects.exists()


def test_exact_duplicates_removed_by_default(project: Project) -> None:
    for conv in ("c1", "c2", "c3"):
        label(interaction(project, conversation_id=conv, response="Same."), {"quality": 5})
    export, rows = run(project, "sft")
    assert len(rows) == 1
    assert export.manifest["skipped"]["duplicates_removed"] == 2
    _, kept = run(project, "sft", options={"dedupe": False})
    assert len(kept) == 3


# --- Files, hashes, snapshots, crashes ----------------------------------------------------------
def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("gzip", [False, True])
def test_manifest_beside_the_file_matches_it(project: Project, gzip: bool) -> None:
    import json

    seed_mixed(project)
    export, _ = run(project, "sft", options={"gzip": gzip})
    path = Path(export.file_path)
    manifest = json.loads(manifest_path_for(path).read_text())
    assert manifest == export.manifest
    assert manifest["sha256"] == _sha256(path) == export.sha256
    assert manifest["bytes"] == path.stat().st_size == export.bytes
    assert manifest["rows"] == export.rows == 2
    assert manifest["compression"] == ("gzip" if gzip else None)
    assert manifest["snapshot"]["max_annotation_id"] == Annotation.objects.order_by("-id")[0].id
    assert manifest["project"] == project.slug
    assert manifest["schema_version"] == project.schema_version
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_rerun_of_a_snapshot_gives_the_same_bytes(project: Project) -> None:
    seed_mixed(project)
    first, _ = run(project, "preference", options={"gzip": True, "validation_fraction": 0.5})
    second = export_create(
        project=project,
        kind="preference",
        options={"gzip": True, "validation_fraction": 0.5},
        enqueue=False,
    )
    # Labels added after the second export's creation are outside its snapshot.
    label(interaction(project, response="x", alt_response="y"), {"quality": 5, "preferred": "b"})
    done = export_run(export_id=second.id)
    assert done is not None
    assert done.sha256 == first.sha256
    assert done.manifest["content_sha256"] == first.manifest["content_sha256"]


def test_run_is_idempotent(project: Project) -> None:
    seed_mixed(project)
    export, _ = run(project, "sft")
    again = export_run(export_id=export.id)
    assert again is not None
    assert (again.status, again.finished_at, again.sha256) == (
        Export.Status.DONE,
        export.finished_at,
        export.sha256,
    )
    assert export_run(export_id=10**9) is None


def test_an_export_that_dies_midway_leaves_nothing_complete_and_a_retry_matches(
    project: Project, monkeypatch: pytest.MonkeyPatch, export_root: Path
) -> None:
    for i in range(30):
        label(interaction(project, response=f"answer {i}"), {"quality": 5})
    clean, _ = run(project, "sft")
    export = export_create(project=project, kind="sft", enqueue=False)

    real = export_rows.labelled_items

    def dying(*args: Any, **kwargs: Any) -> Any:
        for n, item in enumerate(real(*args, **kwargs)):
            if n == 12:
                raise OSError("disk on fire")
            yield item

    monkeypatch.setattr(export_rows, "labelled_items", dying)
    failed = export_run(export_id=export.id)
    assert failed is not None
    assert failed.status == Export.Status.FAILED
    assert "disk on fire" in failed.error
    assert failed.sha256 == ""
    assert failed.file_path == ""
    folder = export_root / project.slug
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            Path(clean.file_path).name,
            parquet_path_for(Path(clean.file_path)).name,
            manifest_path_for(Path(clean.file_path)).name,
        ]
    )

    monkeypatch.setattr(export_rows, "labelled_items", real)
    export_retry(export=failed, enqueue=False)
    done = export_run(export_id=export.id)
    assert done is not None
    assert done.status == Export.Status.DONE
    assert done.sha256 == clean.sha256 == _sha256(done.file_path)


def test_sweep_runs_exports_whose_message_was_lost_or_whose_worker_died(
    project: Project, settings: Any
) -> None:
    import datetime as dt

    from django.utils import timezone

    from labeling.tasks.exports import sweep_exports

    seed_mixed(project)
    lost = export_create(project=project, kind="sft", enqueue=False)
    dead = export_create(project=project, kind="preference", enqueue=False)
    fresh = export_create(project=project, kind="classification", enqueue=False)
    long_ago = timezone.now() - dt.timedelta(hours=1)
    Export.objects.filter(id=lost.id).update(created_at=long_ago)
    Export.objects.filter(id=dead.id).update(
        created_at=long_ago, status=Export.Status.RUNNING, heartbeat_at=long_ago
    )
    assert sweep_exports() == 2  # eager Celery: both run now
    statuses = dict(Export.objects.values_list("id", "status"))
    assert statuses == {
        lost.id: Export.Status.DONE,
        dead.id: Export.Status.DONE,
        fresh.id: Export.Status.PENDING,  # its message may still be on its way
    }


def test_the_machinery_serves_any_registered_kind(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-training kind (like ``eval``) may include holdout items and keep its own keys."""
    from labeling.selectors.exports import labelled_items
    from labeling.services import export_kinds
    from labeling.services.export_kinds import ExportKind

    def rows(export: Export) -> Any:
        for item in labelled_items(export, training=False):
            yield {"id": item.external_id, "holdout": item.holdout, "run": export.filters["run"]}

    probe = ExportKind(
        name="probe",
        rows=rows,
        manifest=lambda export: {"design": {"runs": [export.filters["run"]]}},
        training=False,
    )
    monkeypatch.setitem(export_kinds._kinds, "probe", probe)  # unregistered after the test
    items = seed_mixed(project)
    export, got = run(project, "probe", filters={"run": 7}, options={"level": 0.9})
    assert {r["id"]: r["holdout"] for r in got} == {
        items["good"].external_id: False,
        items["corrected"].external_id: False,
        items["bad"].external_id: False,
        items["holdout"].external_id: True,
    }
    assert export.manifest["design"] == {"runs": [7]}
    assert export.manifest["training"] is False
    assert export.manifest["options"]["level"] == 0.9
    assert export.manifest["excluded"]["holdout_excluded"] == 0
