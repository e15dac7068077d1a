"""Where a study's videos come from: run folders (which pairs each run can show) and the study's media folder.

A pair is shown only when every run of the study has a usable video for it. A run's video is unusable (and the
pair is left out, with the run and the reason recorded in ``study.json``) when its generation record says
``failed``, the file is missing, the run has no result rows for the pair, or a result row says
``generation_error``, ``missing_output`` or ``decode_error``. Metric failures of a video that exists (no face,
no speech, ...) do not exclude it: people can still rate it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from idlora_bench.core.errors import MediaError, ValidationError
from idlora_bench.core.io import atomic_output, file_sha256
from idlora_bench.data.splits import Split
from idlora_bench.human.model import ExcludedPair, RunSource
from idlora_bench.store.run_files import StoredRun, load_run, read_generation_record

UNUSABLE_CODES = ("generation_error", "missing_output", "decode_error")
MediaMode = Literal["copy", "symlink"]
PUBLIC_MODE = 0o644  # served files are world-readable (a web server may run as another user); study.json stays 0600


@dataclass
class LoadedSource:
    """One run of a study: its description and the pair id -> video file of every usable pair."""

    source: RunSource
    videos: dict[str, Path]


def _videos_dir(stored: StoredRun) -> Path:
    """``videos/`` of a ``bench run`` folder, or the outputs folder a ``bench score`` manifest names."""
    videos = stored.files.run_dir / "videos"
    if videos.is_dir():
        return videos
    outputs = stored.manifest.method_config.get("outputs_dir")
    if outputs and Path(outputs).is_dir():
        return Path(outputs)
    raise ValidationError(f"{stored.files.run_dir}: no videos/ folder, and {stored.files.manifest_json.name} names "
                          "no existing outputs_dir")


def _unusable_reason(stored: StoredRun, videos: Path, pair_id: str) -> str | None:
    """Why a run's video for ``pair_id`` cannot be shown, or None when it can."""
    record = read_generation_record(videos / f"{pair_id}.json")
    if record is not None and record.status == "failed":
        return record.reason or "generation_error: the generation record says failed"
    rows = stored.results[stored.results["pair_id"] == pair_id]
    if rows.empty:
        return f"not_scored: {stored.files.results_jsonl.name} has no row for the pair"
    for reason in rows["reason"].dropna():
        if str(reason).startswith(UNUSABLE_CODES):
            return str(reason)
    if not (videos / f"{pair_id}.mp4").is_file():
        return f"missing_output: {videos / f'{pair_id}.mp4'} does not exist"
    return None


def _check_scored_file(stored: StoredRun, path: Path, pair_id: str) -> None:
    """The file is the one that was scored (its sha256 is among the pair's ``generated_sha256`` values)."""
    rows = stored.results[stored.results["pair_id"] == pair_id]
    scored = {sha for sha in rows["generated_sha256"].dropna()}
    if scored and file_sha256(path) not in scored:
        raise ValidationError(f"{path}: sha256 differs from the file scored in {stored.files.results_jsonl} "
                              "(the video changed after scoring; score the run again)")


