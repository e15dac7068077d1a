"""Sanity anchor ``still-reference``: the first target frame held still, with the reference audio.

This is what a model that copies its conditions through would produce: the face of the visual
condition (no motion, so lip motion ~ 0) and the reference recording as the voice (a speaker-similarity
and WER floor against a different sentence). The reference audio is cut to the target's duration.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idlora_bench.data.media import decode, write_mp4
from idlora_bench.data.splits import ResolvedPair
from idlora_bench.methods.base import Method


class StillReference(Method):
    name = "still-reference"
    description = "first target frame held still + the reference audio (copy-through floor)"

    def generate(self, item: ResolvedPair, out_path: Path, seed: int) -> None:
        target = decode(item.target_path, need_audio=False)
        reference = decode(item.reference_path, need_video=False)
        frames = target.require_video()
        assert target.fps is not None and reference.sample_rate is not None
        still = np.repeat(frames[:1], len(frames), axis=0)
        audio_samples = int(round(len(frames) / target.fps * reference.sample_rate))
        audio = reference.require_audio()[:, :audio_samples]
        write_mp4(out_path, still, target.fps, audio, reference.sample_rate)
