"""Inter-annotator agreement (Krippendorff's alpha, Cohen's kappa) and the disagreement list.

Pure functions (``krippendorff_alpha``, ``cohen_kappa``, ``mean_pairwise_kappa``) work on plain
arrays and are tested against hand-computed values; ``project_agreement`` and ``disagreements``
read the current label annotations of items that more than one annotator labelled.

Per question type: ``rating`` uses alpha at the ordinal level; ``binary``, ``single_choice`` and
``pairwise`` the nominal level; ``multi_choice`` treats every (item, option) as a yes/no unit;
``text`` is not scored. Kappa is unweighted Cohen's kappa for each pair of annotators that share at
least two units, averaged with weights = shared units.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import krippendorff
import numpy as np
from django.db.models import Count, Subquery

from labeling.models import Annotation, Project, QueueItem
from labeling.schema import span_set
from labeling.selectors.labels import target_good

LEVELS = {"rating": "ordinal", "binary": "nominal", "single_choice": "nominal",
          "pairwise": "nominal", "multi_choice": "nominal"}  # fmt: skip


def krippendorff_alpha(matrix: np.ndarray, *, level: str) -> float | None:
    """Alpha of a raters x units matrix of numeric codes (NaN: no answer).

    None when it is undefined: fewer than one unit with two answers, or no variation at all.
    """
    data = np.asarray(matrix, dtype=float)
    if data.ndim != 2 or data.size == 0:
        return None
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    values = data[:, pairable]
    values = values[~np.isnan(values)]
    if not pairable.any() or np.unique(values).size < 2:
        return None
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))  # type: ignore[arg-type]


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Unweighted Cohen's kappa of two raters over the same units; None if chance agreement is 1."""
    if len(a) != len(b) or not a:
        raise ValueError("two equally long, non-empty sequences are needed")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    categories = set(a) | set(b)
    expected = sum((list(a).count(c) / n) * (list(b).count(c) / n) for c in categories)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def mean_pairwise_kappa(units: dict[Any, dict[Any, Any]], *, min_shared: int = 2) -> float | None:
    """units: unit -> {rater: value}. Kappa per rater pair over their shared units, averaged
    weighted by the number of shared units; pairs with fewer than ``min_shared`` units or an
    undefined kappa are left out."""
    by_rater: dict[Any, dict[Any, Any]] = defaultdict(dict)
    for unit, answers in units.items():
        for rater, value in answers.items():
            by_rater[rater][unit] = value
    total, weight = 0.0, 0
    for r1, r2 in itertools.combinations(sorted(by_rater, key=str), 2):
        shared = sorted(set(by_rater[r1]) & set(by_rater[r2]), key=str)
        if len(shared) < min_shared:
            continue
        kappa = cohen_kappa([by_rater[r1][u] for u in shared], [by_rater[r2][u] for u in shared])
        if kappa is None:
            continue
        total += kappa * len(shared)
        weight += len(shared)
    return total / weight if weight else None


def _current_labels(project: Project) -> dict[int, dict[int, dict[str, Any]]]:
    """queue item id -> annotator id -> values, for items with at least two current labels."""
    by_item: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
    current = Annotation.objects.filter(
        queue_item__project=project, kind=Annotation.Kind.LABEL, is_current=True
    )
    # Only the items two annotators labelled are read (and their answers decoded): with overlap
    # on a tenth of the items, a tenth of the labels (the dashboard's cold page at 20,000 labels).
    shared = (
        current.values("queue_item_id")
        .annotate(raters=Count("annotator_id", distinct=True))
        .filter(raters__gte=2)
        .values("queue_item_id")
    )
    rows = current.filter(queue_item_id__in=Subquery(shared)).values_list(
        "queue_item_id", "annotator_id", "values"
    )
    for item_id, annotator_id, values in rows:
        by_item[item_id][annotator_id] = values
    return {item: labels for item, labels in by_item.items() if len(labels) >= 2}


def _question_units(
    question: dict[str, Any], labels: dict[int, dict[int, dict[str, Any]]]
) -> dict[Any, dict[int, Any]]:
    """unit -> {annotator: value} for one question (multi-choice: one yes/no unit per option)."""
    key, qtype = question["key"], question["type"]
    units: dict[Any, dict[int, Any]] = {}
    for item_id, by_annotator in labels.items():
        answered = {a: v[key] for a, v in by_annotator.items() if v.get(key) not in (None, "")}
        if qtype == "multi_choice":
            # A submitted label that leaves a multi-choice question blank chose no option.
            answered = {a: v.get(key) or [] for a, v in by_annotator.items()}
            if len(answered) < 2:
                continue
            for option in question.get("options", []):
                units[(item_id, option)] = {a: option in v for a, v in answered.items()}
        elif len(answered) >= 2:
            units[item_id] = dict(answered.items())
    return units


