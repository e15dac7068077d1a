"""CLAP against the speaking-style text, the ID-LoRA authors' variant (``clap_style.htsat_unfused_authors``).

The authors' ``CLAPSimilarityMetric`` with ``caption_type="speaking"`` (ID-LoRA
``packages/ltx-trainer/src/ltx_trainer/metrics/evaluation_metrics.py:837-838, 664-674``, commit 399bf3e), logged by
their trainer as ``val/clap_speaking_similarity`` (``trainer.py:1283-1290``). Text: the pair's ``speaking_style``,
stripped. Audio, scoring and every deviation from the authors' code: see
:mod:`idlora_bench.metrics.clap_htsat_unfused_authors` (the audio embedding is shared with it).
"""

from __future__ import annotations

from idlora_bench.core.types import Pair
from idlora_bench.metrics.clap_htsat_unfused_authors import ClapAuthors


class ClapStyleAuthors(ClapAuthors):
    name = "clap_style.htsat_unfused_authors"
    family = "clap_style"
    description = "the ID-LoRA authors' CLAP of the generated audio vs the speaking-style text"
    label = "CLAP style"

    def text(self, pair: Pair) -> str:
        return pair.speaking_style.strip()
