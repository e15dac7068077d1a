"""Statistics a careful reader expects: several seeds per method (mean per pair, seed-to-seed spread), the
speaker-clustered bootstrap and sign flips (``--cluster speaker``), and calibration cells that are ``n/a`` when the
anchors do not separate on a metric."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from idlora_bench import runner
from idlora_bench.cli import main
from idlora_bench.core.errors import ValidationError
from idlora_bench.report import render, tables
from idlora_bench.report.paired_stats import compare_methods
from idlora_bench.report.seeds import aggregate_seeds, seed_spread
from idlora_bench.report.stats import (
    cluster_bootstrap_ci,
    cluster_bootstrap_counts,
    mean_ci95,
    paired_t_p_value,
    summarise,
)


def _rows(values: dict[str, dict[str, list[float | None]]], *, speakers: list[str] | None = None, seed: int = 0,
          split: str = "s") -> pd.DataFrame:
    """``values[metric][method]`` per-pair lists -> result rows; ``speakers[i]`` is pair i's speaker."""
    records = []
    for metric, per_method in values.items():
        for method, per_pair in per_method.items():
            for i, value in enumerate(per_pair):
                records.append({"split": split, "metric": metric, "direction": "higher", "method": method,
                                "profile": "p", "pair_id": f"p{i:02d}",
                                "speaker_id": speakers[i] if speakers else f"spk{i}", "seed": seed,
                                "status": "ok" if value is not None else "failed", "value": value,
                                "reason": None if value is not None else f"no_face: seed {seed}"})
    return pd.DataFrame(records)


# ------------------------------------------------------------------------------------------ seeds
def test_seeds_average_per_pair_with_their_spread() -> None:
    seed0 = _rows({"m": {"a": [0.5, 0.6, None, None]}}, seed=0)
    seed1 = _rows({"m": {"a": [0.7, 0.6, 0.9, None]}}, seed=1)
    seed2 = _rows({"m": {"a": [0.9, 0.6, None, None]}}, seed=2)
    out = aggregate_seeds(pd.concat([seed1, seed0, seed2])).set_index("pair_id")
    assert out.loc["p00", "value"] == pytest.approx(0.7) and out.loc["p00", "seed_sd"] == pytest.approx(0.2)
    assert out.loc["p01", "seed_sd"] == pytest.approx(0.0)
    assert out.loc["p02", "status"] == "ok" and out.loc["p02", "value"] == pytest.approx(0.9)
    assert out.loc["p02", "n_seeds_ok"] == 1 and math.isnan(out.loc["p02", "seed_sd"])  # one ok seed: no spread
    assert out.loc["p03", "status"] == "failed" and math.isnan(out.loc["p03", "value"])  # failed for every seed
    assert out.loc["p03", "reason"] == "no_face: seed 0 | no_face: seed 1 | no_face: seed 2"
    assert (out["n_seeds"] == 3).all() and out.loc["p00", "seeds"] == "0,1,2"
    assert list(out.index) == ["p00", "p01", "p02", "p03"]
    [spread] = seed_spread(out.reset_index()).to_dict("records")
    assert spread["n_seeds"] == 3 and spread["seed_sd"] == pytest.approx(np.mean([0.2, 0.0]))


def _synth_runs(tmp_path: Path, seeds: tuple[int, ...] = (0,)) -> list[Path]:
    cache = tmp_path / "cache.sqlite"
    runs = [runner.run(m, "synth", profile="fake", out_dir=tmp_path / m, cache_path=cache).run_dir
            for m in ("gt", "swap-speaker")]
    for seed in seeds:
        runs.append(runner.run("still-reference", "synth", profile="fake", seed=seed,
                               out_dir=tmp_path / f"still-{seed}", cache_path=cache).run_dir)
    return runs


