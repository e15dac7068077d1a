"""The method adapter interface: generate one audio-video file for one pair.

Every method (sanity anchors, baselines, the ID-LoRA reference) implements :meth:`Method.generate` with
the same signature and is registered in ``idlora_bench.methods`` (anchors) or through the
``idlora_bench.methods`` entry-point group (``reference_impl/``, ``baselines/``, third-party packages). The runner
calls it once per missing output with a :class:`~idlora_bench.data.splits.ResolvedPair` (the pair and the paths
of its reference and target files); it must write ``out_path`` atomically (``write_mp4`` and
:func:`copy_atomic` do) and be deterministic for a given pair, seed and config. It may return a JSON-serialisable
dict of details (task ids, cost, text sent to a service, intermediate files), stored in the output's generation
record; an exception may carry the same as its ``details`` attribute. Before ``prepare`` the runner calls
:meth:`Method.attach_run` with the run folder (methods keep resumable state there, e.g. submitted API jobs).

Options: a method declares them as a pydantic model (:class:`MethodOptions` subclass in ``options_model``);
``bench run --option KEY=VALUE`` strings are validated and coerced by it, and unknown keys are refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import atomic_output
from idlora_bench.core.types import format_pydantic_error
from idlora_bench.data.splits import ResolvedPair, Split


class MethodOptions(BaseModel):
    """Base of a method's options: unknown keys are refused; command-line strings are coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Method(ABC):
    """Base class of a method adapter.

    Class attributes:
        name: registry name (``bench run --method NAME``).
        description: one line for ``bench methods list``.
        options_model: the pydantic model of its options (``MethodOptions``: no options).
        smoke: True for smoke configurations (tiny random models); their results are refused by tables
            meant for comparison. A method may set it per instance from its options.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options_model: ClassVar[type[MethodOptions]] = MethodOptions
    smoke: bool = False

    def __init__(self, **options: Any) -> None:
        try:
            self.options = self.options_model(**options)
        except PydanticValidationError as exc:
            raise ValidationError(f"method {self.name!r}: {format_pydantic_error(exc)}") from None

    def config(self) -> dict[str, Any]:
        """Everything that changes the output besides pair and seed (stamped into the run manifest)."""
        return {"method": self.name, **self.options.model_dump(mode="json")}

    def config_sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True, default=str).encode()).hexdigest()

    run_dir: Path | None = None

    def attach_run(self, run_dir: Path) -> None:
        """The run folder this method generates into (``videos/`` holds the outputs); state kept here survives a
        killed run. Intermediate files shared between runs of one split go in ``run_dir.parent / "_intermediate"``."""
        self.run_dir = Path(run_dir)

    def prepare(self, split: Split) -> None:
        """Load models or check the split before the first ``generate`` (default: nothing)."""

    @abstractmethod
    def generate(self, item: ResolvedPair, out_path: Path, seed: int) -> dict[str, Any] | None:
        """Write the generated mp4 (video + audio) for ``item`` to ``out_path`` atomically; optionally return
        details for the generation record."""


def copy_atomic(source: Path, destination: Path) -> None:
    """Copy a file so that ``destination`` appears whole or not at all."""
    with atomic_output(destination) as tmp:
        shutil.copyfile(source, tmp)
