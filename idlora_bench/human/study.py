"""Build A/B preference and MOS studies from run folders (the paper's protocol, Appendix D).

Design (both kinds; "levels" are the question types of an A/B study and the runs of a MOS study):

- **Pairs**: those every run can show (:mod:`idlora_bench.human.sources`); the rest are left out and counted.
- **Chunks**: the pairs, shuffled (seeded), cut into chunks of at most ``pairs_per_slot`` (default: one chunk).
- **Cyclic Latin square**: in a chunk the pairs are cut into L blocks (L = number of levels); group g shows
  block b under level ``(b + g) mod L``. Each group's slot sees every pair of its chunk exactly once, so no
  annotator sees one pair under two question types (A/B) or from two methods (MOS); each (pair, level) item
  lies in exactly one group, whose ``annotators_per_item`` slots (replicates) all rate it.
- **A/B order**: drawn independently per (pair, question) and recorded in the item (``candidates[0]`` is shown
  as A).
- **Hidden controls** (per chunk, group and question; drawn from the pairs that group sees under that question,
  so the Latin-square property holds for controls too): see :data:`AB_CONTROLS` and :data:`MOS_CONTROL`.
- **Practice items**: built like controls from other pairs, shown first in each question's section with their
  answer revealed; never analysed.
- Card order: sections in question order; within a section, practice first, then tests and controls shuffled
  per slot (seeded).
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.provenance import now_utc, package_version
from idlora_bench.data.splits import Split, load_split
from idlora_bench.human.model import Candidate, ExcludedPair, Item, Question, Slot, Study, study_path, write_study
from idlora_bench.human.sources import LoadedSource, MediaFolder, MediaMode, load_sources

AB_QUESTIONS: dict[str, Question] = {
    "voice": Question(key="voice", title="Voice similarity", context="reference",
                      prompt="Which video's voice sounds more like the reference?"),
    "environment": Question(key="environment", title="Environment sounds", context="environment",
                            prompt="Which video's background sounds better match the description?"),
    "manner": Question(key="manner", title="Speech manners", context="manner",
                       prompt="Which video's speaking style better matches the description?"),
}
AB_CONTROLS: dict[str, str] = {
    "voice": "The pair's reference video is shown; the candidates are the pair's own ground-truth target (the same "
             "speaker as the reference) and the ground-truth target of a pair of another speaker (the foil). Known "
             "answer: the position of the pair's own target.",
    "environment": "The pair's environment-sounds text is shown; the candidates are the pair's own ground-truth "
                   "target (the recording the text was written for) and the target of another speaker's pair whose "
                   "environment-sounds text differs (the foil). Known answer: the position of the own target.",
    "manner": "The pair's speaking-style text is shown; the candidates are the pair's own ground-truth target (the "
              "recording the text was written for) and the target of another speaker's pair whose speaking-style "
              "text differs (the foil). Known answer: the position of the own target.",
}
FOIL_NOTE = ("Foils are drawn (seeded) among the split's pairs of another speaker whose environment and style texts "
             "both differ from the control pair's, when the split has one; otherwise among those that differ in what "
             "the question asks about.")
MOS_CONTROL = ("silent: the pair's ground-truth target with its audio replaced by digital silence (same frames and "
               "duration), shown with the control description; the described sound cannot be heard, so the known "
               "answer is 1 or 2. Valid for questions about what can be heard; pass --controls 0 otherwise.")
DEFAULT_CONTROL_DESCRIPTION = "loud music playing throughout the video"
SCENARIO_FIELDS = ("environment_sounds", "speaking_style", "speaker_id", "kind")


@dataclass
class _Design:
    """The chunks, blocks and the slots' place in the Latin square (see the module docstring)."""

    square: list[list[int]]
    chunks: list[list[list[str]]]  # chunk -> block -> pair ids

    def block_level(self, group: int, block: int) -> int:
        return self.square[group][block]

    def pairs_at(self, chunk: int, group: int, level: int) -> list[str]:
        """The pairs group ``group`` of ``chunk`` sees under ``level``."""
        return self.chunks[chunk][self.square[group].index(level)]


def latin_square(n: int) -> list[list[int]]:
    """The cyclic Latin square of order ``n``: row g, column b holds ``(b + g) mod n``."""
    return [[(block + group) % n for block in range(n)] for group in range(n)]


