"""Paired statistics: known answers computed by hand, scipy agreement, Holm worked example, direction."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from idlora_bench.report.paired_stats import (
    cohens_dz,
    compare_methods,
    holm,
    rank_biserial,
    wilcoxon_p_value,
)


# ---------------------------------------------------------------- plain per-comparison references (no batching)
def plain_bootstrap_ci(diffs: np.ndarray, indices: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean from explicit resample indices, one resample at a time."""
    means = [float(np.mean(diffs[row])) for row in indices]
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def plain_sign_flip(diffs: np.ndarray, signs: list[tuple[float, ...]] | np.ndarray, exact: bool) -> float:
    """Two-sided sign-flip p-value over the given sign patterns, one pattern at a time."""
    observed = abs(float(np.mean(diffs)))
    extreme = sum(abs(float(np.mean(np.asarray(pattern) * diffs))) >= observed - 1e-12 for pattern in signs)
    return extreme / len(signs) if exact else (1 + extreme) / (1 + len(signs))


def _one(diffs: np.ndarray, **options) -> dict:
    """compare_methods on one comparison whose differences are ``diffs`` (reference 0, method = diffs)."""
    data = _results("m", "higher", {"ref": [0.0] * len(diffs), "m": list(diffs)})
    [row] = compare_methods(data, "ref", **options).to_dict("records")
    return row


def test_bootstrap_ci_is_the_percentile_interval_of_the_seeded_plan_and_brackets_the_mean() -> None:
    diffs = np.random.default_rng(3).normal(0.5, 1.0, 40)
    row = _one(diffs, n_boot=4000, seed=7)
    plan = np.random.default_rng([7, 40]).integers(0, 40, size=(4000, 40))  # the documented plan: seed (seed, n)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(plain_bootstrap_ci(diffs, plan), abs=1e-12)
    assert row["ci_low"] < diffs.mean() < row["ci_high"]
    half_width = (row["ci_high"] - row["ci_low"]) / 2
    assert half_width == pytest.approx(1.96 * diffs.std(ddof=1) / np.sqrt(40), rel=0.2)
    assert _one(diffs, n_boot=4000, seed=7) == row  # seeded: the same numbers twice


def test_exact_sign_flip_by_enumeration() -> None:
    # +-1 +-2 +-3: sums 6, 4, 2, 0, 0, -2, -4, -6; |sum| >= 6 in 2 of 8 patterns
    row = _one(np.array([1.0, 2.0, 3.0]), n_boot=100)
    assert (row["p_permutation"], row["permutation_exact"]) == (0.25, True)
    # +-1 +-1 +-1 +-1 observed |sum| = 2 (three +, one -): |sum| >= 2 unless two + and two - (6 of 16)
    assert _one(np.array([1.0, 1.0, 1.0, -1.0]), n_boot=100)["p_permutation"] == 10 / 16


@pytest.mark.parametrize("n", [5, 8, 12])
def test_exact_sign_flip_matches_brute_force(n: int) -> None:
    diffs = np.random.default_rng(n).normal(0.3, 1.0, n)
    row = _one(diffs, n_boot=100)
    expected = plain_sign_flip(diffs, list(itertools.product((1.0, -1.0), repeat=n)), exact=True)
    assert row["permutation_exact"] and row["p_permutation"] == pytest.approx(expected)


def test_monte_carlo_sign_flip_above_the_exact_limit() -> None:
    diffs = np.random.default_rng(0).normal(0.0, 1.0, 30)
    row = _one(diffs, n_boot=100, n_perm=20_000, seed=1)
    assert not row["permutation_exact"] and 0 < row["p_permutation"] <= 1
    # agrees with the t-test for a normal sample of 30 within Monte Carlo error
    assert row["p_permutation"] == pytest.approx(scipy_stats.ttest_1samp(diffs, 0).pvalue, abs=0.03)
    assert _one(np.full(30, 1.0), n_boot=100, n_perm=999)["p_permutation"] == pytest.approx(1 / 1000)


def test_wilcoxon_matches_scipy_and_handles_all_zero() -> None:
    diffs = np.array([0.3, -0.1, 0.5, 0.2, 0.0, 0.7, -0.2, 0.4])
    assert wilcoxon_p_value(diffs) == scipy_stats.wilcoxon(diffs).pvalue
    assert wilcoxon_p_value(np.zeros(5)) == 1.0


