"""Sanity anchor ``swap-speaker``: the target clip of another speaker (impostor floor).

For each pair, one pair of a different speaker is drawn with a generator seeded by (seed, pair id), and
its target file is copied: real talking video and speech, but the wrong voice, face and sentence.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.types import Pair
from idlora_bench.data.splits import ResolvedPair, Split
from idlora_bench.methods.base import Method, copy_atomic


def impostor_pair(pair: Pair, pairs: list[Pair], seed: int) -> Pair:
    """The pair of another speaker (among ``pairs``) whose target stands in for ``pair`` (deterministic in seed +
    pair id)."""
    candidates = sorted((p for p in pairs if p.speaker_id != pair.speaker_id), key=lambda p: p.pair_id)
    if not candidates:
        raise ValidationError("swap-speaker needs pairs of at least two speakers")
    pair_key = int.from_bytes(hashlib.sha256(pair.pair_id.encode()).digest()[:8], "little")
    rng = np.random.default_rng([seed, pair_key])
    return candidates[int(rng.integers(len(candidates)))]


class SwapSpeaker(Method):
    name = "swap-speaker"
    description = "the target of another speaker's pair (impostor floor)"

    def prepare(self, split: Split) -> None:
        if len({pair.speaker_id for pair in split.pairs}) < 2:
            raise ValidationError(f"split {split.name!r}: swap-speaker needs at least two speakers")
        self._split = split

    def generate(self, item: ResolvedPair, out_path: Path, seed: int) -> None:
        if not hasattr(self, "_split"):
            raise ValidationError("swap-speaker: call prepare(split) before generate (the runner does)")
        impostor = impostor_pair(item.pair, self._split.pairs, seed)
        copy_atomic(self._split.media_path(impostor.target), out_path)
