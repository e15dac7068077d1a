"""The method adapter interface: generate one audio-video file for one pair.

Every method (sanity anchors, baselines, the ID-LoRA reference) implements :meth:`Method.generate` with
the same signature and is registered in ``idlora_bench.methods``. The runner calls it once per missing
output; it must write ``out_path`` atomically (``write_mp4`` and :func:`copy_atomic` do) and be
deterministic for a given pair, seed and config.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from idlora_bench.errors import ValidationError
from idlora_bench.io_utils import atomic_output
from idlora_bench.splits import Split
from idlora_bench.types import Pair


class Method(ABC):
    """Base class of a method adapter.

    Class attributes:
        name: registry name (``bench run --method NAME``).
        description: one line for ``bench methods list``.
        smoke: True for smoke configurations (tiny random models); their results are refused by tables
            meant for comparison.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    smoke: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        if options:
            raise ValidationError(f"method {self.name!r} takes no options, got {sorted(options)}")

    def config(self) -> dict[str, Any]:
        """Everything that changes the output besides pair and seed (stamped into the run manifest)."""
        return {"method": self.name}

    def config_sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True, default=str).encode()).hexdigest()

    def prepare(self, split: Split) -> None:
        """Load models or check the split before the first ``generate`` (default: nothing)."""

    @abstractmethod
    def generate(self, pair: Pair, split: Split, out_path: Path, seed: int) -> None:
        """Write the generated mp4 (video + audio) for ``pair`` to ``out_path`` atomically."""


def copy_atomic(source: Path, destination: Path) -> None:
    """Copy a file so that ``destination`` appears whole or not at all."""
    with atomic_output(destination) as tmp:
        shutil.copyfile(source, tmp)
