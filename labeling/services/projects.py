"""Project writes: create and configure projects, manage members and ingestion tokens.

Used by the API (``labeling.api.projects``) and the configuration pages. Every role or token change
is written to the AuditLog.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from labeling.auth import generate_key, hash_key
from labeling.errors import Invalid
from labeling.models import (
    AuditLog,
    IngestToken,
    LabelSchemaVersion,
    Membership,
    Project,
    Role,
)
from labeling.schema import DEFAULT_SCHEMA, SchemaError, schema_validate
from labeling.services.schemas import schema_store

# Fields of a project that project_update may change (the slug is permanent: URLs and tokens
# refer to it).
UPDATABLE_FIELDS = (
    "name",
    "description",
    "label_schema",
    "segment_keys",
    "custom_event_types",
    "primary_judge",
    "guidelines",
    "lease_seconds",
    "max_skips",
    "gold_rate",
    "retrain_every",
    "redact_pii",
    "show_suggestions",
    "otlp_segment_attributes",
)


def _audit(
    *, project: Project | None, actor: User | None, action: str, obj: Any, data: dict
) -> None:
    AuditLog.objects.create(
        project=project,
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        object_type=type(obj).__name__,
        object_id=str(getattr(obj, "pk", "") or ""),
        data=data,
    )


def _clean_str_list(value: Any, field: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) and 0 < len(v) <= 100 for v in value
    ):
        raise Invalid({field: "must be a list of non-empty strings (at most 100 chars)"})
    return list(dict.fromkeys(value))


def _clean_fields(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    if "label_schema" in out:
        try:
            out["label_schema"] = schema_validate(out["label_schema"])
        except SchemaError as exc:
            raise Invalid({"label_schema": exc.errors}) from exc
    if "segment_keys" in out:
        out["segment_keys"] = _clean_str_list(out["segment_keys"], "segment_keys")
    if "custom_event_types" in out:
        from labeling.models import BUILTIN_EVENT_TYPES

        types = _clean_str_list(out["custom_event_types"], "custom_event_types")
        clash = sorted(set(types) & BUILTIN_EVENT_TYPES)
        if clash:
            raise Invalid({"custom_event_types": f"{', '.join(clash)} are built-in event types"})
        out["custom_event_types"] = types
    if "otlp_segment_attributes" in out:
        mapping = out["otlp_segment_attributes"]
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 200 and 0 < len(v) <= 100
            for k, v in mapping.items()
        ):
            raise Invalid(
                {"otlp_segment_attributes": "must map attribute names to segment keys (strings)"}
            )
    if "gold_rate" in out and not 0 <= float(out["gold_rate"]) <= 1:
        raise Invalid({"gold_rate": "must be between 0 and 1"})
    return out


@transaction.atomic
def project_create(
    *,
    slug: str,
    name: str,
    created_by: User | None,
    label_schema: dict[str, Any] | None = None,
    segment_keys: Sequence[str] = (),
    description: str = "",
    custom_event_types: Sequence[str] = (),
    primary_judge: str = "",
    guidelines: str = "",
    redact_pii: bool = False,
) -> Project:
    """Create a project with schema version 1; the creator (if any) becomes its admin."""
    if Project.objects.filter(slug=slug).exists():
        raise Invalid({"slug": f"a project with slug {slug!r} already exists"})
    fields = _clean_fields(
        {
            "label_schema": copy.deepcopy(label_schema or DEFAULT_SCHEMA),
            "segment_keys": list(segment_keys),
            "custom_event_types": list(custom_event_types),
        }
    )
    project = Project.objects.create(
        slug=slug,
        name=name,
        description=description,
        primary_judge=primary_judge,
        guidelines=guidelines,
        redact_pii=redact_pii,
        schema_version=1,
        **fields,
    )
    LabelSchemaVersion.objects.create(
        project=project, version=1, schema=project.label_schema, created_by=created_by
    )
    if created_by is not None:
        Membership.objects.create(project=project, user=created_by, role=Role.ADMIN)
    _audit(project=project, actor=created_by, action="project_create", obj=project, data={})
    return project


@transaction.atomic
def project_update(*, project: Project, updated_by: User | None, data: dict[str, Any]) -> Project:
    """Change the given fields. A new label schema is validated and stored by
    :func:`labeling.services.schemas.schema_store` (the same rules as the schema page: versioned
    once annotations exist under the current version, audited as ``schema.changed``)."""
    unknown = sorted(set(data) - set(UPDATABLE_FIELDS))
    if unknown:
        raise Invalid(dict.fromkeys(unknown, "cannot be changed"))
    project = Project.objects.select_for_update().get(pk=project.pk)
    fields = _clean_fields(data)
    changed: list[str] = []
    new_schema = fields.pop("label_schema", None)
    if new_schema is not None:
        before = project.schema_version
        if schema_store(project=project, schema=new_schema, actor=updated_by):
            changed.append("label_schema")
            if project.schema_version != before:
                changed.append("schema_version")
    for key, value in fields.items():
        if getattr(project, key) != value:
            setattr(project, key, value)
            changed.append(key)
    if changed:
        project.save(update_fields=[*changed, "updated_at"])
        _audit(
            project=project,
            actor=updated_by,
            action="project_update",
            obj=project,
            data={"fields": changed, "schema_version": project.schema_version},
        )
    return project


@transaction.atomic
def membership_add(
    *, project: Project, user: User, role: str, added_by: User | None = None
) -> Membership:
    """Give ``user`` the ``role`` in ``project`` (changing the role of an existing member)."""
    if role not in Role.values:
        raise Invalid({"role": f"must be one of {', '.join(Role.values)}"})
    membership, created = Membership.objects.select_for_update().get_or_create(
        project=project, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        if membership.role == Role.ADMIN and role != Role.ADMIN:
            _ensure_other_admin(project=project, user=user)
        previous = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        _audit(
            project=project,
            actor=added_by,
            action="membership_change",
            obj=membership,
            data={"user": user.get_username(), "from": previous, "to": role},
        )
    elif created:
        _audit(
            project=project,
            actor=added_by,
            action="membership_add",
            obj=membership,
            data={"user": user.get_username(), "role": role},
        )
    return membership


def _ensure_other_admin(*, project: Project, user: User) -> None:
    others = Membership.objects.filter(project=project, role=Role.ADMIN).exclude(user=user)
    if not others.exists():
        raise Invalid({"role": "a project must keep at least one admin"})


@transaction.atomic
def membership_remove(*, project: Project, user: User, removed_by: User | None = None) -> None:
    """Remove ``user`` from ``project``; the last admin cannot be removed."""
    membership = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if membership is None:
        return
    if membership.role == Role.ADMIN:
        _ensure_other_admin(project=project, user=user)
    membership.delete()
    _audit(
        project=project,
        actor=removed_by,
        action="membership_remove",
        obj=membership,
        data={"user": user.get_username(), "role": membership.role},
    )


@transaction.atomic
def ingest_token_create(
    *, project: Project, name: str, created_by: User | None
) -> tuple[IngestToken, str]:
    """Create an ingestion token; returns it with its key. The key is never stored (only its
    sha256), so this is the only time anyone sees it."""
    if not name or len(name) > 100:
        raise Invalid({"name": "required, at most 100 characters"})
    key = generate_key()
    token = IngestToken.objects.create(
        project=project, name=name, prefix=key[:12], key_hash=hash_key(key), created_by=created_by
    )
    _audit(
        project=project,
        actor=created_by,
        action="ingest_token_create",
        obj=token,
        data={"name": name, "prefix": token.prefix},
    )
    return token, key


@transaction.atomic
def ingest_token_revoke(*, token: IngestToken, revoked_by: User | None = None) -> IngestToken:
    """Revoke a token (idempotent: revoking twice keeps the first revocation time)."""
    token = IngestToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        _audit(
            project=token.project,
            actor=revoked_by,
            action="ingest_token_revoke",
            obj=token,
            data={"name": token.name, "prefix": token.prefix},
        )
    return token
