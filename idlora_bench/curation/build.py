"""``bench splits build``: cut a split's clips from raw videos by a spec and write its pairs file.

For each spec row (:mod:`idlora_bench.curation.spec`) the target is cut to exactly 121 frames at 25 fps from its
start and the reference over ``[start, end)`` at 25 fps (frame-rate conversion: nearest source frame, see
:mod:`idlora_bench.curation.cut`); audio keeps its native rate and channels. Optionally the reference's leading and
trailing silence is trimmed (``trim_silence_dbfs``: 10 ms frames whose RMS stays below the threshold, in dBFS; the
threshold is recorded). A clip used by several pairs (the same video, start and cut) is cut once.

Output, written to ``DATA_ROOT/.NAME.building`` and moved to ``DATA_ROOT/NAME`` only once it validates against the
split's card (counts, speakers, kinds, every file's sha256): ``pairs.jsonl``, ``clips/<clip_id>.mp4`` (H.264 CRF
``crf`` + AAC) and ``build.json`` (spec sha256, every parameter, the source frame rate of each clip).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from idlora_bench.core.errors import MediaError, ValidationError
from idlora_bench.core.io import atomic_write_text, file_sha256
from idlora_bench.core.provenance import now_utc, package_version
from idlora_bench.core.types import Clip, Pair
from idlora_bench.curation.cut import CutClip, cut_clip
from idlora_bench.curation.spec import TARGET_FPS, TARGET_FRAMES, SpecRow, load_spec, spec_line_numbers
from idlora_bench.data.media import to_mono, write_mp4
from idlora_bench.data.splits import Split, load_card, validate_split

Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]
SILENCE_FRAME_S = 0.01


def _no_progress(items: Iterable[Any], label: str, total: int) -> Iterable[Any]:
    return items


@dataclass
class BuildResult:
    directory: Path
    pairs: int
    clips: int
    trimmed: dict[str, tuple[float, float]] = field(default_factory=dict)  # clip id -> (lead s, tail s) removed


def clip_id(video: str, role: str, start_s: float) -> str:
    """``<video stem>-<ref|tgt>-<start in ms>``, restricted to the identifier characters."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(video).stem).lstrip("._-") or "video"
    return f"{stem}-{role}-{round(start_s * 1000):08d}"


def silence_bounds(audio: np.ndarray, sample_rate: int, threshold_dbfs: float) -> tuple[float, float] | None:
    """``(lead_s, tail_s)`` of leading and trailing 10 ms frames whose RMS is under ``threshold_dbfs``; None when
    every frame is."""
    mono = to_mono(audio)
    step = max(1, round(SILENCE_FRAME_S * sample_rate))
    frames = len(mono) // step
    if frames == 0:
        return None
    rms = np.sqrt(np.mean(mono[: frames * step].reshape(frames, step).astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-12)) >= threshold_dbfs)
    if len(loud) == 0:
        return None
    return loud[0] * step / sample_rate, (frames - 1 - loud[-1]) * step / sample_rate


def _cut_reference(video: Path, row: SpecRow, trim_dbfs: float | None, where: str) -> tuple[CutClip, tuple[float, float]]:
    cut = cut_clip(video, row.reference_start_s, end_s=row.reference_end_s, fps=TARGET_FPS)
    if trim_dbfs is None:
        return cut, (0.0, 0.0)
    bounds = silence_bounds(cut.audio, cut.sample_rate, trim_dbfs)
    if bounds is None:
        raise ValidationError(f"{where}: the reference [{row.reference_start_s}, {row.reference_end_s}) s of {video} "
                              f"is silent at {trim_dbfs} dBFS")
    lead, tail = bounds
    start, end = row.reference_start_s + lead, row.reference_end_s - tail
    return cut_clip(video, start, end_s=end, fps=TARGET_FPS), (lead, tail)


def _clip_record(directory: Path, identifier: str, video: str, cut: CutClip) -> Clip:
    relative = f"clips/{identifier}.mp4"
    return Clip(clip_id=identifier, path=relative, sha256=file_sha256(directory / relative),
                source_video=Path(video).stem, start_s=round(cut.start_s, 6),
                duration_s=round(cut.frames.shape[0] / cut.fps, 6), fps=cut.fps)


