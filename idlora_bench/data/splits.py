"""The split registry: a split is data under ``splits/<name>/`` (``card.yaml`` + ``pairs.jsonl``).

- Shipped splits (``media: shipped``, e.g. ``demo``) keep pairs and media in the split folder.
- External splits (``media: external``, e.g. ``celebvhq-hard``) ship only their card: pairs and media live
  under a data root given by ``--data-root`` or ``$IDLORA_BENCH_DATA``, in ``<root>/<name>/pairs.jsonl``
  with media paths relative to ``<root>/<name>/``.

Extra split folders can be registered with ``$IDLORA_BENCH_SPLITS`` (``os.pathsep``-separated folders
that each hold ``<name>/card.yaml``).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from idlora_bench.core.errors import RegistryError, ValidationError
from idlora_bench.core.io import file_sha256
from idlora_bench.core.registry import Registry
from idlora_bench.core.types import Clip, Pair, SplitCard, load_jsonl, load_yaml_model

REPO_SPLITS_DIR = Path(__file__).resolve().parents[2] / "splits"
DATA_ROOT_ENV = "IDLORA_BENCH_DATA"


def split_search_dirs() -> list[Path]:
    dirs = [REPO_SPLITS_DIR]
    extra = os.environ.get("IDLORA_BENCH_SPLITS", "")
    dirs += [Path(item) for item in extra.split(os.pathsep) if item]
    return dirs


def split_registry() -> Registry[Path]:
    """Split name -> split folder, for every ``<dir>/<name>/card.yaml`` found."""
    registry: Registry[Path] = Registry("split")
    for base in split_search_dirs():
        if not base.is_dir():
            continue
        for card in sorted(base.glob("*/card.yaml")):
            registry.register(card.parent.name, card.parent)
    return registry


def load_card(name: str) -> tuple[SplitCard, Path]:
    directory = split_registry().get(name)
    card = load_yaml_model(SplitCard, directory / "card.yaml")
    if card.name != name:
        raise ValidationError(f"{directory / 'card.yaml'}: field 'name' is {card.name!r}, folder is {name!r}")
    return card, directory


@dataclass(frozen=True)
class ResolvedPair:
    """One pair with its media located: what a method needs to generate one output.

    ``reference_path``: the clip whose audio is the voice reference; ``target_path``: the ground truth, whose
    first frame is the visual condition. The pair's texts (prompt, transcript, style, sounds) are in ``pair``.
    """

    pair: Pair
    split: str
    reference_path: Path
    target_path: Path

    @property
    def pair_id(self) -> str:
        return self.pair.pair_id


@dataclass
class Split:
    """A loaded split: its card, pairs, and where its media live."""

    card: SplitCard
    pairs: list[Pair]
    directory: Path
    media_root: Path
    pairs_path: Path
    _by_id: dict[str, Pair] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {pair.pair_id: pair for pair in self.pairs}

    @property
    def name(self) -> str:
        return self.card.name

    def media_path(self, clip: Clip) -> Path:
        return self.media_root / clip.path

    def resolve(self, pair: Pair) -> ResolvedPair:
        """The pair with its reference and target files located under this split's media root."""
        return ResolvedPair(pair, self.name, self.media_path(pair.reference), self.media_path(pair.target))

    def pair(self, pair_id: str) -> Pair:
        try:
            return self._by_id[pair_id]
        except KeyError:
            raise RegistryError(f"split {self.name!r} has no pair {pair_id!r}") from None

    @cached_property
    def pairs_sha256(self) -> str:
        """sha256 of the pairs file bytes: identifies the exact pair list a run used."""
        return hashlib.sha256(self.pairs_path.read_bytes()).hexdigest()

    def clips(self) -> list[Clip]:
        """Every distinct clip (by path), in pair order."""
        seen: dict[str, Clip] = {}
        for pair in self.pairs:
            for clip in (pair.reference, pair.target):
                seen.setdefault(clip.path, clip)
        return list(seen.values())