def _shift_values(run: Path, metric: str, delta: float) -> None:
    path = run / "results-fake.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        if row["metric"] == metric and row["status"] == "ok":
            row["value"] += delta
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_load_runs_averages_seeds_and_the_table_shows_the_spread(synth_split: Path, tmp_path: Path) -> None:
    runs = _synth_runs(tmp_path, seeds=(0, 1))
    _shift_values(runs[-1], "luma", 2.0)  # seed 1's luma 2.0 above seed 0's on every pair
    loaded = tables.load_runs(runs)
    still = loaded.results[(loaded.results["method"] == "still-reference") & (loaded.results["metric"] == "luma")]
    per_seed = loaded.per_seed[(loaded.per_seed["method"] == "still-reference") & (loaded.per_seed["metric"] == "luma")]
    by_seed = per_seed.pivot(index="pair_id", columns="seed", values="value").loc[still["pair_id"]]
    assert len(still) == 6 and (still["n_seeds"] == 2).all() and list(by_seed.columns) == [0, 1]
    assert still["value"].to_numpy() == pytest.approx(by_seed.mean(axis=1).to_numpy())
    sd = np.abs(by_seed[1] - by_seed[0]).to_numpy() / math.sqrt(2.0)  # SD (ddof 1) of two values
    assert still["seed_sd"].to_numpy() == pytest.approx(sd) and sd.min() > 1.0
    table, _ = tables.main_table(loaded.results, "gt", display=loaded.display, n_boot=200)
    cell = {row.label: row.cells for row in table.blocks[0].rows}["still-reference"]["luma"]
    assert cell.n_seeds == 2 and cell.seed_sd == pytest.approx(sd.mean())
    assert cell.value == pytest.approx(by_seed.to_numpy().mean())
    markdown = render.to_markdown(table)
    assert f"±{sd.mean():.3f}" in markdown and "Methods with several seeds (2 seeds)" in markdown
    assert r"$\pm$" in render.to_latex(table)
    separate = tables.load_runs(runs, seeds="separate")
    assert {"still-reference (seed 0)", "still-reference (seed 1)", "gt"} <= set(separate.results["method"])
    with pytest.raises(ValidationError, match="method 'still-reference' seed 0 appears in more than one run"):
        tables.load_runs([*runs, runs[2]])


# ------------------------------------------------------------------------------------------ clusters
def test_cluster_bootstrap_draws_speakers_then_their_pairs() -> None:
    clusters = np.array(["a"] * 5 + ["b"] * 2 + ["c"] * 1)
    counts = cluster_bootstrap_counts(clusters, 4000, np.random.default_rng(0))
    assert counts.shape == (4000, 8)
    drawn = np.stack([counts[:, clusters == c].sum(axis=1) for c in "abc"], axis=1)
    sizes = np.array([5, 2, 1])
    times = drawn / sizes
    assert np.allclose(times, np.round(times))  # a drawn speaker contributes exactly its number of pairs
    assert (times.sum(axis=1) == 3).all()  # 3 speakers drawn per resample
    assert counts.mean(axis=0) == pytest.approx(np.ones(8), abs=0.08)  # every pair expected once


def test_clustered_ci_widens_with_speaker_effects_and_matches_pairs_without_them() -> None:
    rng = np.random.default_rng(1)
    speakers = np.repeat(np.arange(6), 8)
    effect = rng.normal(0.0, 1.0, 6)[speakers]  # strong per-speaker offsets
    values = effect + rng.normal(0.0, 0.1, len(speakers))
    _, t_low, t_high = mean_ci95(values)
    mean, low, high = cluster_bootstrap_ci(values, speakers, n_boot=4000, seed=0)
    assert mean == pytest.approx(values.mean()) and low < mean < high
    assert (high - low) > 2.0 * (t_high - t_low)  # 6 independent speakers, not 48 independent pairs
    singletons = np.arange(48)
    _, s_low, s_high = cluster_bootstrap_ci(values, singletons, n_boot=4000, seed=0)
    assert (s_high - s_low) == pytest.approx(t_high - t_low, rel=0.15)  # one pair per speaker: the pair bootstrap
    frame = _rows({"m": {"a": list(values)}}, speakers=[f"spk{s}" for s in speakers])
    [row] = summarise(frame, cluster="speaker_id", n_boot=4000).to_dict("records")
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=0.05)


