"""Final labels: how several annotations of one item become its label (one documented function).

Rules, per question (``final_values``):
- an adjudication (by a reviewer) wins over everything;
- ``rating``: the mean of the annotators' values;
- ``binary``, ``single_choice``, ``pairwise``: the majority answer; a tie gives ``None``
  (unresolved: it goes to adjudication and is left out of estimates until then);
- ``multi_choice``: each option chosen by at least half of the annotators;
- ``text``: the most recent non-empty answer;
- ``spans``: the spans (start, end, label) marked by at least half of the annotators who
  answered, against the text most of them saw (``text_sha256``).
Only current annotation versions count (an edit supersedes the earlier version).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import QuerySet

from labeling.models import Annotation, Project


def final_values(
    *, schema: dict[str, Any], annotations: Sequence[dict[str, Any]], adjudication: dict | None
) -> dict[str, Any]:
    """Combine the values of several annotations (oldest first) into one dict of final values."""
    result: dict[str, Any] = {}
    for question in schema.get("questions", []):
        key, qtype = question["key"], question["type"]
        if adjudication is not None and key in adjudication:
            result[key] = adjudication[key]
            continue
        answers = [a[key] for a in annotations if a.get(key) not in (None, "", [])]
        if not answers:
            continue
        if qtype == "rating":
            result[key] = sum(float(v) for v in answers) / len(answers)
        elif qtype in ("binary", "single_choice", "pairwise"):
            counts = Counter(_hashable(v) for v in answers).most_common()
            top = counts[0]
            result[key] = None if len(counts) > 1 and counts[1][1] == top[1] else top[0]
        elif qtype == "multi_choice":
            votes = Counter(option for a in answers for option in set(a))
            result[key] = sorted(o for o, c in votes.items() if 2 * c >= len(answers))
        elif qtype == "spans":
            result[key] = _majority_spans([a for a in answers if isinstance(a, dict)])
        else:  # text
            result[key] = answers[-1]
    return result


def _majority_spans(answers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Spans marked by at least half of the annotators who marked the same text version."""
    if not answers:
        return None
    sha = Counter(a.get("text_sha256") for a in answers).most_common(1)[0][0]
    same = [a for a in answers if a.get("text_sha256") == sha]
    votes: Counter[tuple[int, int, str]] = Counter()
    text: dict[tuple[int, int, str], Any] = {}
    for answer in same:
        for span in answer.get("spans") or []:
            triple = (int(span["start"]), int(span["end"]), str(span["label"]))
            votes[triple] += 1
            text.setdefault(triple, span.get("text"))
    kept = sorted(t for t, c in votes.items() if 2 * c >= len(same))
    spans = [
        {
            "start": s,
            "end": e,
            "label": lbl,
            **({"text": text[(s, e, lbl)]} if text[(s, e, lbl)] is not None else {}),
        }
        for s, e, lbl in kept
    ]
    return {"text_sha256": sha, "spans": spans}


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def target_good(*, schema: dict[str, Any], values: dict[str, Any]) -> float | None:
    """1.0 if the final values say "good" under the schema's target, 0.0 if not, None if unknown.

    For a rating the (possibly averaged) value is good when it lies within [min(good), max(good)].
    """
    target = schema.get("target") or {}
    key = target.get("question")
    if key is None or values.get(key) is None:
        return None
    value = values[key]
    good = target.get("good", [True])
    qtype = next((q["type"] for q in schema.get("questions", []) if q["key"] == key), None)
    if qtype == "rating":
        nums = [float(g) for g in good]
        return 1.0 if min(nums) <= float(value) <= max(nums) else 0.0
    if qtype == "multi_choice":
        return 1.0 if any(v in good for v in value) else 0.0
    return 1.0 if value in good else 0.0


def current_annotations(*, project: Project, cutoff: int | None = None) -> QuerySet[Annotation]:
    """The project's current annotation versions (as of the snapshot ``cutoff`` when given: the
    versions with ``id <= cutoff`` that no version inside the snapshot supersedes)."""
    if cutoff is None:
        return Annotation.objects.filter(queue_item__project=project, is_current=True)
    return Annotation.objects.filter(queue_item__project=project, id__lte=cutoff).exclude(
        superseded_by__id__lte=cutoff
    )


def final_labels(
    *, project: Project, interaction_ids: Iterable[int] | None = None, cutoff: int | None = None
) -> dict[int, dict[str, Any]]:
    """interaction_id -> final values, for every interaction with at least one current label.

    With ``cutoff`` (an export snapshot's highest annotation id) the labels are those current as of
    the snapshot, the rule the export rows use: versions with ``id <= cutoff`` that no version
    inside the snapshot supersedes.
    """
    qs = current_annotations(project=project, cutoff=cutoff)
    if interaction_ids is not None:
        qs = qs.filter(interaction_id__in=list(interaction_ids))
    labels: dict[int, list[dict[str, Any]]] = defaultdict(list)
    adjudicated: dict[int, dict[str, Any]] = {}
    for interaction_id, kind, values in qs.order_by("created_at", "id").values_list(
        "interaction_id", "kind", "values"
    ):
        if kind == Annotation.Kind.ADJUDICATION:
            adjudicated[interaction_id] = values
        else:
            labels[interaction_id].append(values)
    schema = project.label_schema
    return {
        i: final_values(
            schema=schema, annotations=labels.get(i, []), adjudication=adjudicated.get(i)
        )
        for i in set(labels) | set(adjudicated)
    }
