"""Build tiny synthetic splits for tests: noise videos with a per-speaker tone, written as real mp4 files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from idlora_bench.core.io import file_sha256
from idlora_bench.data.media import write_mp4

FPS = 25
SAMPLE_RATE = 16_000


def write_clip(path: Path, *, seed: int, tone_hz: float, frames: int = 10, size: int = 32) -> None:
    """A ``frames``-frame noise video (``size`` px square) with a sine tone of ``tone_hz``."""
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    t = np.arange(int(frames / FPS * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
    write_mp4(path, video, FPS, audio, SAMPLE_RATE)


def make_synthetic_split(root: Path, name: str = "synth", speakers: int = 3) -> Path:
    """``root/<name>/`` with card.yaml, pairs.jsonl and media: 2 pairs per speaker (same- and cross-video)."""
    directory = root / name
    (directory / "media").mkdir(parents=True, exist_ok=True)
    pairs = []

    def clip(clip_id: str, source: str, seed: int, tone: float) -> dict:
        path = directory / "media" / f"{clip_id}.mp4"
        write_clip(path, seed=seed, tone_hz=tone)
        return {"clip_id": clip_id, "path": f"media/{clip_id}.mp4", "sha256": file_sha256(path),
                "source_video": source, "start_s": 0.0, "duration_s": 0.4, "fps": FPS}

    for s in range(speakers):
        tone = 200.0 + 150.0 * s
        ref_a = clip(f"s{s}-v1-a", f"s{s}-v1", 100 * s + 1, tone)
        tgt_b = clip(f"s{s}-v1-b", f"s{s}-v1", 100 * s + 2, tone)
        ref_c = clip(f"s{s}-v2-a", f"s{s}-v2", 100 * s + 3, tone * 1.01)
        for kind, reference in (("same-video", ref_a), ("cross-video", ref_c)):
            text = f"speaker {s} says hello"
            pairs.append({
                "pair_id": f"p{s}-{kind}", "speaker_id": f"spk{s}", "kind": kind,
                "reference": reference, "target": tgt_b,
                "prompt": f"[VISUAL]: noise. [SPEECH]: {text} [SOUNDS]: calm voice, quiet room",
                "transcript": text, "speaking_style": "calm voice", "environment_sounds": "quiet room",
            })
    (directory / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    card = {
        "name": name, "version": "0.1", "description": "synthetic test split", "source_dataset": "tests",
        "protocol": "noise videos with tones", "media": "shipped",
        "expected": {"pairs": len(pairs), "speakers": speakers,
                     "kinds": {"same-video": speakers, "cross-video": speakers}},
        "licence": "CC0-1.0",
    }
    (directory / "card.yaml").write_text(yaml.safe_dump(card))
    return directory


def landmark_track(gaps: np.ndarray, face_height: float) -> np.ndarray:
    """(T, 68, 2) landmarks whose three inner-lip gaps equal ``gaps`` and whose |p27-p8| is face_height."""
    track = np.zeros((len(gaps), 68, 2))
    track[:, 27] = (50.0, 10.0)
    track[:, 8] = (50.0, 10.0 + face_height)
    for upper, lower, x in ((61, 67, 45.0), (62, 66, 50.0), (63, 65, 55.0)):
        track[:, upper] = np.stack([np.full(len(gaps), x), np.full(len(gaps), 80.0)], axis=1)
        track[:, lower] = np.stack([np.full(len(gaps), x), 80.0 + gaps], axis=1)
    return track


def make_raw_videos(out: Path, speakers: tuple[str, ...] = ("hopper", "collins"), fps: int = 30,
                    sample_rate: int = 44_100) -> list[dict]:
    """Raw 15 s talking videos (two per speaker) built from the demo clips, and the build-spec rows of the demo
    pairs they cover.

    Each video ``<speaker>-v<k>.mp4`` is reference (5 s) + target (4.84 s) + reference (5 s) + the target's first
    0.16 s of the demo's video ``v<k>``, re-timed to ``fps`` (nearest frame) with stereo audio at ``sample_rate``, so
    a build has to convert the frame rate. Spec rows: reference [0, 5) s, target from 5 s, texts of the demo pair.
    """
    from idlora_bench.data.media import decode, resample_audio
    from idlora_bench.data.splits import load_split

    out.mkdir(parents=True, exist_ok=True)
    split = load_split("demo")
    chosen = [p for p in split.pairs if p.speaker_id.removeprefix("spk-") in speakers]
    parts: dict[str, dict[str, Path]] = {}
    for pair in chosen:
        for clip in (pair.reference, pair.target):
            parts.setdefault(clip.source_video, {})[clip.clip_id.rsplit("-", 1)[1]] = split.media_path(clip)
    for video, files in parts.items():
        ref, tgt = decode(files["ref"]), decode(files["tgt"])
        frames = np.concatenate([ref.frames, tgt.frames, ref.frames, tgt.frames[:4]])
        pieces = [ref.audio[:, :round(5 * ref.sample_rate)], tgt.audio[:, :round(4.84 * tgt.sample_rate)],
                  ref.audio[:, :round(5 * ref.sample_rate)], tgt.audio[:, :round(0.16 * tgt.sample_rate)]]
        times = np.arange(int(round(len(frames) / FPS * fps))) / fps
        retimed = frames[np.minimum(np.round(times * FPS).astype(int), len(frames) - 1)]
        audio = resample_audio(np.repeat(np.concatenate(pieces, axis=1), 2, axis=0), ref.sample_rate, sample_rate)
        write_mp4(out / f"{video}.mp4", retimed, fps, audio, sample_rate)
    rows = []
    for pair in chosen:
        rows.append({"pair_id": pair.pair_id, "speaker_id": pair.speaker_id, "kind": pair.kind,
                     "reference_video": f"{pair.reference.source_video}.mp4", "reference_start_s": 0.0,
                     "reference_end_s": 5.0, "target_video": f"{pair.target.source_video}.mp4",
                     "target_start_s": 5.0, "visual": pair.prompt_parts["visual"], "transcript": pair.transcript,
                     "speaking_style": pair.speaking_style, "environment_sounds": pair.environment_sounds})
    return rows


def write_external_card(root: Path, name: str, pairs: int, speakers: int, kinds: dict[str, int]) -> Path:
    """``root/<name>/card.yaml`` of an external split with the given expected counts."""
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    card = {"name": name, "version": "0.1", "description": "built in a test", "source_dataset": "tests",
            "protocol": "demo clips re-cut from raw videos", "media": "external",
            "expected": {"pairs": pairs, "speakers": speakers, "kinds": kinds}, "licence": "as the demo split"}
    (directory / "card.yaml").write_text(yaml.safe_dump(card))
    return directory
