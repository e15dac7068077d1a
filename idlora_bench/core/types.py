"""Data model: Clip, Pair, SplitCard, Split, SampleResult, RunManifest.

Every record is a pydantic model validated on load; :func:`load_jsonl` and :func:`load_yaml_model` turn
validation problems into :class:`~idlora_bench.core.errors.ValidationError` messages that name the file, the
line (for JSONL) and the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from idlora_bench.core.errors import ValidationError

PairKind = Literal["same-video", "cross-video"]
ANCHOR_METHODS: tuple[str, ...] = ("gt", "still-reference", "swap-speaker")
"""The sanity anchors every table can carry: the ceiling (gt) and two floors; tables never rank them."""
Direction = Literal["higher", "lower"]
Status = Literal["ok", "failed"]

PROMPT_PATTERN = re.compile(
    r"^\s*\[VISUAL\]:\s*(?P<visual>.+?)\s*\[SPEECH\]:\s*(?P<speech>.+?)\s*\[SOUNDS\]:\s*(?P<sounds>.+?)\s*$",
    re.DOTALL,
)
SHA256_PATTERN = r"^[0-9a-f]{64}$"
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Clip(_Strict):
    """One audio-video file of a split.

    ``path`` is relative to the split's media root (the split folder for shipped splits, the user's data
    root for external ones). ``start_s``/``duration_s`` describe where the clip was cut from its source
    video, in seconds.
    """

    clip_id: str = Field(pattern=IDENTIFIER_PATTERN)
    path: str = Field(min_length=1)
    sha256: str = Field(pattern=SHA256_PATTERN)
    source_video: str = Field(min_length=1, description="id of the source recording the clip was cut from")
    start_s: float = Field(ge=0.0)
    duration_s: float = Field(gt=0.0)
    fps: float = Field(gt=0.0)

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: str) -> str:
        if value.startswith("/") or ".." in Path(value).parts:
            raise ValueError("must be a relative path inside the media root (no leading '/', no '..')")
        return value


class Pair(_Strict):
    """One evaluation sample: generate ``target`` from ``reference`` audio + ``target`` first frame + prompt.

    - ``reference``: its audio is the identity (voice) reference.
    - ``target``: the ground truth video+audio; its first frame is the visual condition.
    - ``prompt``: ``[VISUAL]: ... [SPEECH]: <transcript> [SOUNDS]: ...``.
    - ``transcript`` / ``speaking_style`` / ``environment_sounds``: the prompt's parts as separate fields
      (WER uses the transcript, audio prompt adherence the style + environment texts).
    """

    pair_id: str = Field(pattern=IDENTIFIER_PATTERN)
    speaker_id: str = Field(pattern=IDENTIFIER_PATTERN)
    kind: PairKind
    reference: Clip
    target: Clip
    prompt: str
    transcript: str = Field(min_length=1)
    speaking_style: str = Field(min_length=1)
    environment_sounds: str = Field(min_length=1)

    @field_validator("prompt")
    @classmethod
    def _prompt_format(cls, value: str) -> str:
        if not PROMPT_PATTERN.match(value):
            raise ValueError("must have the form '[VISUAL]: ... [SPEECH]: ... [SOUNDS]: ...' (in that order)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Pair:
        match = PROMPT_PATTERN.match(self.prompt)
        assert match is not None
        if _normalise_space(match["speech"]) != _normalise_space(self.transcript):
            raise ValueError("the prompt's [SPEECH] part must equal the 'transcript' field")
        same_source = self.reference.source_video == self.target.source_video
        if self.kind == "same-video" and not same_source:
            raise ValueError("kind 'same-video' needs reference and target cut from the same source_video")
        if self.kind == "cross-video" and same_source:
            raise ValueError("kind 'cross-video' needs reference and target from different source_video")
        if self.reference.path == self.target.path:
            raise ValueError("reference and target must be different files")
        return self

    @property
    def prompt_parts(self) -> dict[str, str]:
        """The prompt's ``visual``, ``speech`` and ``sounds`` texts."""
        match = PROMPT_PATTERN.match(self.prompt)
        assert match is not None
        return {key: _normalise_space(text) for key, text in match.groupdict().items()}


class ExpectedCounts(_Strict):
    pairs: int = Field(gt=0)
    speakers: int = Field(gt=0)
    kinds: dict[PairKind, int]

    @model_validator(mode="after")
    def _kinds_sum(self) -> ExpectedCounts:
        if sum(self.kinds.values()) != self.pairs:
            raise ValueError(f"kinds {dict(self.kinds)} do not add up to pairs={self.pairs}")
        return self


class MediaLicence(_Strict):
    """Where a piece of shipped source material came from and under which licence."""

    material: str
    source: str
    licence: str


