"""Metrics and metric profiles.

Where things are:
- ``base.py``: the :class:`Metric` interface (extract per file -> compare per pair).
- one file per metric, e.g. ``speaker_similarity_resemblyzer.py``; each class is registered below.
- :data:`PROFILES`: named sets of metrics whose numbers are comparable; results are never mixed across
  profiles. ``offline`` uses real pretrained weights shipped inside PyPI packages (runs anywhere);
  ``paper`` (WavLM-ECAPA, ArcFace, SyncNet, CLAP, Whisper-large-v3) follows the ID-LoRA paper.
"""

from __future__ import annotations

from idlora_bench.errors import RegistryError
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.clap_adherence import ClapAdherence
from idlora_bench.metrics.face_similarity_arcface import FaceSimilarityArcFace
from idlora_bench.metrics.face_similarity_dlib import FaceSimilarityDlib
from idlora_bench.metrics.lip_motion_dlib import LipMotionDlib
from idlora_bench.metrics.lip_motion_insightface import LipMotionInsightFace
from idlora_bench.metrics.lip_sync_syncnet import LipSyncConfidenceSyncNet, LipSyncSyncNet
from idlora_bench.metrics.speaker_similarity_resemblyzer import SpeakerSimilarityResemblyzer
from idlora_bench.metrics.speaker_similarity_wavlm import SpeakerSimilarityWavLM
from idlora_bench.metrics.wer_pocketsphinx import WerPocketsphinx
from idlora_bench.metrics.wer_whisper import WerWhisper, WerWhisperNorm
from idlora_bench.registry import Registry

METRICS: Registry[type[Metric]] = Registry("metric")
for _metric in (
    SpeakerSimilarityResemblyzer, FaceSimilarityDlib, LipMotionDlib, WerPocketsphinx,  # offline
    SpeakerSimilarityWavLM, FaceSimilarityArcFace, LipSyncSyncNet, LipSyncConfidenceSyncNet,  # paper
    ClapAdherence, WerWhisper, WerWhisperNorm, LipMotionInsightFace,
):
    METRICS.register(_metric.name, _metric)

PROFILES: dict[str, tuple[str, ...]] = {
    "offline": (
        SpeakerSimilarityResemblyzer.name,
        FaceSimilarityDlib.name,
        LipMotionDlib.name,
        WerPocketsphinx.name,
    ),
    "paper": (
        SpeakerSimilarityWavLM.name,
        FaceSimilarityArcFace.name,
        LipSyncSyncNet.name,
        LipSyncConfidenceSyncNet.name,
        ClapAdherence.name,
        WerWhisper.name,
        WerWhisperNorm.name,
        LipMotionInsightFace.name,
    ),
}
PROFILE_REGISTRY: Registry[tuple[str, ...]] = Registry("metric profile")
for _profile, _names in PROFILES.items():
    PROFILE_REGISTRY.register(_profile, _names)


def build_profile(profile: str, device: str = "cpu", only: list[str] | None = None) -> list[Metric]:
    """Instantiate the metrics of a profile (optionally a subset by name or family), not yet loaded."""
    names = PROFILE_REGISTRY.get(profile)
    metrics = [METRICS.get(name)(device=device) for name in names]
    if only:
        chosen = [m for m in metrics if m.name in only or m.family in only]
        unknown = set(only) - {m.name for m in chosen} - {m.family for m in chosen}
        if unknown:
            known = ", ".join(sorted({m.name for m in metrics} | {m.family for m in metrics}))
            raise RegistryError(f"metric(s) {sorted(unknown)} are not in profile {profile!r}. Known: {known}.")
        metrics = chosen
    return metrics


__all__ = [
    "ClapAdherence",
    "FaceSimilarityArcFace",
    "LipMotionInsightFace",
    "LipSyncConfidenceSyncNet",
    "LipSyncSyncNet",
    "SpeakerSimilarityWavLM",
    "WerWhisper",
    "WerWhisperNorm",
    "METRICS",
    "PROFILES",
    "Features",
    "FaceSimilarityDlib",
    "LipMotionDlib",
    "Metric",
    "MetricInput",
    "Score",
    "SpeakerSimilarityResemblyzer",
    "WerPocketsphinx",
    "build_profile",
]
