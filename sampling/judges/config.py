"""Judge configuration: validation with field errors, create/update, versions, pause/resume and
the primary judge. Execution lives in ``sampling.judges.execution``."""

from __future__ import annotations

import hashlib
import math
from typing import Any
from urllib.parse import urlsplit

import orjson
from django.db import IntegrityError, transaction
from rest_framework.exceptions import ValidationError

from labeling.models import Project
from sampling.judges import prompt
from sampling.judges.models import Judge, JudgeResult, JudgeVersion

MAX_CONCURRENCY = 256
MAX_BATCH = 5000
MAX_TIMEOUT_S = 600.0
# Fields an API, page or command may set, with their defaults (the model's defaults).
DEFAULTS: dict[str, Any] = {
    "name": None,
    "base_url": None,
    "model": None,
    "api_key_env": "",
    "prompt_template": prompt.DEFAULT_TEMPLATE,
    "template_syntax": Judge.TemplateSyntax.FORMAT.value,
    "score_min": 1.0,
    "score_max": 10.0,
    "temperature": 0.0,
    "max_tokens": 256,
    "timeout_s": 30.0,
    "request_logprobs": False,
    "concurrency": 4,
    "batch_size": 64,
    "max_retries": 4,
    "rpm_limit": 0,
    "tpm_limit": 0,
    "daily_request_budget": 0,
    "daily_token_budget": 0,
    "scope": Judge.Scope.ALL.value,
    "fraction": 1.0,
}
FIELDS = tuple(DEFAULTS)
# What a judge version hashes: everything that changes what the judge answers.
VERSIONED = (
    "base_url",
    "model",
    "prompt_template",
    "template_syntax",
    "score_min",
    "score_max",
    "temperature",
    "max_tokens",
    "request_logprobs",
)
INT_LIMITS = {
    "max_tokens": (1, 100_000),
    "concurrency": (1, MAX_CONCURRENCY),
    "batch_size": (1, MAX_BATCH),
    "max_retries": (0, 20),
    "rpm_limit": (0, 10**9),
    "tpm_limit": (0, 10**12),
    "daily_request_budget": (0, 10**9),
    "daily_token_budget": (0, 10**12),
}


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _check_url(value: Any, errors: dict[str, list[str]]) -> None:
    if not isinstance(value, str) or not value.strip():
        errors["base_url"] = ["is required: the OpenAI-compatible base URL, e.g. http://host/v1"]
        return
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors["base_url"] = ["must be an http(s) URL such as https://api.openai.com/v1"]
    elif parts.username or parts.password:
        errors["base_url"] = ["must not carry credentials: name the key's variable in api_key_env"]
    elif parts.query or parts.fragment:
        errors["base_url"] = ["must not have a query string or fragment"]