def test_effect_sizes_known_values() -> None:
    assert cohens_dz(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.0)  # mean 2, sd 1
    assert cohens_dz(np.zeros(4)) == 0.0
    assert rank_biserial(np.array([1.0, 2.0, 3.0])) == 1.0
    assert rank_biserial(np.array([1.0, 2.0, -3.0])) == 0.0  # W+ = 1 + 2, W- = 3
    assert rank_biserial(np.array([-1.0, 2.0, 3.0, 0.0])) == pytest.approx((5 - 1) / 6)


def test_holm_worked_example() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04) = 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm(np.array([0.5, np.nan]))[1]) and holm(np.array([0.5, np.nan]))[0] == 0.5
    assert holm(np.array([0.6, 0.9]))[1] == 1.0 or holm(np.array([0.6, 0.9])).max() <= 1.0


def _results(metric: str, direction: str, values: dict[str, list[float | None]]) -> pd.DataFrame:
    rows = []
    for method, per_pair in values.items():
        for i, value in enumerate(per_pair):
            rows.append({"split": "s", "metric": metric, "direction": direction, "method": method,
                         "pair_id": f"p{i:03d}", "status": "ok" if value is not None else "failed", "value": value})
    return pd.DataFrame(rows)


def test_lower_is_better_flips_the_sign_of_better() -> None:
    wer = _results("wer", "lower", {"ref": [0.5, 0.6, 0.4, 0.5], "m": [0.2, 0.3, 0.1, 0.3]})
    [row] = compare_methods(wer, "ref", n_boot=200).to_dict("records")
    assert row["mean_diff"] == pytest.approx(-0.275) and row["better"]
    assert row["cohens_dz"] > 0 and row["rank_biserial"] == 1.0
    spk = _results("spk", "higher", {"ref": [0.5, 0.6, 0.4, 0.5], "m": [0.2, 0.3, 0.1, 0.3]})
    [row] = compare_methods(spk, "ref", n_boot=200).to_dict("records")
    assert not row["better"] and row["cohens_dz"] < 0 and row["rank_biserial"] == -1.0


def test_failure_policies() -> None:
    data = _results("spk", "higher", {"ref": [0.5, 0.6, 0.4, 0.5], "m": [0.9, None, 0.8, 0.7]})
    [complete] = compare_methods(data, "ref", n_boot=100).to_dict("records")
    assert complete["n"] == 3 and complete["method_coverage"] == 0.75
    assert complete["mean_diff"] == pytest.approx(np.mean([0.4, 0.4, 0.2]))
    [worst] = compare_methods(data, "ref", policy="worst-case", n_boot=100).to_dict("records")
    assert worst["n"] == 4  # the failed pair gets the worst value seen (0.4)
    assert worst["mean_diff"] == pytest.approx(np.mean([0.4, 0.4 - 0.6, 0.4, 0.2]))


def test_family_is_every_comparison_and_holm_applies_to_it() -> None:
    a = _results("spk", "higher", {"ref": [0.1] * 8, "m1": [0.9] * 8, "m2": [0.1, 0.2] * 4})
    b = _results("wer", "lower", {"ref": [0.5] * 8, "m1": [0.1] * 8, "m2": [0.5] * 8})
    table = compare_methods(pd.concat([a, b]), "ref", n_boot=100)
    assert len(table) == 4 and set(table["family_size"]) == {4}
    assert (table["p_holm"] >= table["p_permutation"]).all()
    m1 = table[table["method"] == "m1"]
    assert m1["significant"].all() and m1["permutation_exact"].all()
    assert m1["p_permutation"].tolist() == pytest.approx([2 / 256, 2 / 256])


def test_batched_comparisons_equal_a_plain_loop_over_comparisons() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(0.5, 0.1, 10)
    data = _results("spk", "higher", {"ref": list(ref), "m1": list(ref + rng.normal(0.05, 0.05, 10)),
                                       "m2": list(ref + rng.normal(-0.02, 0.05, 10))})
    table = compare_methods(data, "ref", n_boot=2000, seed=3)
    plan = np.random.default_rng([3, 10]).integers(0, 10, size=(2000, 10))
    patterns = list(itertools.product((1.0, -1.0), repeat=10))
    for row in table.to_dict("records"):
        values = data[data["method"] == row["method"]]["value"].to_numpy() - ref
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(plain_bootstrap_ci(values, plan), abs=1e-12)
        assert row["p_permutation"] == pytest.approx(plain_sign_flip(values, patterns, exact=True), abs=1e-12)
        assert row["p_wilcoxon"] == scipy_stats.wilcoxon(values).pvalue
