"""`bench run --method idlora --model tiny-random --split demo`: a valid mp4 with audio for every pair, the run
marked smoke and refused by comparison tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idlora_bench.cli import main
from idlora_bench.data.media import decode
from idlora_bench.data.splits import load_split


def test_tiny_random_idlora_on_the_demo_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    assert main(["run", "--method", "idlora", "--model", "tiny-random", "--split", "demo",
                 "--runs-root", str(runs), "--metrics", "wer"]) == 0
    run_dir = runs / "demo" / "idlora-seed0"
    pairs = load_split("demo").pairs
    for pair in pairs:
        media = decode(run_dir / "videos" / f"{pair.pair_id}.mp4")  # raises if not a valid file with both streams
        assert media.num_frames > 0 and media.audio is not None and media.audio.shape[-1] > 0
        record = json.loads((run_dir / "videos" / f"{pair.pair_id}.json").read_text())
        assert record["status"] == "ok"
    manifest = json.loads((run_dir / "manifest-offline.json").read_text())
    assert manifest["smoke"] is True and manifest["method_config"]["model"] == "tiny-random"
    capsys.readouterr()
    assert main(["table", str(run_dir), "--out", str(tmp_path / "t")]) == 2
    assert "smoke configuration" in " ".join(capsys.readouterr().err.split())


def test_unknown_method_option_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--method", "gt", "--split", "demo", "--option", "novalue"]) == 2
    assert "--option takes KEY=VALUE" in capsys.readouterr().err


def test_tiny_random_two_stage_idlora_on_the_demo_split_encodes_each_prompt_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reference_impl.idlora.pipeline import IDLoRAPipeline
    from reference_impl.idlora.prompts import DEFAULT_NEGATIVE_PROMPT

    encoded: list[str] = []
    real = IDLoRAPipeline.encode_prompt

    def counting(self, prompt, *args, **kwargs):  # type: ignore[no-untyped-def]
        encoded.append(prompt)
        return real(self, prompt, *args, **kwargs)

    monkeypatch.setattr(IDLoRAPipeline, "encode_prompt", counting)
    runs = tmp_path / "runs"
    assert main(["run", "--method", "idlora", "--model", "tiny-random", "--option", "two_stage=true", "--split",
                 "demo", "--runs-root", str(runs), "--profile", "fake"]) == 0
    run_dir = runs / "demo" / "idlora-seed0"
    pairs = load_split("demo").pairs
    for pair in pairs:
        media = decode(run_dir / "videos" / f"{pair.pair_id}.mp4")
        assert media.frames.shape[1:3] == (128, 128)  # 2x the tiny model's 64 px stage 1
        assert media.num_frames == 9 and media.audio is not None and media.audio.shape[-1] > 0
    config = json.loads((run_dir / "manifest-fake.json").read_text())["method_config"]
    assert config["two_stage"] is True and config["stage2"]["identity_lora"] == "off"
    assert config["positions_dtype"] == "bfloat16" and config["first_frame_fit"] == "crop"
    distinct = {pair.prompt for pair in pairs}
    assert sorted(encoded) == sorted([*distinct, DEFAULT_NEGATIVE_PROMPT])  # each text once, the negative once
