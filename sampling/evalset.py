"""The ``eval`` export kind: labelled sampled items with ``pi``, weight and ``f`` (registered
on import).

One JSONL row per labelled item that a probabilistic run selected, in interaction id order, as of
the export's snapshot (``labeling.selectors.exports.labelled_items``; holdout items included: an
eval set is where they belong). Each row carries what the estimate needs, so the headline estimate
can be recomputed from the file alone (docs/estimates.md shows how):

- ``good`` (target, 1/0, null when unresolved), ``f`` (proxy score recorded at sampling), ``pi``,
  ``weight`` = 1/pi, ``response_rate`` of its run (non-response adjustment: use
  ``pi * response_rate``), ``run`` with ``run_population`` and ``run_f_total`` (size and sum of
  ``f`` of the items that run considered inside the export's filters).

Items labelled but never sampled (gold, manual) or sampled without ``pi`` (deterministic mode) are
left out and counted in the manifest (``skipped.not_sampled``, ``skipped.no_pi``). Eval-specific
filter: ``runs`` (a list of run ids). The manifest holds the design (strategies, runs, pool sizes)
and the estimates at export time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
from django.db.models import Count, Q, Sum

from labeling.models import Annotation, Export
from labeling.selectors.exports import (
    LabelledItem,
    export_scan_current,
    export_snapshot,
    labelled_items,
)
from labeling.services.export_kinds import ExportKind, export_kind_register
from sampling import estimators
from sampling.models import Inclusion, SamplingRun
from sampling.selectors.estimates import (
    estimates_compute,
    filtered_inclusions,
    labelled_values,
    run_response_rates,
)

CHUNK = 2000


def _estimate_filters(export: Export) -> dict[str, Any]:
    keys = ("since", "until", "model_versions", "segment", "runs")
    return {k: export.filters[k] for k in keys if export.filters.get(k)}


def _run_populations(export: Export) -> dict[int, dict[str, float]]:
    """Per run: considered items with a ``pi`` inside the export's filters and their sum of f."""
    rows = (
        filtered_inclusions(project=export.project, filters=_estimate_filters(export))
        .values("run_id")
        .annotate(
            n=Count("id", filter=Q(pi__isnull=False)),
            f_total=Sum("f", filter=Q(pi__isnull=False)),
        )
        .order_by("run_id")
    )
    return {r["run_id"]: {"n": r["n"], "f_total": float(r["f_total"] or 0.0)} for r in rows}


def _annotators(ids: list[int], cutoff: int) -> dict[int, list[str]]:
    """Usernames of each item's labels as of the snapshot (superseded versions dropped)."""
    found = list(
        Annotation.objects.filter(interaction_id__in=ids, id__lte=cutoff)
        .order_by("id")
        .values_list("id", "interaction_id", "annotator__username", "supersedes_id")
    )
    superseded = {a[3] for a in found if a[3] is not None}
    names: dict[int, set[str]] = defaultdict(set)
    for ann_id, interaction_id, username, _ in found:
        if ann_id not in superseded:
            names[interaction_id].add(username)
    return {k: sorted(v) for k, v in names.items()}


