"""Cascade baselines ``<tts>+<video>`` (composition, shared speech, options), the LTX-2 audio-to-video part on tiny
random components, and ``precomputed``.

A test TTS part (``echo``: the fake speech, counting its calls) and a test video part (``still``) stand in for the
systems whose adapters have their own tests (tests/test_baselines_local.py, tests/test_api_baselines.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from baselines.cascade import cascade_method, cascade_methods
from baselines.parts import TTS_PARTS, VIDEO_PARTS, SpeechResult, TTSPart, VideoPart
from baselines.tts.fake_speech import fake_speech_duration_s, write_fake_speech
from baselines.video.still import write_still_video
from idlora_bench import runner
from idlora_bench.core.errors import RegistryError, ValidationError
from idlora_bench.data.media import decode
from idlora_bench.data.splits import load_split
from idlora_bench.methods import METHODS, build_method
from idlora_bench.store.run_files import read_generation_record


class EchoTTS(TTSPart):
    """Test TTS part: the fake speech; counts syntheses per process."""

    name: ClassVar[str] = "echo"
    calls: ClassVar[list[str]] = []

    def synthesize(self, request, out_wav, seed):  # type: ignore[no-untyped-def]
        EchoTTS.calls.append(request.pair_id)
        return SpeechResult(out_wav, {"text_sent": request.transcript,
                                      **write_fake_speech(request.reference_path, request.transcript, out_wav)})


class StillVideo(VideoPart):
    name: ClassVar[str] = "still"

    def animate(self, item, speech_wav, out_path, seed):  # type: ignore[no-untyped-def]
        return write_still_video(item.target_path, speech_wav, out_path, long_side=32)


if "echo" not in TTS_PARTS:
    TTS_PARTS.register("echo", EchoTTS)
    VIDEO_PARTS.register("still", StillVideo)
for _video in ("ltx", "still"):
    if f"echo+{_video}" not in METHODS:
        METHODS.register(f"echo+{_video}", cascade_method("echo", _video))


def test_every_pair_of_parts_is_a_method_and_the_paper_cascades_resolve() -> None:
    names = set(METHODS.names())
    assert {"cosyvoice3+wan2.2", "voicecraft+wan2.2", "elevenlabs+wan2.2", "cosyvoice3+ltx", "voicecraft+ltx",
            "elevenlabs+ltx", "f5tts+ltx", "kling-2.6-pro", "precomputed"} <= names
    assert set(cascade_methods()) >= {f"{t}+{v}" for t in ("cosyvoice3", "elevenlabs") for v in ("wan2.2", "ltx")}
    cls = METHODS.get("cosyvoice3+ltx")
    assert (cls.tts_name, cls.video_name, cls.name) == ("cosyvoice3", "ltx", "cosyvoice3+ltx")
    with pytest.raises(RegistryError, match="cosyvoice3\\+ltx"):
        METHODS.get("cosyvoice+ltx")


def test_options_route_to_the_parts_and_unknown_keys_are_refused() -> None:
    method = build_method("echo+ltx", model="tiny-random", **{"video.steps": "2", "video.max_frames": "17"})
    assert method.smoke and method.tts.fake and method.video.fake
    config = method.config()
    assert config["video"]["steps"] == 2 and config["video"]["max_frames"] == 17 and config["tts"]["fake"] is True
    with pytest.raises(ValidationError, match="steps"):
        build_method("echo+ltx", **{"video.steps": "many"})
    with pytest.raises(ValidationError, match="video part 'ltx'.*colour"):
        build_method("echo+ltx", **{"video.colour": "red"})
    with pytest.raises(ValidationError, match="voice"):
        build_method("echo+ltx", voice="x")  # the cascade's own options are model and reference_transcripts


def test_speech_is_made_once_per_tts_config_pair_and_seed_and_shared_by_video_parts(synth_split: Path,
                                                                                    tmp_path: Path) -> None:
    EchoTTS.calls.clear()
    runs = tmp_path / "runs" / "synth"
    first = runner.run("echo+still", "synth", profile="fake", out_dir=runs / "echo+still-seed0",
                       method_options={"model": "tiny-random"})
    pairs = [p.pair_id for p in load_split("synth").pairs]
    assert sorted(EchoTTS.calls) == sorted(pairs)  # one synthesis per pair
    second = runner.run("echo+ltx", "synth", profile="fake", out_dir=runs / "echo+ltx-seed0",
                        method_options={"model": "tiny-random", "video.steps": 2})
    assert sorted(EchoTTS.calls) == sorted(pairs)  # shared: nothing synthesised again
    other_seed = runner.run("echo+still", "synth", profile="fake", seed=1, out_dir=runs / "echo+still-seed1",
                            method_options={"model": "tiny-random"})
    assert len(EchoTTS.calls) == 2 * len(pairs)  # a new seed is new speech
    speech_dirs = list((runs / "_intermediate" / "speech").iterdir())
    assert len(speech_dirs) == 1 and speech_dirs[0].name.startswith("echo-")
    for outcome, reused in ((first, False), (second, True), (other_seed, False)):
        record = read_generation_record(outcome.run_dir / "videos" / f"{pairs[0]}.json")
        assert record is not None and record.status == "ok" and record.details["speech"]["reused"] is reused
        assert record.details["speech"]["tts"]["text_sent"] == load_split("synth").pairs[0].transcript
    stored = json.loads((speech_dirs[0] / f"{pairs[0]}-seed0.json").read_text())
    assert stored["tts"]["part"] == "echo" and stored["made_by_run"].endswith("echo+still-seed0")
    # The video carries the stored speech: same duration (AAC pads at most a frame).
    media = decode(first.run_dir / "videos" / f"{pairs[0]}.mp4")
    expected = fake_speech_duration_s(load_split("synth").pairs[0].transcript)
    assert abs(media.audio_duration_s - expected) < 0.05 and media.video_duration_s >= expected - 0.04


def test_ltx_audio_to_video_keeps_the_speech_fixed_and_denoises_only_the_video() -> None:
    import torch

    from reference_impl.idlora.audio_to_video import audio_to_video, frames_for_speech
    from reference_impl.idlora.guidance import GuidanceConfig
    from reference_impl.idlora.pipeline import IDLoRAPipeline

    assert [frames_for_speech(s, 25.0) for s in (0.2, 1.0, 4.84, 4.9, 12.0)] == [9, 25, 121, 121, 121]
    assert frames_for_speech(12.0, 25.0, max_frames=257) == 257
    pipeline = IDLoRAPipeline.tiny_random(0)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    speech = (0.3 * np.sin(2 * np.pi * 200 * np.arange(24_000) / 16_000)).astype(np.float32)  # 1.5 s
    states: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_step(step: int, video: Any, audio: Any) -> None:
        states.append((video.latents.clone(), audio.latents.clone()))

    out = audio_to_video(pipeline, "[VISUAL]: a face. [SPEECH]: hello [SOUNDS]: calm", image, speech, 16_000,
                         long_side=64, num_inference_steps=3, guidance=GuidanceConfig(stg_blocks=(1,)),
                         callback=on_step)
    assert out.frames.shape == (33, 64, 64, 3) and out.info["num_frames"] == 33  # 1.32 s <= 1.5 s
    assert out.speech.shape == (1, 21_120) and np.array_equal(out.speech[0], speech[:21_120])
    assert out.info["speech_cut_seconds"] == pytest.approx(0.18)
    assert "no_reference" not in out.info["passes"]
    expected_audio = pipeline.encode_reference_audio(out.speech, 16_000)[:, : out.info["audio_tokens"]]
    for video, audio in states:  # the audio never moves off the encoded speech; the video does
        torch.testing.assert_close(audio, expected_audio, rtol=0, atol=0)
    assert (states[0][0] - states[-1][0]).abs().max() > 1e-3


def test_precomputed_folder_with_manifest_becomes_a_method_with_provenance(synth_split: Path, tmp_path: Path) -> None:
    folder = tmp_path / "closed-system"
    folder.mkdir()
    with pytest.raises(ValidationError, match="no manifest"):
        build_method("precomputed", path=str(folder))
    (folder / "manifest.yaml").write_text("system: Closed System 1\nversion: v1 pro\nproduced_by: lab, 2026-11\n"
                                          "settings: {duration: 5}\n")
    split = load_split("synth")
    made = runner.run("gt", "synth", profile="fake", out_dir=tmp_path / "gt")
    for pair in split.pairs[1:]:  # the first pair's output is missing on purpose
        (folder / f"{pair.pair_id}.mp4").write_bytes((made.run_dir / "videos" / f"{pair.pair_id}.mp4").read_bytes())
    outcome = runner.run("precomputed", "synth", profile="fake", out_dir=tmp_path / "pre",
                         method_options={"path": str(folder)})
    assert outcome.manifest.method == "precomputed-closed-system-1"
    assert outcome.manifest.method_config["manifest"]["version"] == "v1 pro"
    missing = read_generation_record(outcome.run_dir / "videos" / f"{split.pairs[0].pair_id}.json")
    assert missing is not None and missing.status == "failed" and split.pairs[0].pair_id in str(missing.reason)
    present = read_generation_record(outcome.run_dir / "videos" / f"{split.pairs[1].pair_id}.json")
    assert present is not None and present.details["system"] == "Closed System 1"
    rows = outcome.results[outcome.results["pair_id"] == split.pairs[0].pair_id]
    assert len(rows) and rows["value"].isna().all()
    assert rows["reason"].str.startswith("generation_error").all(), rows["reason"].tolist()
    (folder / "manifest.yaml").write_text("system: x\n")
    with pytest.raises(ValidationError, match="version"):
        build_method("precomputed", path=str(folder))


def test_table_shows_baselines_beside_idlora_smoke_marked_and_the_papers_rows(synth_split: Path,
                                                                               tmp_path: Path) -> None:
    """Smoke runs of ``idlora`` and two paper cascades, one real metric (speaker similarity, offline profile), tabled
    with Table 1's printed hard-split rows placed beside this split."""
    from idlora_bench.report import render, tables

    runs = tmp_path / "runs" / "synth"
    options = {"idlora": {"model": "tiny-random", "steps": 2},
               "cosyvoice3+ltx": {"model": "tiny-random", "video.steps": 2, "video.max_frames": 25},
               "cosyvoice3+wan2.2": {"model": "tiny-random"}}
    folders = [runner.run(name, "synth", profile="offline", metrics=["speaker_similarity.resemblyzer"],
                          out_dir=runs / name, method_options=opts).run_dir for name, opts in options.items()]
    loaded = tables.load_runs(folders, allow_smoke=True)
    paper = tables.load_reported("table1")
    paper = paper[paper["split"] == "celebvhq-hard"].assign(split="synth")
    table, _ = tables.main_table(loaded.results, "idlora", display=loaded.display, n_boot=200, reported=paper,
                                 smoke=loaded.smoke_methods)
    rows = {row.label: row for row in table.blocks[0].rows}
    for measured in ("idlora (smoke)", "cosyvoice3+ltx (smoke)", "cosyvoice3+wan2.2 (smoke)"):
        # every pair counted (tiny random audio has no speech: a recorded no_speech failure, shown as coverage)
        assert rows[measured].cells["speaker_similarity"].n_pairs == len(load_split("synth").pairs), measured
    assert rows["CosyVoice 3.0 + WAN2.2 (reported; cosyvoice3+wan2.2)"].cells["speaker_similarity"].value == 0.391
    assert "Kling 2.6 Pro (reported; kling-2.6-pro)" in rows
    markdown = render.to_markdown(table)
    assert "cosyvoice3+wan2.2 (smoke)" in markdown and "(reported; idlora two_stage=true)" in markdown
