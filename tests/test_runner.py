"""Runner: rows per pair x metric, resumability, failure rows, SIGKILL-safe resume (fake metric profile)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FAKE_PLUGIN, REPO_ROOT

from idlora_bench import runner
from idlora_bench.methods import METHODS
from idlora_bench.methods.base import Method
from idlora_bench.store.run_files import load_results


def _run(tmp_path: Path, method: str = "still-reference", name: str = "run") -> runner.RunOutcome:
    return runner.run(method, "synth", profile="fake", out_dir=tmp_path / name, cache_path=tmp_path / f"{name}.sqlite")


def test_one_row_per_pair_and_metric_with_provenance(synth_split: Path, tmp_path: Path) -> None:
    outcome = _run(tmp_path)
    assert len(outcome.results) == 6 * 2
    assert set(outcome.results["status"]) == {"ok"}
    assert set(outcome.results["metric"]) == {"audio_rms", "luma"}
    manifest = json.loads((outcome.run_dir / "manifest-fake.json").read_text())
    assert manifest["method"] == "still-reference" and manifest["profile"] == "fake"
    assert {m["name"] for m in manifest["metrics"]} == {"audio_rms.fake", "luma.fake"}
    assert len(manifest["split_pairs_sha256"]) == 64 and manifest["package_version"]
    on_disk = load_results(outcome.run_dir / "results-fake.jsonl")
    assert len(on_disk) == 12
    assert (outcome.run_dir / "results-fake.csv").is_file() and (outcome.run_dir / "summary-fake.csv").is_file()


def test_gt_scores_exactly_one_against_itself(synth_split: Path, tmp_path: Path) -> None:
    outcome = _run(tmp_path, "gt")
    rms = outcome.results[outcome.results["metric"] == "audio_rms"]["value"]
    assert rms.tolist() == pytest.approx([1.0] * 6, abs=1e-12)


def test_second_run_reuses_outputs_and_cache(synth_split: Path, tmp_path: Path) -> None:
    first = _run(tmp_path)
    assert first.counts["generated"] == 6 and first.counts["features_computed"] > 0
    second = _run(tmp_path)
    assert second.counts["generated"] == 0 and second.counts["reused"] == 6
    assert second.counts["features_computed"] == 0 and second.counts["files_decoded"] == 0
    pd.testing.assert_frame_equal(first.results, second.results)


def test_targets_shared_across_methods_are_computed_once(synth_split: Path, tmp_path: Path) -> None:
    cache = tmp_path / "shared.sqlite"
    first = runner.run("still-reference", "synth", profile="fake", out_dir=tmp_path / "a", cache_path=cache)
    # swap-speaker outputs are copies of targets, whose audio features the first run cached
    second = runner.run("swap-speaker", "synth", profile="fake", out_dir=tmp_path / "b", cache_path=cache)
    distinct_targets = 3
    assert first.counts["features_computed"] == 6 * 2 + distinct_targets  # 6 still videos x 2 metrics + targets
    copied_targets = second.results["generated_sha256"].nunique()
    assert copied_targets >= 2
    assert second.counts["features_computed"] == copied_targets  # only luma of the copied targets is new


def test_missing_and_corrupt_outputs_become_failure_rows(synth_split: Path, tmp_path: Path) -> None:
    made = _run(tmp_path, "gt")
    outputs = made.run_dir / "videos"
    (outputs / "p0-same-video.mp4").unlink()
    (outputs / "p1-same-video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video")
    scored = runner.score_outputs(outputs, "synth", profile="fake", out_dir=tmp_path / "scored",
                                  cache_path=tmp_path / "s.sqlite")
    rows = scored.results.set_index(["pair_id", "metric"])
    for metric in ("audio_rms", "luma"):
        missing = rows.loc[("p0-same-video", metric)]
        assert missing.status == "failed" and missing.reason.startswith("missing_output:")
        assert "p0-same-video.mp4" in missing.reason and pd.isna(missing.value)
        corrupt = rows.loc[("p1-same-video", metric)]
        assert corrupt.status == "failed" and corrupt.reason.startswith("decode_error:")
        assert "p1-same-video.mp4" in corrupt.reason
    ok = scored.results[~scored.results["pair_id"].isin(["p0-same-video", "p1-same-video"])]
    assert len(ok) == 8 and set(ok["status"]) == {"ok"}
    summary = scored.summary.set_index("metric")
    assert summary.loc["luma", "n_ok"] == 4 and summary.loc["luma", "coverage"] == pytest.approx(4 / 6)


def test_silent_output_is_a_failure_with_reason_not_zero(synth_split: Path, tmp_path: Path) -> None:
    import numpy as np

    from idlora_bench.data.media import write_mp4

    outputs = tmp_path / "silent"
    for pair_id in ("p0-same-video",):
        write_mp4(outputs / f"{pair_id}.mp4", np.zeros((10, 32, 32, 3), np.uint8), 25,
                  np.zeros(6400, np.float32), 16000)
    scored = runner.score_outputs(outputs, "synth", profile="fake", cache_path=tmp_path / "s.sqlite")
    row = scored.results.set_index(["pair_id", "metric"]).loc[("p0-same-video", "audio_rms")]
    assert row.status == "failed" and row.reason.startswith("no_speech:") and pd.isna(row.value)


class _Exploding(Method):
    name = "test-exploding"
    description = "fails on one pair"

    def generate(self, item, out_path, seed):  # type: ignore[no-untyped-def]
        if item.pair_id == "p2-cross-video":
            raise RuntimeError("model diverged")
        METHODS.get("gt")().generate(item, out_path, seed)


def test_generation_error_is_recorded_and_other_pairs_go_on(synth_split: Path, tmp_path: Path) -> None:
    if _Exploding.name not in METHODS:
        METHODS.register(_Exploding.name, _Exploding)
    outcome = _run(tmp_path, _Exploding.name)
    failed = outcome.results[outcome.results["status"] == "failed"]
    assert set(failed["pair_id"]) == {"p2-cross-video"}
    assert failed["reason"].str.contains("generation_error: RuntimeError: model diverged").all()
    assert (outcome.results["status"] == "ok").sum() == 10


def test_changed_method_config_in_same_folder_is_refused(synth_split: Path, tmp_path: Path) -> None:
    from idlora_bench.core.errors import ValidationError

    _run(tmp_path, "gt", name="shared")
    with pytest.raises(ValidationError, match="another method config or seed"):
        runner.run("gt", "synth", profile="fake", seed=1, out_dir=tmp_path / "shared",
                   cache_path=tmp_path / "shared.sqlite")


def _bench(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "idlora_bench.cli", *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_mid_run_then_resume_equals_uninterrupted(synth_split: Path, tmp_path: Path) -> None:
    env = dict(os.environ, IDLORA_BENCH_PLUGINS=str(FAKE_PLUGIN), FAKE_METRIC_SLEEP_S="0.15")
    args = ["run", "--method", "still-reference", "--split", "synth", "--profile", "fake"]
    reference = _bench([*args, "--out", str(tmp_path / "ref"), "--cache", str(tmp_path / "ref.sqlite")], env)
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()

    # The same videos for both runs (copied: an encoder may not give identical bytes twice), so the comparison
    # is about scoring, resumed after a kill, against scoring uninterrupted.
    shutil.copytree(tmp_path / "ref" / "videos", tmp_path / "killed" / "videos")
    cache = tmp_path / "killed.sqlite"
    killed = _bench([*args, "--out", str(tmp_path / "killed"), "--cache", str(cache)], env)
    deadline = time.time() + 120
    done_before_kill = 0
    while time.time() < deadline:  # wait until some (not all) features are cached, then SIGKILL
        if cache.exists():
            try:
                with sqlite3.connect(cache) as db:
                    done_before_kill = db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
            except sqlite3.OperationalError:
                done_before_kill = 0
        if done_before_kill >= 4:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "results-fake.jsonl").exists()

    resumed = _bench([*args, "--out", str(tmp_path / "killed"), "--cache", str(cache)], env)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    counts = json.loads((tmp_path / "killed" / "counts-fake.json").read_text())
    ref_counts = json.loads((tmp_path / "ref" / "counts-fake.json").read_text())
    assert counts["reused"] == 6  # the videos were there before the run started
    # finished work is not redone: what was cached before the kill is not computed again
    with sqlite3.connect(cache) as db:
        total = db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
    assert total == ref_counts["features_computed"]
    assert counts["features_computed"] == total - done_before_kill

    def rows(run: str) -> list[str]:
        lines = (tmp_path / run / "results-fake.jsonl").read_text().splitlines()
        return sorted(lines)

    assert rows("killed") == rows("ref")


def test_metrics_with_one_features_id_extract_once(synth_split: Path, tmp_path: Path) -> None:
    outcome = runner.run("still-reference", "synth", profile="fake-shared", out_dir=tmp_path / "r",
                         cache_path=tmp_path / "c.sqlite")
    # 6 generated files + 3 distinct targets, each extracted once for the two metrics
    assert outcome.counts["features_computed"] == 6 + 3
    rows = outcome.results.pivot_table(index="pair_id", columns="metric", values="value")
    assert np.allclose(rows["audio_rms_db"], 20 * np.log10(rows["audio_rms"]))


@pytest.mark.parametrize(("profile", "pull"), [
    ("standard", "bench models pull clap-htsat-unfused insightface-buffalo-l syncnet-v2 wavlm-ecapa-unispeech "
                 "whisper-large-v3"),
    ("paper", "bench models pull clap-htsat-unfused insightface-buffalo-l syncnet-v2 wavlm-ecapa-unispeech "
              "wavlm-large whisper-large-v3-hf"),
])
def test_missing_weights_fail_fast_naming_the_fix(synth_split: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], profile: str, pull: str) -> None:
    from idlora_bench.cli import main

    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(tmp_path / "empty-store"))
    out = tmp_path / "never"
    assert main(["run", "--method", "gt", "--split", "synth", "--profile", profile, "--out", str(out)]) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert pull in message
    assert "Nothing was generated or scored" in message and "bench models import DIR" in message
    assert not out.exists()


class _HalfLength(Method):
    name = "test-half-length"
    description = "the target cut to its first 4 of 10 frames (0.16 s of 0.40 s)"

    def generate(self, item, out_path, seed):  # type: ignore[no-untyped-def]
        from idlora_bench.data.media import decode, write_mp4

        target = decode(item.target_path)
        keep = 4
        samples = int(round(keep / target.fps * target.sample_rate))
        write_mp4(out_path, target.frames[:keep], target.fps, target.audio[:, :samples], target.sample_rate)


def test_an_output_under_half_its_target_fails_every_metric_as_too_short(synth_split: Path, tmp_path: Path) -> None:
    if _HalfLength.name not in METHODS:
        METHODS.register(_HalfLength.name, _HalfLength)
    outcome = runner.run(_HalfLength.name, "synth", profile="fake", out_dir=tmp_path / "half")
    results = outcome.results
    assert set(results["status"]) == {"failed"} and len(results) == 12  # 6 pairs x 2 metrics, none dropped
    assert results["reason"].str.fullmatch(r"too_short: 0\.16 s vs target 0\.40 s \(under 50% .*\)").all()
    assert results["value"].isna().all()
    assert {d["generated_duration_s"] for d in results["details"]} == {0.16}
    assert {d["target_duration_s"] for d in results["details"]} == {0.4}
    full = runner.run("gt", "synth", profile="fake", out_dir=tmp_path / "gt")  # full length: scored, durations kept
    assert set(full.results["status"]) == {"ok"}
    assert all(d["generated_duration_s"] == d["target_duration_s"] == 0.4 for d in full.results["details"])
