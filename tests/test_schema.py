"""Label schema validation: every question type, bad schemas, submitted values per type."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labeling.errors import Invalid
from labeling.schema import DEFAULT_SCHEMA, SchemaError, schema_validate, values_validate

FULL: dict[str, Any] = {
    "questions": [
        {
            "key": "quality",
            "type": "rating",
            "prompt": "How good?",
            "required": True,
            "scale": [
                {"value": 1, "label": "bad"},
                {"value": 2, "label": "ok"},
                {"value": 3, "label": "good"},
            ],
        },
        {"key": "safe", "type": "binary", "prompt": "Safe?", "help": "Anything harmful?"},
        {"key": "topic", "type": "single_choice", "options": ["billing", "login", "other"]},
        {
            "key": "failures",
            "type": "multi_choice",
            "options": ["hallucination", "refusal", "tone"],
        },
        {"key": "correction", "type": "text", "prefill": "response"},
        {"key": "preference", "type": "pairwise", "required": True, "shortcuts": ["a", "b", "t"]},
    ],
    "target": {"question": "quality", "good": [3]},
}


def errors_of(schema: Any) -> dict[str, str]:
    with pytest.raises(SchemaError) as info:
        schema_validate(schema)
    return {k: str(v) for k, v in info.value.errors.items()}


def test_full_schema_is_normalised() -> None:
    out = schema_validate(FULL)
    by_key = {q["key"]: q for q in out["questions"]}
    assert [q["key"] for q in out["questions"]] == [q["key"] for q in FULL["questions"]]
    assert by_key["quality"]["shortcuts"] == ["1", "2", "3"]
    assert by_key["safe"]["shortcuts"] == ["1", "2"]
    assert by_key["safe"]["required"] is False
    assert by_key["topic"]["prompt"] == "topic"  # the key stands in for a missing prompt
    assert by_key["preference"]["shortcuts"] == ["a", "b", "t"]
    assert by_key["correction"]["prefill"] == "response"
    assert "shortcuts" not in by_key["correction"]
    assert out["target"] == {"question": "quality", "good": [3]}


def test_default_schema_is_valid() -> None:
    assert schema_validate(DEFAULT_SCHEMA)["target"]["question"] == "quality"


def with_question(index: int, **changes: Any) -> dict[str, Any]:
    schema = copy.deepcopy(FULL)
    schema["questions"][index].update(changes)
    for key, value in changes.items():
        if value is None:
            del schema["questions"][index][key]
    return schema


@pytest.mark.parametrize(
    ("schema", "where", "words"),
    [
        ([], "schema", "object"),
        ({"questions": [], "target": {}}, "questions", "non-empty"),
        (with_question(0, scale=[]), "questions[0].scale", "non-empty list"),
        (with_question(0, scale=[{"value": "x", "label": "a"}]), "questions[0].scale[0]", "number"),
        (
            with_question(0, scale=[{"value": 2, "label": "a"}, {"value": 1, "label": "b"}]),
            "questions[0].scale",
            "increasing",
        ),
        (
            with_question(0, scale=[{"value": 1, "label": "a"}, {"value": 1, "label": "b"}]),
            "questions[0].scale",
            "distinct",
        ),
        (with_question(1, type="likert"), "questions[1].type", "one of"),
        (with_question(1, key="2bad"), "questions[1].key", "identifier"),
        (with_question(2, key="quality"), "questions[2].key", "duplicate"),
        (with_question(2, options=None), "questions[2].options", "non-empty list"),
        (with_question(3, options=["a", "a"]), "questions[3].options", "distinct"),
        (with_question(4, prefill="prompt"), "questions[4].prefill", "response"),
        (with_question(4, shortcuts=["1"]), "questions[4].shortcuts", "no shortcuts"),
        (with_question(5, shortcuts=["a", "a"]), "questions[5].shortcuts", "distinct"),
        (with_question(5, shortcuts=["s", "b"]), "questions[5].shortcuts", "reserved"),
        (with_question(5, shortcuts=["1", "2", "3", "4"]), "questions[5].shortcuts", "at most 3"),
        (with_question(1, required="yes"), "questions[1].required", "true or false"),
        (with_question(1, option=["x"]), "questions[1]", "unknown field"),
        (with_question(0, prompt=""), "questions[0].prompt", "non-empty"),
    ],
)
def test_bad_schemas_name_the_question_and_problem(schema: Any, where: str, words: str) -> None:
    errors = errors_of(schema)
    assert where in errors, errors
    assert words in errors[where]


@pytest.mark.parametrize(
    ("target", "where", "words"),
    [
        ({"question": "nope", "good": [1]}, "target.question", "not a question"),
        ({"question": "correction", "good": ["x"]}, "target.question", "text question"),
        ({"question": "quality", "good": [7]}, "target.good", "not among"),
        ({"question": "quality", "good": []}, "target.good", "non-empty"),
        ({"question": "quality", "good": [1, 2, 3]}, "target.good", "every answer"),
        ({"question": "safe", "good": [1]}, "target.good", "not among"),  # 1 is not True
        ({"question": "topic"}, "target.good", "non-empty"),
        ("quality", "target", "question"),
    ],
)
def test_bad_targets(target: Any, where: str, words: str) -> None:
    schema = copy.deepcopy(FULL)
    schema["target"] = target
    errors = errors_of(schema)
    assert words in errors[where], errors


def test_target_is_required() -> None:
    schema = copy.deepcopy(FULL)
    del schema["target"]
    assert "required" in errors_of(schema)["target"]


def test_valid_targets_for_choice_types() -> None:
    for target in (
        {"question": "safe", "good": [True]},
        {"question": "topic", "good": ["billing"]},
        {"question": "preference", "good": ["a"]},
    ):
        schema = copy.deepcopy(FULL)
        schema["target"] = target
        assert schema_validate(schema)["target"] == target


SCHEMA = schema_validate(FULL)


def value_errors(values: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(Invalid) as info:
        values_validate(SCHEMA, values, **kwargs)
    return {k: str(v) for k, v in info.value.errors.items()}


def test_values_valid_and_cleaned() -> None:
    cleaned = values_validate(
        SCHEMA,
        {
            "quality": 2.0,
            "safe": False,
            "topic": "login",
            "failures": ["tone", "hallucination", "tone"],
            "correction": "Better answer.",
            "preference": "tie",
        },
    )
    assert cleaned == {
        "quality": 2,
        "safe": False,
        "topic": "login",
        "failures": ["hallucination", "tone"],
        "correction": "Better answer.",
        "preference": "tie",
    }


def test_optional_questions_may_be_left_out() -> None:
    assert values_validate(SCHEMA, {"quality": 3, "preference": "a", "topic": ""}) == {
        "quality": 3,
        "preference": "a",
    }


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"quality": 9, "preference": "a"}, "quality", "out of range"),
        ({"quality": "3", "preference": "a"}, "quality", "number"),
        ({"quality": True, "preference": "a"}, "quality", "number"),
        ({"preference": "a"}, "quality", "required"),
        ({"quality": 1}, "preference", "required"),
        ({"quality": 1, "preference": "c"}, "preference", "not an option"),
        ({"quality": 1, "preference": "a", "safe": "yes"}, "safe", "true or false"),
        ({"quality": 1, "preference": "a", "topic": "weather"}, "topic", "not an option"),
        ({"quality": 1, "preference": "a", "failures": ["typo"]}, "failures", "unknown option"),
        ({"quality": 1, "preference": "a", "failures": "tone"}, "failures", "list"),
        ({"quality": 1, "preference": "a", "correction": 5}, "correction", "string"),
        ({"quality": 1, "preference": "a", "extra": 1}, "extra", "unknown question"),
    ],
)
def test_bad_values_are_keyed_by_question(values: dict[str, Any], key: str, words: str) -> None:
    errors = value_errors(values)
    assert words in errors[key], errors


def test_values_must_be_an_object() -> None:
    assert "object" in value_errors(["quality"])["values"]


def test_pairwise_needs_an_alt_response() -> None:
    # Without an alternative response the pairwise question is neither required nor allowed.
    assert values_validate(SCHEMA, {"quality": 1}, has_alt_response=False) == {"quality": 1}
    errors = value_errors({"quality": 1, "preference": "a"}, has_alt_response=False)
    assert "no alternative response" in errors["preference"]


def test_partial_values_skip_required() -> None:
    assert values_validate(SCHEMA, {"topic": "other"}, partial=True) == {"topic": "other"}


def test_text_length_limit() -> None:
    schema = copy.deepcopy(FULL)
    schema["questions"][4]["max_length"] = 5
    normalised = schema_validate(schema)
    with pytest.raises(Invalid) as info:
        values_validate(normalised, {"quality": 1, "preference": "a", "correction": "too long"})
    assert "limit is 5" in str(info.value.errors["correction"])