def load_sources(run_paths: list[Path], split: Split, profile: str | None = None
                 ) -> tuple[list[LoadedSource], list[ExcludedPair]]:
    """Each run's usable videos, and every (pair, run) left out with its reason. Runs must be of ``split`` (same
    pairs file) and carry distinct labels (method name; ``-seed<N>`` added where two runs share a method)."""
    stored_runs = [load_run(Path(path), profile) for path in run_paths]
    methods = [stored.manifest.method for stored in stored_runs]
    loaded: list[LoadedSource] = []
    excluded: list[ExcludedPair] = []
    for stored in stored_runs:
        manifest = stored.manifest
        if manifest.split != split.name:
            raise ValidationError(f"{stored.files.manifest_json}: a run of split {manifest.split!r}; the study is of "
                                  f"{split.name!r}")
        if manifest.split_pairs_sha256 != split.pairs_sha256:
            raise ValidationError(f"{stored.files.manifest_json}: made with another pairs file of {split.name!r} "
                                  f"(sha256 {manifest.split_pairs_sha256[:12]}..., now {split.pairs_sha256[:12]}...)")
        label = manifest.method if methods.count(manifest.method) == 1 else f"{manifest.method}-seed{manifest.seed}"
        if label in {item.source.label for item in loaded}:
            raise ValidationError(f"{stored.files.run_dir}: a second run of {label!r}; a study compares distinct runs")
        videos_dir = _videos_dir(stored)
        videos: dict[str, Path] = {}
        for pair in split.pairs:
            reason = _unusable_reason(stored, videos_dir, pair.pair_id)
            if reason is None:
                path = videos_dir / f"{pair.pair_id}.mp4"
                _check_scored_file(stored, path, pair.pair_id)
                videos[pair.pair_id] = path
            else:
                excluded.append(ExcludedPair(pair_id=pair.pair_id, run=label, reason=reason))
        source = RunSource(label=label, method=manifest.method, run_dir=str(stored.files.run_dir.resolve()),
                           run_id=manifest.run_id, profile=manifest.profile, seed=manifest.seed)
        loaded.append(LoadedSource(source, videos))
    return loaded, excluded


class MediaFolder:
    """``site/media/``: every file once, named by its content hash salted with the study's secret
    (``sha256(salt:sha256(file))[:16]``), so that file names reveal neither method nor role nor the split's public
    hashes; ``mode`` copies files or symlinks them (absolute links)."""

    def __init__(self, site: Path, salt: str, mode: MediaMode = "copy") -> None:
        self.site = Path(site)
        self.salt = salt
        self.mode = mode
        self._added: dict[tuple[Path, str], str] = {}

    def _place(self, source: Path, sha: str, *, link: bool) -> str:
        name = hashlib.sha256(f"{self.salt}:{sha}".encode()).hexdigest()[:16]
        relative = f"media/{name}{source.suffix.lower() or '.mp4'}"
        destination = self.site / relative
        if not destination.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            if link:
                destination.symlink_to(source.resolve())
            else:
                with atomic_output(destination) as tmp:
                    shutil.copyfile(source, tmp)
                    os.chmod(tmp, PUBLIC_MODE)
        return relative

    def add(self, path: Path, expected_sha256: str | None = None) -> str:
        """Place ``path`` in the media folder (checking its sha256 when given); returns its site-relative path."""
        path = Path(path)
        key = (path.resolve(), "as-is")
        if key in self._added:
            return self._added[key]
        if not path.is_file():
            raise ValidationError(f"{path}: media file does not exist")
        sha = file_sha256(path)
        if expected_sha256 is not None and sha != expected_sha256:
            raise ValidationError(f"{path}: sha256 {sha[:12]}... does not match {expected_sha256[:12]}... recorded for "
                                  "it (the file was changed or corrupted)")
        self._added[key] = self._place(path, sha, link=self.mode == "symlink")
        return self._added[key]

    def add_silent(self, path: Path) -> str:
        """A copy of ``path`` whose audio is digital silence (same frames, rate, duration and channels): the
        known-bad clip of MOS controls. Always a real file (never a link)."""
        from idlora_bench.data.media import decode, write_mp4

        path = Path(path)
        key = (path.resolve(), "silent")
        if key in self._added:
            return self._added[key]
        try:
            media = decode(path)
        except MediaError as exc:
            raise ValidationError(f"cannot build a silent control from {exc}") from None
        assert media.frames is not None and media.audio is not None and media.fps is not None
        staging = self.site / "media" / f".silent-{file_sha256(path)[:16]}.mp4"
        try:
            write_mp4(staging, media.frames, media.fps, np.zeros_like(media.audio), media.sample_rate)
        except ValueError as exc:
            raise ValidationError(f"{path}: cannot re-encode as a silent control ({exc})") from None
        relative = self._place(staging, file_sha256(staging), link=False)
        staging.unlink()
        self._added[key] = relative
        return relative