def resolve_data_root(data_root: str | os.PathLike[str] | None) -> Path | None:
    if data_root is not None:
        return Path(data_root)
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env) if env else None


def load_split(name: str, data_root: str | os.PathLike[str] | None = None) -> Split:
    """Load a split's card and pairs (validated). Media are not read here; see :func:`validate_split`."""
    card, directory = load_card(name)
    if card.media == "shipped":
        media_root = directory
    else:
        root = resolve_data_root(data_root)
        if root is None:
            raise ValidationError(
                f"split {name!r} keeps its media outside the repository ({card.source_dataset}). "
                f"Pass --data-root DIR or set ${DATA_ROOT_ENV}; expected layout: DIR/{name}/pairs.jsonl "
                f"with media paths relative to DIR/{name}/."
            )
        media_root = root / name
    pairs_path = media_root / "pairs.jsonl"
    if not pairs_path.is_file():
        raise ValidationError(f"split {name!r}: pairs file {pairs_path} does not exist")
    pairs = load_jsonl(Pair, pairs_path)
    _check_unique(pairs, pairs_path)
    return Split(card, pairs, directory, media_root, pairs_path)


def _check_unique(pairs: list[Pair], path: Path) -> None:
    seen: dict[str, int] = {}
    clip_files: dict[str, str] = {}
    for line, pair in enumerate(pairs, start=1):
        if pair.pair_id in seen:
            raise ValidationError(f"{path} line {line}: field 'pair_id': {pair.pair_id!r} repeats line {seen[pair.pair_id]}")
        seen[pair.pair_id] = line
        for role in ("reference", "target"):
            clip: Clip = getattr(pair, role)
            if clip_files.setdefault(clip.clip_id, clip.path) != clip.path:
                raise ValidationError(
                    f"{path} line {line}: field '{role}.clip_id': {clip.clip_id!r} names two different files"
                )


@dataclass
class ValidationReport:
    split: str
    problems: list[str]
    counts: dict[str, object]

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_split(split: Split, *, check_media: bool = True, decode_media: bool = False) -> ValidationReport:
    """Check counts against the card and every media file's presence and sha256 (optionally decode it)."""
    problems: list[str] = []
    kinds = Counter(pair.kind for pair in split.pairs)
    speakers = {pair.speaker_id for pair in split.pairs}
    expected = split.card.expected
    counts = {"pairs": len(split.pairs), "speakers": len(speakers), "kinds": dict(kinds)}
    if len(split.pairs) != expected.pairs:
        problems.append(f"{split.pairs_path}: {len(split.pairs)} pairs, card expects {expected.pairs}")
    if len(speakers) != expected.speakers:
        problems.append(f"{split.pairs_path}: {len(speakers)} speakers, card expects {expected.speakers}")
    for kind, number in expected.kinds.items():
        if kinds.get(kind, 0) != number:
            problems.append(f"{split.pairs_path}: {kinds.get(kind, 0)} {kind} pairs, card expects {number}")
    if check_media:
        for clip in split.clips():
            path = split.media_path(clip)
            if not path.is_file():
                problems.append(f"{path}: missing (clip {clip.clip_id})")
                continue
            actual = file_sha256(path)
            if actual != clip.sha256:
                problems.append(f"{path}: sha256 {actual} does not match {clip.sha256} in {split.pairs_path.name} "
                                f"(clip {clip.clip_id}): the file was changed or corrupted")
                continue
            if decode_media:
                from idlora_bench.core.errors import MediaError
                from idlora_bench.data.media import decode

                try:
                    media = decode(path, sha256=actual)
                except MediaError as exc:
                    problems.append(str(exc))
                    continue
                if abs(media.fps - clip.fps) > 1e-3:  # type: ignore[operator]
                    problems.append(f"{path}: {media.fps} fps, pairs file says {clip.fps}")
    return ValidationReport(split.name, problems, counts)
