"""Sampling runs through the service: f and pi for every pool item, filters, no overlap."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from django.test.utils import override_settings

from labeling.models import Interaction, Project, QueueItem
from sampling.models import Inclusion, SamplingRun, SamplingStrategy
from sampling.selectors.strategies import strategy_preview
from sampling.services.runs import sampling_run_create, sampling_run_execute
from sampling.services.strategies import strategy_create
from tests.factories import ProjectFactory
from tests.sampling_fixtures import seed_interactions


@pytest.fixture(autouse=True)
def _model_root(tmp_path: Path):
    with override_settings(MODEL_ROOT=tmp_path / "models"):
        yield


def _strategy(project: Project, **data: object) -> SamplingStrategy:
    base = {
        "name": "s",
        "weights": {"uncertainty": 0.6, "coverage": 0.2, "random": 0.2},
        "batch_size": 40,
        "holdout_fraction": 0.1,
        "overlap_fraction": 0.25,
        "overlap_k": 3,
    }
    return strategy_create(project=project, data={**base, **data})


def _run(project: Project, strategy: SamplingStrategy, seed: int = 1) -> SamplingRun:
    run = sampling_run_create(project=project, strategy=strategy)
    run.seed = seed
    run.save(update_fields=["seed"])
    result = sampling_run_execute(run_id=run.pk)
    assert result is not None
    return result


def test_run_records_f_and_pi_for_every_pool_item(project: Project) -> None:
    seed_interactions(project, 300)
    run = _run(project, _strategy(project))
    assert run.status == SamplingRun.Status.DONE
    inclusions = Inclusion.objects.filter(run=run)
    assert run.pool_size == 300 == inclusions.count()
    pi = np.array(inclusions.values_list("pi", flat=True), dtype=float)
    f = np.array(inclusions.values_list("f", flat=True), dtype=float)
    assert np.all((pi > 0) & (pi <= 1))
    assert np.all((f > 0) & (f < 1))
    assert pi.sum() == pytest.approx(40)
    assert run.expected_size == pytest.approx(40)
    # pi >= w_r * n / N for every item
    assert pi.min() >= 0.2 * 40 / 300 - 1e-9
    selected = inclusions.filter(selected=True)
    assert run.selected_count == selected.count()
    assert abs(run.selected_count - 40) < 5 * np.sqrt(np.sum(pi * (1 - pi)))
    # the selected are queued with the run id; holdout and overlap as configured
    queued = QueueItem.objects.filter(sampling_run_id=run.pk)
    assert set(queued.values_list("interaction_id", flat=True)) == set(
        selected.values_list("interaction_id", flat=True)
    )
    assert run.holdout_count == round(0.1 * run.selected_count)
    assert set(queued.filter(holdout=True).values_list("interaction_id", flat=True)) == set(
        inclusions.filter(holdout=True).values_list("interaction_id", flat=True)
    )
    assert queued.filter(overlap=3).count() == round(0.25 * run.selected_count)
    assert set(run.timings) >= {"read_s", "compute_s", "write_s", "enqueue_s", "total_s"}
    assert run.strategy_snapshot["batch_size"] == 40


def test_an_interaction_is_never_considered_twice(project: Project) -> None:
    seed_interactions(project, 200)
    strategy = _strategy(project)
    first = _run(project, strategy, seed=1)
    seed_interactions(project, 50, seed=9)
    second = _run(project, strategy, seed=2)
    assert first.pool_size == 200
    assert second.pool_size == 50  # only the newcomers
    third = _run(project, strategy, seed=3)
    assert third.pool_size == 0
    assert third.status == SamplingRun.Status.DONE
    assert Inclusion.objects.filter(project=project).count() == 250
    # rerunning a finished run does nothing
    again = sampling_run_execute(run_id=first.pk)
    assert again is not None
    assert again.status == SamplingRun.Status.DONE
    assert Inclusion.objects.filter(run=first).count() == 200


def test_filters_restrict_the_pool(project: Project) -> None:
    rows = seed_interactions(project, 120)
    cutoff = sorted(r.occurred_at for r in rows)[60]
    strategy = _strategy(
        project,
        filters={
            "model_versions": ["model-b"],
            "segment": {"locale": ["de"]},
            "since": cutoff.isoformat(),
        },
    )
    run = _run(project, strategy)
    expected = Interaction.objects.filter(
        project=project, model_version="model-b", segment__locale="de", occurred_at__gte=cutoff
    )
    assert run.pool_size == expected.count() > 0
    assert set(Inclusion.objects.filter(run=run).values_list("interaction_id", flat=True)) == set(
        expected.values_list("id", flat=True)
    )


def test_segment_minimums_pull_labels_to_a_small_segment(project: Project) -> None:
    seed_interactions(project, 400, pro_share=0.05)
    pro = Interaction.objects.filter(project=project, segment__tier="pro").count()
    data = {
        "name": "cover",
        "weights": {"uncertainty": 0.2, "coverage": 0.6, "random": 0.2},
        "batch_size": 40,
        "segment_minimums": {"tier": 30},
    }
    preview = strategy_preview(strategy_data=data, project=project)
    expected_pro = next(s for s in preview["segments"]["tier"] if s["value"] == "pro")["expected"]
    uniform_pro = 40 * pro / 400
    assert expected_pro > 3 * uniform_pro
    assert preview["expected_size"] == pytest.approx(40)
    assert preview["min_pi"] >= 0.2 * 40 / 400 - 1e-9
    assert sum(preview["components"].values()) == pytest.approx(40)
    assert not Inclusion.objects.exists()  # the preview wrote nothing
    assert not SamplingRun.objects.exists()
    run = _run(project, strategy_create(project=project, data=data))
    pi_pro = Inclusion.objects.filter(run=run, interaction__segment__tier="pro").values_list(
        "pi", flat=True
    )
    assert sum(pi_pro) == pytest.approx(expected_pro)


def test_cold_start_uses_the_signal_prior(project: Project) -> None:
    rows = seed_interactions(project, 60)
    thumbs_down = rows[0]
    thumbs_down.signals = {"thumbs_down": 1}
    thumbs_down.explicit_rating = -1
    thumbs_down.save()
    thumbs_up = rows[1]
    thumbs_up.signals = {"thumbs_up": 1, "copy": 1}
    thumbs_up.save()
    run = _run(project, _strategy(project, batch_size=10))
    assert run.proxy_model is None
    assert run.timings["unscored"] == 60
    f = dict(Inclusion.objects.filter(run=run).values_list("interaction_id", "f"))
    assert f[thumbs_down.pk] < 0.5 < f[thumbs_up.pk]


def test_deterministic_mode_ranks_a_batch_without_pi(project: Project) -> None:
    seed_interactions(project, 120)
    strategy = _strategy(project, name="train-only", mode="deterministic", batch_size=15)
    run = _run(project, strategy)
    assert run.deterministic
    inclusions = Inclusion.objects.filter(run=run)
    assert inclusions.count() == 120
    assert not inclusions.filter(pi__isnull=False).exists()
    assert inclusions.filter(selected=True).count() == 15 == run.selected_count
    assert run.holdout_count == 0


def test_a_failing_run_leaves_nothing_behind(project: Project, monkeypatch) -> None:
    seed_interactions(project, 50)
    run = sampling_run_create(project=project, strategy=_strategy(project))

    def crash(**kwargs: object) -> int:
        raise RuntimeError("worker died while enqueuing")

    monkeypatch.setattr("sampling.services.runs.queue_items_enqueue", crash)
    with pytest.raises(RuntimeError):
        sampling_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == SamplingRun.Status.FAILED
    assert "worker died" in run.error
    assert not Inclusion.objects.filter(project=project).exists()
    assert not QueueItem.objects.filter(project=project).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_do_not_overlap() -> None:
    project = ProjectFactory(slug="concurrent")
    seed_interactions(project, 500)
    strategy = _strategy(project)
    runs = [sampling_run_create(project=project, strategy=strategy) for _ in range(3)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(runs))

    def work(run_id: int) -> None:
        try:
            barrier.wait()
            sampling_run_execute(run_id=run_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(r.pk,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    done = SamplingRun.objects.filter(pk__in=[r.pk for r in runs])
    assert all(r.status == SamplingRun.Status.DONE for r in done)
    assert sum(r.pool_size for r in done) == 500
    ids = list(Inclusion.objects.filter(project=project).values_list("interaction_id", flat=True))
    assert len(ids) == len(set(ids)) == 500
    assert sorted(r.pool_size for r in done)[-1] == 500  # the first took the whole pool
