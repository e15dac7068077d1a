"""Time the paired statistics: 10 methods x 7 metrics x 120 pairs against a reference method, with 10,000
bootstrap resamples and 10,000 sign flips per comparison, Wilcoxon, effect sizes and Holm.

    .venv/bin/python scripts/bench_paired_stats.py [--methods 10] [--metrics 7] [--pairs 120] [--n-boot 10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from idlora_bench.report.paired_stats import compare_methods


def synthetic_results(methods: int, metrics: int, pairs: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    records = []
    for metric in range(metrics):
        direction = "higher" if metric % 2 == 0 else "lower"
        base = rng.normal(0.5, 0.1, pairs)
        for method in range(methods):
            values = base + rng.normal(0.02 * method, 0.05, pairs)
            for pair, value in enumerate(values):
                records.append({"split": "s", "metric": f"m{metric}", "direction": direction,
                                "method": f"method{method}", "pair_id": f"p{pair}", "status": "ok",
                                "value": float(value)})
    return pd.DataFrame(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", type=int, default=10)
    parser.add_argument("--metrics", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=120)
    parser.add_argument("--n-boot", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = synthetic_results(args.methods, args.metrics, args.pairs)
    timings = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        table = compare_methods(results, "method0", n_boot=args.n_boot, n_perm=args.n_boot)
        timings.append(time.perf_counter() - started)
    print(f"{len(table)} comparisons ({args.methods - 1} methods vs method0 x {args.metrics} metrics), "
          f"{args.pairs} pairs, {args.n_boot} bootstrap resamples + {args.n_boot} sign flips each")
    print(f"seconds: best {min(timings):.3f}, median {float(np.median(timings)):.3f} over {args.repeats} runs")


if __name__ == "__main__":
    main()