def plan_design(pair_ids: list[str], n_levels: int, pairs_per_slot: int | None, rng: np.random.Generator) -> _Design:
    """Shuffle the pairs, cut them into chunks and each chunk into ``n_levels`` blocks (sizes differ by at most 1)."""
    if pairs_per_slot is not None and pairs_per_slot < n_levels:
        raise ValidationError(f"--pairs-per-slot {pairs_per_slot} is below the {n_levels} levels of the Latin square")
    if len(pair_ids) < n_levels:
        raise ValidationError(f"{len(pair_ids)} usable pair(s) cannot fill a Latin square of order {n_levels}")
    order = [pair_ids[i] for i in rng.permutation(len(pair_ids))]
    n_chunks = 1 if pairs_per_slot is None else math.ceil(len(order) / pairs_per_slot)
    chunks = [[list(map(str, block)) for block in np.array_split(np.array(chunk, dtype=object), n_levels)]
              for chunk in np.array_split(np.array(order, dtype=object), n_chunks)]
    for number, chunk in enumerate(chunks):
        if min(len(block) for block in chunk) == 0:
            raise ValidationError(f"chunk {number} has {sum(map(len, chunk))} pairs, fewer than the {n_levels} levels")
    return _Design(latin_square(n_levels), chunks)


@dataclass
class _Builder:
    """Shared state while items are made: the seeded generator, unique opaque item ids, the media folder."""

    rng: np.random.Generator
    media: MediaFolder
    split: Split
    items: list[Item] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set)

    def new_id(self) -> str:
        while True:
            item_id = f"{int(self.rng.integers(0, 2**40)):010x}"
            if item_id not in self._ids:
                self._ids.add(item_id)
                return item_id

    def add(self, **fields: object) -> str:
        item = Item(item_id=self.new_id(), **fields)  # type: ignore[arg-type]
        self.items.append(item)
        return item.item_id

    def target(self, pair_id: str) -> str:
        pair = self.split.pair(pair_id)
        return self.media.add(self.split.media_path(pair.target), pair.target.sha256)

    def reference(self, pair_id: str) -> str:
        pair = self.split.pair(pair_id)
        return self.media.add(self.split.media_path(pair.reference), pair.reference.sha256)

    def sample(self, pool: list[str], count: int, where: str) -> list[str]:
        if count > len(pool):
            raise ValidationError(f"{where}: {len(pool)} pair(s) available, controls + practice need {count}; lower "
                                  "--controls / --practice or raise --pairs-per-slot")
        return [pool[i] for i in sorted(self.rng.choice(len(pool), size=count, replace=False))]


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def choose_foil(split: Split, pair_id: str, question: str, rng: np.random.Generator) -> str:
    """A pair whose target is a clearly wrong answer to ``question`` for ``pair_id`` (see :data:`FOIL_NOTE`)."""
    pair = split.pair(pair_id)
    tests: dict[str, Callable[..., bool]] = {
        "voice": lambda other: other.speaker_id != pair.speaker_id,
        "environment": lambda other: (other.speaker_id != pair.speaker_id
                                      and not _same_text(other.environment_sounds, pair.environment_sounds)),
        "manner": lambda other: (other.speaker_id != pair.speaker_id
                                 and not _same_text(other.speaking_style, pair.speaking_style)),
    }
    others = [other for other in split.pairs if other.target.path != pair.target.path]
    strict = [other for other in others if all(test(other) for test in tests.values())]
    pool = strict or [other for other in others if tests[question](other)]
    if not pool:
        raise ValidationError(f"split {split.name}: no pair can serve as a {question} control foil for {pair_id} "
                              "(every other pair shares its speaker or text); pass --controls 0 --practice 0")
    return pool[int(rng.integers(len(pool)))].pair_id


def _context(builder: _Builder, question: Question, pair_id: str) -> dict[str, object]:
    pair = builder.split.pair(pair_id)
    if question.context == "reference":
        return {"reference_media": builder.reference(pair_id)}
    text = {"environment": pair.environment_sounds, "manner": pair.speaking_style, "prompt": pair.prompt}
    return {"description": text.get(question.context)}


