"""Test plugin: a cheap metric profile ``fake`` (no model weights) with an optional per-file delay.

``FAKE_METRIC_SLEEP_S`` (seconds) slows every extraction so a test can kill a run mid-way.
Registered when imported (``IDLORA_BENCH_PLUGINS=tests/plugins/fake_profile.py``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from idlora_bench.core.errors import SampleFailure
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics import PROFILES, register_metric
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score


class AudioRmsRatio(Metric):
    """Generated RMS / target RMS (audio); fails with no_speech on digital silence."""

    name = "audio_rms.fake"
    family = "audio_rms"
    version = "1"
    direction = "higher"
    needs = frozenset({MetricInput.GENERATED_AUDIO, MetricInput.TARGET_AUDIO})
    params = {"sample_rate_hz": 16000}

    def _load(self, paths: dict[str, Path]) -> None:
        self.extract_calls = 0

    def extract(self, media: DecodedMedia) -> Features:
        time.sleep(float(os.environ.get("FAKE_METRIC_SLEEP_S", "0")))
        self.extract_calls += 1
        rms = float(np.sqrt(np.mean(media.mono(16000) ** 2)))
        if rms == 0.0:
            raise SampleFailure("no_speech", f"{media.path.name} is digital silence")
        return {"rms": rms}

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        assert target is not None
        return Score(generated["rms"] / target["rms"])


class MeanLuma(Metric):
    """Mean pixel value of the generated video (no target)."""

    name = "luma.fake"
    family = "luma"
    version = "1"
    direction = "lower"
    needs = frozenset({MetricInput.GENERATED_VIDEO})

    def _load(self, paths: dict[str, Path]) -> None:
        pass

    def extract(self, media: DecodedMedia) -> Features:
        time.sleep(float(os.environ.get("FAKE_METRIC_SLEEP_S", "0")))
        return {"luma": float(media.require_video().mean())}

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        return Score(generated["luma"])


if "fake" not in PROFILES:
    register_metric(AudioRmsRatio.name, AudioRmsRatio, ["fake", "fake-shared"])
    register_metric(MeanLuma.name, MeanLuma, ["fake"])


class AudioRmsDb(AudioRmsRatio):
    """The same features as AudioRmsRatio (shared ``features_id``), compared in decibels."""

    name = "audio_rms_db.fake"
    family = "audio_rms_db"
    features_id = "audio_rms.fake"

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        assert target is not None
        return Score(20 * float(np.log10(generated["rms"] / target["rms"])))


if AudioRmsDb.name not in PROFILES.get("fake-shared"):
    register_metric(AudioRmsDb.name, AudioRmsDb, ["fake-shared"])
