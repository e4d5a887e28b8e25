"""Export writes: create a versioned export snapshot and write its JSONL file.

Invariants:
- ``export_create`` freezes the snapshot (the highest annotation id, the label schema, resolved
  annotator ids) in ``options["snapshot"]``; rows depend only on it, so a rerun of the same
  export writes the same bytes.
- ``export_run`` claims the row with a conditional UPDATE (pending -> running, or a running
  export whose heartbeat is stale), so one worker writes it. It writes to a hidden ``.tmp`` file
  beside the destination, hashes while writing, fsyncs and renames on success: a killed worker
  leaves only a ``.tmp`` file, never a file that looks complete. The manifest is written (also
  atomically) after the data file.
- Training kinds never contain eval-only holdout items (enforced in ``labelled_items``).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from flywheel_site.app_settings import setting
from labeling import dispatch
from labeling.errors import Invalid
from labeling.models import Annotation, Export, Project, WebhookEvent
from labeling.selectors.exports import ExportScan, export_scan_install, export_scan_uninstall
from labeling.services import export_rows  # noqa: F401  (registers the training kinds)
from labeling.services.export_dedupe import DuplicateFilter
from labeling.services.export_kinds import export_kind_get, export_kinds
from labeling.services.export_parquet import parquet_write
from labeling.services.webhooks import webhook_emit

logger = logging.getLogger(__name__)

MANIFEST_FORMAT_VERSION = 1
TRAINING_FILTERS = frozenset(
    {
        "since",
        "until",
        "model_versions",
        "segment",
        "labels",
        "min_agreement",
        "annotators",
        "include_gold",
    }
)
TRAINING_OPTIONS = frozenset(
    {"gzip", "validation_fraction", "seed", "dedupe", "keep_ties", "weight"}
)
LABEL_OPERATORS = frozenset(
    {"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "includes", "excludes", "exists"}
)


# --- Validation ----------------------------------------------------------------------------------
def _time(value: Any) -> str:
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            if day is not None:
                parsed = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        if parsed is not None:
            if timezone.is_naive(parsed):
                parsed = parsed.replace(tzinfo=dt.UTC)
            return parsed.isoformat()
    raise ValueError("must be an ISO 8601 date or datetime, e.g. 2026-11-20T00:00:00Z")


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a non-empty list of strings")
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("1", "true", "yes", 1):
        return True
    if value in ("0", "false", "no", 0):
        return False
    raise ValueError("must be true or false")


def _number(value: Any, lo: float, hi: float, *, hi_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a number") from None
    if not lo <= number <= hi or (hi_open and number >= hi):
        raise ValueError(f"must be between {lo} and {hi}{' (exclusive)' if hi_open else ''}")
    return number


def _label_conditions(value: Any, schema: dict[str, Any], errors: dict[str, str]) -> dict:
    if not isinstance(value, dict):
        errors["filters.labels"] = 'must be an object like {"quality": {"gte": 4}}'
        return {}
    types = {q["key"]: q.get("type") for q in schema.get("questions", [])}
    out: dict[str, dict[str, Any]] = {}
    for key, ops in value.items():
        where = f"filters.labels.{key}"
        if key not in types:
            errors[where] = f"no such question; known: {sorted(types)}"
            continue
        if not isinstance(ops, dict) or not ops:
            ops = {"eq": ops}  # shorthand {"quality": 5}
        for op, operand in ops.items():
            if op not in LABEL_OPERATORS:
                errors[f"{where}.{op}"] = f"unknown operator; known: {sorted(LABEL_OPERATORS)}"
            elif op in ("gt", "gte", "lt", "lte") and (
                isinstance(operand, bool) or not isinstance(operand, int | float)
            ):
                errors[f"{where}.{op}"] = "must be a number"
            elif op in ("in", "not_in") and not isinstance(operand, list):
                errors[f"{where}.{op}"] = "must be a list"
            elif op in ("includes", "excludes") and types[key] != "multi_choice":
                errors[f"{where}.{op}"] = "only for multi_choice questions"
        out[key] = dict(ops)
    return out


def export_params_validate(
    *, project: Project, kind: str, filters: Any, options: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Normalise filters and options; return ``(filters, options, snapshot_extra)``.

    Raises Invalid keyed by the field, e.g. ``{"filters.min_agreement": "..."}``.
    Non-training kinds (``eval``) keep filters and options the common keys do not cover; they
    validate those themselves.
    """
    errors: dict[str, str] = {}
    try:
        export_kind = export_kind_get(kind)
    except LookupError:
        raise Invalid({"kind": f"unknown export kind; known: {export_kinds()}"}) from None
    if filters is None:
        filters = {}
    if options is None:
        options = {}
    if not isinstance(filters, dict):
        raise Invalid({"filters": "must be an object"})
    if not isinstance(options, dict):
        raise Invalid({"options": "must be an object"})
    schema = project.label_schema
    out_filters: dict[str, Any] = {}
    out_options: dict[str, Any] = {}
    extra: dict[str, Any] = {}

    for key, value in filters.items():
        where = f"filters.{key}"
        try:
            if key in export_kind.refused_filters:
                raise ValueError(export_kind.refused_filters[key])
            if key in ("since", "until"):
                out_filters[key] = _time(value)
            elif key == "model_versions":
                out_filters[key] = _str_list(value)
            elif key == "segment":
                if not isinstance(value, dict) or not value:
                    raise ValueError('must be an object like {"tier": ["pro"]}')
                segment = {}
                for seg_key, seg_values in value.items():
                    if project.segment_keys and seg_key not in project.segment_keys:
                        errors[f"{where}.{seg_key}"] = (
                            f"not a segment key of this project; known: {project.segment_keys}"
                        )
                        continue
                    try:
                        segment[seg_key] = _str_list(seg_values)
                    except ValueError as exc:
                        errors[f"{where}.{seg_key}"] = str(exc)
                out_filters[key] = segment
            elif key == "labels":
                out_filters[key] = _label_conditions(value, schema, errors)
            elif key == "min_agreement":
                out_filters[key] = _number(value, 0.0, 1.0)
            elif key == "annotators":
                names = _str_list(value)
                users = dict(
                    get_user_model()
                    .objects.filter(username__in=names)
                    .values_list("username", "id")
                )
                missing = [n for n in names if n not in users]
                if missing:
                    raise ValueError(f"unknown users: {missing}")
                out_filters[key] = sorted(names)
                extra["annotator_ids"] = sorted(users.values())
            elif key == "include_gold":
                out_filters[key] = _bool(value)
            elif key in ("include_holdout", "holdout") and export_kind.training:
                raise ValueError("holdout items are never exported for training")
            elif export_kind.training:
                raise ValueError(f"unknown filter; known: {sorted(TRAINING_FILTERS)}")
            else:
                out_filters[key] = value
        except ValueError as exc:
            errors[where] = str(exc)
    since, until = out_filters.get("since"), out_filters.get("until")
    if since and until and dt.datetime.fromisoformat(until) <= dt.datetime.fromisoformat(since):
        errors["filters.until"] = (
            f"{until} is not after filters.since ({since}): the export would be empty"
        )

    for key, value in options.items():
        where = f"options.{key}"
        try:
            if key in ("gzip", "dedupe", "keep_ties"):
                out_options[key] = _bool(value)
            elif key == "validation_fraction":
                out_options[key] = _number(value, 0.0, 1.0, hi_open=True)
            elif key == "seed":
                if isinstance(value, bool) or not isinstance(value, int | str):
                    raise ValueError("must be an integer")
                try:
                    out_options[key] = int(value)
                except ValueError:
                    raise ValueError("must be an integer") from None
            elif key == "weight":
                if value not in ("uniform", "agreement"):
                    raise ValueError('must be "uniform" or "agreement"')
                out_options[key] = value
            elif key == "snapshot":
                raise ValueError("is set by the server")
            elif export_kind.training:
                raise ValueError(f"unknown option; known: {sorted(TRAINING_OPTIONS)}")
            else:
                out_options[key] = value
        except ValueError as exc:
            errors[where] = str(exc)

    if errors:
        raise Invalid(errors)
    if export_kind.training:
        out_filters.setdefault("include_gold", False)
        out_options.setdefault("validation_fraction", 0.0)
        out_options.setdefault("seed", 0)
        out_options.setdefault("dedupe", True)
        if kind == "preference":
            out_options.setdefault("keep_ties", False)
        if kind == "classification":
            out_options.setdefault("weight", "uniform")
    out_filters.update(export_kind.fixed_filters)
    out_options.setdefault("gzip", False)
    out_options.setdefault("dedupe", False)
    return out_filters, out_options, extra


