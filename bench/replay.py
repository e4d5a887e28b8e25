"""Replay simulator: does an actively chosen label sample give unbiased estimates with valid
intervals, and how many labels does it save against uniform sampling at the same budget?

Population: the HH-RLHF harmless test split (../shared/data): each of the 2,312 lines gives two
interactions sharing the prompt turns, the chosen response (good) and the rejected one (bad): 4,624
interactions, exactly 50% good. Simulated on top of it (``SignalModel``, all rates configurable):

- segments: ``tier`` free 60% / pro 30% / enterprise 10%; ``locale`` en 70% / de 30%;
- explicit thumbs on about 2% of interactions: ``explicit_base`` (1%) times ``explicit_bad_factor``
  (4x) when the response is bad, times the tier's factor (pro 2x, enterprise 0.5x); the thumb is
  down for 90% of bad and 10% of good responses;
- implicit signals, more likely on bad responses: regenerate 4% good / 15% bad, edit 3% / 10%
  (edit ratio 0.1-0.7), abandon 5% / 12%, follow-up 5% / 10%, copy 20% / 10%;
- a judge score of known strength: latent ``s = a (2y - 1) + N(0, 1)`` with ``a`` solved so that
  the Bayes predictor ``P(good | s)`` explains the target share R² of ``Var(y)``; the judge reports
  the deliberately miscalibrated probability ``sigmoid(1.6 a s - 0.3)`` (a real judge is not
  calibrated; the proxy calibrates it on the labels).

Design: the traffic arrives in ``waves`` equal days; each day one sampling run considers that day's
interactions with an expected batch of ``budget / waves`` labels (strategy ``uncertainty 0.6,
coverage 0.2, random 0.2`` by default), annotators label the selected items from the ground truth
(``nonresponse`` of them are skipped), the proxy is retrained on all labels so far, and the next
day's traffic is scored with it. At the end the estimate over all runs is taken. Uniform sampling
at the same budget (``random 1.0``, sample mean = Hájek) is the baseline.

Two paths:

- ``core``: many repetitions in-process through the same pure functions the services call
  (``sampling.features.featurize``, the classifier fit of ``sampling.proxy.train`` and
  ``Proxy.predict``, ``sampling.design.plan`` and ``poisson_draw``, ``sampling.estimators``
  with the per-run non-response adjustment) on a fixed population (design-based: only the
  sampling varies between repetitions);
- ``e2e``: a few repetitions through the real HTTP API of a server started on a fresh SQLite
  database (``manage.py runserver --noreload`` with ``bench.replay_settings``): ingest with events
  and scores, POST strategies and sampling runs, annotators answer ``queue/next`` + ``submit`` from
  the truth, and ``GET /estimates`` gives the answer; scoring and retraining run through the
  project's own hooks and (eager) Celery tasks. With ``--judge-server`` the judge score is not
  ingested: Flywheel's own LLM judge (``sampling.judges``, configured through the API as the
  primary judge of the active projects) scores every arrival against an OpenAI-compatible stub on
  loopback (``tests/judge_server.py``) that answers each response with its simulated score, and
  the trust report (``GET .../judges/<id>/calibration/``) gives its calibrated R².

Usage::

    .venv/bin/python bench/replay.py core --reps 400
    .venv/bin/python bench/replay.py e2e --reps 3 --scenario judge0.5
    .venv/bin/python bench/replay.py e2e --reps 3 --scenarios judge0.5 judge0 --judge-server
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(
    os.environ.get("REPLAY_DATA", "/work/shared/data/hh-rlhf-harmless/harmless-base-test.jsonl.gz")
)
ACTIVE_MIX = {"uncertainty": 0.6, "coverage": 0.2, "random": 0.2}
UNIFORM_MIX = {"uncertainty": 0.0, "coverage": 0.0, "random": 1.0}
JUDGE = "judge"


# --- Data and simulated signals ------------------------------------------------------------------
def parse_turns(text: str) -> list[dict[str, str]]:
    """``\\n\\nHuman: ...\\n\\nAssistant: ...`` -> OpenAI-style messages."""
    messages: list[dict[str, str]] = []
    for chunk in text.split("\n\nHuman: ")[1:]:
        human, _, assistant = chunk.partition("\n\nAssistant: ")
        messages.append({"role": "user", "content": human.strip()})
        if assistant:
            messages.append({"role": "assistant", "content": assistant.strip()})
    return messages


def load_hh(path: Path = DATA, limit: int | None = None) -> list[dict[str, Any]]:
    """Interactions ``{messages, response, good, pair}``: chosen = good, rejected = bad."""
    out: list[dict[str, Any]] = []
    with gzip.open(path, "rt") as fh:
        for pair, line in enumerate(fh):
            if limit is not None and pair >= limit:
                break
            row = json.loads(line)
            for key, good in (("chosen", 1), ("rejected", 0)):
                head, sep, response = row[key].rpartition("\n\nAssistant:")
                if not sep:
                    continue
                out.append(
                    {
                        "messages": parse_turns(head),
                        "response": response.strip(),
                        "good": good,
                        "pair": pair,
                    }
                )
    return out


@dataclass(frozen=True)
class SignalModel:
    """How simulated users react (see the module docstring). Probabilities per interaction."""

    tiers: tuple[tuple[str, float, float], ...] = (
        ("free", 0.6, 1.0),  # (value, share of traffic, explicit-feedback factor)
        ("pro", 0.3, 2.0),
        ("enterprise", 0.1, 0.5),
    )
    locales: tuple[tuple[str, float], ...] = (("en", 0.7), ("de", 0.3))
    explicit_base: float = 0.01
    explicit_bad_factor: float = 4.0
    thumbs_down_if_bad: float = 0.9
    thumbs_down_if_good: float = 0.1
    regenerate: tuple[float, float] = (0.04, 0.15)  # (good, bad)
    edit: tuple[float, float] = (0.03, 0.10)
    abandon: tuple[float, float] = (0.05, 0.12)
    follow_up: tuple[float, float] = (0.05, 0.10)
    copy: tuple[float, float] = (0.20, 0.10)


def judge_strength(r2: float, *, draws: int = 200_000, seed: int = 0) -> float:
    """``a`` such that ``P(good | a(2y-1) + N(0,1))`` has R² = ``r2`` against y (p = 0.5)."""
    rng = np.random.default_rng(seed)
    y = rng.random(draws) < 0.5
    z = rng.normal(size=draws)

    def r2_of(a: float) -> float:
        s = a * (2 * y - 1) + z
        g = 1 / (1 + np.exp(-2 * a * s))
        return 1 - float(np.mean(g * (1 - g))) / 0.25

    lo, hi = 0.0, 5.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if r2_of(mid) < r2 else (lo, mid)
    return (lo + hi) / 2


@dataclass
class Population:
    rows: list[dict[str, Any]]
    y: np.ndarray
    tier: np.ndarray
    day: np.ndarray
    signals: list[dict[str, float]]
    events: list[list[dict[str, Any]]]
    explicit: np.ndarray  # +1, -1 or 0 (none)
    judge: np.ndarray | None  # probability-scale judge score, or None
    judge_r2: float | None
    judge_bayes: np.ndarray | None = None  # the calibrated P(good | judge): an oracle proxy
    pair: np.ndarray | None = None  # conversation (HH pair) of each interaction

    @property
    def thumbs_only(self) -> float:
        rated = self.explicit != 0
        return float((self.explicit[rated] > 0).mean()) if rated.any() else float("nan")


def simulate(
    rows: list[dict[str, Any]],
    *,
    model: SignalModel,
    with_signals: bool,
    judge_r2: float | None,
    waves: int,
    seed: int,
) -> Population:
    """Segments, explicit thumbs, implicit signals and the judge score for every interaction."""
    rng = np.random.default_rng(seed)
    n = len(rows)
    y = np.array([r["good"] for r in rows], dtype=float)
    bad = y == 0
    names = [t[0] for t in model.tiers]
    tier_idx = rng.choice(len(names), size=n, p=[t[1] for t in model.tiers])
    tier = np.array(names, dtype=object)[tier_idx]
    locale = rng.choice([v for v, _ in model.locales], size=n, p=[p for _, p in model.locales])
    factor = np.array([t[2] for t in model.tiers])[tier_idx]
    p_explicit = model.explicit_base * np.where(bad, model.explicit_bad_factor, 1.0) * factor
    rated = rng.random(n) < p_explicit
    down = rng.random(n) < np.where(bad, model.thumbs_down_if_bad, model.thumbs_down_if_good)
    explicit = np.where(rated, np.where(down, -1, 1), 0)
    signals: list[dict[str, float]] = [{} for _ in range(n)]
    events: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for i in range(n):
        if explicit[i]:
            kind = "thumbs_up" if explicit[i] > 0 else "thumbs_down"
            signals[i][kind] = 1.0
            events[i].append({"type": kind})
    if with_signals:
        for name in ("regenerate", "edit", "abandon", "follow_up", "copy"):
            good_p, bad_p = getattr(model, name)
            hit = rng.random(n) < np.where(bad, bad_p, good_p)
            ratio = rng.uniform(0.1, 0.7, n)
            for i in np.flatnonzero(hit):
                signals[i][name] = 1.0
                event: dict[str, Any] = {"type": name}
                if name == "edit":
                    signals[i]["edit_ratio"] = float(ratio[i])
                    event["value"] = float(ratio[i])
                events[i].append(event)
    judge = judge_bayes = None
    if judge_r2 is not None:
        a = judge_strength(judge_r2)
        s = a * (2 * y - 1) + rng.normal(size=n)
        # R² 0 (a = 0): a judge of pure noise, spread like a weak judge's scores.
        judge = 1 / (1 + np.exp(-(max(1.6 * a, 1.0) * s - 0.3)))
        judge_bayes = 1 / (1 + np.exp(-2 * a * s))
    for i, r in enumerate(rows):
        r["segment"] = {"tier": str(tier[i]), "locale": str(locale[i])}
    day = np.repeat(np.arange(waves), math.ceil(n / waves))[:n]
    day = day[rng.permutation(n)]
    return Population(
        rows=rows, y=y, tier=tier, day=day, signals=signals, events=events,
        explicit=explicit, judge=judge, judge_r2=judge_r2, judge_bayes=judge_bayes,
        pair=np.array([r["pair"] for r in rows]),
    )  # fmt: skip


# --- In-process statistical core -----------------------------------------------------------------
@dataclass
class RepResult:
    estimate: float
    ci_low: float
    ci_high: float
    n_labels: int
    proxy_r2: float | None = None
    lam: float | None = None


@dataclass
class ScenarioStats:
    name: str
    truth: float
    thumbs_only: float
    active: list[RepResult] = field(default_factory=list)
    uniform: list[RepResult] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self, results: list[RepResult]) -> dict[str, float]:
        est = np.array([r.estimate for r in results])
        low = np.array([r.ci_low for r in results])
        high = np.array([r.ci_high for r in results])
        reps = len(results)
        sd = float(est.std(ddof=1)) if reps > 1 else float("nan")
        cover = float(((low <= self.truth) & (self.truth <= high)).mean())
        return {
            "reps": reps,
            "mean_estimate": float(est.mean()),
            "bias": float(est.mean() - self.truth),
            "bias_se": sd / math.sqrt(reps),
            "sd": sd,
            "coverage": cover,
            "coverage_se": math.sqrt(cover * (1 - cover) / reps),
            "mean_width": float((high - low).mean()),
            "mean_labels": float(np.mean([r.n_labels for r in results])),
            "proxy_r2": float(np.mean([r.proxy_r2 for r in results if r.proxy_r2 is not None]))
            if any(r.proxy_r2 is not None for r in results)
            else float("nan"),
            "lam": float(np.mean([r.lam for r in results if r.lam is not None]))
            if any(r.lam is not None for r in results)
            else float("nan"),
        }


def feature_rows(pop: Population) -> list[tuple[Any, ...]]:
    """Rows in ``sampling.features.FEATURE_FIELDS`` order."""
    out = []
    for i, r in enumerate(pop.rows):
        scores = {JUDGE: float(pop.judge[i])} if pop.judge is not None else {}
        rating = int(pop.explicit[i]) if pop.explicit[i] else None
        out.append((r["messages"], r["response"], r["segment"], scores, pop.signals[i], rating))
    return out


def core_rep(
    pop: Population,
    feats: Any,
    *,
    mix: dict[str, float],
    budget: int,
    waves: int,
    nonresponse: float,
    rng: np.random.Generator,
    method: str,
    train: bool,
    kmeans: Any = None,
    oracle: bool = False,
    isotonic: bool = False,
) -> RepResult:
    """One repetition: ``waves`` runs, labels from the truth, proxy retrained after each wave."""
    from sampling import design, estimators
    from sampling import proxy as proxy_lib
    from sampling.proxy import _subset

    judge = JUDGE if pop.judge is not None else None
    model = proxy_lib.Proxy(kind="prior", judge=judge, kmeans=kmeans)
    calibrator = None
    f_rec, pi_rec, run_rec, sel, resp = [], [], [], [], []
    labelled: list[int] = []
    cluster_of = np.full(len(pop.y), -1)
    for wave in range(waves):
        idx = np.flatnonzero(pop.day == wave)
        sub = _subset(feats, idx)
        if oracle:
            f = pop.judge_bayes[idx]  # type: ignore[index]
        elif calibrator is not None:
            f = np.clip(calibrator.predict(pop.judge[idx]), 0.01, 0.99)  # type: ignore[index]
        else:
            f = model.predict(sub)
        clusters = model.clusters(sub)
        cluster_of[idx] = clusters
        counts = design.CoverageCounts(
            cluster_labels={int(c): int(k) for c, k in zip(*np.unique(
                cluster_of[labelled], return_counts=True), strict=True)} if labelled else {},
            total_labels=len(labelled),
        )  # fmt: skip
        pool = design.Pool(ids=idx, f=f, segments={"tier": pop.tier[idx]}, clusters=clusters)
        plan = design.plan(pool, weights=mix, n=budget / waves, counts=counts)
        draw = design.poisson_draw(plan.pi, rng)
        answered = draw.selected & (rng.random(len(idx)) >= nonresponse)
        f_rec.append(f)
        pi_rec.append(plan.pi)
        run_rec.append(np.full(len(idx), wave))
        sel.append(draw.selected)
        resp.append(answered)
        labelled.extend(idx[answered].tolist())
        if train and not oracle and wave < waves - 1:
            # sampling.proxy.train without its cross-validated metrics (the model is the same);
            # the topic clustering is fitted once per scenario on a pool sample.
            lab = np.array(labelled)
            if isotonic:
                # Comparison only (not the product's proxy): the judge calibrated alone.
                calibrator = proxy_lib._fit_calibrator(pop.judge[lab], pop.y[lab])  # type: ignore[index]
            else:
                model, _ = proxy_lib.train(
                    _subset(feats, lab), pop.y[lab], judge=judge, seed=wave,
                    with_metrics=False, groups=pop.pair[lab], clusters=False,
                )  # fmt: skip
                model.kmeans = kmeans
    f_all, pi_all = np.concatenate(f_rec), np.concatenate(pi_rec)
    runs, selected, answered = np.concatenate(run_rec), np.concatenate(sel), np.concatenate(resp)
    order = np.concatenate([np.flatnonzero(pop.day == w) for w in range(waves)])
    y_all = pop.y[order]
    pi_adj, _ = estimators.nonresponse_adjust(
        pi=pi_all[selected], responded=answered[selected], cell=runs[selected]
    )
    keep = answered[selected]
    e = estimators.estimate(
        y=y_all[selected][keep], f=f_all[selected][keep], pi=pi_adj[keep],
        population=len(y_all), f_total=float(f_all.sum()), method=method,
    )  # fmt: skip
    proxy_r2 = None
    if train:
        resid = float(np.mean((y_all - f_all) ** 2))
        proxy_r2 = 1 - resid / float(np.var(y_all))
    return RepResult(
        estimate=float(e.estimate), ci_low=float(e.ci_low), ci_high=float(e.ci_high),
        n_labels=e.n_labels, proxy_r2=proxy_r2, lam=e.lam,
    )  # fmt: skip


def run_core(args: argparse.Namespace) -> list[ScenarioStats]:
    from sampling.features import featurize
    from sampling.proxy import fit_clusters

    rows_all = load_hh(limit=args.pairs)
    out: list[ScenarioStats] = []
    for scenario in args.scenarios:
        t0 = time.perf_counter()
        with_signals = scenario != "text"
        judge_r2 = float(scenario[len("judge") :]) if scenario.startswith("judge") else None
        rows = [dict(r) for r in rows_all]
        pop = simulate(
            rows, model=SignalModel(), with_signals=with_signals, judge_r2=judge_r2,
            waves=args.waves, seed=args.seed,
        )  # fmt: skip
        feats = featurize(feature_rows(pop), judge=JUDGE if judge_r2 is not None else None)
        # Drop the columns that are zero for every interaction: the L2-penalised fit gives them
        # weight 0 anyway, so the model is the same and liblinear runs several times faster.
        used = np.unique(feats.matrix.indices)
        feats = replace(feats, matrix=feats.matrix[:, used])
        sample = np.random.default_rng(args.seed).choice(len(pop.y), size=2000, replace=False)
        kmeans = fit_clusters(feats.topic[np.sort(sample)], seed=args.seed)
        stats = ScenarioStats(name=scenario, truth=float(pop.y.mean()), thumbs_only=pop.thumbs_only)
        oracle = ScenarioStats(
            name=f"{scenario}-oracle", truth=stats.truth, thumbs_only=pop.thumbs_only
        )
        iso = ScenarioStats(
            name=f"{scenario}-isotonic", truth=stats.truth, thumbs_only=pop.thumbs_only
        )
        for rep in range(args.reps):
            rng = np.random.default_rng([args.seed, rep, 1])
            if not args.skip_product:
                stats.active.append(
                    core_rep(pop, feats, mix=ACTIVE_MIX, budget=args.budget, waves=args.waves,
                             nonresponse=args.nonresponse, rng=rng, method="ppi_pp", train=True,
                             kmeans=kmeans)
                )  # fmt: skip
            if args.oracle and pop.judge_bayes is not None:
                rng_o = np.random.default_rng([args.seed, rep, 1])
                oracle.active.append(
                    core_rep(pop, feats, mix=ACTIVE_MIX, budget=args.budget, waves=args.waves,
                             nonresponse=args.nonresponse, rng=rng_o, method="ppi_pp",
                             train=True, oracle=True)
                )  # fmt: skip
                iso.active.append(
                    core_rep(pop, feats, mix=ACTIVE_MIX, budget=args.budget, waves=args.waves,
                             nonresponse=args.nonresponse, rng=np.random.default_rng(
                                 [args.seed, rep, 1]), method="ppi_pp", train=True,
                             kmeans=kmeans, isotonic=True)
                )  # fmt: skip
            rng_u = np.random.default_rng([args.seed, rep, 2])
            stats.uniform.append(
                core_rep(pop, feats, mix=UNIFORM_MIX, budget=args.budget, waves=args.waves,
                         nonresponse=args.nonresponse, rng=rng_u, method="hajek", train=False)
            )  # fmt: skip
        stats.seconds = time.perf_counter() - t0
        if stats.active:
            out.append(stats)
            print_scenario(stats, path="core (in-process)")
        for extra in (oracle, iso):
            if extra.active:
                extra.uniform = stats.uniform
                out.append(extra)
                print_scenario(extra, path="core (in-process)")
    return out


# --- Report --------------------------------------------------------------------------------------
def saving(active: dict[str, float], uniform: dict[str, float]) -> float:
    """Labels saved at equal width: uniform needs (w_u / w_a)^2 times the labels for width w_a."""
    return 1 - (active["mean_width"] / uniform["mean_width"]) ** 2


def print_scenario(stats: ScenarioStats, *, path: str) -> None:
    a, u = stats.summary(stats.active), stats.summary(stats.uniform)
    print(f"\n[{path}] scenario {stats.name}: truth {stats.truth:.4f}, "
          f"thumbs-only {stats.thumbs_only:.4f} ({stats.seconds:.0f}s)")  # fmt: skip
    for name, s in (("active PPI++", a), ("uniform mean", u)):
        print(
            f"  {name:13s} reps {s['reps']:4d} mean {s['mean_estimate']:.4f} "
            f"bias {s['bias']:+.4f} (se {s['bias_se']:.4f}) coverage {s['coverage']:.3f} "
            f"(se {s['coverage_se']:.3f}) width {s['mean_width']:.4f} labels {s['mean_labels']:.0f}"
            + (
                f" proxy R2 {s['proxy_r2']:.3f} lam {s['lam']:.2f}"
                if name.startswith("act")
                else ""
            )
        )
    print(f"  label saving at equal width: {saving(a, u):+.1%}")


def results_table(results: list[ScenarioStats], *, path: str) -> str:
    lines = [
        f"| scenario ({path}) | truth | design | reps | mean est. | bias (se) | coverage (se) "
        "| mean width | proxy R² | saving at equal width | thumbs-only (bias) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for st in results:
        a, u = st.summary(st.active), st.summary(st.uniform)
        for label, s in (("active, PPI++", a), ("uniform, mean", u)):
            is_active = label.startswith("active")
            lines.append(
                f"| {st.name} | {st.truth:.3f} | {label} | {s['reps']} | {s['mean_estimate']:.4f} "
                f"| {s['bias']:+.4f} ({s['bias_se']:.4f}) | {s['coverage']:.3f} "
                f"({s['coverage_se']:.3f}) | {s['mean_width']:.4f} | "
                + (f"{s['proxy_r2']:.3f}" if is_active else "-")
                + " | "
                + (f"{saving(a, u):+.1%}" if is_active else "-")
                + " | "
                + (f"{st.thumbs_only:.3f} ({st.thumbs_only - st.truth:+.3f})" if is_active else "")
                + " |"
            )
    return "\n".join(lines)


# --- End to end through the HTTP API -------------------------------------------------------------
BINARY_SCHEMA = {
    "questions": [
        {"key": "acceptable", "type": "binary", "prompt": "Is the response acceptable?",
         "required": True},
    ],
    "target": {"question": "acceptable", "good": [True]},
}  # fmt: skip


class Api:
    """A tiny JSON client over urllib (no extra dependency)."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base.rstrip("/"), token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode(errors="replace")[:500]


