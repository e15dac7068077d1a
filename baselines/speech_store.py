"""The cascades' intermediate speech: made once per (TTS config, pair, seed), shared by every video part.

Layout, beside the run folders of a split (``runs/<split>/``)::

    _intermediate/speech/<tts name>-<tts config sha256[:16]>/<pair_id>-seed<seed>.wav   # the speech
    _intermediate/speech/<tts name>-<tts config sha256[:16]>/<pair_id>-seed<seed>.json  # what made it

so ``cosyvoice3+wan2.2`` and ``cosyvoice3+ltx`` (same TTS config) use the same file. The ``.json`` holds the TTS
config, its details (e.g. the exact text sent to a service), the WAV's sha256 and the run that made it; it is
written after the WAV, so a WAV without a matching record is made again. A lock file serialises two runs asking
for the same speech at once (one makes it, the other reuses it).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baselines.parts import SpeechRequest, TTSPart
from idlora_bench.core.io import atomic_write_text, file_sha256


@dataclass(frozen=True)
class StoredSpeech:
    """``wav_path`` with its record; ``reused``: it existed before this call."""

    wav_path: Path
    record: dict[str, Any]
    reused: bool

    def details(self) -> dict[str, Any]:
        return {"path": str(self.wav_path), "sha256": self.record["sha256"], "reused": self.reused,
                "made_by_run": self.record.get("made_by_run"), "tts": self.record.get("tts_details", {})}


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created with its folder) for the block: one process at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class SpeechStore:
    """Speech files under ``root`` (``<runs>/<split>/_intermediate/speech``); ``made`` / ``reused`` count this
    store's calls."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.made = 0
        self.reused = 0

    def folder(self, tts: TTSPart) -> Path:
        return self.root / f"{tts.name}-{tts.config_sha256()[:16]}"

    def _valid_record(self, wav: Path, record_path: Path) -> dict[str, Any] | None:
        if not (wav.is_file() and record_path.is_file()):
            return None
        try:
            record = json.loads(record_path.read_text())
        except ValueError:
            return None
        return record if record.get("sha256") == file_sha256(wav) else None

    def get_or_make(self, tts: TTSPart, request: SpeechRequest, seed: int, run: str) -> StoredSpeech:
        """The stored speech for ``request`` and ``seed``, made now with ``tts`` if absent (``run`` names the
        asking run in the record). Errors of the TTS part propagate; nothing is stored for them."""
        folder = self.folder(tts)
        stem = f"{request.pair_id}-seed{seed}"
        wav, record_path = folder / f"{stem}.wav", folder / f"{stem}.json"
        with file_lock(folder / f"{stem}.lock"):
            record = self._valid_record(wav, record_path)
            if record is not None:
                self.reused += 1
                return StoredSpeech(wav, record, reused=True)
            result = tts.synthesize(request, wav, seed)
            if not result.wav_path.is_file():
                raise RuntimeError(f"TTS part {tts.name!r} wrote no speech file at {result.wav_path}")
            record = {"pair_id": request.pair_id, "seed": seed, "tts": tts.config(), "tts_details": result.details,
                      "sha256": file_sha256(result.wav_path), "made_by_run": run}
            atomic_write_text(record_path, json.dumps(record, indent=2, sort_keys=True, default=str))
            self.made += 1
            return StoredSpeech(result.wav_path, record, reused=False)