def _ab_known_item(builder: _Builder, question: Question, pair_id: str, kind: str) -> str:
    """A control or practice item: the pair's own target vs a foil's target, positions drawn at random."""
    foil_id = choose_foil(builder.split, pair_id, question.key, builder.rng)
    own = Candidate(source="ground-truth", media=builder.target(pair_id))
    foil = Candidate(source=f"foil:{foil_id}", media=builder.target(foil_id))
    own_first = bool(builder.rng.random() < 0.5)
    position = "A" if own_first else "B"
    foil_pair, pair = builder.split.pair(foil_id), builder.split.pair(pair_id)
    why = {"voice": f"video {position} is the real recording of the reference speaker; the other video is another "
                    f"speaker ({foil_pair.speaker_id}).",
           "environment": f"video {position} is the recording this description was written for; the other was "
                          f"recorded with '{foil_pair.environment_sounds}'.",
           "manner": f"video {position} is the recording this description was written for; the other speaks as "
                     f"'{foil_pair.speaking_style}'."}[question.key]
    return builder.add(kind=kind, question=question.key, pair_id=pair_id, **_context(builder, question, pair.pair_id),
                       candidates=[own, foil] if own_first else [foil, own], expected=[position],
                       explanation=f"The answer is {position}: {why}")


def _slot_order(builder: _Builder, practice: list[str], rest: list[str]) -> list[str]:
    return practice + [rest[i] for i in builder.rng.permutation(len(rest))]


def _finish(builder: _Builder, study_fields: dict[str, object], out: Path, secret: str) -> Study:
    """Hash the design into the study id, write study.json and the site."""
    from idlora_bench.human.pages import write_site

    design = json.dumps(study_fields, sort_keys=True,
                        default=lambda value: value.model_dump() if hasattr(value, "model_dump") else str(value))
    digest = hashlib.sha256(design.encode()).hexdigest()[:10]
    study = Study(study_id=f"{study_fields['kind']}-{study_fields['split']}-{digest}", created_utc=now_utc(),
                  package_version=package_version(), completion_secret=secret, **study_fields)  # type: ignore[arg-type]
    write_study(out, study)
    write_site(study, out)
    return study


def _ab_items(builder: _Builder, design: _Design, questions: list[Question], sources: list[LoadedSource],
              replicates: int, controls: int, practice: int) -> list[Slot]:
    """Test items per (pair, question) with a random A/B order; controls and practice per (chunk, group,
    question); the slots' card lists."""
    slots: list[Slot] = []
    for chunk_number, chunk in enumerate(design.chunks):
        for group in range(len(questions)):
            sections: list[tuple[list[str], list[str]]] = []
            for level, question in enumerate(questions):
                pool = design.pairs_at(chunk_number, group, level)
                where = f"chunk {chunk_number}, group {group}, question {question.key}"
                known = builder.sample(pool, controls + practice, where)
                control_ids = [_ab_known_item(builder, question, pid, "control") for pid in known[:controls]]
                practice_ids = [_ab_known_item(builder, question, pid, "practice") for pid in known[controls:]]
                test_ids = []
                for pair_id in pool:
                    first, second = sources if builder.rng.random() < 0.5 else sources[::-1]
                    test_ids.append(builder.add(
                        kind="test", question=question.key, pair_id=pair_id, **_context(builder, question, pair_id),
                        candidates=[Candidate(source=s.source.label, media=builder.media.add(s.videos[pair_id]))
                                    for s in (first, second)]))
                sections.append((practice_ids, test_ids + control_ids))
            for replicate in range(replicates):
                order = [i for practice_ids, rest in sections for i in _slot_order(builder, practice_ids, rest)]
                slots.append(Slot(slot=len(slots), chunk=chunk_number, group=group, replicate=replicate,
                                  item_ids=order))
    return slots


def _prepare(out: Path, run_paths: list[Path], split_name: str, data_root: Path | None, profile: str | None,
             ) -> tuple[Split, list[LoadedSource], list[ExcludedPair], list[str]]:
    if study_path(out).exists():
        raise ValidationError(f"{study_path(out)}: a study already lives there (its answers would no longer match); "
                              "choose another --out")
    if Path(out).exists() and any(Path(out).iterdir()):
        raise ValidationError(f"{out}: folder exists and is not empty; choose another --out")
    split = load_split(split_name, data_root)
    sources, excluded = load_sources(run_paths, split, profile)
    usable = [pair.pair_id for pair in split.pairs if all(pair.pair_id in s.videos for s in sources)]
    if not usable:
        raise ValidationError(f"no pair of {split_name} has a usable video in every run ({len(excluded)} left out)")
    return split, sources, excluded, usable


