"""The static study site (``STUDY/site/``): pages and scripts from ``assets/`` (no CDN, nothing fetched from
elsewhere), ``public.json`` (titles, questions, answer labels, instructions) and one public card list per slot.

A public card never says whether it is a control, nor which method is behind a video: media are named by content
hash and controls look like any other card. Practice cards carry their answer (shown on "Reveal answer").
"""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

from idlora_bench.core.io import atomic_write_text
from idlora_bench.human.model import MOS_LABELS, Study, site_dir
from idlora_bench.human.sources import PUBLIC_MODE

ASSET_FILES = ("index.html", "study.js", "study.css")
AB_INSTRUCTIONS = [
    "Each card shows two videos, A and B. Watch every video on the card to the end: the answer buttons unlock only "
    "then, and skipping ahead is blocked until you answer.",
    "Then answer the question on the card: A, B, or Equal when you cannot tell them apart.",
    "Voice similarity: a reference video of the speaker is shown; which video's voice sounds more like it? "
    "Environment sounds: which video's background sounds better match the description? Speech manners: which "
    "video's speaking style better matches the description?",
    "Each section starts with a practice card: answer it, or press 'Reveal answer' to see the answer.",
    "Listen with headphones in a quiet place. Please do not reload the page between cards.",
]
MOS_INSTRUCTIONS = [
    "Each card shows one video. Watch it to the end: the rating buttons unlock only then, and skipping ahead is "
    "blocked until you answer.",
    "Then rate it from 1 (Bad) to 5 (Excellent) for the question on the card.",
    "The study starts with a practice card: answer it, or press 'Reveal answer' to see the answer.",
    "Listen with headphones in a quiet place. Please do not reload the page between cards.",
]


def slot_file(slot: int) -> str:
    """Site-relative path of a slot's public card list."""
    return f"slots/slot-{slot:04d}.json"


def public_study(study: Study) -> dict[str, object]:
    """What every page may know about the study (no items, no controls, no methods)."""
    if study.kind == "ab":
        answers = [{"value": "A", "label": "A"}, {"value": "equal", "label": "Equal"}, {"value": "B", "label": "B"}]
        title, instructions = "Which video is better?", AB_INSTRUCTIONS
    else:
        answers = [{"value": value, "label": f"{value} ({label})"} for value, label in MOS_LABELS.items()]
        title, instructions = study.questions[0].title, MOS_INSTRUCTIONS
    return {"study_id": study.study_id, "kind": study.kind, "title": title, "n_slots": len(study.slots),
            "instructions": instructions, "answers": answers,
            "questions": {q.key: {"title": q.title, "prompt": q.prompt} for q in study.questions}}


def public_slot(study: Study, slot: int) -> dict[str, object]:
    """A slot's cards in order, as the page shows them."""
    items = study.items_by_id()
    cards = []
    for item_id in study.slots[slot].item_ids:
        item = items[item_id]
        card: dict[str, object] = {"item_id": item.item_id, "question": item.question,
                                   "practice": item.kind == "practice", "reference": item.reference_media,
                                   "description": item.description,
                                   "videos": [candidate.media for candidate in item.candidates]}
        if item.kind == "practice":
            card.update(answer=item.expected, explanation=item.explanation)
        cards.append(card)
    return {"study_id": study.study_id, "slot": slot, "cards": cards}


def assets_dir() -> Path:
    return Path(str(resources.files("idlora_bench.human") / "assets"))


def write_site(study: Study, study_dir: Path) -> Path:
    """Write ``site/`` (pages, public.json, slot card lists) beside ``study.json``; media are placed by the builder."""
    site = site_dir(study_dir)
    (site / "assets").mkdir(parents=True, exist_ok=True)
    for name in ASSET_FILES:
        source = assets_dir() / name
        if not source.is_file():
            raise FileNotFoundError(f"{source}: a study page asset is missing from the installed package")
        shutil.copyfile(source, site / ("index.html" if name == "index.html" else f"assets/{name}"))
    written = [atomic_write_text(site / "public.json", json.dumps(public_study(study), indent=1))]
    for slot in study.slots:
        written.append(atomic_write_text(site / slot_file(slot.slot), json.dumps(public_slot(study, slot.slot),
                                                                                 indent=1)))
    for path in written:
        os.chmod(path, PUBLIC_MODE)
    return site