# --- Create --------------------------------------------------------------------------------------
@transaction.atomic
def export_create(
    *,
    project: Project,
    kind: str,
    filters: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    created_by: User | None = None,
    enqueue: bool = True,
) -> Export:
    """Validate, freeze the snapshot and save a pending export; enqueue the writer after commit."""
    clean_filters, clean_options, extra = export_params_validate(
        project=project, kind=kind, filters=filters, options=options
    )
    max_annotation_id = (
        Annotation.objects.filter(interaction__project=project).aggregate(m=Max("id"))["m"] or 0
    )
    clean_options["snapshot"] = {
        "max_annotation_id": max_annotation_id,
        "label_schema": project.label_schema,
        "label_schema_version": project.schema_version,
        **extra,
    }
    export = Export.objects.create(
        project=project,
        kind=kind,
        filters=clean_filters,
        options=clean_options,
        schema_version=project.schema_version,
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    if enqueue:
        dispatch.enqueue_on_commit("labeling.run_export", export.id)
    return export


@transaction.atomic
def export_retry(*, export: Export, enqueue: bool = True) -> Export:
    """Put a failed (or stale running) export back to pending; its snapshot is unchanged."""
    stale = timezone.now() - dt.timedelta(seconds=setting("EXPORT_STALE_SECONDS"))
    updated = Export.objects.filter(
        Q(status=Export.Status.FAILED)
        | Q(status=Export.Status.RUNNING, heartbeat_at__lt=stale)
        | Q(status=Export.Status.RUNNING, heartbeat_at__isnull=True),
        id=export.id,
    ).update(status=Export.Status.PENDING, progress=0.0, error="")
    if not updated:
        raise Invalid({"status": f"cannot retry an export that is {export.status}"})
    if enqueue:
        dispatch.enqueue_on_commit("labeling.run_export", export.id)
    export.refresh_from_db()
    return export


# --- Paths ---------------------------------------------------------------------------------------
def export_default_path(export: Export) -> Path:
    suffix = ".jsonl.gz" if export.options.get("gzip") else ".jsonl"
    return (
        Path(settings.EXPORT_ROOT)
        / export.project.slug
        / f"export-{export.id}-{export.kind}{suffix}"
    )


def _stem(data_path: Path) -> str:
    name = data_path.name
    for suffix in (".gz", ".jsonl", ".json", ".ndjson"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def manifest_path_for(data_path: Path) -> Path:
    """``train.jsonl.gz`` -> ``train.manifest.json`` (beside the data file)."""
    return data_path.with_name(f"{_stem(data_path)}.manifest.json")


def parquet_path_for(data_path: Path) -> Path:
    """``train.jsonl.gz`` -> ``train.parquet`` (beside the data file, same rows)."""
    return data_path.with_name(f"{_stem(data_path)}.parquet")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _remove_temp_files(path: Path) -> None:
    """Temp files a killed writer of this destination left behind."""
    if path.parent.exists():
        for leftover in path.parent.glob(f"{_temp_prefix(path)}*.tmp"):
            leftover.unlink(missing_ok=True)


# --- Writing -------------------------------------------------------------------------------------
class _HashingWriter:
    """A file wrapper that hashes and counts the bytes that reach the file."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{_temp_prefix(path)}{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _lines(
    rows: Iterator[dict[str, Any]],
    *,
    dedupe: bool,
    counts: dict[str, int],
    workdir: Path | None = None,
    prefix: str = "flywheel-dedupe-",
) -> Iterator[bytes]:
    """Serialise rows to JSONL lines; drop exact duplicates (ignoring ``split``) when asked.

    The duplicate check keeps its hashes on disk in ``workdir``
    (:class:`~labeling.services.export_dedupe.DuplicateFilter`), so memory stays flat at any size.
    """
    dumps = orjson.dumps

    def pairs() -> Iterator[tuple[Any, bytes]]:
        for row in rows:
            split = row.pop("split", None)
            yield split, dumps(row)

    def line(split: Any, body: bytes) -> bytes:
        if split is None:
            return body + b"\n"
        counts[split] += 1
        return body[:-1] + b',"split":' + dumps(split) + b"}\n"

    if not dedupe:
        for split, body in pairs():
            yield line(split, body)
        return
    with DuplicateFilter(workdir, prefix) as unique:
        try:
            for split, body in unique.filter(pairs()):
                yield line(split, body)
        finally:
            if unique.duplicates:
                counts["duplicates_removed"] += unique.duplicates


ProgressCallback = Callable[[Export, ExportScan, int], None]


def export_run(
    *,
    export_id: int,
    out_path: Path | None = None,
    progress: ProgressCallback | None = None,
) -> Export | None:
    """Write the export's file and manifest; idempotent (a done export is left as it is).

    Returns None when the export does not exist. Failures mark the export ``failed`` with the
    error (and remove the temp file); they are logged, not raised, so the caller can report them.
    """
    now = timezone.now()
    stale = now - dt.timedelta(seconds=setting("EXPORT_STALE_SECONDS"))
    claimed = Export.objects.filter(
        Q(status=Export.Status.PENDING)
        | Q(status=Export.Status.RUNNING, heartbeat_at__lt=stale)
        | Q(status=Export.Status.RUNNING, heartbeat_at__isnull=True, started_at__lt=stale),
        id=export_id,
    ).update(status=Export.Status.RUNNING, started_at=now, heartbeat_at=now, progress=0.0, rows=0)
    export = Export.objects.select_related("project", "created_by").filter(id=export_id).first()
    if export is None or not claimed:
        return export
    path = Path(out_path) if out_path is not None else export_default_path(export)
    try:
        _write(export, path, progress)
    except Exception as exc:
        logger.exception("export %s failed", export_id)
        _remove_temp_files(path)
        Export.objects.filter(id=export_id, status=Export.Status.RUNNING).update(
            status=Export.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )
    export.refresh_from_db()
    return export


def _write(export: Export, path: Path, progress: ProgressCallback | None) -> None:
    kind = export_kind_get(export.kind)
    compress = bool(export.options.get("gzip")) or path.name.endswith(".gz")
    every = setting("EXPORT_PROGRESS_EVERY")
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_temp_files(path)
    tmp = path.with_name(f"{_temp_prefix(path)}{uuid.uuid4().hex}.tmp")
    scan = ExportScan()
    counts = scan.counts
    content_sha = hashlib.sha256()
    n_rows = 0
    token = export_scan_install(scan)
    try:
        with open(tmp, "wb") as raw:
            hashing = _HashingWriter(raw)
            # mtime=0 and no file name in the header: the same rows give the same gzip bytes.
            sink: Any = (
                gzip.GzipFile(filename="", mode="wb", fileobj=hashing, mtime=0)  # type: ignore[arg-type]
                if compress
                else hashing
            )
            buffer: list[bytes] = []
            dedupe = bool(export.options.get("dedupe", False))
            for line in _lines(
                kind.rows(export),
                dedupe=dedupe,
                counts=counts,
                workdir=path.parent,
                prefix=_temp_prefix(path),
            ):
                content_sha.update(line)
                buffer.append(line)
                n_rows += 1
                if len(buffer) >= 1000:
                    sink.write(b"".join(buffer))
                    buffer.clear()
                if n_rows % every == 0:
                    _report(export, scan, n_rows, progress)
            if buffer:
                sink.write(b"".join(buffer))
            if compress:
                sink.close()
            raw.flush()
            os.fsync(raw.fileno())
    finally:
        export_scan_uninstall(token)
    os.replace(tmp, path)
    parquet_path = parquet_path_for(path)
    _remove_temp_files(parquet_path)
    parquet = parquet_write(jsonl_path=path, out_path=parquet_path)
    _fsync_dir(path.parent)

    finished = timezone.now()
    manifest = _manifest(
        export,
        kind_manifest=kind.manifest(export) if kind.manifest else {},
        training=kind.training,
        path=path,
        compress=compress,
        rows=n_rows,
        size=hashing.size,
        sha256=hashing.sha256.hexdigest(),
        content_sha256=content_sha.hexdigest(),
        counts=dict(counts),
        finished=finished,
    )
    manifest["parquet"] = parquet
    _write_atomic(manifest_path_for(path), orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    with transaction.atomic():
        Export.objects.filter(id=export.id).update(
            status=Export.Status.DONE,
            progress=1.0,
            rows=n_rows,
            bytes=hashing.size,
            sha256=manifest["sha256"],
            manifest=manifest,
            file_path=str(path),
            error="",
            finished_at=finished,
            heartbeat_at=finished,
        )
        webhook_emit(
            export.project,
            WebhookEvent.EXPORT_READY,
            {
                "export_id": export.id,
                "kind": export.kind,
                "rows": n_rows,
                "bytes": hashing.size,
                "sha256": manifest["sha256"],
                "files": {
                    "data": path.name,
                    "parquet": parquet_path.name,
                    "manifest": manifest_path_for(path).name,
                },
                # the slash-less alias every export has always named (docs/api.md)
                "download_url": reverse(
                    "labeling_api:export-download-noslash", kwargs={"export_id": export.id}
                ),
            },
        )
    if progress is not None:
        export.rows, export.progress = n_rows, 1.0
        progress(export, scan, n_rows)


def _report(
    export: Export, scan: ExportScan, n_rows: int, progress: ProgressCallback | None
) -> None:
    fraction = min(0.99, scan.done / scan.total) if scan.total else 0.0
    Export.objects.filter(id=export.id, status=Export.Status.RUNNING).update(
        progress=fraction, rows=n_rows, heartbeat_at=timezone.now()
    )
    if progress is not None:
        export.rows, export.progress = n_rows, fraction
        progress(export, scan, n_rows)


SKIP_KEYS = (
    "holdout_excluded",
    "gold_excluded",
    "no_labels",
    "label_filter",
    "agreement_filter",
)


def _manifest(
    export: Export,
    *,
    kind_manifest: dict[str, Any],
    training: bool,
    path: Path,
    compress: bool,
    rows: int,
    size: int,
    sha256: str,
    content_sha256: str,
    counts: dict[str, int],
    finished: dt.datetime,
) -> dict[str, Any]:
    snapshot = dict(export.options.get("snapshot") or {})
    options = {k: v for k, v in export.options.items() if k != "snapshot"}
    splits = {s: counts.pop(s) for s in ("train", "validation") if s in counts}
    manifest: dict[str, Any] = dict(kind_manifest)
    manifest.update(
        {
            "format": "flywheel-export",
            "format_version": MANIFEST_FORMAT_VERSION,
            "export_id": export.id,
            "project": export.project.slug,
            "kind": export.kind,
            "training": training,
            "holdout_excluded": training,
            "filters": export.filters,
            "options": options,
            "snapshot": {
                "max_annotation_id": snapshot.get("max_annotation_id"),
                "label_schema_version": snapshot.get("label_schema_version"),
                "annotator_ids": snapshot.get("annotator_ids"),
            },
            "label_schema": snapshot.get("label_schema"),
            "schema_version": export.schema_version,
            "created_by": export.created_by.get_username() if export.created_by else None,
            "created_at": export.created_at.isoformat(),
            "finished_at": finished.isoformat(),
            "file": path.name,
            "compression": "gzip" if compress else None,
            "rows": rows,
            "bytes": size,
            "sha256": sha256,
            "content_sha256": content_sha256,
            "splits": splits or None,
            "split": {
                "by": "conversation_id",
                "seed": export.options.get("seed", 0),
                "validation_fraction": export.options.get("validation_fraction", 0.0),
            }
            if export.options.get("validation_fraction")
            else None,
            "excluded": {k: counts.pop(k, 0) for k in SKIP_KEYS},
            "skipped": counts,
        }
    )
    return manifest


def exports_needing_work(*, pending_after_seconds: int = 60) -> list[int]:
    """Ids of exports a lost message left behind: pending for a while, or running with a stale
    heartbeat (the worker died). ``export_run`` claims each of them at most once."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=setting("EXPORT_STALE_SECONDS"))
    return list(
        Export.objects.filter(
            Q(
                status=Export.Status.PENDING,
                created_at__lt=now - dt.timedelta(seconds=pending_after_seconds),
            )
            | Q(status=Export.Status.RUNNING, heartbeat_at__lt=stale)
        )
        .order_by("id")
        .values_list("id", flat=True)
    )
