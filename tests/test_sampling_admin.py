"""The Django admin validates strategies with the same rules as the API."""

from __future__ import annotations

import json

from labeling.models import Project
from sampling.admin import SamplingStrategyForm
from sampling.models import SamplingStrategy


def _form(project: Project, **changes: object) -> SamplingStrategyForm:
    data = {
        "project": project.pk,
        "name": "admin-made",
        "mode": "probabilistic",
        "weights": json.dumps({"uncertainty": 0.6, "coverage": 0.2, "random": 0.2}),
        "uncertainty_measure": "sqrt",
        "batch_size": 100,
        "filters": "{}",
        "segment_minimums": "{}",
        "overlap_fraction": 0.0,
        "overlap_k": 2,
        "holdout_fraction": 0.1,
        "schedule": "",
        "active": True,
    }
    data.update(changes)
    return SamplingStrategyForm(data=data)


def test_admin_form_saves_a_valid_strategy(project: Project) -> None:
    form = _form(project)
    assert form.is_valid(), form.errors
    strategy = form.save()
    assert strategy.schedule is None
    assert SamplingStrategy.objects.filter(project=project, name="admin-made").exists()


def test_admin_form_rejects_a_tiny_random_weight(project: Project) -> None:
    form = _form(project, weights=json.dumps({"uncertainty": 0.98, "random": 0.02}))
    assert not form.is_valid()
    assert "weights.random" in " ".join(form.errors["weights"])
