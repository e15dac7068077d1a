"""Comparison tables: ranking, significance marks, coverage, the four formats, Table 4 and 5 styles,
calibration, reported rows, and refusals (mixed profiles, smoke runs)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pandas as pd
import pytest

from idlora_bench import runner
from idlora_bench.cli import main
from idlora_bench.core.errors import ValidationError
from idlora_bench.report import render, tables


def _rows(values: dict[str, dict[str, list[float | None]]], split: str = "s") -> pd.DataFrame:
    """``values[metric][method]`` per-pair lists -> result rows (direction from the metric name)."""
    records = []
    for metric, per_method in values.items():
        direction = "lower" if metric in ("wer", "lse_d") else "higher"
        for method, per_pair in per_method.items():
            for i, value in enumerate(per_pair):
                records.append({"split": split, "metric": metric, "direction": direction, "method": method,
                                "pair_id": f"p{i}", "status": "ok" if value is not None else "failed",
                                "value": value})
    return pd.DataFrame(records)


@pytest.fixture
def results() -> pd.DataFrame:
    n = 8
    return _rows({
        "speaker_similarity": {"gt": [1.0] * n, "a": [0.6] * 4 + [0.7] * 4, "b": [0.5] * n,
                               "c": [0.9, 0.8, None, None, 0.85, 0.9, 0.8, 0.9]},
        "wer": {"gt": [0.05] * n, "a": [0.2] * n, "b": [0.1] * n, "c": [0.05] * n},
    })


def test_main_table_ranks_marks_and_coverage(results: pd.DataFrame) -> None:
    table, comparisons = tables.main_table(results, "gt", n_boot=500)
    [block] = table.blocks
    cells = {row.label: row.cells for row in block.rows}
    spk, wer = "speaker_similarity", "wer"
    # ranking among measured methods; gt is an anchor (the ceiling): never ranked, even as the reference
    assert cells["gt"][spk].rank is None and cells["c"][spk].rank == 1 and cells["a"][spk].rank == 2
    assert cells["b"][spk].rank is None
    assert cells["c"][wer].rank == 1 and cells["gt"][wer].rank is None and cells["b"][wer].rank == 2
    # a and b are worse than gt on every pair (p = 2/256 exact, x6 comparisons by Holm < 0.05): double dagger
    assert cells["a"][spk].mark == "‡" and cells["b"][wer].mark == "‡"
    assert cells["c"][wer].mark == ""  # identical to gt: no difference
    assert cells["c"][spk].coverage_note == "6/8" and cells["a"][spk].coverage_note == ""
    assert set(comparisons["family_size"]) == {6}
    markdown = render.to_markdown(table)
    assert "| *gt* | 1.000 |" in markdown and "**0.858** (6/8)" in markdown and "<u>0.650</u>‡" in markdown
    assert "(6/8)" in markdown and "Holm-corrected over 6 comparisons" in markdown


def test_better_methods_get_a_dagger() -> None:
    data = _rows({"wer": {"ref": [0.5] * 8, "m": [0.1] * 8}})
    table, _ = tables.main_table(data, "ref", n_boot=200)
    cells = {row.label: row.cells for row in table.blocks[0].rows}
    assert cells["m"]["wer"].mark == "†" and cells["m"]["wer"].rank == 1


DISPLAY = {"speaker_similarity": tables.MetricDisplay("Spk Sim", 3, "higher"),
           "wer": tables.MetricDisplay("WER", 3, "lower")}


def test_every_format_renders(results: pd.DataFrame, tmp_path: Path) -> None:
    table, _ = tables.main_table(results, "gt", display=DISPLAY, n_boot=200)
    paths = render.write_all(table, tmp_path, "t")
    assert [p.suffix for p in paths] == [".md", ".tex", ".csv", ".html"]
    latex = (tmp_path / "t.tex").read_text()
    assert r"\toprule" in latex and r"\bottomrule" in latex and r"\textbf{0.858}" in latex
    assert r"$^\ddagger$" in latex and r"Spk Sim $\uparrow$" in latex and r"WER $\downarrow$" in latex
    html = (tmp_path / "t.html").read_text()
    ElementTree.fromstring(html.split("<ul>")[0])  # the table is well-formed markup
    assert "<b>0.858</b>" in html and "<i>gt</i>" in html
    csv = pd.read_csv(tmp_path / "t.csv")
    row = csv[(csv["row"] == "c") & (csv["metric"] == "speaker_similarity")].iloc[0]
    assert row["value"] == pytest.approx((0.9 + 0.8 + 0.85 + 0.9 + 0.8 + 0.9) / 6) and row["n_ok"] == 6


def test_lip_motion_table_uses_each_methods_top_share() -> None:
    face = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    lip = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    data = _rows({"face_similarity": {"m": face}, "lip_motion": {"m": lip}})
    table = tables.lip_motion_table(data, top_fraction=0.3)
    cell = table.blocks[0].rows[0].cells
    assert cell["face_similarity"].value == pytest.approx(0.8) and cell["lip_motion"].value == pytest.approx(2.0)


def test_calibration_places_methods_between_anchors() -> None:
    data = _rows({"speaker_similarity": {"gt": [1.0] * 4, "swap-speaker": [0.2] * 4, "m": [0.6] * 4},
                  "wer": {"gt": [0.1] * 4, "swap-speaker": [1.0] * 4, "m": [0.55] * 4}})
    table = tables.calibration_table(data)
    cells = {row.label: row.cells for row in table.blocks[0].rows}
    assert cells["m"]["speaker_similarity"].value == pytest.approx(0.5)
    assert cells["m"]["wer"].value == pytest.approx(0.5)  # lower is better: the anchors' order handles it
    assert cells["gt"]["wer"].value == pytest.approx(1.0)


def _synth_runs(tmp_path: Path) -> list[Path]:
    cache = tmp_path / "cache.sqlite"
    return [runner.run(m, "synth", profile="fake", out_dir=tmp_path / m, cache_path=cache).run_dir
            for m in ("gt", "still-reference", "swap-speaker")]


def test_bench_table_writes_all_formats_and_plots(synth_split: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    runs = _synth_runs(tmp_path)
    out = tmp_path / "tables"
    assert main(["table", *map(str, runs), "--against", "gt", "--out", str(out), "--plots", "--n-boot", "500"]) == 0
    printed = capsys.readouterr().out
    assert "| synth | *gt* |" in printed and "still-reference" in printed
    for name in ("table.md", "table.tex", "table.csv", "table.html", "comparisons.csv", "calibration.md",
                 "forest.png", "forest.svg", "distributions.png", "distributions.svg"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert set(comparisons["method"]) == {"still-reference", "swap-speaker"}
    assert set(comparisons["reference"]) == {"gt"}


def test_mixed_profiles_smoke_runs_and_reported_rows_are_refused(synth_split: Path, tmp_path: Path) -> None:
    gt, still, _ = _synth_runs(tmp_path)
    other = runner.run("swap-speaker", "synth", profile="fake-shared", out_dir=tmp_path / "other",
                       cache_path=tmp_path / "c2.sqlite").run_dir
    with pytest.raises(ValidationError, match="different metric profiles"):
        tables.load_runs([gt, other])
    manifest = gt / "manifest-fake.json"
    data = json.loads(manifest.read_text())
    data["smoke"] = True
    manifest.write_text(json.dumps(data))
    with pytest.raises(ValidationError, match="smoke configuration"):
        tables.load_runs([gt, still])
    assert len(tables.load_runs([gt, still], allow_smoke=True).manifests) == 2
    assert main(["table", str(still), "--reported", "table1", "--out", str(tmp_path / "t")]) == 2


def test_reported_rows_appear_marked_and_unranked() -> None:
    measured = _rows({"speaker_similarity": {"gt": [1.0] * 4, "m": [0.5] * 4}}, split="celebvhq-hard")
    table, _ = tables.main_table(measured, "gt", reported=tables.load_reported("table1"), n_boot=100)
    labels = {row.label: row for row in table.blocks[0].rows}
    reported = labels["ID-LoRA (reported; idlora two_stage=true)"]  # paper name; the bench method reproducing it
    assert reported.kind == "reported" and reported.cells["speaker_similarity"].value == 0.477
    assert reported.cells["speaker_similarity"].rank is None
    assert labels["CosyVoice 3.0 + WAN2.2 (reported; cosyvoice3+wan2.2)"].kind == "reported"
    assert "*ID-LoRA (reported; idlora two_stage=true)*" in render.to_markdown(table)
    smoke_table, _ = tables.main_table(measured, "gt", n_boot=100, smoke={"m"})
    assert [row.label for row in smoke_table.blocks[0].rows] == ["gt", "m (smoke)"]
    assert any("(smoke)" in note for note in smoke_table.notes)


def test_sweep_table_orders_runs_by_the_parameter(synth_split: Path, tmp_path: Path) -> None:
    runs = _synth_runs(tmp_path)
    for scale, run in zip((8, 2, 4), runs):
        manifest = run / "manifest-fake.json"
        data = json.loads(manifest.read_text())
        data["method_config"]["identity_scale"] = scale
        manifest.write_text(json.dumps(data))
    table = tables.sweep_table(tables.load_runs(runs), "identity_scale")
    assert [row.label for row in table.blocks[0].rows] == [f"identity_scale = {v}" for v in (2, 4, 8)]
    with pytest.raises(ValidationError, match="no parameter 'cfg'"):
        tables.sweep_table(tables.load_runs(runs), "cfg")
    assert not math.isnan(table.blocks[0].rows[0].cells["luma"].value)
