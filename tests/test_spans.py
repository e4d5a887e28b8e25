"""Span highlights (issue 14 item 5): a ``spans`` question marks character spans of the response
with a label, stored as Unicode code-point offsets pinned to the exact text (its sha256), combined
by majority into final labels, exported in the classification export and scored by span-level
F1 between annotators."""

from __future__ import annotations

from typing import Any

import pytest

from labeling.errors import Invalid
from labeling.models import Export, Project, QueueItem
from labeling.schema import (
    SchemaError,
    item_texts,
    schema_validate,
    text_sha256,
    values_validate,
)
from labeling.selectors.agreement import disagreements, project_agreement, span_f1
from labeling.selectors.labels import final_values
from labeling.services.exports import export_create, export_run
from labeling.services.queue import assignment_claim, assignment_submit
from tests.export_fixtures import read_jsonl
from tests.factories import InteractionFactory

SCHEMA: dict[str, Any] = {
    "questions": [
        {"key": "quality", "type": "rating", "required": True,
         "scale": [{"value": v, "label": str(v)} for v in (1, 2, 3, 4, 5)]},
        {"key": "pii", "type": "spans", "prompt": "Mark personal data",
         "labels": ["name", "phone", "email"]},
    ],
    "target": {"question": "quality", "good": [4, 5]},
}  # fmt: skip
TEXT = "😀 Call Anna at 555 0100 now."  # an emoji: code points and UTF-16 units differ


def _answer(*spans: tuple[int, int, str], text: str = TEXT) -> dict[str, Any]:
    return {
        "text_sha256": text_sha256(text),
        "spans": [{"start": s, "end": e, "label": lbl} for s, e, lbl in spans],
    }


def test_a_spans_question_is_normalised_and_cannot_be_the_target() -> None:
    schema = schema_validate(SCHEMA)
    pii = schema["questions"][1]
    assert pii["field"] == "response"
    assert pii["shortcuts"] == ["1", "2", "3"]
    assert pii["required"] is False
    with pytest.raises(SchemaError) as exc:
        schema_validate({**SCHEMA, "target": {"question": "pii", "good": ["name"]}})
    assert "spans question" in exc.value.errors["target.question"]
    bad = {**SCHEMA, "questions": [SCHEMA["questions"][0], {"key": "x", "type": "spans"}]}
    with pytest.raises(SchemaError) as exc:
        schema_validate(bad)
    assert "questions[1].labels" in exc.value.errors


def test_offsets_are_code_points_pinned_to_the_text_shown() -> None:
    schema = schema_validate(SCHEMA)
    texts = {"response": TEXT, "alt_response": ""}
    cleaned = values_validate(
        schema,
        {"quality": 2, "pii": _answer((15, 23, "phone"), (7, 11, "name"), (7, 11, "name"))},
        has_alt_response=False,
        texts=texts,
    )
    assert cleaned["pii"]["spans"] == [
        {"start": 7, "end": 11, "label": "name", "text": "Anna"},
        {"start": 15, "end": 23, "label": "phone", "text": "555 0100"},
    ]
    changed = {"response": TEXT + " (edited)", "alt_response": ""}
    for values, fragment in [
        ({"pii": _answer((7, 11, "name"))}, "the text changed"),  # checked against `changed`
    ]:
        with pytest.raises(Invalid) as exc:
            values_validate(schema, {"quality": 2, **values}, texts=changed)
        assert fragment in exc.value.errors["pii"]
    for span, fragment in [
        ((7, 99, "name"), "outside the text"),
        ((5, 5, "name"), "outside the text"),
        ((0, 2, "address"), "not a label"),
    ]:
        with pytest.raises(Invalid) as exc:
            values_validate(schema, {"quality": 2, "pii": _answer(span)}, texts=texts)
        assert fragment in exc.value.errors["pii"]
    # Nothing to mark is an answer too.
    empty = values_validate(schema, {"quality": 2, "pii": _answer()}, texts=texts)
    assert empty["pii"]["spans"] == []


def test_final_spans_by_majority_and_span_f1() -> None:
    schema = schema_validate(SCHEMA)
    a = _answer((7, 11, "name"), (15, 23, "phone"))
    b = _answer((7, 11, "name"))
    c = _answer((7, 11, "name"), (15, 19, "phone"))
    final = final_values(
        schema=schema, annotations=[{"pii": a}, {"pii": b}, {"pii": c}], adjudication=None
    )
    assert [(s["start"], s["end"], s["label"]) for s in final["pii"]["spans"]] == [(7, 11, "name")]
    assert span_f1(a, b) == pytest.approx(2 / 3)
    assert span_f1(_answer(), _answer()) == 1.0
    assert span_f1(a, _answer()) == 0.0


@pytest.mark.django_db
def test_agreement_disagreements_and_the_classification_export(
    project: Project, member: Any
) -> None:
    project.label_schema = schema_validate(SCHEMA)
    project.save()
    first, second = member(), member()
    item = QueueItem.objects.create(
        project=project,
        interaction=InteractionFactory(project=project, response=TEXT),
        overlap=2,
    )
    for user, answer in [
        (first, _answer((7, 11, "name"), (15, 23, "phone"))),
        (second, _answer((7, 11, "name"))),
    ]:
        lease = assignment_claim(project=project, annotator=user)
        assert lease is not None
        assignment_submit(
            assignment_id=lease.pk, annotator=user, values={"quality": 2, "pii": answer}
        )
    (pii,) = [q for q in project_agreement(project=project)["questions"] if q["key"] == "pii"]
    assert pii == {
        "key": "pii", "type": "spans", "alpha": None, "kappa": None, "f1": 0.6667, "items": 1
    }  # fmt: skip
    assert disagreements(project=project)[0]["questions"] == ["pii"]
    export = export_create(project=project, kind="classification", enqueue=False)
    done = export_run(export_id=export.id)
    assert done is not None
    assert done.status == Export.Status.DONE, done.error
    (row,) = read_jsonl(done.file_path)
    assert row["labels"]["pii"] == {
        "text_sha256": text_sha256(TEXT),
        "spans": [
            {"start": 7, "end": 11, "label": "name", "text": "Anna"},
            {"start": 15, "end": 23, "label": "phone", "text": "555 0100"},
        ],
    }
    assert item_texts(item.interaction)["response"][7:11] == "Anna"
