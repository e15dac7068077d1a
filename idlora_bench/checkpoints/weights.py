"""Weights cards and the model store: where each checkpoint comes from, its sha256 and licence.

A metric never runs with weights that do not match its card: a missing file or a wrong checksum raises
:class:`~idlora_bench.core.errors.WeightsError` naming the command that fixes it. Nothing is ever replaced by
random weights.

Sources (``WeightsFile.source``):
- ``pypi:<package>==<version>:<path>``: shipped inside an installed PyPI package (fix: reinstall it).
- ``hf:<repo_id>@<revision>:<path>``: a file of a Hugging Face repository at a pinned revision.
- ``url:<https://...>``: a plain download (resumable). With ``archive_member`` the URL is a zip archive
  and the file is that member of it.

A card's ``sha256`` may be None only for ``hf:`` files whose checksum is not published: the file is then
pinned by the repository revision, checked at ``bench models pull`` against the hub's own metadata for that
revision (LFS sha256, or the git blob sha1 of small files), and its sha256 is recorded in
``<store>/<model>/.checksums.json``; later verifications compare against that record.

Downloaded files live in the model store, ``$IDLORA_BENCH_MODELS`` (default
``$XDG_CACHE_HOME/idlora-bench/models``), as ``<store>/<model>/<file>``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from idlora_bench.core.errors import WeightsError
from idlora_bench.core.io import file_sha256

MODELS_ENV = "IDLORA_BENCH_MODELS"


def models_dir() -> Path:
    """The model store root."""
    if env := os.environ.get(MODELS_ENV):
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "idlora-bench" / "models"


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    revision: str
    path: str


@dataclass(frozen=True)
class WeightsFile:
    """One checkpoint file of a model.

    Attributes:
        model: the model's name, also its folder in the store (e.g. ``clap-htsat-unfused``).
        file: the file's path inside that folder (e.g. ``model.safetensors``).
        source: where it comes from (see the module docstring).
        sha256: expected hex sha256 of the file (None: pinned by hub revision, see the module docstring).
        licence: licence of the weights.
        size_bytes: expected size, when known (shown by ``bench models list``).
        archive_member: for ``url:`` sources that are zip archives, the member to extract.
    """

    model: str
    file: str
    source: str
    sha256: str | None
    licence: str
    size_bytes: int | None = None
    archive_member: str | None = None

    @property
    def name(self) -> str:
        """``<model>/<file>``: the key used in manifests and in ``Metric._load``'s ``paths``."""
        return f"{self.model}/{self.file}"

    @property
    def kind(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def fix(self) -> str:
        if self.kind == "pypi":
            package = self.source.removeprefix("pypi:").split(":", 1)[0]
            return f"pip install -c constraints.txt --force-reinstall '{package}' (the package ships this file)"
        return f"bench models pull {self.model} (or, without internet, bench models import DIR)"

    def hub(self) -> HubSource:
        if self.kind != "hf":
            raise ValueError(f"{self.name}: not a Hugging Face source")
        repo_revision, path = self.source.removeprefix("hf:").split(":", 1)
        repo_id, revision = repo_revision.split("@", 1)
        return HubSource(repo_id, revision, path)

    def url(self) -> str:
        if self.kind != "url":
            raise ValueError(f"{self.name}: not a URL source")
        return self.source.removeprefix("url:")

    def path(self) -> Path:
        """Local path (for ``pypi:`` inside the installed package; otherwise in the model store)."""
        if self.kind == "pypi":
            spec, inner_path = self.source.removeprefix("pypi:").split(":", 1)
            package = spec.split("==")[0]
            found = importlib.util.find_spec(package.replace("-", "_"))
            if found is None or not found.submodule_search_locations:
                raise WeightsError(f"weights {self.name!r}: package {package!r} is not installed. Fix: {self.fix}")
            return Path(list(found.submodule_search_locations)[0]) / inner_path
        if self.kind in ("hf", "url"):
            return models_dir() / self.model / self.file
        raise WeightsError(f"weights {self.name!r}: unknown source kind in {self.source!r}")

    def expected_sha256(self) -> str | None:
        """The card's sha256, or the one recorded when a revision-pinned file was pulled or imported."""
        if self.sha256 is not None:
            return self.sha256
        return read_checksums(self.model).get(self.file)

    def verify(self) -> Path:
        """Return the verified local path; raise WeightsError if missing or mismatched."""
        path = self.path()
        if not path.is_file():
            raise WeightsError(f"weights {self.name!r}: {path} is missing. Fix: {self.fix}")
        expected = self.expected_sha256()
        if expected is None:
            raise WeightsError(
                f"weights {self.name!r}: {path} has no recorded checksum (the card pins it by hub revision "
                f"only, and it was not fetched by bench models pull). Fix: {self.fix}"
            )
        actual = cached_sha256(path)
        if actual != expected:
            raise WeightsError(
                f"weights {self.name!r}: {path} has sha256 {actual}, expected {expected} "
                f"(corrupt, partial or a different version). Fix: {self.fix}"
            )
        return path

    def status(self) -> str:
        """``ok``, ``missing`` or ``mismatch`` (never raises)."""
        try:
            self.verify()
            return "ok"
        except WeightsError as exc:
            return "missing" if "missing" in str(exc) or "not installed" in str(exc) else "mismatch"


def checksums_path(model: str) -> Path:
    return models_dir() / model / ".checksums.json"


def read_checksums(model: str) -> dict[str, str]:
    """``file -> sha256`` recorded for a model's revision-pinned files."""
    path = checksums_path(model)
    return json.loads(path.read_text()) if path.is_file() else {}


def record_checksum(model: str, file: str, sha256: str) -> None:
    from idlora_bench.core.io import atomic_write_text

    recorded = read_checksums(model)
    recorded[file] = sha256
    atomic_write_text(checksums_path(model), json.dumps(recorded, indent=2, sort_keys=True))


def cached_sha256(path: Path) -> str:
    """sha256 of a file, memoised on (path, size, mtime) so a run hashes each checkpoint once."""
    stat = path.stat()
    return _sha256_memo(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=256)
def _sha256_memo(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def refuse_inexact_load(info: dict[str, Any], where: str, model_class: str) -> None:
    """Raise WeightsError unless transformers' ``output_loading_info`` shows an exact key and shape match.

    ``info``: the loading info of ``from_pretrained(..., output_loading_info=True, ignore_mismatched_sizes=True)``
    (``ignore_mismatched_sizes`` only so that shape mismatches come back by key here instead of as one exception);
    ``where``: the weights folder named in the message; ``model_class``: the transformers class that loaded them.
    """
    problems = {
        "missing keys": sorted(info.get("missing_keys", ())),
        "unexpected keys": sorted(info.get("unexpected_keys", ())),
        "shape mismatches": sorted(_shape_mismatch(entry) for entry in info.get("mismatched_keys", ())),
        "errors": list(info.get("error_msgs", ())),
    }
    if any(problems.values()):
        listed = "; ".join(f"{kind}: {', '.join(keys)}" for kind, keys in problems.items() if keys)
        raise WeightsError(f"weights {where}: checkpoint does not match {model_class} exactly ({listed})")


def _shape_mismatch(entry: Any) -> str:
    """``"key (checkpoint shape) vs (model shape)"`` from a transformers ``mismatched_keys`` entry."""
    if isinstance(entry, tuple) and len(entry) == 3:
        key, checkpoint_shape, model_shape = entry
        return f"{key} {tuple(checkpoint_shape)} vs {tuple(model_shape)}"
    return str(entry)
