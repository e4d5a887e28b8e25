"""What an annotator works on: their own assignment (the submit and skip endpoints look it up
here) and the payload of a leased item as ``queue/next`` shows it (docs/api.md)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import connection

from labeling.access import ROLE_SQL, IngestClient, RequestUser, has_capability
from labeling.errors import Forbidden, NotFound
from labeling.models import Assignment, Interaction, Project, QueueItem, Role
from labeling.rows import row_reader
from labeling.schema import item_texts, schema_for_display, text_sha256
from labeling.selectors.queues import earlier_answers, queue_payload
from labeling.selectors.review import suggestion_for


def own_assignment(*, user: RequestUser, assignment_id: int) -> Assignment:
    """The caller's assignment in a project where they may still label (with its queue item and
    project loaded). NotFound for someone else's or a missing one, or when the caller is no longer
    a member; Forbidden when their role cannot label (or for an ingestion token)."""
    if isinstance(user, IngestClient):
        raise Forbidden("An ingestion token can only ingest.")
    if not isinstance(user, User):
        raise NotFound("No such assignment.")
    # The assignment, its item, its project and the caller's role there in one statement (every
    # submit; SQL for the reason labeling.rows gives).
    a_r, item_r = row_reader(Assignment, "a"), row_reader(QueueItem, "qi")
    project_r = row_reader(Project, "p")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {a_r.columns}, {item_r.columns}, {project_r.columns}, {ROLE_SQL} "
            f"FROM {a_r.table} a JOIN {item_r.table} qi ON qi.id = a.queue_item_id "
            f"JOIN {project_r.table} p ON p.id = qi.project_id "
            "WHERE a.id = %s AND a.annotator_id = %s",
            [user.pk, assignment_id, user.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such assignment.")
    assignment = a_r.read(row)
    assignment.queue_item = item_r.read(row, a_r.width)
    assignment.queue_item.project = project_r.read(row, a_r.width + item_r.width)
    member_role = row[-1]
    # The same rule as project_access.
    role = Role.ADMIN if user.is_superuser else member_role
    if role is None:
        raise NotFound("No such assignment.")
    if not has_capability(role=role, need="label"):
        raise Forbidden(f"Your role ({role}) cannot label in this project.")
    return assignment


def interaction_payload(interaction: Interaction) -> dict[str, Any]:
    """An interaction as the labelling page shows it (``queue/next``, ``my-labels``)."""
    return {
        "external_id": interaction.external_id,
        "messages": interaction.messages,
        "response": interaction.response,
        "alt_response": interaction.alt_response or None,
        "model_version": interaction.model_version,
        "alt_model_version": interaction.alt_model_version or None,
        "segment": interaction.segment,
        # Span answers quote these: offsets are pinned to the exact text shown.
        "text_sha256": {
            field: text_sha256(text) for field, text in item_texts(interaction).items()
        },
    }


def assignment_payload(assignment: Assignment, project: Project) -> dict[str, Any]:
    """The queue/next answer (docs/api.md); gold items look like any other item. ``suggestion``
    is null unless the project shows suggestions (then the submit records ``saw_suggestion``)."""
    interaction = assignment.queue_item.interaction  # loaded by assignment_claim
    return {
        "id": assignment.pk,
        "queue_item_id": assignment.queue_item_id,
        "interaction": interaction_payload(interaction),
        "schema": schema_for_display(project.label_schema),
        "schema_version": project.schema_version,
        "lease_expires_at": assignment.lease_expires_at,
        "leased_at": assignment.leased_at,
        "suggestion": suggestion_for(project=project, interaction=interaction),
        "queue": queue_payload(assignment.queue_item),
        "earlier_answers": earlier_answers(
            queue_item=assignment.queue_item, annotator=assignment.annotator_id
        ),
    }
