"""CSV exports: the answers (joined with what each item showed) and the assignment lists for crowd platforms.

- responses CSV: one row per stored answer with the item's kind (test / control / practice), question, pair,
  scenario, the source behind each position, the chosen source (A/B) or rating (MOS) and, for controls and
  practice items, the accepted answers and whether the answer was one of them.
- assignments CSV: one row per slot: the page URL to hand out (``?slot=N``; platforms append the worker id as
  ``&annotator=ID`` or ``&workerId=ID``) and the slot's item ids in order.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import atomic_write_text
from idlora_bench.human.model import Study, default_db_path
from idlora_bench.human.responses import RESPONSE_COLUMNS, ResponseStore

REQUIRED_CSV_COLUMNS = ("annotator_id", "item_id", "answer")


def read_responses(study: Study, study_dir: Path, db_path: Path | None = None,
                   csv_path: Path | None = None) -> pd.DataFrame:
    """Raw answers from the study's SQLite file, or from a CSV with at least annotator_id, item_id, answer (e.g.
    collected elsewhere); every item id and answer is checked against the study."""
    if csv_path is not None:
        try:
            raw = pd.read_csv(csv_path, dtype={"answer": str, "item_id": str, "annotator_id": str})
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise ValidationError(f"{csv_path}: cannot be read as CSV ({exc})") from None
        missing = [c for c in REQUIRED_CSV_COLUMNS if c not in raw.columns]
        if missing:
            raise ValidationError(f"{csv_path}: missing column(s) {', '.join(missing)}")
        raw = raw[[column for column in RESPONSE_COLUMNS if column in raw.columns]]
        where = str(csv_path)
    else:
        db = Path(db_path or default_db_path(study_dir))
        if not db.is_file():
            raise ValidationError(f"{db}: no answers file (bench human serve writes it; or pass --responses CSV)")
        raw = ResponseStore(study, db).responses()
        where = str(db)
    items = study.items_by_id()
    for number, row in enumerate(raw.itertuples(index=False), start=2):
        if row.item_id not in items:
            raise ValidationError(f"{where} row {number}: item {row.item_id!r} is not in study {study.study_id}")
        if str(row.answer) not in study.answers:
            raise ValidationError(f"{where} row {number}: answer {row.answer!r}, expected one of "
                                  f"{', '.join(study.answers)}")
    duplicated = raw.duplicated(["annotator_id", "item_id"], keep=False)
    if duplicated.any():
        first = raw[duplicated].iloc[0]
        raise ValidationError(f"{where}: {int(duplicated.sum())} rows repeat an (annotator, item) answer, e.g. "
                              f"{first.annotator_id} on {first.item_id}")
    return raw.assign(answer=raw["answer"].astype(str))


def answers_frame(study: Study, raw: pd.DataFrame) -> pd.DataFrame:
    """Raw answers joined with their items: kind, question, pair_id, scenario, source_a / source_b (A/B) or
    source (MOS), chosen (the source picked, ``equal``, or the rating), expected and passed (known items)."""
    items = study.items_by_id()
    rows = []
    for record in raw.to_dict("records"):
        item = items[record["item_id"]]
        sources = [candidate.source for candidate in item.candidates]
        answer = str(record["answer"])
        if study.kind == "ab":
            chosen = {"A": sources[0], "B": sources[1]}.get(answer, "equal")
            extra = {"source_a": sources[0], "source_b": sources[1]}
        else:
            chosen = answer
            extra = {"source": sources[0]}
        expected = item.expected
        rows.append({**record, "kind": item.kind, "question": item.question, "pair_id": item.pair_id,
                     "scenario": item.scenario, **extra, "chosen": chosen,
                     "expected": "|".join(expected) if expected else None,
                     "passed": (answer in expected) if expected else None})
    columns = list(raw.columns) + ["kind", "question", "pair_id", "scenario"]
    columns += ["source_a", "source_b"] if study.kind == "ab" else ["source"]
    return pd.DataFrame(rows, columns=columns + ["chosen", "expected", "passed"])


def write_responses_csv(study: Study, study_dir: Path, out: Path, db_path: Path | None = None) -> Path:
    """Every stored answer joined with its item, as CSV."""
    frame = answers_frame(study, read_responses(study, study_dir, db_path))
    return atomic_write_text(out, frame.to_csv(index=False))


def assignments_frame(study: Study, base_url: str) -> pd.DataFrame:
    """One row per slot: slot, chunk, group, replicate, url, n_items, item_ids (space-separated, in order)."""
    base = base_url.rstrip("/")
    return pd.DataFrame([{"slot": slot.slot, "chunk": slot.chunk, "group": slot.group, "replicate": slot.replicate,
                          "url": f"{base}/index.html?slot={slot.slot}", "n_items": len(slot.item_ids),
                          "item_ids": " ".join(slot.item_ids)} for slot in study.slots])


def write_assignments_csv(study: Study, out: Path, base_url: str) -> Path:
    return atomic_write_text(out, assignments_frame(study, base_url).to_csv(index=False))
