"""Weights cards: where each checkpoint file comes from, its sha256 and licence, and strict verification.

A metric never runs with weights that do not match its card: a missing file or a wrong checksum raises
:class:`~idlora_bench.errors.WeightsError` naming the command that fixes it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from idlora_bench.errors import WeightsError
from idlora_bench.media import file_sha256

PYPI_FIX = "pip install -c constraints.txt -e '.[offline]' (reinstalls the package that ships it)"


@dataclass(frozen=True)
class WeightsFile:
    """One checkpoint file.

    Attributes:
        name: short name used in manifests (e.g. ``resemblyzer-ge2e``).
        source: where it comes from: ``pypi:<package>==<version>:<path inside the package>`` for weights
            shipped in a PyPI package, ``hf:<repo>@<revision>:<file>`` or a URL for downloaded ones.
        sha256: expected hex sha256 of the file.
        licence: licence of the weights.
        fix: the command that installs or repairs the file.
    """

    name: str
    source: str
    sha256: str
    licence: str
    fix: str = PYPI_FIX

    def path(self) -> Path:
        """Local path of the file (for ``pypi:`` sources: inside the installed package)."""
        if self.source.startswith("pypi:"):
            spec, inner_path = self.source.removeprefix("pypi:").split(":", 1)
            package = spec.split("==")[0]
            module = package.replace("-", "_")
            found = importlib.util.find_spec(module)
            if found is None or not found.submodule_search_locations:
                raise WeightsError(
                    f"weights {self.name!r}: package {package!r} is not installed. Fix: {self.fix}"
                )
            return Path(list(found.submodule_search_locations)[0]) / inner_path
        raise WeightsError(f"weights {self.name!r}: source {self.source!r} is not supported yet")

    def verify(self) -> Path:
        """Return the verified local path; raise WeightsError if missing or mismatched."""
        path = self.path()
        if not path.is_file():
            raise WeightsError(f"weights {self.name!r}: file {path} is missing. Fix: {self.fix}")
        actual = _cached_sha256(str(path), path.stat().st_size, path.stat().st_mtime_ns)
        if actual != self.sha256:
            raise WeightsError(
                f"weights {self.name!r}: {path} has sha256 {actual}, expected {self.sha256} "
                f"(corrupt or a different version). Fix: {self.fix}"
            )
        return path


@lru_cache(maxsize=64)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)
