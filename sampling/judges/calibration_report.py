"""The judge's trust report from the database: its scores of one version joined with the human
labels, cross-fitted calibration metrics overall, per segment, per model version and per week,
the judge's share of good next to the unbiased estimate, and what it saves in labels.

Computing the report also sets the judge's weight (0 once its calibrated R^2 <= 0 on at least
``MIN_LABELS`` labels) and re-points the project's primary judge accordingly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from django.utils import timezone

from labeling.models import Annotation, Interaction
from sampling.judges import calibration
from sampling.judges.config import judge_version_current, primary_judge_sync
from sampling.judges.models import Judge, JudgeResult, JudgeVersion
from sampling.selectors.estimates import estimates_compute
from sampling.services.proxy import training_labels

STALE_AFTER = dt.timedelta(hours=24)
HALF_WIDTH = 0.03  # "a +-3-point interval needs N labels instead of M"


def _version(judge: Judge, version_hash: str | None) -> JudgeVersion | None:
    if version_hash is None:
        return judge_version_current(judge=judge)
    return JudgeVersion.objects.filter(judge=judge, hash=version_hash).first()


def judge_trust(*, judge: Judge, version_hash: str | None = None) -> dict[str, Any] | None:
    version = _version(judge, version_hash)
    if version is None:
        return None
    project = judge.project
    scores = dict(
        JudgeResult.objects.filter(version=version, status=JudgeResult.Status.DONE).values_list(
            "interaction_id", "score"
        )
    )
    label_ids, y_all = training_labels(project=project)
    keep = [i for i, iid in enumerate(label_ids) if iid in scores]
    ids = [label_ids[i] for i in keep]
    y = y_all[keep] if keep else np.zeros(0)
    s = np.array([scores[i] for i in ids], dtype=float)
    meta = {
        row[0]: row[1:]
        for row in Interaction.objects.filter(id__in=ids).values_list(
            "id", "segment", "model_version", "occurred_at"
        )
    }
    groups: dict[str, np.ndarray] = {
        "model_version": np.array([meta[i][1] or "(none)" for i in ids], dtype=object),
        "week": np.array([meta[i][2].strftime("%G-W%V") for i in ids], dtype=object),
    }
    for key in project.segment_keys or []:
        groups[f"segment.{key}"] = np.array(
            [str((meta[i][0] or {}).get(key, "(none)")) for i in ids], dtype=object
        )
    report = calibration.trust_report(s, y, groups=groups, scale=(judge.score_min, judge.score_max))
    # The judge's share of good over everything it judged (a biased estimator) next to the
    # unbiased estimate from the labels (PPI++), which never takes the judge's word for it.
    all_scores = np.array(list(scores.values()), dtype=float)
    threshold = report["threshold"]
    report["judge_share_good_all"] = (
        float((all_scores >= threshold).mean())
        if threshold is not None and len(all_scores)
        else None
    )
    estimate = estimates_compute(project=project)["groups"][0]
    report["unbiased_estimate"] = {
        k: estimate.get(k) for k in ("estimate", "ci_low", "ci_high", "n_labels", "population")
    }
    report["unbiased_method"] = "ppi++"
    p_good = report["human_good"] if report["human_good"] is not None else 0.5
    report["power"] = {
        "half_width": HALF_WIDTH,
        **calibration.labels_for_interval(p_good=p_good, half_width=HALF_WIDTH, r2=report["r2"]),
    }
    if report["r2_ci"] is not None:
        report["power"]["with_judge_range"] = [
            calibration.labels_for_interval(p_good=p_good, half_width=HALF_WIDTH, r2=r)[
                "with_judge"
            ]
            for r in (report["r2_ci"][1], report["r2_ci"][0])
        ]
    report.update(
        {
            "judge": judge.name,
            "version": version.hash,
            "judged": len(scores),
            "unparseable": JudgeResult.objects.filter(
                version=version, status=JudgeResult.Status.UNPARSEABLE
            ).count(),
            "failed": JudgeResult.objects.filter(
                version=version, status=JudgeResult.Status.FAILED
            ).count(),
        }
    )
    version.calibration, version.calibrated_at = report, timezone.now()
    version.save(update_fields=["calibration", "calibrated_at"])
    if version.hash == judge_version_current(judge=judge).hash:
        _weight_update(judge=judge, report=report)
    return report


def _weight_update(*, judge: Judge, report: dict[str, Any]) -> None:
    if report["n_labels"] < calibration.MIN_LABELS or report["r2"] is None:
        weight = 1.0
    else:
        weight = report["weight"]
    if weight != judge.weight:
        judge.weight = weight
        Judge.objects.filter(pk=judge.pk).update(weight=weight)
    primary_judge_sync(project=judge.project)


def calibration_due(*, judge: Judge) -> bool:
    """True when the judge's current version has results and no calibration, a calibration older
    than ``STALE_AFTER`` (new scores, adjudications), or human labels changed since (a new or
    edited annotation is a new row)."""
    version = judge_version_current(judge=judge)
    if not JudgeResult.objects.filter(version=version, status=JudgeResult.Status.DONE).exists():
        return False
    if version.calibrated_at is None or version.calibrated_at < timezone.now() - STALE_AFTER:
        return True
    return Annotation.objects.filter(
        queue_item__project_id=judge.project_id, created_at__gt=version.calibrated_at
    ).exists()


def judges_calibrate(*, project_id: int, force: bool = False) -> dict[str, float | None]:
    """Recompute the trust report of every judge of the project whose labels changed (all with
    ``force``): stores it on the version and sets the judge's weight (0 once R^2 <= 0, so the
    proxy stops reading it and the sampler's uncertainty flattens towards random).

    Returns {judge name: calibrated R^2} of the judges calibrated.
    """
    done: dict[str, float | None] = {}
    for judge in Judge.objects.filter(project_id=project_id).select_related("project"):
        if not force and not calibration_due(judge=judge):
            continue
        report = judge_trust(judge=judge)
        if report is not None:
            done[judge.name] = report["r2"]
    return done
