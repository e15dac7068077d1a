"""The build spec: one row per pair (CSV with a header, or JSONL), validated with the spec's line numbers.

Fields (times in seconds in the source video; videos are paths relative to ``--videos DIR``):

- ``pair_id``, ``speaker_id``, ``kind`` (``same-video`` | ``cross-video``);
- ``reference_video``, ``reference_start_s``, ``reference_end_s``: the voice reference ``[start, end)``;
- ``target_video``, ``target_start_s`` and optionally ``target_end_s``: the ground truth, cut to exactly
  ``target_frames`` frames (121 at 25 fps = 4.84 s) from its start; ``target_end_s``, when given, must leave room;
- the caption fields ``visual``, ``transcript``, ``speaking_style``, ``environment_sounds`` (the prompt is built as
  ``[VISUAL]: ... [SPEECH]: <transcript> [SOUNDS]: <speaking style>, <environment sounds>``).

A same-video pair whose reference and target overlap in time is refused (the model would hear its own target).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.types import IDENTIFIER_PATTERN, PairKind, parse_record

TARGET_FRAMES = 121
TARGET_FPS = 25.0


class SpecRow(BaseModel):
    """One pair to cut (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pair_id: str = Field(pattern=IDENTIFIER_PATTERN)
    speaker_id: str = Field(pattern=IDENTIFIER_PATTERN)
    kind: PairKind
    reference_video: str = Field(min_length=1)
    reference_start_s: float = Field(ge=0.0)
    reference_end_s: float
    target_video: str = Field(min_length=1)
    target_start_s: float = Field(ge=0.0)
    target_end_s: float | None = None
    visual: str = Field(min_length=1)
    transcript: str = Field(min_length=1)
    speaking_style: str = Field(min_length=1)
    environment_sounds: str = Field(min_length=1)

    @property
    def target_duration_s(self) -> float:
        return TARGET_FRAMES / TARGET_FPS

    @model_validator(mode="after")
    def _consistent(self) -> SpecRow:
        if self.reference_end_s <= self.reference_start_s:
            raise ValueError(f"reference_end_s {self.reference_end_s} must be after reference_start_s "
                             f"{self.reference_start_s}")
        target_end = self.target_start_s + self.target_duration_s
        if self.target_end_s is not None and self.target_end_s < target_end - 1e-6:
            raise ValueError(f"target_end_s {self.target_end_s} leaves less than {TARGET_FRAMES} frames at "
                             f"{TARGET_FPS:g} fps ({self.target_duration_s:.2f} s) after target_start_s")
        same_video = Path(self.reference_video) == Path(self.target_video)
        if self.kind == "same-video" and not same_video:
            raise ValueError("kind 'same-video' needs reference_video == target_video")
        if self.kind == "cross-video" and same_video:
            raise ValueError("kind 'cross-video' needs different reference_video and target_video")
        if same_video and self.reference_start_s < target_end and self.target_start_s < self.reference_end_s:
            raise ValueError(f"reference [{self.reference_start_s}, {self.reference_end_s}) s overlaps target "
                             f"[{self.target_start_s}, {target_end:.2f}) s of the same video")
        return self

    @property
    def prompt(self) -> str:
        return (f"[VISUAL]: {self.visual} [SPEECH]: {self.transcript} "
                f"[SOUNDS]: {self.speaking_style}, {self.environment_sounds}")


def _rows(path: Path) -> list[tuple[int, dict]]:
    """``(line number, raw record)`` of a CSV (header on line 1) or JSONL spec."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"{path}: spec file does not exist") from None
    if path.suffix.lower() == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise ValidationError(f"{path} line {number}: invalid JSON ({exc.msg})") from None
        return rows
    if path.suffix.lower() != ".csv":
        raise ValidationError(f"{path}: a spec is a .csv (with a header) or a .jsonl file")
    reader = csv.DictReader(text.splitlines())
    rows = []
    for index, record in enumerate(reader, start=2):
        rows.append((index, {key: (value if value != "" else None) for key, value in record.items()}))
    return rows


def load_spec(path: str | Path) -> list[SpecRow]:
    """Every row of the spec, validated; errors name the file, line and field. Pair ids must be unique."""
    path = Path(path)
    raw = _rows(path)
    rows = [parse_record(SpecRow, record, f"{path} line {number}") for number, record in raw]
    if not rows:
        raise ValidationError(f"{path}: the spec has no rows")
    seen: dict[str, int] = {}
    for (number, _), row in zip(raw, rows):
        if row.pair_id in seen:
            raise ValidationError(f"{path} line {number}: field 'pair_id': {row.pair_id!r} repeats line "
                                  f"{seen[row.pair_id]}")
        seen[row.pair_id] = number
    return rows


def spec_line_numbers(path: str | Path) -> list[int]:
    """The line number of each row of the spec, in order (for messages about a row after loading)."""
    return [number for number, _ in _rows(Path(path))]
