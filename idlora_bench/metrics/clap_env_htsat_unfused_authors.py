"""CLAP against the environment-sounds text, the ID-LoRA authors' variant (``clap_env.htsat_unfused_authors``).

The authors' ``CLAPSimilarityMetric`` with ``caption_type="env"`` (ID-LoRA
``packages/ltx-trainer/src/ltx_trainer/metrics/evaluation_metrics.py:835-836, 644-662``, commit 399bf3e), logged by
their trainer as ``val/clap_env_similarity`` (``trainer.py:1274-1281``). Text: the pair's ``environment_sounds``,
stripped, with "None"/"None." (any case) replaced by "clear speech with no ambient or environmental sounds"
(evaluation_metrics.py:641, 659-661). Audio, scoring and every deviation from the authors' code: see
:mod:`idlora_bench.metrics.clap_htsat_unfused_authors` (the audio embedding is shared with it).
"""

from __future__ import annotations

from idlora_bench.core.types import Pair
from idlora_bench.metrics.clap_htsat_unfused_authors import ClapAuthors, environment_text


class ClapEnvAuthors(ClapAuthors):
    name = "clap_env.htsat_unfused_authors"
    family = "clap_env"
    description = "the ID-LoRA authors' CLAP of the generated audio vs the environment-sounds text ('None' replaced)"
    label = "CLAP env"

    def text(self, pair: Pair) -> str:
        return environment_text(pair.environment_sounds)
