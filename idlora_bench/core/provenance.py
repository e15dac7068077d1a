"""Provenance: package version, git commit, library versions, platform."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding idlora_bench/
CORE_LIBRARIES = ("idlora-bench", "numpy", "scipy", "pandas", "av", "pydantic", "torch")
"""Always recorded; each metric adds the distributions of its ``requires`` (see :func:`library_versions`)."""


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


def distribution_name(requirement: str) -> str:
    """``"insightface==2.1 (--no-deps)"`` -> ``"insightface"``."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    return match.group(0) if match else requirement


def library_versions(requirements: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """Installed version of the core libraries and of every distribution named in ``requirements``."""
    versions = {}
    for name in dict.fromkeys([*CORE_LIBRARIES, *(distribution_name(r) for r in requirements)]):
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
