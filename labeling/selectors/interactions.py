"""Reads of interactions: the filtered list behind ``GET /api/projects/{slug}/interactions/``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from django.db.models import Exists, OuterRef, Q, QuerySet

from labeling.models import Annotation, Interaction, Project


def _segment_q(key: str, raw: str) -> Q:
    """Match a segment value given as query text: the string itself, or the number/boolean it
    spells (segment values are JSON scalars)."""
    q = Q(**{f"segment__{key}": raw})
    lowered = raw.lower()
    if lowered in ("true", "false"):
        q |= Q(**{f"segment__{key}": lowered == "true"})
    else:
        try:
            number = float(raw)
        except ValueError:
            pass
        else:
            q |= Q(**{f"segment__{key}": int(number) if number.is_integer() else number})
    return q


def interactions_list(
    *,
    project: Project,
    model_versions: Sequence[str] = (),
    segment: dict[str, str] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    has_label: bool | None = None,
    has_feedback: bool | None = None,
) -> QuerySet[Interaction]:
    """The project's interactions matching every given filter (``until`` is exclusive).

    ``has_label``: at least one current annotation; ``has_feedback``: an explicit thumbs rating.
    """
    qs = Interaction.objects.filter(project=project)
    if model_versions:
        qs = qs.filter(model_version__in=list(model_versions))
    for key, value in (segment or {}).items():
        qs = qs.filter(_segment_q(key, value))
    if since is not None:
        qs = qs.filter(occurred_at__gte=since)
    if until is not None:
        qs = qs.filter(occurred_at__lt=until)
    if has_label is not None:
        labelled = Exists(Annotation.objects.filter(interaction_id=OuterRef("pk"), is_current=True))
        qs = qs.filter(labelled if has_label else ~labelled)
    if has_feedback is not None:
        qs = qs.filter(explicit_rating__isnull=not has_feedback)
    return qs


def interaction_ids_by_external_id(
    *, project_id: int, external_ids: Iterable[str]
) -> dict[str, int]:
    wanted = list(set(external_ids))
    out: dict[str, int] = {}
    for start in range(0, len(wanted), 900):
        out.update(
            Interaction.objects.filter(
                project_id=project_id, external_id__in=wanted[start : start + 900]
            ).values_list("external_id", "id")
        )
    return out
