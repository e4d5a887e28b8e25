"""Judge new arrivals: on ``interactions_processed`` enqueue ``judges.schedule`` after commit;
on ``labels_submitted`` recalibrate the project's judges (``judges.calibrate``, debounced).

Cheap and robust like every hook receiver: a broker that is down is logged, never raised into
ingest; ``judges.sweep`` queues whatever a lost hand-over left out.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction

from labeling import hooks
from sampling.judges.models import Judge


def on_interactions_processed(*, project_id: int, interaction_ids: list[int], **_: object) -> None:
    if not Judge.objects.filter(
        project_id=project_id,
        status=Judge.Status.ACTIVE,
        scope__in=[Judge.Scope.ALL, Judge.Scope.FRACTION],
    ).exists():
        return
    from sampling.judges.tasks import schedule_arrivals

    ids = [int(i) for i in interaction_ids]
    transaction.on_commit(partial(schedule_arrivals.delay, project_id, ids), robust=True)


def on_labels_submitted(*, project_id: int, **_: object) -> None:
    """New labels: recalibrate the project's judges (debounced; the weights follow the report).
    Whether the project has judges at all is asked once per debounce window, not per label."""
    from sampling.judges.tasks import calibrate_soon

    calibrate_soon(project_id)


hooks.connect("interactions_processed", on_interactions_processed)
hooks.connect("labels_submitted", on_labels_submitted)
