"""Paired statistics: each method vs a reference method on the same pairs, per metric (and split).

For one comparison, ``d_i = method_i - reference_i`` over the pairs both have (see the failure policies).

- mean difference with a paired bootstrap 95% CI (percentile, resampling pairs; ``n_boot`` resamples),
- sign-flip permutation test of the mean difference (two-sided; exact enumeration of all ``2^n`` sign
  patterns for ``n <= exact_max_n``, otherwise ``n_perm`` random flips with the ``(1 + k) / (1 + B)``
  estimator),
- the Wilcoxon signed-rank test (scipy, two-sided, zeros dropped),
- effect sizes: Cohen's d for paired data (``d_z = mean(d) / sd(d)``, ddof 1) and the matched-pairs
  rank-biserial correlation ``(W+ - W-) / (W+ + W-)``,
- Holm's step-down correction over the whole family of comparisons passed together (methods x metrics x
  splits); the family size is reported with every p-value.

Direction: ``better`` is True when the method beats the reference, i.e. ``mean(d) > 0`` for a
higher-is-better metric and ``mean(d) < 0`` for a lower-is-better one; effect sizes are signed so that
positive means better.

Failure policies (a pair that failed for a method counts as that method's failure):
- ``complete-case`` (default): only pairs scored for both methods; each method's coverage is reported
  beside the result so that a method cannot look better by failing on hard pairs unnoticed.
- ``worst-case``: a failed pair gets the worst value seen for that metric on that split across all
  methods compared (min for higher-is-better, max for lower-is-better); every pair counts.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

FailurePolicy = Literal["complete-case", "worst-case"]
FAILURE_POLICIES: tuple[str, ...] = ("complete-case", "worst-case")


@dataclass(frozen=True)
class Comparison:
    """One method vs the reference on one metric of one split."""

    split: str
    metric: str
    direction: str
    method: str
    reference: str
    n: int
    method_coverage: float
    reference_coverage: float
    mean_method: float
    mean_reference: float
    mean_diff: float
    ci_low: float
    ci_high: float
    p_permutation: float
    permutation_exact: bool
    p_wilcoxon: float
    cohens_dz: float
    rank_biserial: float
    better: bool
    p_holm: float = math.nan
    family_size: int = 0
    significant: bool = False


# ------------------------------------------------------------------------------------------ building blocks
def wilcoxon_p_value(diffs: np.ndarray) -> float:
    """scipy's two-sided Wilcoxon signed-rank p-value; 1.0 when every difference is zero."""
    diffs = np.asarray(diffs, np.float64)
    if len(diffs) == 0:
        return math.nan
    if np.all(diffs == 0):
        return 1.0
    return float(scipy_stats.wilcoxon(diffs, zero_method="wilcox", alternative="two-sided").pvalue)


def cohens_dz(diffs: np.ndarray) -> float:
    """``mean(d) / sd(d)`` (ddof 1); 0 when all differences are 0, +-inf when they are equal and non-zero."""
    diffs = np.asarray(diffs, np.float64)
    if len(diffs) < 2:
        return math.nan
    mean, sd = diffs.mean(), diffs.std(ddof=1)
    if sd == 0:
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return float(mean / sd)


