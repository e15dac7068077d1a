"""Sanity anchor ``gt``: the ground-truth target itself (the ceiling of every metric vs the target)."""

from __future__ import annotations

from pathlib import Path

from idlora_bench.methods.base import Method, copy_atomic
from idlora_bench.splits import Split
from idlora_bench.types import Pair


class GroundTruth(Method):
    name = "gt"
    description = "the target video itself (ceiling)"

    def generate(self, pair: Pair, split: Split, out_path: Path, seed: int) -> None:
        copy_atomic(split.media_path(pair.target), out_path)
