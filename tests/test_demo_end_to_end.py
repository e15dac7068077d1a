"""The shipped demo split end to end with the real offline metrics (README command 1's job).

Acceptance: gt speaker similarity vs target is about 1 and clearly above swap-speaker; still-reference lip
motion is about 0; every metric is measured (not constant) with full coverage on the shipped media.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from idlora_bench.data.splits import load_split, validate_split


@pytest.fixture
def demo_results(demo_offline_results: pd.DataFrame) -> pd.DataFrame:
    """The session's local offline run of the three sanity methods on the demo (``conftest.demo_offline_results``)."""
    return demo_offline_results


def _values(results: pd.DataFrame, method: str, metric: str) -> pd.Series:
    rows = results[(results["method"] == method) & (results["metric"] == metric)]
    assert (rows["status"] == "ok").all(), rows[rows["status"] != "ok"][["pair_id", "reason"]].to_string()
    return rows.set_index("pair_id")["value"]


def test_demo_split_is_valid_and_decodable() -> None:
    split = load_split("demo")
    report = validate_split(split, decode_media=True)
    assert report.ok, report.problems
    assert len(split.pairs) >= 8 and report.counts["speakers"] >= 4
    assert report.counts["kinds"]["same-video"] >= 1 and report.counts["kinds"]["cross-video"] >= 1
    assert set(report.counts["kinds"]) == {"same-video", "cross-video"}
    total_bytes = sum(p.stat().st_size for p in (split.directory / "media").rglob("*") if p.is_file())
    assert total_bytes < 10 * 1024 * 1024


def test_every_metric_scores_every_pair(demo_results: pd.DataFrame) -> None:
    n_pairs = len(load_split("demo").pairs)
    assert len(demo_results) == 3 * 4 * n_pairs
    failed = demo_results[demo_results["status"] != "ok"]
    assert failed.empty, failed[["method", "pair_id", "metric", "reason"]].to_string()


def test_gt_speaker_similarity_is_one_and_above_swap_speaker(demo_results: pd.DataFrame) -> None:
    gt = _values(demo_results, "gt", "speaker_similarity")
    swap = _values(demo_results, "swap-speaker", "speaker_similarity")
    assert gt.min() > 0.999  # the target against itself
    assert swap.max() < gt.min() - 0.05
    assert gt.mean() - swap.mean() > 0.1


def test_gt_face_similarity_is_one_and_above_swap_speaker(demo_results: pd.DataFrame) -> None:
    gt = _values(demo_results, "gt", "face_similarity")
    swap = _values(demo_results, "swap-speaker", "face_similarity")
    assert gt.min() > 0.999 and swap.mean() < gt.mean() - 0.01


def test_still_reference_has_no_lip_motion_and_gt_has_some(demo_results: pd.DataFrame) -> None:
    still = _values(demo_results, "still-reference", "lip_motion")
    gt = _values(demo_results, "gt", "lip_motion")
    # a still frame re-encoded by H.264 leaves only landmark jitter: measured <= 0.15 vs >= 2.6 for targets
    assert still.max() < 0.25
    assert gt.min() > 10 * still.max()


def test_wer_orders_gt_below_floors(demo_results: pd.DataFrame) -> None:
    gt = _values(demo_results, "gt", "wer")
    swap = _values(demo_results, "swap-speaker", "wer")
    still = _values(demo_results, "still-reference", "wer")
    assert gt.mean() < swap.mean() and gt.mean() < still.mean()
    assert swap.mean() > 0.6  # another sentence entirely


def test_gt_targets_are_computed_once_for_all_methods(demo_results: pd.DataFrame) -> None:
    gt_hashes = set(demo_results.loc[demo_results["method"] == "gt", "generated_sha256"])
    swap_hashes = set(demo_results.loc[demo_results["method"] == "swap-speaker", "generated_sha256"])
    assert swap_hashes <= gt_hashes  # swap-speaker copies targets: their features came from the cache


def test_demo_table_marks_significance_where_the_data_say_so(demo_results: pd.DataFrame) -> None:
    from idlora_bench.report import render, tables

    table, comparisons = tables.main_table(demo_results, "gt", n_boot=2000)
    marks = {(row.label, metric): cell.mark for row in table.blocks[0].rows for metric, cell in row.cells.items()}
    assert marks[("swap-speaker", "speaker_similarity")] == "‡"  # every pair is another voice
    assert marks[("still-reference", "lip_motion")] == "‡"  # a still face
    assert marks[("swap-speaker", "lip_motion")] == ""  # both talk: no significant difference
    assert set(comparisons["family_size"]) == {8}
    assert "| demo | *gt* |" in render.to_markdown(table)
    assert r"\toprule" in render.to_latex(table) and "<table>" in render.to_html(table)


def test_validate_demo_then_one_changed_byte_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    import yaml

    from idlora_bench.cli import main

    assert main(["splits", "validate", "demo"]) == 0
    copy = tmp_path / "splits" / "demo-copy"
    shutil.copytree(load_split("demo").directory, copy)
    card = yaml.safe_load((copy / "card.yaml").read_text())
    card["name"] = "demo-copy"
    (copy / "card.yaml").write_text(yaml.safe_dump(card))
    monkeypatch.setenv("IDLORA_BENCH_SPLITS", str(tmp_path / "splits"))
    assert main(["splits", "validate", "demo-copy"]) == 0
    victim = sorted((copy / "media").glob("*.mp4"))[3]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["splits", "validate", "demo-copy"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert victim.name in err and "does not match" in err
