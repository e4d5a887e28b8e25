"""Annotator quality for reviewers and admins: who labels implausibly fast, whose gold accuracy is
low, and how often each annotator agrees with the answer a reviewer adjudicated.

Every share comes with its Wilson 95% interval and the number it rests on; a share over fewer than
``FEW`` answers is marked as resting on too few labels and never raises a flag by itself.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model

from labeling.models import Annotation, Project
from labeling.schema import gold_matches
from labeling.selectors.queue import gold_scores

# An annotator is "fast" when their median time per label is under this share of the median of
# everyone else's labels in the project (with enough timed labels on both sides).
FAST_RATIO = 0.35
MIN_TIMED = 10
# Gold accuracy (or agreement with adjudications) whose whole 95% interval lies below this is low.
LOW_ACCURACY = 0.7
FEW = 10


@dataclass(frozen=True)
class Share:
    hits: int
    n: int

    @property
    def value(self) -> float | None:
        return self.hits / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """Wilson score interval at 95%."""
        if not self.n:
            return None
        z, p, n = 1.959964, self.hits / self.n, self.n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    @property
    def few(self) -> bool:
        return self.n < FEW

    @property
    def low(self) -> bool:
        interval = self.interval
        return interval is not None and not self.few and interval[1] < LOW_ACCURACY


def _agreement_with_adjudications(project: Project) -> dict[int, Share]:
    """annotator id -> how often their current label matches the adjudicated answer, over every
    question the adjudication settles."""
    questions = {q["key"]: q for q in project.label_schema.get("questions", [])}
    adjudicated = dict(
        Annotation.objects.filter(
            queue_item__project=project, kind=Annotation.Kind.ADJUDICATION, is_current=True
        ).values_list("queue_item_id", "values")
    )
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for annotator_id, item_id, values in Annotation.objects.filter(
        queue_item_id__in=list(adjudicated), kind=Annotation.Kind.LABEL, is_current=True
    ).values_list("annotator_id", "queue_item_id", "values"):
        for key, answer in adjudicated[item_id].items():
            if key not in questions or values.get(key) in (None, "", []):
                continue
            counts[annotator_id][1] += 1
            if gold_matches(question=questions[key], expected=answer, given=values.get(key)):
                counts[annotator_id][0] += 1
    return {uid: Share(hits, n) for uid, (hits, n) in counts.items()}


def annotator_quality(*, project: Project) -> list[dict[str, Any]]:
    """One row per annotator with labels: median seconds per label against the others', gold
    accuracy and agreement with adjudications (each a Share), and the flags they raise."""
    times: dict[int, list[int]] = defaultdict(list)
    for annotator_id, ms in Annotation.objects.filter(
        queue_item__project=project,
        kind=Annotation.Kind.LABEL,
        version=1,
        time_spent_ms__isnull=False,
    ).values_list("annotator_id", "time_spent_ms"):
        times[annotator_id].append(int(ms or 0))
    gold = {
        uid: Share(g["correct"], g["answered"]) for uid, g in gold_scores(project=project).items()
    }
    agreement = _agreement_with_adjudications(project)
    ids = set(times) | set(gold) | set(agreement)
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    rows = []
    for uid in ids:
        mine = times.get(uid, [])
        others = [ms for other, spent in times.items() if other != uid for ms in spent]
        median = statistics.median(mine) / 1000 if mine else None
        others_median = statistics.median(others) / 1000 if others else None
        flags = []
        if (
            median is not None
            and others_median
            and len(mine) >= MIN_TIMED
            and len(others) >= MIN_TIMED
            and median < FAST_RATIO * others_median
        ):
            flags.append(
                f"fast: median {median:.1f} s per label"
                f" against {others_median:.1f} s for the others"
            )
        g = gold.get(uid, Share(0, 0))
        if g.low:
            flags.append(f"low gold accuracy: {g.hits} of {g.n}")
        a = agreement.get(uid, Share(0, 0))
        if a.low:
            flags.append(f"often overruled: agrees with adjudications {a.hits} of {a.n}")
        rows.append(
            {
                "annotator_id": uid,
                "username": names.get(uid, str(uid)),
                "timed": len(mine),
                "median_seconds": round(median, 1) if median is not None else None,
                "others_median_seconds": round(others_median, 1) if others_median else None,
                "gold": g,
                "agreement": a,
                "flags": flags,
            }
        )
    return sorted(rows, key=lambda r: (not r["flags"], r["username"]))