def _cut_all(rows: list[SpecRow], lines: list[int], spec: Path, videos: Path, staging: Path, *,
             trim_dbfs: float | None, crf: int, progress: Progress) -> tuple[list[Pair], dict[str, Any], BuildResult]:
    clips: dict[tuple[str, str, float], Clip] = {}
    sources: dict[str, Any] = {}
    result = BuildResult(staging, 0, 0)
    pairs = []
    for row, line in progress(list(zip(rows, lines)), "cut clips", len(rows)):
        where = f"{spec} line {line}"
        made = {}
        for role, video, start in (("ref", row.reference_video, row.reference_start_s),
                                   ("tgt", row.target_video, row.target_start_s)):
            key = (role, video, start)
            if key not in clips:
                path = videos / video
                if not path.is_file():
                    raise ValidationError(f"{where}: field '{'reference' if role == 'ref' else 'target'}_video': "
                                          f"{path} does not exist")
                try:
                    if role == "ref":
                        cut, trimmed = _cut_reference(path, row, trim_dbfs, where)
                    else:
                        cut, trimmed = cut_clip(path, start, num_frames=TARGET_FRAMES, fps=TARGET_FPS), (0.0, 0.0)
                except MediaError as exc:
                    raise ValidationError(f"{where}: {exc}") from None
                identifier = clip_id(video, role, start)
                write_mp4(staging / "clips" / f"{identifier}.mp4", cut.frames, cut.fps, cut.audio, cut.sample_rate,
                          crf=crf)
                clips[key] = _clip_record(staging, identifier, video, cut)
                sources[identifier] = {"video": video, "source_fps": cut.source_fps, "sample_rate": cut.sample_rate}
                if any(trimmed):
                    result.trimmed[identifier] = trimmed
            made[role] = clips[key]
        pairs.append(Pair(pair_id=row.pair_id, speaker_id=row.speaker_id, kind=row.kind, reference=made["ref"],
                          target=made["tgt"], prompt=row.prompt, transcript=row.transcript,
                          speaking_style=row.speaking_style, environment_sounds=row.environment_sounds))
    result.pairs, result.clips = len(pairs), len(clips)
    return pairs, sources, result


def build_split(name: str, spec: str | Path, videos: str | Path, data_root: str | Path, *,
                trim_silence_dbfs: float | None = None, crf: int = 18, overwrite: bool = False,
                progress: Progress = _no_progress) -> BuildResult:
    """Cut and write split ``name`` under ``data_root`` (see the module docstring); nothing lands unless it validates."""
    card, card_dir = load_card(name)
    spec, videos, data_root = Path(spec), Path(videos), Path(data_root)
    final = data_root / name
    if final.exists() and not overwrite:
        raise ValidationError(f"{final} exists; pass --overwrite to replace it")
    rows, lines = load_spec(spec), spec_line_numbers(spec)
    staging = data_root / f".{name}.building"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "clips").mkdir(parents=True)
    try:
        pairs, sources, result = _cut_all(rows, lines, spec, videos, staging, trim_dbfs=trim_silence_dbfs, crf=crf,
                                          progress=progress)
        atomic_write_text(staging / "pairs.jsonl", "".join(p.model_dump_json() + "\n" for p in pairs))
        report = validate_split(Split(card, pairs, card_dir, staging, staging / "pairs.jsonl"))
        if not report.ok:
            raise ValidationError(f"split {name!r} built from {spec} does not match its card: "
                                  + "; ".join(report.problems))
        build = {"split": name, "card_version": card.version, "created_utc": now_utc(),
                 "idlora_bench": package_version(), "spec": str(spec), "spec_sha256": file_sha256(spec),
                 "videos": str(videos), "target_frames": TARGET_FRAMES, "fps": TARGET_FPS,
                 "frame_rate_conversion": "nearest source frame", "audio": "native rate and channels",
                 "trim_silence_dbfs": trim_silence_dbfs, "silence_frame_s": SILENCE_FRAME_S, "crf": crf,
                 "clips": sources, "trimmed": {k: list(v) for k, v in result.trimmed.items()}}
        atomic_write_text(staging / "build.json", json.dumps(build, indent=2))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    result.directory = final
    return result