class SplitCard(_Strict):
    """The description of a split (``splits/<name>/card.yaml``).

    ``media``: ``shipped`` (media under the split folder) or ``external`` (media under a user data root,
    ``--data-root`` or ``$IDLORA_BENCH_DATA``, in ``<root>/<name>/``).
    """

    name: str = Field(pattern=IDENTIFIER_PATTERN)
    version: str = Field(min_length=1)
    description: str
    source_dataset: str
    protocol: str
    media: Literal["shipped", "external"]
    expected: ExpectedCounts
    licence: str
    media_licences: list[MediaLicence] = Field(default_factory=list)
    rebuild: str | None = Field(default=None, description="command that rebuilds the shipped media")
    reference: str | None = Field(default=None, description="paper section or table the split comes from")


class SampleResult(_Strict):
    """One row of a run's results: one pair x one metric value.

    A failed row has ``value=None`` and a ``reason`` (``code: message``); an ok row has a finite value.
    ``details`` holds per-sample extras (e.g. frames without a face, the recognised transcript).
    """

    run_id: str
    method: str
    split: str
    pair_id: str
    speaker_id: str
    kind: PairKind
    profile: str
    metric: str = Field(description="the metric family, i.e. the table column (e.g. speaker_similarity)")
    metric_impl: str = Field(description="the registered metric implementation (e.g. speaker_similarity.resemblyzer)")
    metric_version: str
    direction: Direction
    status: Status
    value: float | None = None
    reason: str | None = None
    generated_sha256: str | None = None
    target_sha256: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _status_matches_value(self) -> SampleResult:
        if self.status == "ok":
            if self.value is None or not math.isfinite(self.value):
                raise ValueError("an 'ok' row needs a finite value")
            if self.reason:
                raise ValueError("an 'ok' row has no reason")
        else:
            if self.value is not None:
                raise ValueError("a 'failed' row has no value (never a 0.0 that looks like a score)")
            if not self.reason:
                raise ValueError("a 'failed' row needs a reason")
        return self


class MetricProvenance(_Strict):
    """What a run records of each metric: identity, parameters, weights, and how its column is displayed.

    The display fields come from the metric class (its one source of metadata) so that reports read them
    from the run's manifest without importing the metric's code.
    """

    name: str
    family: str
    version: str
    direction: Direction
    params: dict[str, Any]
    weights: dict[str, str | None] = Field(description="weights file name -> sha256")
    label: str | None = Field(default=None, description="table header (defaults to the family)")
    digits: int = Field(default=3, ge=0, le=6, description="decimals shown in tables")
    unit: str = ""
    paper_reference: str = ""


class RunManifest(_Strict):
    """Everything needed to know how a run's numbers were made."""

    run_id: str
    created_utc: str
    package_version: str
    git_hash: str | None
    git_dirty: bool | None
    python: str
    platform: str
    libraries: dict[str, str]
    method: str
    method_config: dict[str, Any]
    smoke: bool = Field(default=False, description="made with a smoke configuration: never for comparison")
    seed: int
    split: str
    split_version: str
    split_pairs_sha256: str
    profile: str
    device: str
    metrics: list[MetricProvenance]


ModelT = TypeVar("ModelT", bound=BaseModel)


def _normalise_space(text: str) -> str:
    return " ".join(text.split())


def format_pydantic_error(error: PydanticValidationError) -> str:
    """``field.sub: message; other: message`` from a pydantic error."""
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(record)"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"field '{location}': {message}")
    return "; ".join(parts)


def parse_record(model: type[ModelT], data: Any, where: str) -> ModelT:
    """Validate one record; ``where`` (e.g. ``file.jsonl line 3``) prefixes the error message."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(f"{where}: {format_pydantic_error(exc)}") from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, decoded_json)`` for each non-blank line (numbers start at 1)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"{path}: file does not exist") from None
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path}: not UTF-8 text ({exc})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path} line {number}: invalid JSON ({exc.msg} at column {exc.colno})") from None


def load_jsonl(model: type[ModelT], path: Path) -> list[ModelT]:
    """Load and validate every line of a JSONL file as ``model``."""
    return [parse_record(model, data, f"{path} line {number}") for number, data in iter_jsonl(path)]


def load_yaml_model(model: type[ModelT], path: Path) -> ModelT:
    """Load and validate a YAML file as ``model``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"{path}: file does not exist") from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"{path}: invalid YAML ({exc})") from None
    return parse_record(model, data, str(path))


def write_jsonl(path: Path, records: list[BaseModel]) -> None:
    """Write records one JSON object per line (atomic: temporary file then rename)."""
    from idlora_bench.core.io import atomic_write_text

    atomic_write_text(path, "".join(record.model_dump_json() + "\n" for record in records))
