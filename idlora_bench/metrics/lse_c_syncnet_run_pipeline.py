"""Lip sync confidence, paper profile: SyncNet v2 LSE-C as joonson's ``run_pipeline.py`` measures it
(``lse_c.syncnet_run_pipeline``): the features of :mod:`idlora_bench.metrics.lse_d_syncnet_run_pipeline` (one SyncNet
pass per file, shared ``features_id``), valued as the median minus the minimum of the mean distances over offsets.
"""

from __future__ import annotations

from idlora_bench.core.types import Pair
from idlora_bench.metrics.base import Features, Score
from idlora_bench.metrics.lse_d_syncnet_run_pipeline import LipSyncSyncNetRunPipeline


class LipSyncConfidenceSyncNetRunPipeline(LipSyncSyncNetRunPipeline):
    name = "lse_c.syncnet_run_pipeline"
    family = "lse_c"
    direction = "higher"
    description = "SyncNet v2 LSE-C after run_pipeline.py's AVI/MP3 round trip of the audio (delay kept)"
    label = "LSE-C"
    unit = "SyncNet confidence (median - min distance)"

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        return Score(float(generated["lse_c"]), self._details(generated))
