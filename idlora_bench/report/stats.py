"""Per-method summaries of per-pair results: mean, 95% confidence interval and coverage per metric.

Coverage counts failures: ``n_ok / n_pairs``; the mean and CI are over the ok rows only, so a table must
show coverage beside the mean. The CI is Student's t interval of the mean (two-sided 95%); it is undefined
(NaN) with fewer than 2 ok rows. With ``cluster="speaker_id"`` it is instead the percentile interval of a
two-stage (clustered) bootstrap: resample speakers with replacement, then each drawn speaker's pairs with
replacement, so that pairs of one speaker are not counted as independent evidence. Paired comparisons between
methods live in :mod:`idlora_bench.report.paired_stats`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

CLUSTER_COLUMNS: dict[str, str] = {"speaker": "speaker_id"}
"""``--cluster`` choice -> the result column whose values form the clusters."""


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


def cluster_bootstrap_counts(clusters: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) draw counts of a two-stage bootstrap: per resample, draw ``S`` clusters with replacement from
    the ``S`` distinct labels of ``clusters`` (length n), then for each draw of a cluster with ``n_s`` members
    draw ``n_s`` of its members with replacement. A resample's mean is ``counts @ values / counts.sum(1)``."""
    clusters = np.asarray(clusters)
    labels, inverse = np.unique(clusters, return_inverse=True)
    n_clusters, n = len(labels), len(clusters)
    counts = np.zeros((n_boot, n), np.float64)
    if n == 0:
        return counts
    picks = rng.integers(0, n_clusters, size=(n_boot, n_clusters))
    flat = (np.arange(n_boot)[:, None] * n_clusters + picks).ravel()
    times = np.bincount(flat, minlength=n_boot * n_clusters).reshape(n_boot, n_clusters)  # draws per cluster
    for cluster in range(n_clusters):
        members = np.flatnonzero(inverse == cluster)
        draws = times[:, cluster] * len(members)
        counts[:, members] = rng.multinomial(draws, np.full(len(members), 1.0 / len(members)))
    return counts


def cluster_bootstrap_ci(values: np.ndarray, clusters: np.ndarray, n_boot: int = 10_000, seed: int = 0,
                         level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and the percentile interval of its two-stage cluster
    bootstrap (:func:`cluster_bootstrap_counts`, seeded by ``seed``); NaN bounds with fewer than 2 clusters."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(np.unique(clusters)) < 2:
        return mean, math.nan, math.nan
    counts = cluster_bootstrap_counts(clusters, n_boot, np.random.default_rng([seed, len(values), 3]))
    means = counts @ values / counts.sum(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(low), float(high)


def paired_t_p_value(diffs: np.ndarray) -> float:
    """Two-sided one-sample t-test of ``mean(diffs) = 0`` (paired t-test); with zero spread 0.0 when the
    differences are non-zero and 1.0 when they are all zero; NaN with fewer than 2 differences."""
    diffs = np.asarray(diffs, np.float64)
    if len(diffs) < 2:
        return math.nan
    sd = float(diffs.std(ddof=1))
    mean = float(diffs.mean())
    if sd <= 1e-12 * max(1.0, abs(mean)):
        return 1.0 if mean == 0 else 0.0
    t = mean / (sd / math.sqrt(len(diffs)))
    return float(2.0 * scipy_stats.t.sf(abs(t), len(diffs) - 1))


def summarise(results: pd.DataFrame, cluster: str | None = None, n_boot: int = 10_000,
              seed: int = 0) -> pd.DataFrame:
    """One row per (method, profile, metric): n_pairs, n_ok, coverage, mean, ci_low, ci_high, direction.

    ``cluster``: a column of ``results`` (e.g. ``speaker_id``) for the clustered bootstrap CI instead of the
    t interval. Rows that aggregate several seeds (column ``seed_sd``, see :mod:`idlora_bench.report.seeds`) add
    ``n_seeds`` and ``seed_sd`` (mean over pairs of the per-pair SD across seeds, NaN with one seed).
    """
    rows = []
    for (method, profile, metric), group in results.groupby(["method", "profile", "metric"], sort=False):
        ok_rows = group[group["status"] == "ok"]
        ok = ok_rows["value"].to_numpy(np.float64)
        if cluster is None:
            mean, low, high = mean_ci95(ok)
        else:
            mean, low, high = cluster_bootstrap_ci(ok, ok_rows[cluster].to_numpy(), n_boot, seed)
        row = {
            "method": method, "profile": profile, "metric": metric,
            "direction": group["direction"].iloc[0],
            "n_pairs": int(group["pair_id"].nunique()), "n_ok": len(ok),
            "coverage": len(ok) / max(1, group["pair_id"].nunique()),
            "mean": mean, "ci_low": low, "ci_high": high,
        }
        if "seed_sd" in group.columns:
            spread = ok_rows["seed_sd"].to_numpy(np.float64)
            row["n_seeds"] = int(group["n_seeds"].max())
            row["seed_sd"] = float(np.nanmean(spread)) if np.isfinite(spread).any() else math.nan
        rows.append(row)
    return pd.DataFrame(rows)
