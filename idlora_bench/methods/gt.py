"""Sanity anchor ``gt``: the ground-truth target itself (the ceiling of every metric vs the target)."""

from __future__ import annotations

from pathlib import Path

from idlora_bench.data.splits import ResolvedPair
from idlora_bench.methods.base import Method, copy_atomic


class GroundTruth(Method):
    name = "gt"
    description = "the target video itself (ceiling)"

    def generate(self, item: ResolvedPair, out_path: Path, seed: int) -> None:
        copy_atomic(item.target_path, out_path)
