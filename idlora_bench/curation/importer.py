"""``bench splits import``: a folder laid out as the authors' evaluation release -> a split's pairs file and media.

The release (``AviadDahan/ID-LoRA-eval``) holds ``references/`` and ``targets/`` with one file per pair, matched by
file stem; its captions file is not documented, so a captions file is given (or found: the one ``*.jsonl`` /
``*.json`` / ``*.csv`` in the folder). Each caption record names its stem (``stem``, ``name``, ``file``,
``file_name`` or ``id``, extension dropped) and its caption (``caption`` or ``prompt``), and may carry
``speaker_id``, ``kind``, ``reference_source_video`` and ``target_source_video``.

Captions use the authors' tags (their captioner, ``packages/ltx-trainer/src/ltx_trainer/captioning.py:21-30``, and
their CLAP metric, ``metrics/evaluation_metrics.py:645-674``): ``[VISUAL]``, ``[SPEECH]`` (the transcript),
``[SOUNDS]`` (speaking style and environment together), ``[TEXT]`` (on-screen text, kept out of the prompt) and the
older ``[SPEAKING_STYLE]`` / ``[ENVIRONMENT_SOUNDS]``. When only ``[SOUNDS]`` is there, style and environment cannot
be told apart: both fields get the ``[SOUNDS]`` text and the import report says so.

Anything unmatched (a reference without a target, a target without a reference, a file without a caption, a caption
without files) is refused with every such file listed, and nothing is written.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import atomic_write_text, file_sha256
from idlora_bench.core.types import Clip, Pair
from idlora_bench.data.media import probe
from idlora_bench.data.splits import Split, load_card, validate_split

MEDIA_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
STEM_KEYS = ("stem", "name", "file", "file_name", "id")
CAPTION_KEYS = ("caption", "prompt")
TAGS = ("VISUAL", "SPEECH", "SOUNDS", "TEXT", "SPEAKING_STYLE", "ENVIRONMENT_SOUNDS")
_TAG = re.compile(r"\[(" + "|".join(TAGS) + r")\]\s*:?\s*")


def parse_caption(caption: str) -> dict[str, str]:
    """Tag -> text of an authors' caption (lower-case keys; whitespace collapsed; a tag's text ends at the next tag)."""
    parts = _TAG.split(caption)
    found: dict[str, str] = {}
    for tag, text in zip(parts[1::2], parts[2::2]):
        found[tag.lower()] = " ".join(text.split())
    return found


@dataclass
class ImportResult:
    directory: Path
    pairs: int
    notes: list[str] = field(default_factory=list)


def _media(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ValidationError(f"{folder}: missing (the release layout is references/ and targets/)")
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in MEDIA_SUFFIXES}


def _records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if path.suffix == ".json":
        data = json.loads(text)
        return [{"stem": k, "caption": v} for k, v in data.items()] if isinstance(data, dict) else list(data)
    return list(csv.DictReader(text.splitlines()))


def load_captions(path: Path) -> dict[str, dict[str, Any]]:
    """Stem -> caption record (see the module docstring); a record without a stem or caption is refused by line."""
    captions: dict[str, dict[str, Any]] = {}
    for number, record in enumerate(_records(path), start=1):
        stem = next((str(record[k]) for k in STEM_KEYS if record.get(k)), None)
        caption = next((str(record[k]) for k in CAPTION_KEYS if record.get(k)), None)
        if stem is None or caption is None:
            raise ValidationError(f"{path} record {number}: needs a stem ({'/'.join(STEM_KEYS)}) and a caption "
                                  f"({'/'.join(CAPTION_KEYS)})")
        captions[Path(stem).stem] = {**record, "caption": caption}
    return captions


def _find_captions(source: Path) -> Path:
    candidates = [p for p in sorted(source.iterdir()) if p.suffix in (".jsonl", ".json", ".csv")]
    if len(candidates) != 1:
        raise ValidationError(f"{source}: pass --captions FILE ({len(candidates)} candidate caption files found: "
                              f"{', '.join(p.name for p in candidates) or 'none'})")
    return candidates[0]


def _unmatched(references: dict[str, Path], targets: dict[str, Path], captions: dict[str, Any],
               captions_path: Path) -> list[str]:
    problems = [f"{references[s]}: no target {s}.* in targets/" for s in sorted(set(references) - set(targets))]
    problems += [f"{targets[s]}: no reference {s}.* in references/" for s in sorted(set(targets) - set(references))]
    both = set(references) & set(targets)
    problems += [f"{targets[s]}: no caption for {s!r} in {captions_path.name}" for s in sorted(both - set(captions))]
    problems += [f"{captions_path.name}: caption for {s!r} matches no file" for s in sorted(set(captions) - both)]
    return problems


def _clip(path: Path, clip_id: str, relative: str, source_video: str) -> Clip:
    info = probe(path)
    if info.fps is None:
        raise ValidationError(f"{path}: no video stream")
    return Clip(clip_id=clip_id, path=relative, sha256=file_sha256(path), source_video=source_video, start_s=0.0,
                duration_s=round(info.duration_s, 6), fps=info.fps)


def _pair(stem: str, record: dict[str, Any], reference: Clip, target: Clip, speaker: str, kind: str,
          notes: list[str]) -> Pair:
    tags = parse_caption(record["caption"])
    if not tags.get("speech"):
        raise ValidationError(f"caption of {stem!r} has no [SPEECH] text (the transcript)")
    style = tags.get("speaking_style") or tags.get("sounds")
    environment = tags.get("environment_sounds") or tags.get("sounds")
    if not style or not environment:
        raise ValidationError(f"caption of {stem!r} has neither [SOUNDS] nor [SPEAKING_STYLE]/[ENVIRONMENT_SOUNDS]")
    if "speaking_style" not in tags or "environment_sounds" not in tags:
        notes.append(f"{stem}: only [SOUNDS]: speaking_style and environment_sounds both hold it")
    sounds = tags.get("sounds") or f"{style}, {environment}"
    prompt = f"[VISUAL]: {tags.get('visual') or 'a person speaking'} [SPEECH]: {tags['speech']} [SOUNDS]: {sounds}"
    return Pair(pair_id=stem, speaker_id=speaker, kind=kind, reference=reference, target=target, prompt=prompt,
                transcript=tags["speech"], speaking_style=style, environment_sounds=environment)


def import_release(name: str, source: str | Path, data_root: str | Path, *, captions: str | Path | None = None,
                   speaker_regex: str | None = None, kind: str | None = None,
                   overwrite: bool = False) -> ImportResult:
    """Import ``source`` (``references/``, ``targets/``, captions) as split ``name`` under ``data_root``."""
    card, card_dir = load_card(name)
    source, data_root = Path(source), Path(data_root)
    references, targets = _media(source / "references"), _media(source / "targets")
    captions_path = Path(captions) if captions else _find_captions(source)
    records = load_captions(captions_path)
    problems = _unmatched(references, targets, records, captions_path)
    if problems:
        raise ValidationError(f"{source}: {len(problems)} file(s) cannot be matched, nothing written:\n  - "
                              + "\n  - ".join(problems))
    final = data_root / name
    if final.exists() and not overwrite:
        raise ValidationError(f"{final} exists; pass --overwrite to replace it")
    pattern = re.compile(speaker_regex) if speaker_regex else None
    staging = data_root / f".{name}.importing"
    shutil.rmtree(staging, ignore_errors=True)
    notes: list[str] = []
    try:
        pairs = []
        for stem in sorted(targets):
            record = records[stem]
            match = pattern.search(stem) if pattern else None
            speaker = record.get("speaker_id") or (match.group("speaker") if match else None)
            pair_kind = record.get("kind") or kind
            if not speaker or not pair_kind:
                raise ValidationError(f"{stem}: needs a speaker (caption field speaker_id, or --speaker-regex with a "
                                      "(?P<speaker>...) group) and a kind (field kind, or --kind)")
            same = pair_kind == "same-video"
            ref_video = record.get("reference_source_video") or (stem if same else f"{stem}-reference")
            tgt_video = record.get("target_source_video") or (stem if same else f"{stem}-target")
            for role, files in (("references", references), ("targets", targets)):
                (staging / role).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(files[stem], staging / role / files[stem].name)
            reference = _clip(staging / "references" / references[stem].name, f"{stem}-ref",
                              f"references/{references[stem].name}", ref_video)
            target = _clip(staging / "targets" / targets[stem].name, f"{stem}-tgt", f"targets/{targets[stem].name}",
                           tgt_video)
            pairs.append(_pair(stem, record, reference, target, speaker, pair_kind, notes))
        atomic_write_text(staging / "pairs.jsonl", "".join(p.model_dump_json() + "\n" for p in pairs))
        report = validate_split(Split(card, pairs, card_dir, staging, staging / "pairs.jsonl"))
        if not report.ok:
            raise ValidationError(f"{source} imported as {name!r} does not match its card: " + "; ".join(report.problems))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    return ImportResult(final, len(pairs), notes)
