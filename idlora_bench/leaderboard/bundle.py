"""The submission bundle: its layout and its manifest (``bundle.json``).

A bundle is a folder, or the same folder as a ``.tar.gz`` archive (members relative to the folder)::

    bundle.json                              the bundle manifest (BundleManifest): every other file with sha256 and size
    selftest-<profile>.json                  the metric profile's selftest report (unless submitted with --no-selftest)
    runs/<name>/manifest-<profile>.json      the run manifest (core.types.RunManifest), as the run wrote it
    runs/<name>/results-<profile>.jsonl      one SampleResult per pair x metric, as the run wrote it
    runs/<name>/videos/<pair_id>.mp4         the generated videos (optional, default on), sha256 = the rows' generated_sha256
    runs/<name>/videos/<pair_id>.json        the generation records, where the run has them

One bundle holds one metric profile; its runs may cover several methods, seeds and splits. The bundle's identity is
the sha256 of its ``bundle.json`` bytes (which lists every other file's sha256).
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from idlora_bench.core.io import atomic_output, file_sha256
from idlora_bench.core.types import IDENTIFIER_PATTERN, SHA256_PATTERN

SUBMISSION_FORMAT = "idlora-bench-submission/1"
SELFTEST_FORMAT = "idlora-bench-selftest/1"
"""The selftest report's format tag (``idlora_bench.selftest.SELFTEST_FORMAT``; the leaderboard layer reads the
report as JSON and does not import the selftest package; a test checks that the two agree)."""
BUNDLE_MANIFEST = "bundle.json"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BundleFile(_Strict):
    """One file of the bundle: its sha256 and size in bytes."""

    sha256: str = Field(pattern=SHA256_PATTERN)
    bytes: int = Field(ge=0)


class BundleRun(_Strict):
    """One run of the bundle; paths are relative to the bundle root."""

    name: str = Field(pattern=IDENTIFIER_PATTERN, description="folder under runs/")
    method: str
    seed: int
    split: str
    run_id: str
    manifest: str
    results: str
    videos: str | None = Field(description="folder of <pair_id>.mp4, None when videos were left out")


class BundleSplit(_Strict):
    """A split the runs were made on, as the submitter's checkout registered it."""

    name: str
    version: str
    pairs_sha256: str = Field(pattern=SHA256_PATTERN)


class BundleSelftest(_Strict):
    """The selftest report of the bundle's metric profile, or the record that it was left out (``--no-selftest``)."""

    included: bool
    path: str | None = None
    passed: bool | None = None
    note: str = ""


class BundleManifest(_Strict):
    """``bundle.json``."""

    format: Literal["idlora-bench-submission/1"]
    title: str = Field(min_length=1)
    submitter: str = ""
    created_utc: str
    package_version: str
    git_hash: str | None
    git_dirty: bool | None
    profile: str
    splits: list[BundleSplit]
    runs: list[BundleRun] = Field(min_length=1)
    selftest: BundleSelftest
    videos_included: bool
    files: dict[str, BundleFile]


def is_archive(path: Path) -> bool:
    """Whether ``path`` names a ``.tar.gz`` / ``.tgz`` bundle (by its suffix)."""
    return str(path).endswith(ARCHIVE_SUFFIXES)


def safe_name(text: str) -> str:
    """``text`` as a folder name: characters outside ``[A-Za-z0-9._-]`` become ``_``, a leading one is ``x``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text) or "x"
    return cleaned if re.match(r"[A-Za-z0-9]", cleaned) else f"x{cleaned}"


def list_files(root: Path) -> dict[str, BundleFile]:
    """Every regular file under ``root`` except ``bundle.json``: relative POSIX path -> sha256 and size."""
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(root).as_posix()
        if relative != BUNDLE_MANIFEST:
            files[relative] = BundleFile(sha256=file_sha256(path), bytes=path.stat().st_size)
    return files


def write_manifest(root: Path, manifest: BundleManifest) -> str:
    """Write ``bundle.json`` (sorted keys, 2-space indent); returns the bundle id (sha256 of its bytes)."""
    text = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    (root / BUNDLE_MANIFEST).write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def bundle_id(root: Path) -> str:
    """sha256 of ``bundle.json``: identifies the bundle's whole content (it lists every file's sha256)."""
    return file_sha256(root / BUNDLE_MANIFEST)


def write_archive(root: Path, out: Path) -> Path:
    """``root``'s files as a gzip-compressed tar at ``out`` (atomic), members relative to ``root``, sorted, with
    plain metadata (mode 644/755, owner 0, mtime 0), regular files and folders only."""

    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with atomic_output(out) as tmp:
        with tarfile.open(tmp, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(root.rglob("*")):
                if path.is_symlink() or not (path.is_file() or path.is_dir()):
                    raise ValueError(f"{path}: only regular files and folders go into a bundle")
                tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False, filter=plain)
    return out
