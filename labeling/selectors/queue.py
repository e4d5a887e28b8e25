"""Queue reads: one item of a project, a user's queues with counts, their progress, queue health,
annotator stats and gold accuracy."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from labeling.access import projects_for
from labeling.errors import NotFound
from labeling.models import Annotation, Assignment, Project, QueueItem
from labeling.schema import gold_matches
from labeling.selectors.queues import member_skills, queue_filter
from labeling.selectors.review import returned_labels


def _start_of_day(now: datetime) -> datetime:
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def queue_item_in(project: Project, item_id: int) -> QueueItem:
    """The project's queue item with that id; NotFound for a missing one or another project's."""
    item = QueueItem.objects.filter(pk=item_id, project=project).first()
    if item is None:
        raise NotFound("No such queue item.")
    return item


def items_left_for(*, project: Project, user: Any, queue: str | None = None) -> QuerySet[QueueItem]:
    """Open items with a free slot that ``user`` has not held (or only let expire) in the queues
    they may label (or in ``queue``: a named queue's slug or "main"), plus the item the user holds
    a lease on: the one on their screen is still left to do."""
    where = queue_filter(
        project=project, skills=member_skills(project=project, user=user), queue=queue
    )
    mine = Assignment.objects.filter(queue_item=OuterRef("pk"), annotator=user).exclude(
        status=Assignment.Status.EXPIRED
    )
    holding = Assignment.objects.filter(
        queue_item=OuterRef("pk"), annotator=user, status=Assignment.Status.LEASED
    )
    return (
        QueueItem.objects.filter(project=project, status=QueueItem.Status.OPEN)
        .alias(used=F("leased_count") + F("done_count"))
        .filter((where & Q(used__lt=F("overlap")) & ~Exists(mine)) | Exists(holding))
    )


def queue_progress(
    *, project: Project, user: Any, now: datetime | None = None, queue: str | None = None
) -> dict[str, int]:
    """``done_today`` (submitted since local midnight), ``done_total``, ``left`` and ``returned``
    (labels a reviewer sent back to the user) for the user."""
    now = now or timezone.now()
    submitted = Assignment.objects.filter(
        queue_item__project=project, annotator=user, status=Assignment.Status.SUBMITTED
    )
    counts = submitted.aggregate(
        total=Count("id"), today=Count("id", filter=Q(finished_at__gte=_start_of_day(now)))
    )
    return {
        "done_today": counts["today"],
        "done_total": counts["total"],
        "left": items_left_for(project=project, user=user, queue=queue).count(),
        "returned": returned_labels(project=project, user=user).count(),
    }


def my_queues(*, user: Any, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every project the user labels in, with their progress counts (for the home page)."""
    return [
        {"project": project, **queue_progress(project=project, user=user, now=now)}
        for project in projects_for(user=user, need="label")
    ]


def queue_health(*, project: Project, now: datetime | None = None) -> dict[str, int]:
    """Backlog and trouble signs of a project's queue (for admins and dashboards).

    ``backlog``: open items with a free slot; ``open_slots``: annotations still wanted from open
    items; ``leased``: live leases; ``expired_leases``: leases past expiry not yet returned;
    ``skips``: skipped assignments; ``flagged``: items pulled after too many skips.
    """
    now = now or timezone.now()
    items = QueueItem.objects.filter(project=project)
    by_status = dict(items.values_list("status").annotate(n=Count("id")).order_by())
    open_items = items.filter(status=QueueItem.Status.OPEN)
    backlog = (
        open_items.alias(used=F("leased_count") + F("done_count"))
        .filter(used__lt=F("overlap"))
        .count()
    )
    slots = open_items.aggregate(s=Sum(F("overlap") - F("done_count") - F("leased_count")))["s"]
    leases = Assignment.objects.filter(
        queue_item__project=project, status=Assignment.Status.LEASED
    ).aggregate(
        leased=Count("id", filter=Q(lease_expires_at__gt=now)),
        expired=Count("id", filter=Q(lease_expires_at__lte=now)),
    )
    return {
        "items": sum(by_status.values()),
        "open": by_status.get(QueueItem.Status.OPEN, 0),
        "done": by_status.get(QueueItem.Status.DONE, 0),
        "flagged": by_status.get(QueueItem.Status.FLAGGED, 0),
        "backlog": backlog,
        "open_slots": int(slots or 0),
        "leased": leases["leased"],
        "expired_leases": leases["expired"],
        "skips": Assignment.objects.filter(
            queue_item__project=project, status=Assignment.Status.SKIPPED
        ).count(),
        "gold_items": items.filter(is_gold=True).count(),
    }


def gold_scores(*, project: Project) -> dict[int, dict[str, int]]:
    """annotator id -> {"answered", "correct"} over current labels of gold items.

    An answer is correct when every question the gold answer names matches
    (``labeling.schema.gold_matches``: sets for multi-choice, exact values otherwise).
    """
    questions = {q["key"]: q for q in project.label_schema.get("questions", [])}
    scores: dict[int, dict[str, int]] = defaultdict(lambda: {"answered": 0, "correct": 0})
    rows = Annotation.objects.filter(
        queue_item__project=project,
        queue_item__is_gold=True,
        kind=Annotation.Kind.LABEL,
        is_current=True,
    ).values_list("annotator_id", "values", "queue_item__gold_answer")
    for annotator_id, values, gold in rows:
        if not gold:
            continue
        correct = all(
            key in questions
            and gold_matches(question=questions[key], expected=expected, given=values.get(key))
            for key, expected in gold.items()
        )
        scores[annotator_id]["answered"] += 1
        scores[annotator_id]["correct"] += int(correct)
    return dict(scores)


def annotator_stats(*, project: Project, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per annotator: labels, labels today and in the last 24 h, skips, median seconds per label,
    labels per hour of labelling time, gold answered/correct/accuracy (None with no gold)."""
    now = now or timezone.now()
    today = _start_of_day(now)
    assignments = (
        Assignment.objects.filter(queue_item__project=project)
        .values("annotator_id")
        .annotate(
            submitted=Count("id", filter=Q(status=Assignment.Status.SUBMITTED)),
            today=Count("id", filter=Q(status=Assignment.Status.SUBMITTED, finished_at__gte=today)),
            last_24h=Count(
                "id",
                filter=Q(
                    status=Assignment.Status.SUBMITTED,
                    finished_at__gte=now - timedelta(hours=24),
                ),
            ),
            skipped=Count("id", filter=Q(status=Assignment.Status.SKIPPED)),
            expired=Count("id", filter=Q(status=Assignment.Status.EXPIRED)),
        )
        .order_by()
    )
    times: dict[int, list[int]] = defaultdict(list)
    for annotator_id, ms in Annotation.objects.filter(
        queue_item__project=project,
        kind=Annotation.Kind.LABEL,
        version=1,
        time_spent_ms__isnull=False,
    ).values_list("annotator_id", "time_spent_ms"):
        times[annotator_id].append(int(ms or 0))
    gold = gold_scores(project=project)
    users = {
        u.pk: u.get_username()
        for u in get_user_model().objects.filter(pk__in=[a["annotator_id"] for a in assignments])
    }
    out = []
    for row in assignments:
        uid = row["annotator_id"]
        spent = times.get(uid, [])
        g = gold.get(uid, {"answered": 0, "correct": 0})
        out.append(
            {
                "annotator_id": uid,
                "username": users.get(uid, str(uid)),
                "submitted": row["submitted"],
                "today": row["today"],
                "last_24h": row["last_24h"],
                "skipped": row["skipped"],
                "expired": row["expired"],
                "median_seconds": round(statistics.median(spent) / 1000, 1) if spent else None,
                "per_hour": round(len(spent) / (sum(spent) / 3_600_000), 1)
                if spent and sum(spent)
                else None,
                "gold_answered": g["answered"],
                "gold_correct": g["correct"],
                "gold_accuracy": round(g["correct"] / g["answered"], 3) if g["answered"] else None,
            }
        )
    return sorted(out, key=lambda r: r["username"])
