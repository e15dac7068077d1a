"""What a training set contains, for the leakage check: source-video ids and speaker ids.

Accepted files:
- the authors' released ``train/metadata.jsonl`` (one JSON object per line): video ids are read from the keys in
  :data:`VIDEO_KEYS` (ids) and :data:`PATH_KEYS` (file paths, reduced to their stem), speaker ids from
  :data:`SPEAKER_KEYS`; the keys found are reported;
- a plain list (``.txt``): one id per line, ``video:<id>`` or ``speaker:<id>``, or a bare id matched against both.
Ids are compared case-insensitively, file extensions and folders dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from idlora_bench.core.errors import ValidationError

VIDEO_KEYS = ("video_id", "source_video", "ytb_id", "youtube_id", "clip_id", "video")
PATH_KEYS = ("video_path", "media_path", "target_path", "reference_path", "ref_path", "file_name", "path")
SPEAKER_KEYS = ("speaker_id", "speaker", "identity", "person_id", "celebrity")


def normalise_id(value: str) -> str:
    """``clips/Abc_01.mp4`` -> ``abc_01``."""
    return PurePosixPath(str(value).replace("\\", "/")).stem.strip().lower()


@dataclass
class TrainingList:
    source: Path
    video_ids: set[str] = field(default_factory=set)
    speaker_ids: set[str] = field(default_factory=set)
    keys_used: set[str] = field(default_factory=set)

    def has_video(self, video: str) -> bool:
        return normalise_id(video) in self.video_ids

    def has_speaker(self, speaker: str) -> bool:
        return normalise_id(speaker) in self.speaker_ids


def _from_jsonl(path: Path, found: TrainingList) -> None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path} line {number}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ValidationError(f"{path} line {number}: expected a JSON object")
        for key in (*VIDEO_KEYS, *PATH_KEYS):
            if isinstance(record.get(key), str) and record[key]:
                found.video_ids.add(normalise_id(record[key]))
                found.keys_used.add(key)
        for key in SPEAKER_KEYS:
            if record.get(key) not in (None, ""):
                found.speaker_ids.add(normalise_id(str(record[key])))
                found.keys_used.add(key)


def load_training_list(path: str | Path) -> TrainingList:
    """Read a training metadata JSONL or a plain id list (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path}: training list does not exist")
    found = TrainingList(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        _from_jsonl(path, found)
        if not found.keys_used:
            raise ValidationError(f"{path}: no record holds any of the keys {VIDEO_KEYS + PATH_KEYS + SPEAKER_KEYS}")
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        kind, sep, value = item.partition(":")
        if sep and kind in ("video", "speaker"):
            (found.video_ids if kind == "video" else found.speaker_ids).add(normalise_id(value))
        else:
            found.video_ids.add(normalise_id(item))
            found.speaker_ids.add(normalise_id(item))
    return found
