"""Label schema changes: the one service behind the API's project PATCH and the schema page.

Invariants:
- ``Project.label_schema`` is the current schema and ``Project.schema_version`` its number; a
  LabelSchemaVersion row for the current version always exists after a change.
- Once annotations exist under the current version, a change bumps the version (annotations keep
  the version they were made under, and the old schema stays in LabelSchemaVersion); before that
  the current version is replaced in place. An identical schema is a no-op.
- Every change writes one AuditLog row ``schema.changed`` with ``from_version``/``to_version``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from labeling.models import Annotation, AuditLog, LabelSchemaVersion, Project
from labeling.schema import schema_validate


@transaction.atomic
def schema_change(*, project: Project, schema: Any, actor: User | None) -> Project:
    """Validate ``schema`` (raises :class:`~labeling.schema.SchemaError` keyed by location) and
    store it as the project's label schema. Returns the refreshed project."""
    normalised = schema_validate(schema)
    project = Project.objects.select_for_update().get(pk=project.pk)
    schema_store(project=project, schema=normalised, actor=actor)
    return project


def schema_store(*, project: Project, schema: dict[str, Any], actor: User | None) -> bool:
    """Store an already validated ``schema`` on ``project``, which the caller has locked
    (``select_for_update``) inside its transaction. Saves ``label_schema``/``schema_version``.
    Returns whether anything changed."""
    current = LabelSchemaVersion.objects.filter(
        project=project, version=project.schema_version
    ).first()
    if schema == project.label_schema:
        if current is None:
            LabelSchemaVersion.objects.create(
                project=project, version=project.schema_version, schema=schema, created_by=actor
            )
        return False
    labelled = Annotation.objects.filter(
        queue_item__project=project, schema_version=project.schema_version
    ).exists()
    before = project.schema_version
    if labelled:
        if current is None:  # keep the old schema that the annotations were made under
            LabelSchemaVersion.objects.create(
                project=project, version=before, schema=project.label_schema
            )
        project.schema_version = before + 1
        LabelSchemaVersion.objects.create(
            project=project, version=project.schema_version, schema=schema, created_by=actor
        )
    else:
        LabelSchemaVersion.objects.update_or_create(
            project=project,
            version=project.schema_version,
            defaults={"schema": schema, "created_by": actor},
        )
    project.label_schema = schema
    project.save(update_fields=["label_schema", "schema_version", "updated_at"])
    AuditLog.objects.create(
        project=project,
        actor=actor,
        action="schema.changed",
        object_type="project",
        object_id=str(project.pk),
        data={"from_version": before, "to_version": project.schema_version},
    )
    return True