def judge_validate(*, project: Project, data: Any, instance: Judge | None = None) -> dict[str, Any]:
    """The full, normalised judge fields, or ValidationError naming each bad field."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["must be a JSON object"]})
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(data) - set(FIELDS) - {"active", "is_primary"})
    if "api_key" in data:
        errors["api_key"] = [
            "is never stored: set it in an environment variable of the workers and give its "
            "name as api_key_env"
        ]
        unknown.remove("api_key")
    if unknown:
        errors["non_field_errors"] = [f"unknown field(s): {', '.join(unknown)}"]
    base = {f: getattr(instance, f) for f in FIELDS} if instance else dict(DEFAULTS)
    clean = {**base, **{k: v for k, v in data.items() if k in FIELDS}}

    name = clean["name"]
    if not isinstance(name, str) or not name or len(name) > 64:
        errors["name"] = ["is required: letters, digits, - and _ (at most 64)"]
    elif not all(c.isalnum() or c in "-_" for c in name) or not name.isascii():
        errors["name"] = ["may contain only letters, digits, - and _"]
    _check_url(clean["base_url"], errors)
    if not isinstance(clean["model"], str) or not clean["model"].strip():
        errors["model"] = ["is required: the model name the endpoint serves"]
    env = clean["api_key_env"]
    if not isinstance(env, str) or (env and not env.replace("_", "").isalnum()):
        errors["api_key_env"] = [
            "must be the NAME of an environment variable (letters, digits, _), not the key"
        ]
    elif env.startswith(("sk-", "sk_")) or len(env) > 100:
        errors["api_key_env"] = ["looks like a key: give the variable's name, never the key"]
    syntax = clean["template_syntax"]
    if syntax not in Judge.TemplateSyntax.values:
        errors["template_syntax"] = ["must be 'format' or 'django'"]
    elif not isinstance(clean["prompt_template"], str):
        errors["prompt_template"] = ["must be text"]
    else:
        problems = prompt.template_errors(clean["prompt_template"], syntax)
        if problems:
            errors["prompt_template"] = problems
    for key in ("score_min", "score_max", "temperature", "timeout_s", "fraction"):
        value = _float(clean[key])
        if value is None:
            errors[key] = ["must be a number"]
        else:
            clean[key] = value
    scale_ok = "score_min" not in errors and "score_max" not in errors
    if scale_ok and clean["score_max"] <= clean["score_min"]:
        errors["score_max"] = ["must be greater than score_min"]
    if "temperature" not in errors and not 0 <= clean["temperature"] <= 2:
        errors["temperature"] = ["must be from 0 to 2"]
    if "timeout_s" not in errors and not 0 < clean["timeout_s"] <= MAX_TIMEOUT_S:
        errors["timeout_s"] = [f"must be above 0 and at most {MAX_TIMEOUT_S:.0f} seconds"]
    if "fraction" not in errors and not 0 < clean["fraction"] <= 1:
        errors["fraction"] = ["must be above 0 and at most 1"]
    for key, (lo, hi) in INT_LIMITS.items():
        value = clean[key]
        if isinstance(value, bool) or not isinstance(value, int):
            errors[key] = ["must be a whole number"]
        elif value < lo:
            errors[key] = [f"must be at least {lo}" if lo else "must not be negative"]
        elif value > hi:
            errors[key] = [f"must be at most {hi:,}"]
    if not isinstance(clean["request_logprobs"], bool):
        errors["request_logprobs"] = ["must be true or false"]
    if clean["scope"] not in Judge.Scope.values:
        errors["scope"] = [f"must be one of {', '.join(Judge.Scope.values)}"]
    for flag in ("active", "is_primary"):
        if flag in data and not isinstance(data[flag], bool):
            errors[flag] = ["must be true or false"]
    if errors:
        raise ValidationError(errors)
    clean["base_url"] = clean["base_url"].strip().rstrip("/")
    clean["model"] = clean["model"].strip()
    return clean


def version_snapshot(judge: Judge) -> dict[str, Any]:
    return {f: getattr(judge, f) for f in VERSIONED}


def version_hash(snapshot: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(snapshot, option=orjson.OPT_SORT_KEYS)).hexdigest()


def judge_version_current(*, judge: Judge) -> JudgeVersion:
    """The version row of the judge as configured now (created on first use)."""
    snapshot = version_snapshot(judge)
    digest = version_hash(snapshot)
    version = JudgeVersion.objects.filter(judge=judge, hash=digest).first()
    if version is not None:
        return version
    try:
        with transaction.atomic():
            return JudgeVersion.objects.create(judge=judge, hash=digest, snapshot=snapshot)
    except IntegrityError:
        return JudgeVersion.objects.get(judge=judge, hash=digest)


def _move_pending(*, judge: Judge, version: JudgeVersion) -> None:
    """Work not yet done under an older version is redone under the new one (old scores stay)."""
    stale = JudgeResult.objects.filter(judge=judge, status=JudgeResult.Status.PENDING).exclude(
        version=version
    )
    ids = list(stale.values_list("interaction_id", flat=True))
    stale.delete()
    JudgeResult.objects.bulk_create(
        [JudgeResult(judge=judge, version=version, interaction_id=i) for i in ids],
        ignore_conflicts=True,
    )


def primary_judge_sync(*, project: Project) -> None:
    """Point ``Project.primary_judge`` at the primary judge's score while its weight is above 0.

    A judge whose calibrated R^2 against human labels is <= 0 gets weight 0: the proxy stops
    reading it (and the project's ``primary_judge`` is cleared) until it earns weight again. A
    primary judge named by hand for an ingested score is left alone unless a judge is primary.
    """
    primary = Judge.objects.filter(project=project, is_primary=True).first()
    current = project.primary_judge or ""
    if primary is not None and primary.weight > 0:
        wanted = primary.score_key
    elif primary is not None or current.startswith("judge:"):
        wanted = ""
    else:
        return
    if wanted != current:
        project.primary_judge = wanted
        project.save(update_fields=["primary_judge", "updated_at"])


@transaction.atomic
def judge_create(*, project: Project, data: Any, user: Any = None) -> Judge:
    clean = judge_validate(project=project, data=data)
    if Judge.objects.filter(project=project, name=clean["name"]).exists():
        raise ValidationError({"name": [f"a judge named {clean['name']!r} already exists"]})
    judge = Judge(project=project, created_by=user if getattr(user, "pk", None) else None, **clean)
    if data.get("active") is False:
        judge.status, judge.pause_kind, judge.pause_reason = (
            "paused",
            "manual",
            "paused by an admin",
        )
    judge.save()
    judge_version_current(judge=judge)
    if data.get("is_primary"):
        judge_set_primary(judge=judge, primary=True)
    return judge


@transaction.atomic
def judge_update(*, judge: Judge, data: Any) -> Judge:
    clean = judge_validate(project=judge.project, data=data, instance=judge)
    if clean["name"] != judge.name and (
        Judge.objects.filter(project=judge.project, name=clean["name"])
        .exclude(pk=judge.pk)
        .exists()
    ):
        raise ValidationError({"name": [f"a judge named {clean['name']!r} already exists"]})
    for key, value in clean.items():
        setattr(judge, key, value)
    judge.save()
    _move_pending(judge=judge, version=judge_version_current(judge=judge))
    if data.get("active") is True:
        judge_resume(judge=judge)
    elif data.get("active") is False:
        judge_pause(judge=judge, reason="paused by an admin", kind="manual")
    if "is_primary" in data:
        judge_set_primary(judge=judge, primary=bool(data["is_primary"]))
    return judge


def judge_pause(*, judge: Judge, reason: str, kind: str) -> None:
    judge.status, judge.pause_reason, judge.pause_kind = Judge.Status.PAUSED, reason[:300], kind
    Judge.objects.filter(pk=judge.pk).update(
        status=judge.status, pause_reason=judge.pause_reason, pause_kind=kind
    )


def judge_resume(*, judge: Judge) -> None:
    judge.status, judge.pause_reason, judge.pause_kind = Judge.Status.ACTIVE, "", ""
    Judge.objects.filter(pk=judge.pk).update(status=judge.status, pause_reason="", pause_kind="")


@transaction.atomic
def judge_set_primary(*, judge: Judge, primary: bool) -> None:
    if primary:
        Judge.objects.filter(project=judge.project, is_primary=True).exclude(pk=judge.pk).update(
            is_primary=False
        )
    judge.is_primary = primary
    Judge.objects.filter(pk=judge.pk).update(is_primary=primary)
    project = Project.objects.select_for_update().get(pk=judge.project_id)
    if not primary and project.primary_judge == judge.score_key:
        project.primary_judge = ""
        project.save(update_fields=["primary_judge", "updated_at"])
    primary_judge_sync(project=project)
    judge.project = project
