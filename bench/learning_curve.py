"""Benchmark: proxy AUC on a held-out part of HH-RLHF against the number of labels, for
uniform random sampling, the sampler's default probabilistic mixture, and pure top-uncertainty
(classic active learning), averaged over seeds. No database: the featurizer, proxy and strategy
functions the service uses, on the 4,624 HH-RLHF harmless responses (chosen = good).

30% of the conversations are held out for the AUC (a conversation's chosen and rejected answers
stay on the same side); the rest is the pool. Each strategy starts from the same 20 random labels
and labels batches of 50 (the mixture: expected 50, Poisson), retraining after each batch.

    .venv/bin/python bench/learning_curve.py [--seeds 5] [--max-labels 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _hh

from sampling import design
from sampling import proxy as proxy_lib
from sampling.features import featurize

CHECKPOINTS = (50, 100, 200, 400, 700, 1000, 1500)
BATCH = 50
START = 20


def subset(features, idx):
    return proxy_lib._subset(features, idx)


def run_strategy(name, features, y, pool_idx, test_idx, clusters, seed, max_labels):
    rng = np.random.default_rng(seed)
    labelled = list(rng.choice(pool_idx, START, replace=False))
    remaining = np.setdiff1d(pool_idx, labelled)
    curve = {}
    while True:
        ys = y[labelled]
        if proxy_lib.has_both_classes(ys):
            proxy, _ = proxy_lib.train(
                subset(features, np.array(labelled)),
                ys,
                seed=seed,
                with_metrics=False,
                clusters=False,
            )
            test_p = proxy.predict(subset(features, test_idx))
            pool_f = proxy.predict(subset(features, remaining))
        else:
            test_p = np.full(len(test_idx), 0.5)
            pool_f = np.full(len(remaining), 0.5)
        n_labels = len(labelled)
        for checkpoint in CHECKPOINTS:
            if checkpoint not in curve and n_labels >= checkpoint:
                curve[checkpoint] = float(roc_auc_score(y[test_idx], test_p))
        if n_labels >= max_labels or len(remaining) == 0:
            break
        if name == "uniform":
            picked = rng.choice(len(remaining), min(BATCH, len(remaining)), replace=False)
        elif name == "top_uncertainty":
            picked = design.top_uncertain(pool_f, BATCH)
        else:  # the sampler's default mixture with Poisson draws
            pool = design.Pool(ids=remaining, f=pool_f, clusters=clusters[remaining])
            labelled_clusters = np.bincount(clusters[labelled], minlength=clusters.max() + 1)
            counts = design.CoverageCounts(
                cluster_labels={c: int(n) for c, n in enumerate(labelled_clusters)},
                total_labels=n_labels,
            )
            plan = design.plan(
                pool,
                weights={"uncertainty": 0.6, "coverage": 0.2, "random": 0.2},
                n=BATCH,
                counts=counts,
            )
            picked = np.flatnonzero(design.poisson_draw(plan.pi, rng).selected)
        labelled += [int(i) for i in remaining[picked]]
        remaining = np.delete(remaining, picked)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-labels", type=int, default=1000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = _hh.load()
    y = np.array([r["good"] for r in rows], dtype=float)
    pairs = np.array([r["pair"] for r in rows])
    features = featurize([(r["messages"], r["response"], {}, {}, {}, None) for r in rows])
    kmeans = proxy_lib.fit_clusters(features.topic, seed=0)
    clusters = kmeans.predict(features.topic)
    strategies = ("uniform", "sampler_default", "top_uncertainty")
    results = {s: [] for s in strategies}
    for seed in range(args.seeds):
        rng = np.random.default_rng(1000 + seed)
        test_pairs = rng.choice(pairs.max() + 1, int(0.3 * (pairs.max() + 1)), replace=False)
        is_test = np.isin(pairs, test_pairs)
        test_idx, pool_idx = np.flatnonzero(is_test), np.flatnonzero(~is_test)
        for name in strategies:
            results[name].append(
                run_strategy(name, features, y, pool_idx, test_idx, clusters, seed, args.max_labels)
            )
        print(f"seed {seed} done at {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    summary = {}
    for name, curves in results.items():
        summary[name] = {}
        for checkpoint in CHECKPOINTS:
            values = [c[checkpoint] for c in curves if checkpoint in c]
            if values:
                summary[name][checkpoint] = {
                    "auc": round(float(np.mean(values)), 3),
                    "sd": round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 3),
                }
    print(json.dumps({"seeds": args.seeds, "auc_by_labels": summary}, indent=1))
    print("| labels | " + " | ".join(strategies) + " |")
    print("|---|" + "---|" * len(strategies))
    for checkpoint in CHECKPOINTS:
        if all(checkpoint in summary[s] for s in strategies):
            cells = [
                f"{summary[s][checkpoint]['auc']:.3f} ± {summary[s][checkpoint]['sd']:.3f}"
                for s in strategies
            ]
            print(f"| {checkpoint} | " + " | ".join(cells) + " |")
    print(f"total {time.perf_counter() - t0:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
