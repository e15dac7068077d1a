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

Clustered option (``cluster="speaker_id"``, ``bench table --cluster speaker``): pairs of one speaker share a voice
and a face, so they are not independent. The bootstrap then resamples speakers with replacement and, within each
drawn speaker, its pairs with replacement (two-stage, :func:`~idlora_bench.report.stats.cluster_bootstrap_counts`;
a resample's mean weighs every drawn pair equally), and the sign-flip test flips the differences of a whole speaker
together (exact over all ``2^S`` patterns for ``S <= exact_max_n`` speakers). Wilcoxon and the effect sizes stay
pair-level. ``n_clusters`` is reported with each comparison.

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

from idlora_bench.report.stats import cluster_bootstrap_counts

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
    n_clusters: int = 0
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
             policy: FailurePolicy) -> tuple[np.ndarray, np.ndarray, float, float, np.ndarray]:
    """Per-pair values of ``method`` and ``reference`` (columns of ``values``, NaN = failed) under the policy,
    their coverages and the mask of the pairs (rows of ``values``) kept."""
    a, r = values[method].to_numpy(np.float64), values[reference].to_numpy(np.float64)
    coverage_a, coverage_r = float(np.mean(~np.isnan(a))), float(np.mean(~np.isnan(r)))
    if policy == "complete-case":
        both = ~np.isnan(a) & ~np.isnan(r)
        return a[both], r[both], coverage_a, coverage_r, both
    if policy == "worst-case":
        everything = values.to_numpy(np.float64)
        if np.all(np.isnan(everything)):
            return np.array([]), np.array([]), coverage_a, coverage_r, np.zeros(len(a), bool)
        worst = np.nanmin(everything) if direction == "higher" else np.nanmax(everything)
        return (np.nan_to_num(a, nan=worst), np.nan_to_num(r, nan=worst), coverage_a, coverage_r,
                np.ones(len(a), bool))
    raise ValueError(f"unknown failure policy {policy!r}; choose from {FAILURE_POLICIES}")


def _value_table(rows: pd.DataFrame) -> pd.DataFrame:
    """pairs x methods, NaN where the sample failed or is missing."""
    ok = rows["value"].where(rows["status"] == "ok")
    return rows.assign(value=ok).pivot_table(index="pair_id", columns="method", values="value", dropna=False,
                                             aggfunc="first").reindex(sorted(set(rows["pair_id"])))


def _cluster_labels(rows: pd.DataFrame, pair_ids: pd.Index, column: str) -> np.ndarray:
    """The cluster (e.g. speaker) of each pair of ``pair_ids``; a pair with two different labels is an error."""
    if column not in rows.columns:
        raise ValueError(f"clustered statistics need the column {column!r} in the results")
    labels = rows.groupby("pair_id")[column].agg(lambda s: s.dropna().unique().tolist())
    clashes = [pair for pair, found in labels.items() if len(found) > 1]
    if clashes:
        raise ValueError(f"pairs {clashes[:5]} carry different {column!r} values in different rows")
    return np.array([labels[pair][0] if labels[pair] else f"(no {column}) {pair}" for pair in pair_ids], dtype=object)


class _Plans:
    """Resampling plans shared by every comparison of the same length ``n`` (seeded by (seed, n)), so that
    all comparisons of a table run as a few matrix products. Clustered plans are keyed by the pairs' cluster
    structure (the tuple of cluster codes) and seeded by (seed, n, number of clusters, 2)."""

    def __init__(self, n_boot: int, n_perm: int, seed: int, exact_max_n: int) -> None:
        self.n_boot, self.n_perm, self.seed, self.exact_max_n = n_boot, n_perm, seed, exact_max_n
        self._counts: dict[object, np.ndarray] = {}
        self._signs: dict[object, np.ndarray] = {}

    def cluster_counts(self, codes: tuple[int, ...]) -> np.ndarray:
        """(n_boot, n) two-stage bootstrap counts: speakers with replacement, then their pairs."""
        if codes not in self._counts:
            rng = np.random.default_rng([self.seed, len(codes), len(set(codes)), 2])
            self._counts[codes] = cluster_bootstrap_counts(np.array(codes), self.n_boot, rng)
        return self._counts[codes]

    def cluster_signs(self, codes: tuple[int, ...]) -> tuple[np.ndarray, bool]:
        """(patterns, n) sign matrix flipping whole clusters: all 2^S patterns (exact) or n_perm random ones."""
        inverse = np.unique(np.array(codes), return_inverse=True)[1]
        n_clusters = int(inverse.max()) + 1 if len(codes) else 0
        exact = n_clusters <= self.exact_max_n
        if codes not in self._signs:
            if exact:
                per_cluster = np.array(list(itertools.product((1.0, -1.0), repeat=n_clusters)))
            else:
                rng = np.random.default_rng([self.seed, len(codes), n_clusters, 1])
                per_cluster = rng.choice((-1.0, 1.0), size=(self.n_perm, n_clusters))
            self._signs[codes] = per_cluster[:, inverse]
        return self._signs[codes], exact

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


