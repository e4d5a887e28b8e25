"""Coverage of the estimates' 95% intervals on the issue-17 grid (prints a markdown table).

p in {0.5, 0.78, 0.95, 0.99} x n in {15, 30, 150, 1000} x a useless (strength 0) and a good
(strength 1.5) proxy, for every method, with the interval the API returns (``sampling.intervals``:
normal, or Clopper-Pearson on the effective n for small or extreme cells). Finite population of
``10 n`` items, Poisson samples with the sampler's default ``pi``; all methods are evaluated on the
same samples. ``--lam-df`` also shows PPI++ with a degrees-of-freedom correction for tuning
``lam`` on the same sample (variance x n/(n-2), t quantile on n-2).

    .venv/bin/python bench/coverage_grid.py --reps 1000 --big-reps 300
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flywheel_site.settings")

from sampling.simulations import (
    GRID_N,
    GRID_P,
    GRID_STRENGTHS,
    coverage_by_method,
)

METHODS = ("ppi_pp", "ppi", "hajek", "ht")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=1000, help="repetitions for n <= 150")
    parser.add_argument("--big-reps", type=int, default=300, help="repetitions for n = 1000")
    parser.add_argument("--lam-df", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    names = [*METHODS, *(["ppi_pp_df"] if args.lam_df else [])]
    print("| proxy | n | p | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    worst: dict[str, float] = dict.fromkeys(names, 1.0)
    for strength in GRID_STRENGTHS:
        for n in GRID_N:
            for p in GRID_P:
                reps = args.big_reps if n >= 1000 else args.reps
                found = coverage_by_method(
                    n=n, p=p, strength=strength, reps=reps, lam_df=args.lam_df
                )
                proxy = "useless" if strength == 0 else "good"
                cells = " | ".join(f"{found[m]:.3f}" for m in names)
                print(f"| {proxy} | {n} | {p} | {cells} |", flush=True)
                for m in names:
                    worst[m] = min(worst[m], found[m])
    print()
    print("worst: " + ", ".join(f"{m} {v:.3f}" for m, v in worst.items()))
    print(f"seconds: {time.perf_counter() - started:.0f}")


if __name__ == "__main__":
    main()
