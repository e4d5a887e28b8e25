"""Always-valid monitoring by simulation: false alarms under daily peeking and days to detect.

Two versions, each with ``traffic`` interactions a day and a daily Poisson sampling run of
expected ``labels`` items (the sampler's default design: sqrt(f(1-f)) uncertainty with 20%
random), PPI++ over everything so far, one look a day for 90 days through
``sampling.simulations.monitoring_run`` (the same ``sampling.sequential.look`` and ``comparison``
that ``GET /monitoring/`` and the alert rules use). Columns: the share of repetitions where the
confidence sequence (CS) flagged a difference at any of the looks, the same for the fixed-sample
95% interval looked at daily, and with a true 5-point drop the median day the CS (and the fixed
interval) first flagged it, and the planning figure of the power report
(``sampling.sequential.days_to_detect``).

    .venv/bin/python bench/monitoring.py --reps 2000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flywheel_site.settings")

from sampling import sequential, simulations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--labels", type=float, nargs="*", default=[10.0, 20.0, 40.0])
    parser.add_argument("--traffic", type=int, default=100)
    parser.add_argument("--p", type=float, default=0.8)
    args = parser.parse_args()
    print(
        "| labels/day per version | false alarms, CS | false alarms, fixed interval looked at "
        "daily | 5-point drop: detected within 90 days | median days to detect, CS | median "
        "days, fixed (not valid) | planned days (power report) |"
    )
    print("|---|---|---|---|---|---|---|")
    for labels in args.labels:
        started = time.perf_counter()
        null = simulations.monitoring_run(
            days=args.days, labels_per_day=labels, traffic_per_day=args.traffic, p_base=args.p,
            reps=args.reps, seed=1,
        )  # fmt: skip
        drop = simulations.monitoring_run(
            days=args.days, labels_per_day=labels, traffic_per_day=args.traffic, p_base=args.p,
            delta=-0.05, reps=args.reps, seed=2,
        )  # fmt: skip
        planned = sequential.days_to_detect(
            p=args.p, delta=0.05, labels_per_day=2 * labels, design_effect=0.36,
            traffic_per_day=args.traffic,
        )  # fmt: skip
        took = time.perf_counter() - started
        print(
            f"| {labels:.0f} | {null.alarm_rate:.1%} | {null.fixed_alarm_rate:.1%} | "
            f"{drop.detected:.1%} | {drop.median_days_to_detect} | "
            f"{drop.fixed_median_days_to_detect} | {planned} |",
            flush=True,
        )
        print(f"<!-- {labels:.0f} labels/day: {took:.0f} s -->", file=sys.stderr)


if __name__ == "__main__":
    main()