def _batched_tests(diffs: np.ndarray, plans: _Plans, codes: tuple[int, ...] | None = None,
                   level: float = 0.95) -> tuple[np.ndarray, ...]:
    """For a (n, C) matrix of paired differences: bootstrap CI bounds and sign-flip p-values of each column
    (``codes``: the rows' cluster codes for the clustered bootstrap and cluster-wise sign flips)."""
    n = diffs.shape[0]
    if codes is None:
        boot_means = plans.counts(n) @ diffs / n  # (n_boot, C)
        signs, exact = plans.signs(n)
    else:
        counts = plans.cluster_counts(codes)
        boot_means = counts @ diffs / counts.sum(axis=1, keepdims=True)
        signs, exact = plans.cluster_signs(codes)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot_means, [alpha, 1.0 - alpha], axis=0)
    observed = np.abs(diffs.mean(axis=0))
    tolerance = 1e-12 * np.maximum(1.0, np.abs(diffs).max(axis=0))
    flipped = np.abs(signs @ diffs) / n  # (patterns, C)
    extreme = np.sum(flipped >= observed - tolerance, axis=0)
    p = extreme / len(signs) if exact else (1 + extreme) / (1 + len(signs))
    return low, high, p, exact


def compare_methods(results: pd.DataFrame, reference: str, *, policy: FailurePolicy = "complete-case",
                    n_boot: int = 10_000, n_perm: int = 10_000, seed: int = 0, alpha: float = 0.05,
                    exact_max_n: int = 12, cluster: str | None = None) -> pd.DataFrame:
    """Every method vs ``reference`` on every (split, metric); Holm over the whole family.

    ``results`` is the concatenation of per-pair result rows (columns split, metric, direction, method,
    pair_id, status, value). Returns one row per comparison (the fields of :class:`Comparison`).
    Comparisons of equal length share one bootstrap plan and one sign-flip plan (seeded by seed and n).
    ``cluster``: a column (e.g. ``speaker_id``) whose values are the clusters of the clustered bootstrap and of
    the cluster-wise sign flips (see the module docstring); None: pairs are resampled and flipped one by one.
    """
    if reference not in set(results["method"]):
        known = ", ".join(sorted(set(results["method"])))
        raise ValueError(f"reference method {reference!r} is not among the results ({known})")
    plans = _Plans(n_boot, n_perm, seed, exact_max_n)
    pending: list[dict] = []
    for (split, metric), rows in results.groupby(["split", "metric"], sort=False):
        direction = rows["direction"].iloc[0]
        values = _value_table(rows)
        labels = _cluster_labels(rows, values.index, cluster) if cluster else None
        for method in [m for m in dict.fromkeys(rows["method"]) if m != reference]:
            a, r, coverage_a, coverage_r, kept = _aligned(values, method, reference, direction, policy)
            codes = None
            if labels is not None:
                codes = tuple(int(c) for c in pd.factorize(labels[kept], sort=True)[0])
            pending.append({"split": split, "metric": metric, "direction": direction, "method": method,
                            "a": a, "r": r, "coverage_a": coverage_a, "coverage_r": coverage_r, "codes": codes})
    _run_batched(pending, plans)
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
            n_clusters=len(set(item["codes"])) if item["codes"] is not None else n,
        ))
    frame = pd.DataFrame([asdict(c) for c in comparisons])
    if frame.empty:
        return frame
    frame["p_holm"] = holm(frame["p_permutation"].to_numpy())
    frame["family_size"] = int(frame["p_permutation"].notna().sum())
    frame["significant"] = frame["p_holm"] < alpha
    return frame


def _run_batched(pending: list[dict], plans: _Plans) -> None:
    """Bootstrap CI and sign-flip p-value of every pending comparison (``low``, ``high``, ``p``, ``exact`` keys
    added), batching comparisons that share a plan: same length (pair-level) or same cluster structure."""
    groups: dict[object, list[int]] = {}
    for index, item in enumerate(pending):
        key = len(item["a"]) if item["codes"] is None else ("clusters", item["codes"])
        groups.setdefault(key, []).append(index)
    for key, members in groups.items():
        first = pending[members[0]]
        if len(first["a"]) == 0:
            for index in members:
                pending[index].update(low=math.nan, high=math.nan, p=math.nan, exact=True)
            continue
        diffs = np.stack([pending[i]["a"] - pending[i]["r"] for i in members], axis=1)
        low, high, p, exact = _batched_tests(diffs, plans, first["codes"])
        for column, index in enumerate(members):
            pending[index].update(low=float(low[column]), high=float(high[column]), p=float(p[column]), exact=exact)
