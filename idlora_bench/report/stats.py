"""Per-method summaries of per-pair results: mean, 95% confidence interval and coverage per metric.

Coverage counts failures: ``n_ok / n_pairs``; the mean and CI are over the ok rows only, so a table must
show coverage beside the mean. The CI is Student's t interval of the mean (two-sided 95%); it is undefined
(NaN) with fewer than 2 ok rows. Paired comparisons between methods live in the statistics of tables.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats


def mean_ci95(values: np.ndarray) -> tuple[float, float, float]:
    """``(mean, low, high)`` with Student's t 95% interval; NaN bounds when ``len(values) < 2``."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    sem = float(values.std(ddof=1) / math.sqrt(len(values)))
    half = float(scipy_stats.t.ppf(0.975, len(values) - 1)) * sem
    return mean, mean - half, mean + half


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, profile, metric): n_pairs, n_ok, coverage, mean, ci_low, ci_high, direction."""
    rows = []
    for (method, profile, metric), group in results.groupby(["method", "profile", "metric"], sort=False):
        ok = group.loc[group["status"] == "ok", "value"].to_numpy(np.float64)
        mean, low, high = mean_ci95(ok)
        rows.append({
            "method": method, "profile": profile, "metric": metric,
            "direction": group["direction"].iloc[0],
            "n_pairs": int(group["pair_id"].nunique()), "n_ok": len(ok),
            "coverage": len(ok) / max(1, group["pair_id"].nunique()),
            "mean": mean, "ci_low": low, "ci_high": high,
        })
    return pd.DataFrame(rows)
