"""``bench splits probe KIND --from SPLIT --out DIR``: probe splits beyond the paper, derived from any split.

Each kind has a card template in ``splits/probes/<kind>.yaml`` (what the probe asks, what a good method does, which
metric shows it). The builder writes a self-contained split folder ``DIR/<source>-<kind>/`` (``card.yaml`` with
``media: shipped``, ``pairs.jsonl``, ``media/``); register it with ``IDLORA_BENCH_SPLITS=DIR``.

- ``identity-mismatch``: A's voice reference with B's first frame (see the template).
- ``quiet-to-noisy``: the pairs with a quiet reference and an eventful target (TalkVid protocol).
"""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import atomic_write_text, file_sha256
from idlora_bench.core.types import Clip, Pair, SplitCard
from idlora_bench.data.media import decode, to_mono, write_mp4
from idlora_bench.data.splits import REPO_SPLITS_DIR, Split

PROBES_DIR = REPO_SPLITS_DIR / "probes"
QUIET_DBFS = -50.0
NOISY_MARGIN_DB = 10.0


def probe_kinds() -> list[str]:
    return sorted(path.stem for path in PROBES_DIR.glob("*.yaml"))


def _template(kind: str) -> dict[str, Any]:
    path = PROBES_DIR / f"{kind}.yaml"
    if not path.is_file():
        raise ValidationError(f"unknown probe {kind!r}; known: {', '.join(probe_kinds())}")
    return yaml.safe_load(path.read_text())


def _other_pair(pair: Pair, split: Split) -> Pair:
    others = sorted((p for p in split.pairs if p.speaker_id != pair.speaker_id), key=lambda p: p.pair_id)
    if not others:
        raise ValidationError(f"split {split.name!r}: identity-mismatch needs pairs of at least two speakers")
    index = int.from_bytes(hashlib.sha256(pair.pair_id.encode()).digest()[:8], "little") % len(others)
    return others[index]


def _changed(pair: Pair, **changes: Any) -> Pair:
    """``pair`` with ``changes``, validated again (kinds, prompt and transcript must still agree)."""
    data = pair.model_dump()
    data.update({key: value.model_dump() if isinstance(value, Clip) else value for key, value in changes.items()})
    return Pair.model_validate(data)


def _copy_clip(split: Split, clip: Clip, media_dir: Path) -> Clip:
    destination = media_dir / Path(clip.path).name
    if not destination.exists():
        shutil.copyfile(split.media_path(clip), destination)
    return clip.model_copy(update={"path": f"media/{destination.name}"})


def _mismatch_pairs(split: Split, media_dir: Path) -> list[Pair]:
    pairs = []
    for pair in split.pairs:
        face = _other_pair(pair, split)
        video, voice = decode(split.media_path(face.target), need_audio=False), decode(split.media_path(pair.target))
        frames = video.require_video()
        assert video.fps is not None and voice.sample_rate is not None
        samples = min(voice.require_audio().shape[1], round(len(frames) / video.fps * voice.sample_rate))
        clip_id = f"{face.target.clip_id}-voice-{pair.target.clip_id}"[:120]
        path = media_dir / f"{clip_id}.mp4"
        write_mp4(path, frames, video.fps, voice.audio[:, :samples], voice.sample_rate)
        target = Clip(clip_id=clip_id, path=f"media/{path.name}", sha256=file_sha256(path),
                      source_video=f"{face.target.source_video}-voice-{pair.target.source_video}",
                      start_s=0.0, duration_s=round(len(frames) / video.fps, 6), fps=video.fps)
        visual = face.prompt_parts["visual"]
        prompt = f"[VISUAL]: {visual} [SPEECH]: {pair.transcript} [SOUNDS]: {pair.prompt_parts['sounds']}"
        pairs.append(_changed(pair, pair_id=f"{pair.pair_id}-x-{face.speaker_id}"[:120], kind="cross-video",
                              reference=_copy_clip(split, pair.reference, media_dir), target=target, prompt=prompt))
    return pairs


def floor_dbfs(path: Path) -> float:
    """The 10th percentile of a clip's 10 ms RMS levels (dBFS): its background level between words."""
    media = decode(path, need_video=False)
    assert media.sample_rate is not None
    mono = to_mono(media.require_audio())
    step = max(1, media.sample_rate // 100)
    frames = len(mono) // step
    rms = np.sqrt(np.mean(mono[: frames * step].reshape(frames, step).astype(np.float64) ** 2, axis=1))
    return float(np.percentile(20 * np.log10(np.maximum(rms, 1e-12)), 10))


def _quiet_to_noisy_pairs(split: Split, media_dir: Path, quiet_dbfs: float, margin_db: float) -> list[Pair]:
    chosen = []
    for pair in split.pairs:
        if pair.environment_sounds.strip().lower().rstrip(".") in ("none", ""):
            continue
        reference, target = floor_dbfs(split.media_path(pair.reference)), floor_dbfs(split.media_path(pair.target))
        if reference < quiet_dbfs and target >= reference + margin_db:
            chosen.append(_changed(pair, reference=_copy_clip(split, pair.reference, media_dir),
                                   target=_copy_clip(split, pair.target, media_dir)))
    return chosen


def build_probe(kind: str, split: Split, out_dir: str | Path, *, quiet_dbfs: float = QUIET_DBFS,
                noisy_margin_db: float = NOISY_MARGIN_DB) -> Path:
    """Write the probe split ``<source>-<kind>`` under ``out_dir``; returns its folder. Refuses an empty probe."""
    template = _template(kind)
    name = f"{split.name}-{kind}"
    folder = Path(out_dir) / name
    if folder.exists():
        shutil.rmtree(folder)
    media_dir = folder / "media"
    media_dir.mkdir(parents=True)
    if kind == "identity-mismatch":
        pairs, thresholds = _mismatch_pairs(split, media_dir), {}
    else:
        pairs = _quiet_to_noisy_pairs(split, media_dir, quiet_dbfs, noisy_margin_db)
        thresholds = {"quiet_reference_dbfs": quiet_dbfs, "noisy_target_margin_db": noisy_margin_db}
    if not pairs:
        shutil.rmtree(folder)
        raise ValidationError(f"no pair of {split.name!r} qualifies for the {kind} probe {thresholds or ''}".strip())
    kinds = Counter(pair.kind for pair in pairs)
    card = SplitCard(
        name=name, version=f"{split.card.version}+{kind}", description=template["description"].strip(),
        source_dataset=f"derived from split {split.name!r} v{split.card.version} ({split.card.source_dataset})",
        protocol=(template["protocol"].strip() + " Expectation: " + template["expectation"].strip() + " Metrics: "
                  + ", ".join(template["metrics"]) + (f". Thresholds: {thresholds}" if thresholds else "")),
        media="shipped", expected={"pairs": len(pairs), "speakers": len({p.speaker_id for p in pairs}),
                                   "kinds": dict(kinds)},
        licence=split.card.licence, media_licences=split.card.media_licences,
        reference=f"probe {kind} of {split.name}")
    atomic_write_text(folder / "card.yaml", yaml.safe_dump(card.model_dump(mode="json"), sort_keys=False))
    atomic_write_text(folder / "pairs.jsonl", "".join(p.model_dump_json() + "\n" for p in pairs))
    return folder
