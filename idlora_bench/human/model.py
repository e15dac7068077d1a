"""The study file ``STUDY/study.json``: everything a study is made of, private to the experimenter.

A study folder holds:

- ``study.json`` (this model): the runs and pairs used, pairs left out (and why), every item with the method
  behind each on-screen position, the hidden controls with their known answers, the slots (one annotator's card
  list each) and the seed. It is never served.
- ``site/``: the only folder ``bench human serve`` serves (pages, media named by a salted content hash, one public
  card list per slot in ``slots/slot-NNNN.json`` that hides which items are controls and which method is where).
- ``responses.sqlite``: the answers (written by the server; see :mod:`idlora_bench.human.responses`).

Answers: A/B items take ``"A"``, ``"B"`` or ``"equal"``; MOS items ``"1"`` (Bad) to ``"5"`` (Excellent).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import atomic_write_text
from idlora_bench.core.types import format_pydantic_error

FORMAT_VERSION = 1
AB_ANSWERS = ("A", "equal", "B")
MOS_ANSWERS = ("1", "2", "3", "4", "5")
MOS_LABELS = {"1": "Bad", "2": "Poor", "3": "Fair", "4": "Good", "5": "Excellent"}
ItemKind = Literal["test", "control", "practice"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Question(_Strict):
    """One question type: ``prompt`` is what the card asks; ``context`` what it shows beside the videos
    (``reference``: the pair's reference video; ``environment`` / ``manner``: the pair's environment-sounds /
    speaking-style text; ``prompt``: the whole prompt; ``none``)."""

    key: str
    title: str
    prompt: str
    context: Literal["reference", "environment", "manner", "prompt", "none"]


class RunSource(_Strict):
    """A run folder a study draws its videos from; ``label`` names the method in tables and figures."""

    label: str
    method: str
    run_dir: str
    run_id: str
    profile: str
    seed: int


class ExcludedPair(_Strict):
    """A pair left out of the study because one run has no usable video for it."""

    pair_id: str
    run: str
    reason: str


class Candidate(_Strict):
    """One video shown for rating: ``source`` is a run label, ``ground-truth``, ``foil:<pair_id>`` (another pair's
    target) or ``silent-ground-truth`` (the target with its audio replaced by digital silence)."""

    source: str
    media: str = Field(description="path relative to site/, e.g. media/0123abcd4567ef89.mp4")


class Item(_Strict):
    """One card. A/B: ``candidates`` = [shown as A, shown as B]; MOS: one candidate.

    ``expected``: the accepted answers of a control or practice item (None for test items); ``explanation``: how
    that known answer is defined (shown after answering a practice item; never shown for controls)."""

    item_id: str
    kind: ItemKind
    question: str
    pair_id: str
    scenario: str | None = None
    reference_media: str | None = None
    description: str | None = None
    candidates: list[Candidate]
    expected: list[str] | None = None
    explanation: str | None = None


class Slot(_Strict):
    """One annotator's card list (in the order shown): the slot's place in the design is chunk (which pairs),
    group (the Latin-square row) and replicate (1..annotators-per-item)."""

    slot: int
    chunk: int
    group: int
    replicate: int
    item_ids: list[str]


class Study(_Strict):
    """A whole study (``study.json``)."""

    format_version: int = FORMAT_VERSION
    study_id: str
    kind: Literal["ab", "mos"]
    created_utc: str
    package_version: str
    split: str
    split_pairs_sha256: str
    seed: int
    annotators_per_item: int
    pairs_per_slot: int | None
    questions: list[Question]
    runs: list[RunSource]
    pairs: list[str]
    excluded_pairs: list[ExcludedPair]
    latin_square: list[list[int]] = Field(description="row = group, column = block of pairs, value = level index "
                                          "(question for A/B, run for MOS)")
    levels: list[str] = Field(description="what the Latin square's values index: question keys or run labels")
    controls: dict[str, str] = Field(description="control name -> how its known answer is defined")
    items: list[Item]
    slots: list[Slot]
    completion_secret: str

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.item_id == item_id:
                return item
        raise ValidationError(f"study {self.study_id}: no item {item_id!r}")

    def items_by_id(self) -> dict[str, Item]:
        return {item.item_id: item for item in self.items}

    def question(self, key: str) -> Question:
        for question in self.questions:
            if question.key == key:
                return question
        raise ValidationError(f"study {self.study_id}: no question {key!r}")

    @property
    def answers(self) -> tuple[str, ...]:
        return AB_ANSWERS if self.kind == "ab" else MOS_ANSWERS


def study_path(study_dir: Path) -> Path:
    return Path(study_dir) / "study.json"


def site_dir(study_dir: Path) -> Path:
    return Path(study_dir) / "site"


def default_db_path(study_dir: Path) -> Path:
    return Path(study_dir) / "responses.sqlite"


def write_study(study_dir: Path, study: Study) -> Path:
    """Write ``study.json`` atomically."""
    return atomic_write_text(study_path(study_dir), study.model_dump_json(indent=2))


def load_study(study_dir: Path) -> Study:
    """Read and validate ``STUDY/study.json`` (``study_dir`` may also be the file itself)."""
    path = Path(study_dir)
    path = path if path.suffix == ".json" else study_path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValidationError(f"{path}: no study file (build one with bench human ab / bench human mos)") from None
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if data.get("format_version") != FORMAT_VERSION:
        raise ValidationError(f"{path}: field 'format_version' is {data.get('format_version')!r}; this version reads "
                              f"{FORMAT_VERSION}")
    try:
        return Study.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(f"{path}: {format_pydantic_error(exc)}") from None
