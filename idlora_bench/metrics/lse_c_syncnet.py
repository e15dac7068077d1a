"""Lip sync confidence, standard profile: SyncNet v2 LSE-C (``lse_c.syncnet``, higher is better).

Same features as LSE-D (:mod:`idlora_bench.metrics.lse_d_syncnet`, shared ``features_id``: one SyncNet pass per
file); the value is the median minus the minimum of the mean distances over offsets.
"""

from __future__ import annotations

from idlora_bench.core.types import Pair
from idlora_bench.metrics.base import Features, Score
from idlora_bench.metrics.lse_d_syncnet import LipSyncSyncNet


class LipSyncConfidenceSyncNet(LipSyncSyncNet):
    """LSE-C (median minus min of the mean distances over offsets), from the same features as LSE-D."""

    name = "lse_c.syncnet"
    family = "lse_c"
    direction = "higher"
    description = "SyncNet v2 LSE-C: median minus min over offsets (+-15 frames) of the mean embedding distance"
    label = "LSE-C"
    unit = "SyncNet confidence (median - min distance)"

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        return Score(float(generated["lse_c"]), self._details(generated))
