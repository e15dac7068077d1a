"""``bench splits check``: a split's hygiene report (Markdown + JSON); problems are listed by pair, never removed.

Checks:
- **leakage** against a training list (:mod:`idlora_bench.curation.training_list`): a reference or target source
  video, or a speaker, that appears in training;
- **duplicates**: the same clip twice (equal sha256, or equal source video and time span under two clip ids) and
  near-duplicate targets (64-bit average hashes of 5 frames, mean Hamming distance <= ``NEAR_DUPLICATE_BITS``);
- **media** per clip: duration, fps, audio rate; speech present (webrtcvad, mode 2, 30 ms frames at 16 kHz: at least
  ``MIN_VOICED_SHARE`` voiced); one face (dlib HOG detector on 5 frames: exactly one face in at least 3);
- **identity consistency** of reference vs target with the offline metrics (resemblyzer speaker similarity, dlib
  face similarity): pairs under ``speaker_threshold`` / ``face_threshold`` are listed (the paper dropped training
  pairs under 0.45 WavLM-ECAPA speaker similarity; the GE2E default 0.65 sits between the demo's same-speaker
  reference/target mean 0.88 and its different-speaker mean 0.51; dlib's documented same-person distance 0.6 on unit
  descriptors is a cosine of 0.82);
- **captions**: non-empty texts, the prompt in the ``[VISUAL]/[SPEECH]/[SOUNDS]`` form with ``[SPEECH]`` equal to the
  transcript (checked when the pairs file loads) and ``[SOUNDS]`` holding the style and environment texts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from idlora_bench.core.errors import MediaError, SampleFailure
from idlora_bench.core.io import atomic_write_text
from idlora_bench.core.types import Clip, Pair
from idlora_bench.curation.training_list import TrainingList
from idlora_bench.data.media import DecodedMedia, decode
from idlora_bench.data.splits import Split

Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]
NEAR_DUPLICATE_BITS = 4.0
MIN_VOICED_SHARE = 0.1
HASH_FRAMES = 5


def _no_progress(items: Iterable[Any], label: str, total: int) -> Iterable[Any]:
    return items


@dataclass
class Finding:
    """One problem: which check, which pair (and clip), and what is wrong."""

    check: str
    pair_id: str
    message: str
    clip_id: str | None = None


@dataclass
class HygieneReport:
    split: str
    findings: list[Finding] = field(default_factory=list)
    pairs: dict[str, dict[str, Any]] = field(default_factory=dict)  # pair id -> measurements
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def flagged(self, check: str) -> set[str]:
        return {f.pair_id for f in self.findings if f.check == check}

    def to_json(self) -> str:
        return json.dumps({"split": self.split, "ok": self.ok, "parameters": self.parameters,
                           "findings": [asdict(f) for f in self.findings], "pairs": self.pairs}, indent=2)

    def to_markdown(self) -> str:
        lines = [f"# Hygiene report: {self.split}", "", f"{'clean' if self.ok else f'{len(self.findings)} finding(s)'} "
                 f"over {len(self.pairs)} pairs.", ""]
        if self.findings:
            lines += ["| check | pair | clip | finding |", "|---|---|---|---|"]
            lines += [f"| {f.check} | {f.pair_id} | {f.clip_id or ''} | {f.message} |" for f in self.findings]
            lines.append("")
        lines += ["| pair | spk sim | face sim | target s | target fps | voiced ref/tgt | faces ref/tgt |",
                  "|---|---|---|---|---|---|---|"]
        for pair_id, m in self.pairs.items():
            lines.append(f"| {pair_id} | {_num(m.get('speaker_similarity'))} | {_num(m.get('face_similarity'))} | "
                         f"{_num(m.get('target_duration_s'), 2)} | {_num(m.get('target_fps'), 2)} | "
                         f"{_num(m.get('reference_voiced'), 2)}/{_num(m.get('target_voiced'), 2)} | "
                         f"{m.get('reference_faces', '-')}/{m.get('target_faces', '-')} |")
        lines += ["", "Parameters: " + ", ".join(f"{k}={v}" for k, v in self.parameters.items())]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path) -> list[Path]:
        paths = [Path(out_dir) / f"hygiene-{self.split}.md", Path(out_dir) / f"hygiene-{self.split}.json"]
        atomic_write_text(paths[0], self.to_markdown())
        atomic_write_text(paths[1], self.to_json())
        return paths


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def average_hash(frame: np.ndarray) -> np.ndarray:
    """64-bit average hash of an RGB frame: 8x8 block means of the grey image above their mean, ``(64,)`` bool."""
    grey = frame.astype(np.float32).mean(axis=2)
    h, w = grey.shape
    blocks = grey[: h - h % 8, : w - w % 8].reshape(8, (h - h % 8) // 8, 8, (w - w % 8) // 8).mean(axis=(1, 3))
    return (blocks > blocks.mean()).ravel()


def voiced_share(media: DecodedMedia) -> float:
    """Share of 30 ms frames webrtcvad (mode 2) calls speech, on 16 kHz mono int16 audio."""
    import webrtcvad

    vad = webrtcvad.Vad(2)
    pcm = (np.clip(media.mono(16_000), -1, 1) * 32767).astype(np.int16)
    step = 480
    frames = [pcm[i:i + step].tobytes() for i in range(0, len(pcm) - step + 1, step)]
    return float(np.mean([vad.is_speech(f, 16_000) for f in frames])) if frames else 0.0


class _ClipMeasures:
    """Per-clip measurements, each clip decoded once."""

    def __init__(self, split: Split) -> None:
        from idlora_bench.metrics import build_profile
        from idlora_bench.models.dlib_faces import LANDMARKS_68, DlibFaces

        self.split = split
        self.speaker, self.face = build_profile("offline", only=["speaker_similarity", "face_similarity"])
        for metric in (self.speaker, self.face):
            metric.load()
        self.detector = DlibFaces(LANDMARKS_68.verify())
        self.cache: dict[str, dict[str, Any]] = {}

    def measure(self, clip: Clip) -> dict[str, Any]:
        if clip.clip_id in self.cache:
            return self.cache[clip.clip_id]
        path = self.split.media_path(clip)
        out: dict[str, Any] = {"path": str(path)}
        try:
            media = decode(path)
        except MediaError as exc:
            out["error"] = str(exc)
            self.cache[clip.clip_id] = out
            return out
        indices = np.rint(np.linspace(0, media.num_frames - 1, HASH_FRAMES)).astype(int)
        frames = media.require_video()[indices]
        out.update(duration_s=media.video_duration_s, fps=media.fps, sample_rate=media.sample_rate,
                   voiced=voiced_share(media), hashes=np.stack([average_hash(f) for f in frames]),
                   faces=[len(self.detector._detector(np.ascontiguousarray(f), 1)) for f in frames])
        for name, metric in (("speaker", self.speaker), ("face", self.face)):
            try:
                out[name] = metric.extract(media)
            except SampleFailure as failure:
                out[name] = failure
        self.cache[clip.clip_id] = out
        return out


def _leakage(split: Split, training: TrainingList) -> list[Finding]:
    findings = []
    for pair in split.pairs:
        for role, clip in (("reference", pair.reference), ("target", pair.target)):
            if training.has_video(clip.source_video):
                findings.append(Finding("leakage", pair.pair_id, f"{role} source video {clip.source_video!r} is in "
                                        f"the training list {training.source.name}", clip.clip_id))
        if training.has_speaker(pair.speaker_id):
            findings.append(Finding("leakage", pair.pair_id, f"speaker {pair.speaker_id!r} is in the training list "
                                    f"{training.source.name}"))
    return findings


def _duplicates(split: Split, measures: dict[str, dict[str, Any]]) -> list[Finding]:
    findings = []
    by_sha: dict[str, str] = {}
    by_span: dict[tuple[str, float, float], str] = {}
    for clip in split.clips():
        for index, key in ((by_sha, clip.sha256), (by_span, (clip.source_video, clip.start_s, clip.duration_s))):
            other = index.setdefault(key, clip.clip_id)  # type: ignore[arg-type]
            if other != clip.clip_id:
                for pair in split.pairs:
                    if clip.clip_id in (pair.reference.clip_id, pair.target.clip_id):
                        findings.append(Finding("duplicate", pair.pair_id, f"clip {clip.clip_id} duplicates "
                                                f"{other}", clip.clip_id))
    targets = {pair.target.clip_id: pair for pair in split.pairs}
    ids = [c for c in targets if "hashes" in measures.get(c, {})]
    for i, first in enumerate(ids):
        for second in ids[i + 1:]:
            bits = float(np.mean(np.sum(measures[first]["hashes"] != measures[second]["hashes"], axis=1)))
            if bits <= NEAR_DUPLICATE_BITS:
                message = f"target {second} looks like target {first} ({bits:.1f} of 64 hash bits differ)"
                findings.append(Finding("near_duplicate", targets[second].pair_id, message, second))
    return findings


def _media(pair: Pair, role: str, clip: Clip, m: dict[str, Any]) -> list[Finding]:
    if "error" in m:
        return [Finding("media", pair.pair_id, m["error"], clip.clip_id)]
    findings = []
    if m["voiced"] < MIN_VOICED_SHARE:
        findings.append(Finding("no_speech", pair.pair_id, f"{role}: {m['voiced']:.0%} of 30 ms frames voiced "
                                f"(< {MIN_VOICED_SHARE:.0%})", clip.clip_id))
    one_face = sum(count == 1 for count in m["faces"])
    if one_face < 3:
        what = "no face" if max(m["faces"]) == 0 else "not exactly one face"
        findings.append(Finding("face", pair.pair_id, f"{role}: {what} in {HASH_FRAMES - one_face} of {HASH_FRAMES} "
                                f"frames (faces per frame {m['faces']})", clip.clip_id))
    if role == "target" and (abs(m["fps"] - 25.0) > 1e-3 or m["duration_s"] < 4.8):
        findings.append(Finding("media", pair.pair_id, f"target: {m['duration_s']:.2f} s at {m['fps']:g} fps "
                                "(the protocol: 121 frames at 25 fps)", clip.clip_id))
    return findings


def _identity(pair: Pair, ref: dict[str, Any], tgt: dict[str, Any], metric: Any, key: str, threshold: float,
              row: dict[str, Any]) -> list[Finding]:
    a, b = ref.get(key), tgt.get(key)
    if a is None or b is None or isinstance(a, SampleFailure) or isinstance(b, SampleFailure):
        reason = next((str(x) for x in (a, b) if isinstance(x, SampleFailure)), "not measured")
        return [Finding(f"{metric.family}", pair.pair_id, f"reference vs target not comparable: {reason}")]
    value = metric.compare(b, a, pair).value
    row[metric.family] = value
    if value < threshold:
        return [Finding(metric.family, pair.pair_id, f"reference vs target {value:.3f} < {threshold} "
                        f"({metric.name}): the two clips may not be the same person")]
    return []


def _captions(pair: Pair) -> list[Finding]:
    sounds = pair.prompt_parts["sounds"].lower()
    missing = [name for name in ("speaking_style", "environment_sounds")
               if getattr(pair, name).strip().lower().rstrip(".") not in sounds]
    if missing:
        return [Finding("caption", pair.pair_id, f"[SOUNDS] does not hold {', '.join(missing)}")]
    return []


def check_split(split: Split, *, training: TrainingList | None = None, speaker_threshold: float = 0.65,
                face_threshold: float = 0.82, progress: Progress = _no_progress) -> HygieneReport:
    """The hygiene report of ``split`` (see the module docstring); nothing in the split is changed."""
    report = HygieneReport(split.name, parameters={
        "speaker_threshold": speaker_threshold, "face_threshold": face_threshold,
        "near_duplicate_bits": NEAR_DUPLICATE_BITS, "min_voiced_share": MIN_VOICED_SHARE,
        "training_list": str(training.source) if training else None})
    if training is not None:
        report.findings += _leakage(split, training)
    tools = _ClipMeasures(split)
    measures = {clip.clip_id: tools.measure(clip) for clip in progress(split.clips(), "measure clips",
                                                                          len(split.clips()))}
    report.findings += _duplicates(split, measures)
    for pair in split.pairs:
        ref, tgt = measures[pair.reference.clip_id], measures[pair.target.clip_id]
        row = {"target_duration_s": tgt.get("duration_s"), "target_fps": tgt.get("fps"),
               "reference_voiced": ref.get("voiced"), "target_voiced": tgt.get("voiced"),
               "reference_faces": ref.get("faces"), "target_faces": tgt.get("faces")}
        report.findings += _media(pair, "reference", pair.reference, ref) + _media(pair, "target", pair.target, tgt)
        if "error" not in ref and "error" not in tgt:
            report.findings += _identity(pair, ref, tgt, tools.speaker, "speaker", speaker_threshold, row)
            report.findings += _identity(pair, ref, tgt, tools.face, "face", face_threshold, row)
        report.findings += _captions(pair)
        report.pairs[pair.pair_id] = row
    return report