def _staged(out: Path, build: Callable[[Path], Study]) -> Study:
    """Build the study in a hidden folder beside ``out`` and move it into place when complete."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    staging.chmod(0o755)  # like mkdir: site/ must be reachable by a web server; study.json itself stays 0600
    try:
        study = build(staging)
        if out.exists():
            out.rmdir()  # empty (checked in _prepare)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return study


def build_ab_study(run_a: Path, run_b: Path, split_name: str, out: Path, *, questions: list[str] | None = None,
                   data_root: Path | None = None, profile: str | None = None, seed: int = 0,
                   annotators_per_item: int = 9, pairs_per_slot: int | None = None, controls: int = 1,
                   practice: int = 1, media_mode: MediaMode = "copy") -> Study:
    """An A/B preference study of run A vs run B on ``split_name`` written to ``out`` (see the module docstring).

    ``questions``: keys of :data:`AB_QUESTIONS` (default all three); ``controls`` / ``practice``: items per
    (chunk, group, question)."""
    keys = questions or list(AB_QUESTIONS)
    unknown = [key for key in keys if key not in AB_QUESTIONS]
    if unknown or len(set(keys)) != len(keys):
        raise ValidationError(f"--questions {','.join(keys)}: choose distinct keys from {', '.join(AB_QUESTIONS)}")
    _check_counts(annotators_per_item, controls, practice)
    split, sources, excluded, usable = _prepare(out, [run_a, run_b], split_name, data_root, profile)
    chosen = [AB_QUESTIONS[key] for key in keys]

    def build(folder: Path) -> Study:
        rng = np.random.default_rng(seed)
        design = plan_design(usable, len(chosen), pairs_per_slot, rng)
        secret = secrets.token_hex(16)
        builder = _Builder(rng, MediaFolder(folder / "site", secret, media_mode), split)
        slots = _ab_items(builder, design, chosen, sources, annotators_per_item, controls, practice)
        fields = _common_fields("ab", split, seed, annotators_per_item, pairs_per_slot, sources, usable, excluded,
                                design, builder, slots)
        fields.update(questions=chosen, levels=keys,
                      controls={key: AB_CONTROLS[key] + " " + FOIL_NOTE for key in keys} if controls else {})
        return _finish(builder, fields, folder, secret)

    return _staged(out, build)


def _check_counts(annotators_per_item: int, controls: int, practice: int) -> None:
    if annotators_per_item < 1:
        raise ValidationError(f"--annotators-per-item must be at least 1, got {annotators_per_item}")
    if controls < 0 or practice < 0:
        raise ValidationError(f"--controls and --practice cannot be negative (got {controls}, {practice})")


def _common_fields(kind: str, split: Split, seed: int, annotators_per_item: int, pairs_per_slot: int | None,
                   sources: list[LoadedSource], usable: list[str], excluded: list[ExcludedPair], design: _Design,
                   builder: _Builder, slots: list[Slot]) -> dict[str, object]:
    return {"kind": kind, "split": split.name, "split_pairs_sha256": split.pairs_sha256, "seed": seed,
            "annotators_per_item": annotators_per_item, "pairs_per_slot": pairs_per_slot,
            "runs": [s.source for s in sources], "pairs": usable, "excluded_pairs": excluded,
            "latin_square": design.square, "items": builder.items, "slots": slots}


def scenario_of(split: Split, scenario_by: str, scenarios: dict[str, str] | None) -> dict[str, str]:
    """Pair id -> scenario label: from ``scenarios`` (pair id -> label, every pair needed) or a pair field."""
    if scenarios is not None:
        missing = [pair.pair_id for pair in split.pairs if pair.pair_id not in scenarios]
        if missing:
            raise ValidationError(f"the scenarios file names no scenario for {len(missing)} pair(s): "
                                  f"{', '.join(missing[:10])}")
        return dict(scenarios)
    if scenario_by not in SCENARIO_FIELDS:
        raise ValidationError(f"--scenario-by {scenario_by!r}: choose from {', '.join(SCENARIO_FIELDS)}")
    return {pair.pair_id: str(getattr(pair, scenario_by)) for pair in split.pairs}


def _mos_known_item(builder: _Builder, question: Question, pair_id: str, kind: str, scenario: str,
                    control_description: str) -> str:
    silent = Candidate(source="silent-ground-truth", media=builder.media.add_silent(
        builder.split.media_path(builder.split.pair(pair_id).target)))
    context = _context(builder, question, pair_id)
    if question.context != "none" and question.context != "reference":
        context = {"description": control_description}
    return builder.add(kind=kind, question=question.key, pair_id=pair_id, scenario=scenario, candidates=[silent],
                       expected=["1", "2"], explanation="The answer is 1 (Bad) or 2 (Poor): this video has no sound "
                       "at all, so the described sound cannot be heard.", **context)


def _mos_items(builder: _Builder, design: _Design, question: Question, sources: list[LoadedSource],
               scenarios: dict[str, str], replicates: int, controls: int, practice: int,
               control_description: str) -> list[Slot]:
    slots: list[Slot] = []
    for chunk_number, chunk in enumerate(design.chunks):
        chunk_pairs = [pair_id for block in chunk for pair_id in block]
        for group in range(len(sources)):
            known = builder.sample(chunk_pairs, controls + practice, f"chunk {chunk_number}, group {group}")
            made = [_mos_known_item(builder, question, pid, "control" if n < controls else "practice",
                                    scenarios[pid], control_description) for n, pid in enumerate(known)]
            test_ids = []
            for block_number, block in enumerate(chunk):
                source = sources[design.block_level(group, block_number)]
                for pair_id in block:
                    test_ids.append(builder.add(
                        kind="test", question=question.key, pair_id=pair_id, scenario=scenarios[pair_id],
                        **_context(builder, question, pair_id),
                        candidates=[Candidate(source=source.source.label, media=builder.media.add(source.videos[pair_id]))]))
            for replicate in range(replicates):
                order = _slot_order(builder, made[controls:], test_ids + made[:controls])
                slots.append(Slot(slot=len(slots), chunk=chunk_number, group=group, replicate=replicate,
                                  item_ids=order))
    return slots


def build_mos_study(run_paths: list[Path], split_name: str, out: Path, *, question: str,
                    describe: str = "environment", title: str = "Sound match", data_root: Path | None = None,
                    profile: str | None = None, seed: int = 0, annotators_per_item: int = 9,
                    pairs_per_slot: int | None = None, controls: int = 1, practice: int = 1,
                    scenario_by: str = "environment_sounds", scenarios: dict[str, str] | None = None,
                    control_description: str = DEFAULT_CONTROL_DESCRIPTION, media_mode: MediaMode = "copy") -> Study:
    """A 1-5 MOS study of one or more runs (each video rated on its own; see the module docstring).

    ``describe``: what each card shows beside the video (``environment``, ``manner``, ``prompt``, ``reference`` or
    ``none``); ``scenarios`` / ``scenario_by``: the scenario of each pair for per-scenario results."""
    if not question.strip():
        raise ValidationError("--question is empty: give the text annotators answer on the 1-5 scale")
    _check_counts(annotators_per_item, controls, practice)
    split, sources, excluded, usable = _prepare(out, run_paths, split_name, data_root, profile)
    chosen = Question(key="mos", title=title, prompt=question.strip(), context=describe)  # type: ignore[arg-type]
    by_pair = scenario_of(split, scenario_by, scenarios)

    def build(folder: Path) -> Study:
        rng = np.random.default_rng(seed)
        design = plan_design(usable, len(sources), pairs_per_slot, rng)
        secret = secrets.token_hex(16)
        builder = _Builder(rng, MediaFolder(folder / "site", secret, media_mode), split)
        slots = _mos_items(builder, design, chosen, sources, by_pair, annotators_per_item, controls, practice,
                           control_description)
        fields = _common_fields("mos", split, seed, annotators_per_item, pairs_per_slot, sources, usable, excluded,
                                design, builder, slots)
        fields.update(questions=[chosen], levels=[s.source.label for s in sources],
                      controls={"silent": MOS_CONTROL} if controls else {})
        return _finish(builder, fields, folder, secret)

    return _staged(out, build)
