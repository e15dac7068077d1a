"""``precomputed``: outputs produced elsewhere (a closed system, another lab's cluster) enter the benchmark as a
method with provenance, scored and tabled like any other.

The folder holds ``<pair_id>.mp4`` per pair and ``manifest.yaml`` (or ``manifest.json``)::

    system: Kling 2.6 Pro              # what made the videos (shown in tables as precomputed-<name>)
    version: kling-v2-6 pro            # model / API version
    produced_by: lab X, 2026-11-02     # who and when
    settings: {duration: 5, sound: on} # everything that changes the outputs
    name: kling-2.6-pro                # optional: the method name in tables (default: system, lower-case, dashes)

``bench run --method precomputed --option path=FOLDER --split S`` copies each pair's file into the run (atomically;
a missing file is a recorded ``generation_error`` naming the file, never a dropped pair) and records the manifest,
its sha256 and each file's sha256 in the run's provenance.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import file_sha256
from idlora_bench.core.types import format_pydantic_error
from idlora_bench.data.splits import ResolvedPair, Split
from idlora_bench.methods.base import Method, MethodOptions, copy_atomic

MANIFEST_NAMES = ("manifest.yaml", "manifest.yml", "manifest.json")


class PrecomputedManifest(BaseModel):
    """What made the videos of a precomputed folder."""

    model_config = ConfigDict(extra="forbid")

    system: str = Field(min_length=1)
    version: str = Field(min_length=1)
    produced_by: str = Field(min_length=1)
    settings: dict[str, Any] = {}
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")

    def method_name(self) -> str:
        return self.name or re.sub(r"[^a-z0-9.+]+", "-", self.system.lower()).strip("-")


class PrecomputedOptions(MethodOptions):
    path: str


def read_manifest(folder: Path) -> tuple[PrecomputedManifest, Path]:
    """The folder's manifest and its path; a clear error naming the folder when absent or invalid."""
    found = [folder / name for name in MANIFEST_NAMES if (folder / name).is_file()]
    if not found:
        raise ValidationError(f"{folder}: no manifest ({' / '.join(MANIFEST_NAMES)}) naming the system, version, "
                              "producer and settings of these outputs")
    path = found[0]
    try:
        data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        return PrecomputedManifest.model_validate(data), path
    except (ValueError, yaml.YAMLError) as exc:
        detail = format_pydantic_error(exc) if isinstance(exc, PydanticValidationError) else str(exc)
        raise ValidationError(f"{path}: invalid manifest: {detail}") from None


class PrecomputedMethod(Method):
    """Copies ``<path>/<pair_id>.mp4``; named ``precomputed-<manifest name>`` in runs and tables."""

    name: ClassVar[str] = "precomputed"
    description: ClassVar[str] = "outputs made elsewhere, from a folder with a manifest (--option path=FOLDER)"
    options_model: ClassVar[type[MethodOptions]] = PrecomputedOptions
    options: PrecomputedOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.folder = Path(self.options.path)
        if not self.folder.is_dir():
            raise ValidationError(f"precomputed: {self.folder} is not a folder (expected <pair_id>.mp4 + manifest)")
        self.manifest, self.manifest_path = read_manifest(self.folder)
        self.name = f"precomputed-{self.manifest.method_name()}"  # type: ignore[misc]  # per instance

    def config(self) -> dict[str, Any]:
        return {"method": self.name, "folder": str(self.folder.resolve()),
                "manifest": self.manifest.model_dump(mode="json"),
                "manifest_sha256": file_sha256(self.manifest_path)}

    def prepare(self, split: Split) -> None:
        known = {f"{pair.pair_id}.mp4" for pair in split.pairs}
        missing = sorted(known - {p.name for p in self.folder.glob("*.mp4")})
        if len(missing) == len(known):
            raise ValidationError(f"{self.folder}: no <pair_id>.mp4 of split {split.name!r} (e.g. "
                                  f"{sorted(known)[0]}); is this the right folder and split?")

    def generate(self, item: ResolvedPair, out_path: Path, seed: int) -> dict[str, Any]:
        source = self.folder / f"{item.pair_id}.mp4"
        if not source.is_file():
            raise FileNotFoundError(f"{source}: the precomputed folder has no output for pair {item.pair_id!r}")
        copy_atomic(source, out_path)
        return {"source": str(source.resolve()), "source_sha256": file_sha256(source),
                "system": self.manifest.system, "version": self.manifest.version}