def _django_setup(db_path: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.replay_settings"
    os.environ["REPLAY_DB"] = str(db_path)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("CELERY_BROKER_URL", None)
    import django

    django.setup()


def _start_server(port: int, db_path: Path, log: Path) -> Any:
    import subprocess

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.replay_settings",
               REPLAY_DB=str(db_path))  # fmt: skip
    for key in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(key, None)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", "--nothreading",
         f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _wait_up(api: Api, proc: Any) -> None:
    import urllib.error

    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError("server exited; see the log")
        try:
            api.call("GET", "/api/projects/")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def e2e_rep(api: Api, annotators: list[Api], pop: Population, *, slug: str, mix: dict[str, float],
            budget: int, waves: int, nonresponse: float, rng: np.random.Generator,
            method: str, judge_url: str | None = None) -> RepResult:  # fmt: skip
    """One repetition through the API: a fresh project, ``waves`` days of ingest + run + label.

    With ``judge_url`` the judge score is not ingested: a Flywheel judge configured through the
    API (the primary judge) scores each arrival against the stub at ``judge_url``."""
    ingest_scores = pop.judge is not None and judge_url is None
    status, body = api.call("POST", "/api/projects/", {
        "slug": slug, "name": slug, "label_schema": BINARY_SCHEMA,
        "segment_keys": ["tier", "locale"],
        **({"primary_judge": JUDGE} if ingest_scores else {}),
    })  # fmt: skip
    assert status == 201, (status, body)
    judge_id = None
    if judge_url is not None and pop.judge is not None:
        status, body = api.call("POST", f"/api/projects/{slug}/judges/", {
            "name": "replay", "base_url": judge_url, "model": "stub", "score_min": 0.0,
            "score_max": 1.0, "concurrency": 32, "batch_size": 500, "is_primary": True,
        })  # fmt: skip
        assert status == 201, (status, body)
        judge_id = body["id"]
    for user in annotators:  # members are added by the admin through the API
        status, body = api.call("POST", f"/api/projects/{slug}/members/",
                                {"username": user.username, "role": "annotator"})  # type: ignore[attr-defined]  # fmt: skip
        assert status in (200, 201), (status, body)
    truth_by_ext: dict[str, bool] = {}
    for wave in range(waves):
        idx = np.flatnonzero(pop.day == wave)
        batch = []
        for i in idx:
            r = pop.rows[i]
            ext = f"{slug}-{i}"
            truth_by_ext[ext] = bool(pop.y[i])
            batch.append({
                "external_id": ext, "conversation_id": f"{slug}-pair-{r['pair']}",
                "occurred_at": f"2026-11-{2 + wave:02d}T12:00:00Z", "model_version": "hh-rlhf",
                "messages": r["messages"], "response": r["response"], "segment": r["segment"],
                "scores": {JUDGE: float(pop.judge[i])} if ingest_scores else {},  # type: ignore[index]
                "events": pop.events[i],
            })  # fmt: skip
        for start in range(0, len(batch), 500):
            status, body = api.call("POST", f"/api/projects/{slug}/interactions/",
                                    batch[start : start + 500])  # fmt: skip
            assert status in (200, 201), (status, body)
            assert not body.get("rejected"), body
        status, strategy = api.call("POST", f"/api/projects/{slug}/strategies/", {
            "name": f"wave-{wave}", "weights": mix, "batch_size": budget // waves,
            "holdout_fraction": 0.0, "overlap_fraction": 0.0,
        })  # fmt: skip
        assert status == 201, (status, strategy)
        status, run = api.call("POST", f"/api/projects/{slug}/sampling-runs/",
                               {"strategy": strategy["id"]})  # fmt: skip
        assert status in (200, 201, 202), (status, run)
        for _ in range(600):
            status, run = api.call("GET", f"/api/projects/{slug}/sampling-runs/{run['id']}/")
            if run["status"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert run["status"] == "done", run
        turn = 0
        idle = 0
        while idle < len(annotators):
            who = annotators[turn % len(annotators)]
            turn += 1
            status, item = who.call("POST", f"/api/projects/{slug}/queue/next")
            if status == 204:
                idle += 1
                continue
            assert status == 200, (status, item)
            idle = 0
            if rng.random() < nonresponse:
                status, _ = who.call("POST", f"/api/assignments/{item['id']}/skip",
                                     {"reason": "replay non-response"})  # fmt: skip
                continue
            good = truth_by_ext[item["interaction"]["external_id"]]
            status, body = who.call("POST", f"/api/assignments/{item['id']}/submit",
                                    {"values": {"acceptable": good}})  # fmt: skip
            assert status == 201, (status, body)
    status, est = api.call("GET", f"/api/projects/{slug}/estimates/?method={method}")
    assert status == 200, (status, est)
    g = est["groups"][0]
    judge_r2 = None
    if judge_id is not None:
        status, trust = api.call("GET", f"/api/projects/{slug}/judges/{judge_id}/calibration/")
        assert status == 200, (status, trust)
        judge_r2 = trust["r2"]
        print(f"    judge: {trust['judged']} judged, {trust['unparseable']} unparseable, "
              f"{trust['failed']} failed; calibrated R² {trust['r2']:.3f} on "
              f"{trust['n_labels']} labels, weight {trust['weight']}, AUC {trust['auc']:.3f}",
              flush=True)  # fmt: skip
    return RepResult(estimate=g["estimate"], ci_low=g["ci_low"], ci_high=g["ci_high"],
                     n_labels=g["n_labels"], lam=g.get("lam"), proxy_r2=judge_r2)  # fmt: skip


def run_e2e(args: argparse.Namespace) -> list[ScenarioStats]:
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="replay-"))
    db_path = work / "replay.sqlite3"
    _django_setup(db_path)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("migrate", run_syncdb=True, verbosity=0)
    users = get_user_model()
    admin = users.objects.create_superuser("replay-admin", "a@example.com", "pw-replay-1234")
    admin_token = Token.objects.create(user=admin).key
    tokens = []
    for k in range(args.annotators):
        u = users.objects.create_user(f"replay-annotator-{k}", password="pw-replay-1234")
        tokens.append((u.username, Token.objects.create(user=u).key))
    from django.db import connections

    connections.close_all()
    port = args.port
    proc = _start_server(port, db_path, work / "server.log")
    base = f"http://127.0.0.1:{port}"
    api = Api(base, admin_token)
    annotators = []
    for username, key in tokens:
        a = Api(base, key)
        a.username = username  # type: ignore[attr-defined]
        annotators.append(a)
    out: list[ScenarioStats] = []
    stub = None
    if args.judge_server:
        from tests.judge_server import StubJudge

        stub = StubJudge(record=False).start()
    try:
        _wait_up(api, proc)
        rows_all = load_hh(limit=args.pairs)
        for scenario in args.scenarios:
            t0 = time.perf_counter()
            judge_r2 = float(scenario[len("judge") :]) if scenario.startswith("judge") else None
            pop = simulate([dict(r) for r in rows_all], model=SignalModel(),
                           with_signals=scenario != "text", judge_r2=judge_r2,
                           waves=args.waves, seed=args.seed)  # fmt: skip
            stats = ScenarioStats(name=scenario, truth=float(pop.y.mean()),
                                  thumbs_only=pop.thumbs_only)  # fmt: skip
            if stub is not None and pop.judge is not None:
                # The stub answers each judged response with its simulated score.
                stub.scores = {str(r["response"]).strip(): float(pop.judge[i])
                               for i, r in enumerate(pop.rows)}  # fmt: skip
                clashes = len(pop.rows) - len(stub.scores)
                print(f"  judge stub: {len(stub.scores)} distinct responses "
                      f"({clashes} repeated texts share one score)", flush=True)  # fmt: skip
            for rep in range(args.reps):
                for mix, method, bucket, tag in (
                    (ACTIVE_MIX, "ppi_pp", stats.active, "a"),
                    (UNIFORM_MIX, "hajek", stats.uniform, "u"),
                ):
                    rng = np.random.default_rng([args.seed, rep, 3])
                    slug = f"replay-{scenario}-{rep}-{tag}".replace(".", "")
                    bucket.append(e2e_rep(
                        api, annotators, pop, slug=slug,
                        mix=mix, budget=args.budget, waves=args.waves,
                        nonresponse=args.nonresponse, rng=rng, method=method,
                        judge_url=stub.url if stub is not None and tag == "a" else None,
                    ))  # fmt: skip
                print(f"  rep {rep}: active {stats.active[-1].estimate:.4f} "
                      f"[{stats.active[-1].ci_low:.4f}, {stats.active[-1].ci_high:.4f}] "
                      f"uniform {stats.uniform[-1].estimate:.4f}", flush=True)  # fmt: skip
            stats.seconds = time.perf_counter() - t0
            out.append(stats)
            print_scenario(stats, path="e2e (HTTP API)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if stub is not None:
            stub.stop()
    return out


# --- CLI -----------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", choices=["core", "e2e"])
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--budget", type=int, default=200, help="labels in all (expected)")
    parser.add_argument("--waves", type=int, default=2, help="days = sampling runs")
    parser.add_argument("--nonresponse", type=float, default=0.05, help="share skipped")
    parser.add_argument("--pairs", type=int, default=None, help="use only this many HH pairs")
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--annotators", type=int, default=3)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--scenarios", nargs="+", default=["text", "signals", "judge0.3", "judge0.5", "judge0.7"],
        help="text (hashed text only), signals (text + implicit signals), judge<R2>",
    )  # fmt: skip
    parser.add_argument(
        "--oracle", action="store_true",
        help="also run judge scenarios with f = the true P(good | judge) (oracle, no learning) "
        "and with f = the judge alone, isotonic-calibrated on the labels so far",
    )  # fmt: skip
    parser.add_argument(
        "--skip-product", action="store_true", help="only the --oracle comparison rows"
    )
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md table")
    parser.add_argument(
        "--judge-server", action="store_true",
        help="e2e: Flywheel's own judge scores the arrivals against a loopback stub (not ingested)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.path == "core":
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flywheel_site.settings")
        results = run_core(args)
    else:
        results = run_e2e(args)
    if args.markdown:
        print()
        print(results_table(results, path=args.path))


if __name__ == "__main__":
    main()