def rank_biserial(diffs: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation ``(W+ - W-) / (W+ + W-)`` (zeros dropped, average ranks)."""
    diffs = np.asarray(diffs, np.float64)
    nonzero = diffs[diffs != 0]
    if len(nonzero) == 0:
        return 0.0
    ranks = scipy_stats.rankdata(np.abs(nonzero))
    positive, negative = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    return float((positive - negative) / (positive + negative))


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN entries are left out of the family and stay NaN)."""
    p_values = np.asarray(p_values, np.float64)
    adjusted = np.full_like(p_values, np.nan)
    valid = np.flatnonzero(~np.isnan(p_values))
    m = len(valid)
    if m == 0:
        return adjusted
    order = valid[np.argsort(p_values[valid], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


# ------------------------------------------------------------------------------------------ comparisons
def _aligned(values: pd.DataFrame, method: str, reference: str, direction: str,
             policy: FailurePolicy) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Per-pair values of ``method`` and ``reference`` (columns of ``values``, NaN = failed) under the policy."""
    a, r = values[method].to_numpy(np.float64), values[reference].to_numpy(np.float64)
    coverage_a, coverage_r = float(np.mean(~np.isnan(a))), float(np.mean(~np.isnan(r)))
    if policy == "complete-case":
        both = ~np.isnan(a) & ~np.isnan(r)
        return a[both], r[both], coverage_a, coverage_r
    if policy == "worst-case":
        everything = values.to_numpy(np.float64)
        if np.all(np.isnan(everything)):
            return np.array([]), np.array([]), coverage_a, coverage_r
        worst = np.nanmin(everything) if direction == "higher" else np.nanmax(everything)
        return np.nan_to_num(a, nan=worst), np.nan_to_num(r, nan=worst), coverage_a, coverage_r
    raise ValueError(f"unknown failure policy {policy!r}; choose from {FAILURE_POLICIES}")


def _value_table(rows: pd.DataFrame) -> pd.DataFrame:
    """pairs x methods, NaN where the sample failed or is missing."""
    ok = rows["value"].where(rows["status"] == "ok")
    return rows.assign(value=ok).pivot_table(index="pair_id", columns="method", values="value", dropna=False,
                                             aggfunc="first").reindex(sorted(set(rows["pair_id"])))


class _Plans:
    """Resampling plans shared by every comparison of the same length ``n`` (seeded by (seed, n)), so that
    all comparisons of a table run as a few matrix products."""

    def __init__(self, n_boot: int, n_perm: int, seed: int, exact_max_n: int) -> None:
        self.n_boot, self.n_perm, self.seed, self.exact_max_n = n_boot, n_perm, seed, exact_max_n
        self._counts: dict[int, np.ndarray] = {}
        self._signs: dict[int, np.ndarray] = {}

    def counts(self, n: int) -> np.ndarray:
        """(n_boot, n): how often each pair is drawn in each bootstrap resample."""
        if n not in self._counts:
            indices = np.random.default_rng([self.seed, n]).integers(0, n, size=(self.n_boot, n))
            flat = (np.arange(self.n_boot)[:, None] * n + indices).ravel()
            self._counts[n] = np.bincount(flat, minlength=self.n_boot * n).reshape(self.n_boot, n).astype(np.float64)
        return self._counts[n]

    def signs(self, n: int) -> tuple[np.ndarray, bool]:
        """(patterns, n) sign matrix: all 2^n patterns (exact) or n_perm random ones."""
        exact = n <= self.exact_max_n
        if n not in self._signs:
            if exact:
                self._signs[n] = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
            else:
                self._signs[n] = np.random.default_rng([self.seed, n, 1]).choice((-1.0, 1.0), size=(self.n_perm, n))
        return self._signs[n], exact


def _batched_tests(diffs: np.ndarray, plans: _Plans, level: float = 0.95) -> tuple[np.ndarray, ...]:
    """For a (n, C) matrix of paired differences: bootstrap CI bounds and sign-flip p-values of each column."""
    n = diffs.shape[0]
    boot_means = plans.counts(n) @ diffs / n  # (n_boot, C)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot_means, [alpha, 1.0 - alpha], axis=0)
    signs, exact = plans.signs(n)
    observed = np.abs(diffs.mean(axis=0))
    tolerance = 1e-12 * np.maximum(1.0, np.abs(diffs).max(axis=0))
    flipped = np.abs(signs @ diffs) / n  # (patterns, C)
    extreme = np.sum(flipped >= observed - tolerance, axis=0)
    p = extreme / len(signs) if exact else (1 + extreme) / (1 + len(signs))
    return low, high, p, exact


def compare_methods(results: pd.DataFrame, reference: str, *, policy: FailurePolicy = "complete-case",
                    n_boot: int = 10_000, n_perm: int = 10_000, seed: int = 0, alpha: float = 0.05,
                    exact_max_n: int = 12) -> pd.DataFrame:
    """Every method vs ``reference`` on every (split, metric); Holm over the whole family.

    ``results`` is the concatenation of per-pair result rows (columns split, metric, direction, method,
    pair_id, status, value). Returns one row per comparison (the fields of :class:`Comparison`).
    Comparisons of equal length share one bootstrap plan and one sign-flip plan (seeded by seed and n).
    """
    if reference not in set(results["method"]):
        known = ", ".join(sorted(set(results["method"])))
        raise ValueError(f"reference method {reference!r} is not among the results ({known})")
    plans = _Plans(n_boot, n_perm, seed, exact_max_n)
    pending: list[dict] = []
    for (split, metric), rows in results.groupby(["split", "metric"], sort=False):
        direction = rows["direction"].iloc[0]
        values = _value_table(rows)
        for method in [m for m in dict.fromkeys(rows["method"]) if m != reference]:
            a, r, coverage_a, coverage_r = _aligned(values, method, reference, direction, policy)
            pending.append({"split": split, "metric": metric, "direction": direction, "method": method,
                            "a": a, "r": r, "coverage_a": coverage_a, "coverage_r": coverage_r})
    by_length: dict[int, list[int]] = {}
    for index, item in enumerate(pending):
        by_length.setdefault(len(item["a"]), []).append(index)
    for n, members in by_length.items():
        if n == 0:
            for index in members:
                pending[index].update(low=math.nan, high=math.nan, p=math.nan, exact=True)
            continue
        diffs = np.stack([pending[i]["a"] - pending[i]["r"] for i in members], axis=1)
        low, high, p, exact = _batched_tests(diffs, plans)
        for column, index in enumerate(members):
            pending[index].update(low=float(low[column]), high=float(high[column]), p=float(p[column]), exact=exact)
    comparisons = []
    for item in pending:
        a, r = item["a"], item["r"]
        diffs, n = a - r, len(a)
        sign = 1.0 if item["direction"] == "higher" else -1.0
        mean_diff = float(diffs.mean()) if n else math.nan
        comparisons.append(Comparison(
            split=item["split"], metric=item["metric"], direction=item["direction"], method=item["method"],
            reference=reference, n=n, method_coverage=item["coverage_a"], reference_coverage=item["coverage_r"],
            mean_method=float(a.mean()) if n else math.nan, mean_reference=float(r.mean()) if n else math.nan,
            mean_diff=mean_diff, ci_low=item["low"], ci_high=item["high"], p_permutation=item["p"],
            permutation_exact=item["exact"], p_wilcoxon=wilcoxon_p_value(diffs), cohens_dz=sign * cohens_dz(diffs),
            rank_biserial=sign * rank_biserial(diffs), better=bool(n and sign * mean_diff > 0),
        ))
    frame = pd.DataFrame([asdict(c) for c in comparisons])
    if frame.empty:
        return frame
    frame["p_holm"] = holm(frame["p_permutation"].to_numpy())
    frame["family_size"] = int(frame["p_permutation"].notna().sum())
    frame["significant"] = frame["p_holm"] < alpha
    return frame