def _matrix(units: dict[Any, dict[int, Any]], *, numeric: bool) -> np.ndarray:
    raters = sorted({r for answers in units.values() for r in answers})
    row = {r: i for i, r in enumerate(raters)}
    codes: dict[Any, float] = {}
    data = np.full((len(raters), len(units)), np.nan)
    for j, answers in enumerate(units.values()):
        for rater, value in answers.items():
            if numeric:
                data[row[rater], j] = float(value)
            else:
                data[row[rater], j] = codes.setdefault(repr(value), float(len(codes)))
    return data


def span_f1(a: Any, b: Any) -> float:
    """F1 of two annotators' spans, exact matches of (start, end, label); 1.0 when both marked
    nothing (they agree there is nothing to mark)."""
    left, right = span_set(a), span_set(b)
    if not left and not right:
        return 1.0
    return 2 * len(left & right) / (len(left) + len(right))


def mean_span_f1(units: dict[Any, dict[int, Any]]) -> float | None:
    """Span-level F1 averaged over every pair of annotators on every item (each pair of an item
    counts once): ``None`` without an item answered by two annotators."""
    scores = [
        span_f1(answers[x], answers[y])
        for answers in units.values()
        for x, y in itertools.combinations(sorted(answers), 2)
    ]
    return sum(scores) / len(scores) if scores else None


def project_agreement(*, project: Project) -> dict[str, Any]:
    """``{"questions": [{"key", "type", "alpha", "kappa", "items"}]}`` for the current schema;
    ``spans`` questions carry ``f1`` (span-level F1 between annotators, ``mean_span_f1``) and no
    alpha or kappa.

    ``items``: how many items at least two annotators answered that question.
    """
    labels = _current_labels(project)
    out: list[dict[str, Any]] = []
    for question in project.label_schema.get("questions", []):
        qtype = question["type"]
        if qtype == "spans":
            units = _question_units(question, labels)
            f1 = mean_span_f1(units)
            out.append(
                {
                    "key": question["key"],
                    "type": qtype,
                    "alpha": None,
                    "kappa": None,
                    "f1": None if f1 is None else round(f1, 4),
                    "items": len(units),
                }
            )
            continue
        if qtype not in LEVELS:
            continue
        units = _question_units(question, labels)
        items = len({u[0] if isinstance(u, tuple) else u for u in units})
        alpha = (
            krippendorff_alpha(_matrix(units, numeric=qtype == "rating"), level=LEVELS[qtype])
            if units
            else None
        )
        kappa = mean_pairwise_kappa(units) if units else None
        out.append(
            {
                "key": question["key"],
                "type": qtype,
                "alpha": None if alpha is None else round(alpha, 4),
                "kappa": None if kappa is None else round(kappa, 4),
                "items": items,
            }
        )
    return {"questions": out}


def _disputed(question: dict[str, Any], answers: list[Any], schema: dict[str, Any]) -> bool:
    qtype = question["type"]
    if qtype == "text" or len(answers) < 2:
        return False
    if qtype == "rating":
        nums = [float(a) for a in answers]
        if max(nums) - min(nums) >= 2:
            return True
        if schema.get("target", {}).get("question") == question["key"]:
            verdicts = {target_good(schema=schema, values={question["key"]: a}) for a in answers}
            return len(verdicts) > 1
        return False
    if qtype == "multi_choice":
        return len({tuple(sorted(a)) for a in answers}) > 1
    if qtype == "spans":
        return len({span_set(a) for a in answers}) > 1
    return len({repr(a) for a in answers}) > 1


def disagreements(*, project: Project, include_adjudicated: bool = False) -> list[dict[str, Any]]:
    """Items whose annotators disagree, oldest first: ``{"queue_item_id", "questions": [keys],
    "adjudicated": bool}``.

    Disagreement per question: different answers (binary, choices, pairwise, multi-choice sets);
    for ratings a spread of 2 or more scale points, or, on the target question, annotators on both
    sides of "good".
    """
    schema = project.label_schema
    labels = _current_labels(project)
    adjudicated = set(
        Annotation.objects.filter(
            queue_item__project=project, kind=Annotation.Kind.ADJUDICATION, is_current=True
        ).values_list("queue_item_id", flat=True)
    )
    out = []
    for item_id in sorted(labels):
        if item_id in adjudicated and not include_adjudicated:
            continue
        disputed = [
            q["key"]
            for q in schema.get("questions", [])
            if _disputed(
                q,
                [
                    v[q["key"]]
                    for v in labels[item_id].values()
                    if v.get(q["key"]) not in (None, "")
                ],
                schema,
            )
        ]
        if disputed:
            out.append(
                {
                    "queue_item_id": item_id,
                    "questions": disputed,
                    "adjudicated": item_id in adjudicated,
                }
            )
    return out


def disagreement_items(rows: Sequence[dict[str, Any]]) -> dict[int, QueueItem]:
    """queue item id -> the item with its interaction, for a page of :func:`disagreements` rows."""
    return {
        item.pk: item
        for item in QueueItem.objects.filter(
            pk__in=[row["queue_item_id"] for row in rows]
        ).select_related("interaction")
    }
