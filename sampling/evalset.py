"""The ``eval`` export kind: labelled sampled items with ``pi``, weight and ``f`` (registered
on import).

One JSONL row per labelled item that a probabilistic run selected, in interaction id order, as of
the export's snapshot (``labeling.selectors.exports.labelled_items``; holdout items included: an
eval set is where they belong). Each row carries what the estimate needs, so the headline estimate
can be recomputed from the file alone (docs/estimates.md shows how):

- ``good`` (target, 1/0, null when unresolved), ``f`` (proxy score recorded at sampling), ``pi``,
  ``weight`` = 1/pi, ``response_rate`` of its non-response adjustment cell (``response_cell``:
  the run, split by model version and segment where labels allow; use ``pi * response_rate``),
  ``run`` with ``run_population`` and ``run_f_total`` (size and sum of
  ``f`` of the items that run considered inside the export's filters), and ``population`` /
  ``f_total``: the same over every run the estimate covers (what ``N`` and ``F`` are).

Everything is as of the export's snapshot: the rows, the response rates, the runs covered (a run
with no label inside the snapshot is left out, as in the estimates API) and the manifest's
estimates all read the labels with ``id <= max_annotation_id``. Filters that would drop rows by
their labels (``labels``, ``min_agreement``, ``annotators``) are refused for this kind: the design
fields would then describe rows that are not in the file. Gold items that a run selected stay in
(their labels count in the estimate like any other).

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
    ResponseDesign,
    domain_data,
    estimates_compute,
    filtered_inclusions,
    response_design,
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
    design = _design(export)
    domain = _domain_totals(export, design)
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
                "response_rate": design.item_rate.get(it.id) if design.covers(run_id) else None,
                "response_cell": design.item_cell.get(it.id),
                "run": run_id,
                "run_population": population["n"],
                "run_f_total": population["f_total"],
                "population": domain[0],
                "f_total": domain[1],
                "holdout": bool(it.holdout or inc_holdout),
            }


def _design(export: Export) -> ResponseDesign:
    """Labels and response rates as of the export's snapshot (the rows' cut-off)."""
    cutoff = int(export_snapshot(export).get("max_annotation_id", 0))
    return response_design(project=export.project, cutoff=cutoff)


def _domain_totals(export: Export, design: ResponseDesign) -> tuple[int, float]:
    """``N`` and ``F`` of the export's domain over the runs the estimate covers."""
    (d,) = domain_data(
        project=export.project, by=[], filters=_estimate_filters(export), design=design
    ) or [None]
    return (d.population, d.f_total) if d is not None else (0, 0.0)


def estimate_from_rows(rows: list[dict[str, Any]], *, level: float = 0.95) -> dict[str, Any]:
    """The default (PPI++) estimate recomputed from eval rows alone (what the docs show)."""
    usable = [r for r in rows if r.get("good") is not None and r.get("response_rate")]
    population = int(usable[0]["population"]) if usable else 0
    f_total = float(usable[0]["f_total"]) if usable else 0.0
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
    design = _design(export)
    rates = design.rate
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
                "covered": design.covers(run.id),
                "proxy_model": run.proxy_model_id,
                "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            }
        )
    estimates = {
        "all": estimates_compute(project=export.project, filters=filters, design=design),
        "model_version": estimates_compute(
            project=export.project, by="model_version", filters=filters, design=design
        ),
    }
    return {
        "design": {
            "sampling": "Poisson sampling with recorded inclusion probabilities (pi)",
            "strategies": strategies,
            "runs": design_runs,
            "pool_sizes": {str(r["id"]): r["pool_size"] for r in design_runs},
            "nonresponse": (
                "pi of respondents multiplied by the weighted response rate of their cell (the "
                "run, split by model version and segment where each cell has at least "
                f"{estimators.MIN_CELL_RESPONDENTS} labels)"
            ),
            "coverage": estimates["all"]["coverage"],
            "snapshot_max_annotation_id": design.cutoff,
            "deterministic_runs_excluded": sum(1 for r in design_runs if r["deterministic"]),
        },
        "estimates": estimates,
        "recompute": (
            "PPI++: N = population, F = f_total (the same in every row); pi' = pi * "
            "response_rate; see docs/estimates.md"
        ),
    }


_LABEL_FILTER = (
    "not allowed for eval exports: it drops rows by their labels while the design fields "
    "(run_population, response_rate) describe every labelled item, so a recompute from the "
    "file would be biased; filter by since, until, model_versions, segment or runs instead"
)

export_kind_register(
    ExportKind(
        name="eval",
        rows=eval_rows,
        manifest=eval_manifest,
        training=False,
        refused_filters={
            "labels": _LABEL_FILTER,
            "min_agreement": _LABEL_FILTER,
            "annotators": _LABEL_FILTER,
            "include_gold": (
                "not allowed for eval exports: gold items a run selected are part of the "
                "sample and always included"
            ),
        },
        fixed_filters={"include_gold": True},
    )
)