def _chunks(items: Iterator[LabelledItem]) -> Iterator[list[LabelledItem]]:
    chunk: list[LabelledItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def eval_rows(export: Export) -> Iterator[dict[str, Any]]:
    """The eval export's rows (see the module docstring for the fields)."""
    counts = export_scan_current().counts
    snapshot = export_snapshot(export)
    cutoff = int(snapshot.get("max_annotation_id", 0))
    schema = snapshot.get("label_schema") or export.project.label_schema
    target_key = (schema.get("target") or {}).get("question")
    populations = _run_populations(export)
    rates = _run_rates(export)
    runs_filter = {int(r) for r in export.filters.get("runs") or []}
    for chunk in _chunks(labelled_items(export, training=False, with_agreement=True)):
        ids = [it.id for it in chunk]
        inclusions = {
            row[0]: row[1:]
            for row in Inclusion.objects.filter(interaction_id__in=ids).values_list(
                "interaction_id", "run_id", "f", "pi", "selected", "holdout", "interaction__segment"
            )
        }
        names = _annotators(ids, cutoff)
        for it in chunk:
            inc = inclusions.get(it.id)
            if inc is None or not inc[3]:
                counts["not_sampled"] += 1
                continue
            run_id, f, pi, _, inc_holdout, segment = inc
            if runs_filter and run_id not in runs_filter:
                counts["other_runs"] += 1
                continue
            if pi is None:
                counts["no_pi"] += 1
                continue
            raw = it.final.get(target_key) if target_key else None
            population = populations.get(run_id, {"n": 0, "f_total": 0.0})
            yield {
                "interaction_id": it.external_id,
                "conversation_id": it.conversation_id,
                "messages": it.messages,
                "response": it.response,
                "model_version": it.model_version,
                "segment": segment if isinstance(segment, dict) else {},
                "label": it.final,
                "good": it.good,
                "rating": raw
                if isinstance(raw, int | float) and not isinstance(raw, bool)
                else None,
                "annotators": names.get(it.id, []),
                "n_annotations": it.n_annotations,
                "agreement": it.agreement,
                "f": f,
                "pi": pi,
                "weight": 1.0 / pi,
                "response_rate": rates.get(run_id),
                "run": run_id,
                "run_population": population["n"],
                "run_f_total": population["f_total"],
                "holdout": bool(it.holdout or inc_holdout),
            }


def _run_rates(export: Export) -> dict[int, float]:
    """Each run's weighted response rate (one adjustment cell per run, as in the estimates)."""
    selected = Inclusion.objects.filter(
        project=export.project, selected=True, pi__isnull=False, run__status="done"
    ).values_list("interaction_id", flat=True)
    labelled = set(labelled_values(project=export.project, interaction_ids=list(selected)))
    return run_response_rates(project=export.project, labelled=labelled)


def estimate_from_rows(rows: list[dict[str, Any]], *, level: float = 0.95) -> dict[str, Any]:
    """The default (PPI++) estimate recomputed from eval rows alone (what the docs show)."""
    usable = [r for r in rows if r.get("good") is not None and r.get("response_rate")]
    runs = {r["run"]: (r["run_population"], r["run_f_total"]) for r in usable}
    population = sum(n for n, _ in runs.values())
    f_total = sum(t for _, t in runs.values())
    e = estimators.estimate(
        y=np.array([r["good"] for r in usable], dtype=float),
        f=np.array([r["f"] for r in usable], dtype=float),
        pi=np.array([r["pi"] * r["response_rate"] for r in usable], dtype=float),
        population=population,
        f_total=f_total,
        level=level,
    )
    return e.as_dict()


def eval_manifest(export: Export) -> dict[str, Any]:
    """The sampling design of the exported runs and the estimates at export time."""
    filters = _estimate_filters(export)
    populations = _run_populations(export)
    rates = _run_rates(export)
    runs = SamplingRun.objects.filter(id__in=list(populations)).select_related("strategy")
    design_runs = []
    strategies: dict[str, Any] = {}
    for run in runs.order_by("id"):
        snap = run.strategy_snapshot or {}
        if run.strategy_id is not None:
            strategies[str(run.strategy_id)] = snap
        design_runs.append(
            {
                "id": run.id,
                "strategy": run.strategy_id,
                "strategy_name": snap.get("name") or (run.strategy.name if run.strategy else None),
                "deterministic": run.deterministic,
                "pool_size": run.pool_size,
                "expected_size": run.expected_size,
                "selected_count": run.selected_count,
                "holdout_count": run.holdout_count,
                "population_in_filters": populations[run.id]["n"],
                "f_total_in_filters": populations[run.id]["f_total"],
                "response_rate": rates.get(run.id),
                "proxy_model": run.proxy_model_id,
                "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            }
        )
    estimates = {
        "all": estimates_compute(project=export.project, filters=filters),
        "model_version": estimates_compute(
            project=export.project, by="model_version", filters=filters
        ),
    }
    return {
        "design": {
            "sampling": "Poisson sampling with recorded inclusion probabilities (pi)",
            "strategies": strategies,
            "runs": design_runs,
            "pool_sizes": {str(r["id"]): r["pool_size"] for r in design_runs},
            "nonresponse": "pi of respondents multiplied by their run's weighted response rate",
            "deterministic_runs_excluded": sum(1 for r in design_runs if r["deterministic"]),
        },
        "estimates": estimates,
        "recompute": (
            "PPI++: N = sum of run_population over runs, F = sum of run_f_total; pi' = pi * "
            "response_rate; see docs/estimates.md"
        ),
    }


export_kind_register(
    ExportKind(name="eval", rows=eval_rows, manifest=eval_manifest, training=False)
)