def test_cluster_sign_flip_flips_whole_speakers() -> None:
    speakers = ["s0", "s0", "s0", "s1", "s1", "s2", "s3", "s3"]
    data = _rows({"m": {"ref": [0.0] * 8, "a": [1.0, 2.0, 1.5, 0.5, 1.0, 2.0, 0.7, 0.9]}}, speakers=speakers)
    [pairs] = compare_methods(data, "ref", n_boot=500).to_dict("records")
    [clustered] = compare_methods(data, "ref", n_boot=500, cluster="speaker_id").to_dict("records")
    assert pairs["p_permutation"] == 2 / 256  # all 8 differences positive: pair-level exact test
    assert clustered["p_permutation"] == 2 / 16 and clustered["permutation_exact"]  # 4 speakers: 2^4 patterns
    assert clustered["n_clusters"] == 4 and pairs["n_clusters"] == 8
    assert clustered["ci_high"] - clustered["ci_low"] > pairs["ci_high"] - pairs["ci_low"]
    with pytest.raises(ValueError, match="different 'speaker_id' values"):
        bad = data.copy()
        bad.loc[(bad["method"] == "a") & (bad["pair_id"] == "p00"), "speaker_id"] = "other"
        compare_methods(bad, "ref", n_boot=100, cluster="speaker_id")


def test_bench_table_cluster_speaker_is_stated_under_the_table(synth_split: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    runs = _synth_runs(tmp_path)
    out = tmp_path / "tables"
    assert main(["table", *map(str, runs), "--out", str(out), "--n-boot", "300", "--cluster", "speaker",
                 "--format", "md,csv"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "speaker-clustered bootstrap, 300 resamples" in printed and "sign-flip permutation test over speakers" in printed
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert set(comparisons["n_clusters"]) == {3}  # the synthetic split's 3 speakers
    assert main(["table", *map(str, runs), "--out", str(tmp_path / "t2"), "--n-boot", "300", "--format", "md"]) == 0
    assert "bootstrap over pairs" in " ".join(capsys.readouterr().out.split())


# ------------------------------------------------------------------------------------------ calibration
def test_paired_t_p_value_agrees_with_scipy_and_handles_zero_spread() -> None:
    diffs = np.array([0.3, -0.1, 0.5, 0.2, 0.0, 0.7, -0.2, 0.4])
    assert paired_t_p_value(diffs) == pytest.approx(scipy_stats.ttest_1samp(diffs, 0.0).pvalue)
    assert paired_t_p_value(np.full(4, 0.8)) == 0.0 and paired_t_p_value(np.zeros(4)) == 1.0
    assert math.isnan(paired_t_p_value(np.array([1.0])))


def test_calibration_is_na_where_the_anchors_do_not_separate() -> None:
    # like lip motion on the demo: swap-speaker's targets are gt's targets in another order (both talk), so
    # (still - swap) / (gt - swap) divides by a difference that is noise
    gt_lip = [3.1, 4.0, 2.7, 5.2, 3.3, 4.4, 2.9, 3.8]
    swap_lip = [4.0, 3.1, 5.2, 2.7, 4.4, 3.3, 3.8, 2.95]
    data = _rows({"lip_motion": {"gt": gt_lip, "swap-speaker": swap_lip, "still-reference": [0.1] * 8},
                  "speaker_similarity": {"gt": [1.0] * 8, "swap-speaker": [0.3, 0.4] * 4, "still-reference":
                                         [0.9, 0.8] * 4}})
    table = tables.calibration_table(data)
    cells = {row.label: row.cells for row in table.blocks[0].rows}
    assert cells["still-reference"]["lip_motion"].value is None
    assert cells["still-reference"]["lip_motion"].missing == "n/a"
    assert cells["still-reference"]["speaker_similarity"].value == pytest.approx((0.85 - 0.35) / (1.0 - 0.35))
    markdown = render.to_markdown(table)
    assert "| still-reference | 0.77 | n/a |" in markdown or "| still-reference | n/a | 0.77 |" in markdown
    assert "n/a: gt and swap-speaker are not significantly different" in markdown
    separation = tables.anchor_separation(data, "swap-speaker", "gt").set_index("metric")
    assert not separation.loc["lip_motion", "separated"] and separation.loc["speaker_similarity", "separated"]
    assert render.to_csv(table).count("n/a") == 3  # the note column of the lip-motion cells
