"""Named queues: a project's queues in routing order, which of them a member may label, and each
queue's backlog (see labeling.services.queues for the rules)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, Q, QuerySet

from labeling.errors import Forbidden, NotFound
from labeling.models import Annotation, Membership, Project, Queue, QueueItem

MAIN = "main"  # the slug that names the project's main queue (QueueItem.queue null)


def project_queues(*, project: Project) -> QuerySet[Queue]:
    """The project's named queues in routing order (``position``, then oldest)."""
    return Queue.objects.filter(project=project).order_by("position", "id")


def member_skills(*, project: Project, user: Any) -> list[str]:
    row = Membership.objects.filter(project=project, user=user).values_list("skills", flat=True)
    return list(row.first() or [])


def queue_open_to(queue: Queue, skills: list[str]) -> bool:
    """Whether a member with these skill tags may label the queue's items."""
    return queue.active and (not queue.skill or queue.skill in skills)


def queues_for(*, project: Project, user: Any) -> list[Queue]:
    """The named queues ``user`` may label from (the main queue is open to every labeller)."""
    skills = member_skills(project=project, user=user)
    return [q for q in project_queues(project=project) if queue_open_to(q, skills)]


@dataclass(frozen=True)
class QueueScope:
    """Which queues a claim may take items from: the main queue (``QueueItem.queue`` null) when
    ``main``, and the named queues in ``named`` (``None``: every queue, no condition)."""

    main: bool
    named: tuple[int, ...] | None

    def q(self) -> Q:
        """The scope as an ORM condition on QueueItem."""
        if self.named is None:
            return Q()
        if not self.named:
            return Q(queue__isnull=True) if self.main else Q(pk__in=[])
        if self.main:
            return Q(queue__isnull=True) | Q(queue_id__in=self.named)
        return Q(queue_id__in=self.named)

    def sql(self, column: str) -> tuple[str, list[int]]:
        """The scope as SQL on ``column`` (the item's queue id): ``(" AND ...", params)``."""
        if self.named is None:
            return "", []
        parts = [f"{column} IS NULL"] if self.main else []
        if self.named:
            parts.append(f"{column} IN ({', '.join(['%s'] * len(self.named))})")
        if not parts:
            return " AND 1 = 0", []
        return f" AND ({' OR '.join(parts)})", list(self.named)


def queue_scope(
    *, project: Project, skills: list[str], queue: str | None, named: list[Queue] | None = None
) -> QueueScope:
    """Which queue items a member with these skills may be served: the main queue and the open
    named queues, or just ``queue`` (a slug or ``"main"``: an unknown slug is ``NotFound``, a queue
    that is paused or needs a skill they lack ``Forbidden``). No named queues: no condition.
    ``named``: the project's queues when the caller has read them already."""
    if queue == MAIN:
        return QueueScope(main=True, named=())
    if named is None:
        named = list(project_queues(project=project))
    if queue is not None:
        chosen = next((q for q in named if q.slug == queue), None)
        if chosen is None:
            raise NotFound(f"No queue {queue!r} in this project.")
        if not queue_open_to(chosen, skills):
            raise Forbidden(
                f"The queue {chosen.name!r} is paused."
                if not chosen.active
                else f"The queue {chosen.name!r} is for members with the skill {chosen.skill!r}.",
                code="queue_closed",
            )
        return QueueScope(main=False, named=(chosen.pk,))
    if not named:
        return QueueScope(main=True, named=None)
    return QueueScope(main=True, named=tuple(q.pk for q in named if queue_open_to(q, skills)))


def queue_filter(*, project: Project, skills: list[str], queue: str | None) -> Q:
    """``queue_scope`` as an ORM condition on QueueItem."""
    return queue_scope(project=project, skills=skills, queue=queue).q()


def queue_payload(item: QueueItem) -> dict[str, Any] | None:
    """The named queue of an item as ``queue/next`` shows it (None: the main queue)."""
    queue = item.queue
    if queue is None:
        return None
    return {"slug": queue.slug, "name": queue.name, "blind": queue.blind}


def earlier_answers(*, queue_item: QueueItem, annotator: int) -> list[dict[str, Any]]:
    """Other annotators' current answers, shown to a later annotator only when the item's queue is
    open (blind is the default; gold items are always blind)."""
    queue = queue_item.queue
    if queue is None or queue.blind or queue_item.is_gold:
        return []
    rows = (
        Annotation.objects.filter(
            queue_item=queue_item, kind=Annotation.Kind.LABEL, is_current=True
        )
        .exclude(annotator_id=annotator)
        .select_related("annotator")
        .order_by("id")
    )
    return [{"annotator": a.annotator.get_username(), "values": a.values} for a in rows]


def queue_backlogs(*, project: Project) -> dict[int | None, dict[str, int]]:
    """queue id (None: main queue) -> items, open items with a free slot (backlog), done items."""
    rows = (
        QueueItem.objects.filter(project=project)
        .values("queue_id")
        .annotate(
            items=Count("id"),
            backlog=Count(
                "id",
                filter=Q(status=QueueItem.Status.OPEN)
                & Q(done_count__lt=F("overlap") - F("leased_count")),
            ),
            done=Count("id", filter=Q(status=QueueItem.Status.DONE)),
        )
        .order_by()
    )
    return {
        r["queue_id"]: {"items": r["items"], "backlog": r["backlog"], "done": r["done"]}
        for r in rows
    }
