"""The files of a run folder, written atomically and read back validated.

A run folder (``runs/<split>/<method>-seed<seed>/`` by default) holds:

- ``videos/<pair_id>.mp4`` and its :class:`GenerationRecord` ``videos/<pair_id>.json``;
- per metric profile P: ``results-P.jsonl`` (one :class:`~idlora_bench.core.types.SampleResult` per pair x
  metric) and ``results-P.csv`` (the same without details), ``summary-P.csv``, ``manifest-P.json``
  (:class:`~idlora_bench.core.types.RunManifest`) and ``counts-P.json`` (work done: generated, reused, features
  computed, cache hits, files decoded).

Readers find a run's profiles from its manifests (the ``profile`` field), never from file names alone, and
check that the results rows carry the same profile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import atomic_write_text
from idlora_bench.core.types import (
    RunManifest,
    SampleResult,
    load_jsonl,
    parse_record,
    write_jsonl,
)


class GenerationRecord(BaseModel):
    """Sidecar ``videos/<pair_id>.json``: how an output was made (or why it could not be).

    ``sha256`` is the hash of the mp4 as written (``None`` when generation failed); ``seconds`` the wall time;
    ``details`` what the method reported about this output (e.g. an API's task id and cost, the exact text sent to a
    TTS service, the shared intermediate speech file it used), JSON-serialisable.
    """

    pair_id: str
    method: str
    config_sha256: str
    seed: int
    status: str
    reason: str | None = None
    sha256: str | None = None
    seconds: float
    details: dict[str, Any] = {}


def read_generation_record(path: Path) -> GenerationRecord | None:
    """The record at ``path``, or None when there is none yet."""
    if not path.is_file():
        return None
    try:
        return GenerationRecord.model_validate_json(path.read_text())
    except ValueError as exc:
        raise ValidationError(f"{path}: not a valid generation record ({exc})") from None


def write_generation_record(path: Path, record: GenerationRecord) -> None:
    atomic_write_text(path, record.model_dump_json(indent=2))


@dataclass(frozen=True)
class RunFiles:
    """Paths of one profile's files in a run folder."""

    run_dir: Path
    profile: str

    def _path(self, stem: str, suffix: str) -> Path:
        return self.run_dir / f"{stem}-{self.profile}{suffix}"

    @property
    def results_jsonl(self) -> Path:
        return self._path("results", ".jsonl")

    @property
    def results_csv(self) -> Path:
        return self._path("results", ".csv")

    @property
    def summary_csv(self) -> Path:
        return self._path("summary", ".csv")

    @property
    def manifest_json(self) -> Path:
        return self._path("manifest", ".json")

    @property
    def counts_json(self) -> Path:
        return self._path("counts", ".json")


def results_frame(rows: list[SampleResult]) -> pd.DataFrame:
    """Result rows as a DataFrame (one column per SampleResult field)."""
    return pd.DataFrame([row.model_dump() for row in rows], columns=list(SampleResult.model_fields))


def write_run_files(files: RunFiles, rows: list[SampleResult], manifest: RunManifest, summary: pd.DataFrame,
                    counts: dict[str, int] | None = None) -> pd.DataFrame:
    """Write results (JSONL + CSV), summary, manifest and counts of one profile; returns the results frame."""
    if manifest.profile != files.profile:
        raise ValueError(f"manifest profile {manifest.profile!r} written as {files.profile!r}")
    write_jsonl(files.results_jsonl, list(rows))
    frame = results_frame(rows)
    atomic_write_text(files.results_csv, frame.drop(columns=["details"]).to_csv(index=False))
    atomic_write_text(files.summary_csv, summary.to_csv(index=False))
    atomic_write_text(files.manifest_json, manifest.model_dump_json(indent=2))
    if counts is not None:
        atomic_write_text(files.counts_json, json.dumps(counts, indent=2))
    return frame


def load_manifest(path: Path) -> RunManifest:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValidationError(f"{path}: file does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_record(RunManifest, data, str(path))


def load_results(path: Path) -> pd.DataFrame:
    """Read a ``results-<profile>.jsonl`` back (validated) as a DataFrame."""
    return results_frame(load_jsonl(SampleResult, path))


@dataclass(frozen=True)
class StoredRun:
    """One profile of one run folder: its manifest and results (validated, profiles consistent)."""

    files: RunFiles
    manifest: RunManifest
    results: pd.DataFrame


def run_profiles(run_dir: Path) -> dict[str, RunFiles]:
    """Profile -> files of every scored profile in ``run_dir``, read from the manifests' ``profile`` field."""
    found: dict[str, RunFiles] = {}
    for manifest_path in sorted(Path(run_dir).glob("manifest-*.json")):
        manifest = load_manifest(manifest_path)
        files = RunFiles(Path(run_dir), manifest.profile)
        if files.manifest_json != manifest_path:
            raise ValidationError(f"{manifest_path}: its profile is {manifest.profile!r}; the file name says "
                                  "otherwise (was it renamed?)")
        found[manifest.profile] = files
    return found


def load_run(path: Path, profile: str | None = None) -> StoredRun:
    """A run folder (or a ``manifest-<profile>.json`` / ``results-<profile>.jsonl`` file in one) for one profile.

    A folder holding several profiles needs ``profile``; results whose rows name another profile than the
    manifest are refused.
    """
    path = Path(path)
    if path.is_file():
        run_dir = path.parent
        manifest = load_manifest(path) if path.name.startswith("manifest-") else None
        if manifest is None:
            candidates = {p: f for p, f in run_profiles(run_dir).items() if f.results_jsonl == path}
            if not candidates:
                raise ValidationError(f"{path}: no manifest in {run_dir} describes this results file")
            profile = next(iter(candidates))
        else:
            profile = manifest.profile
    elif path.is_dir():
        run_dir = path
    else:
        raise ValidationError(f"{path}: no such run folder or file")
    profiles = run_profiles(run_dir)
    if not profiles:
        raise ValidationError(f"{run_dir}: no manifest-<profile>.json (has it been scored?)")
    if profile is None:
        if len(profiles) > 1:
            raise ValidationError(f"{run_dir}: results of several profiles ({', '.join(sorted(profiles))}); "
                                  "choose one with --profile")
        profile = next(iter(profiles))
    if profile not in profiles:
        raise ValidationError(f"{run_dir}: no results for profile {profile!r} (has: {', '.join(sorted(profiles))})")
    files = profiles[profile]
    manifest = load_manifest(files.manifest_json)
    if not files.results_jsonl.is_file():
        raise ValidationError(f"{files.manifest_json}: its results file {files.results_jsonl.name} is missing")
    results = load_results(files.results_jsonl)
    other = sorted(set(results["profile"]) - {profile})
    if other:
        raise ValidationError(f"{files.results_jsonl}: rows of profile(s) {other} under a manifest of {profile!r}")
    return StoredRun(files, manifest, results)
