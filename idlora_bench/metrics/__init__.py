"""Metrics and metric profiles.

Where things are:
- ``base.py``: the :class:`Metric` interface (extract per file -> compare per pair) and its metadata.
- one file per metric, named after the metric: ``<family>.<backend>`` lives in ``<family>_<backend>.py``
  (e.g. ``speaker_similarity.resemblyzer`` in ``speaker_similarity_resemblyzer.py``).
- the registration lines below: one per metric, ``"module:Class"`` imported on first use, so a missing
  optional library breaks only the profiles that use it (``bench doctor`` names the package to install).
- :data:`PROFILES`: named sets of metrics whose numbers are comparable; results are never mixed across
  profiles. ``offline`` uses real pretrained weights shipped inside PyPI packages (runs anywhere);
  ``standard`` is the paper's metric families as their upstream projects define them (UniSpeech WavLM-ECAPA,
  insightface ArcFace, syncnet_python, LAION CLAP, openai-whisper); ``paper`` is the same families as the ID-LoRA
  authors' own metric code computes them (``*_authors`` variants; the README lists every difference), the profile to
  compare with the paper's tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from idlora_bench.core.errors import BenchError, RegistryError
from idlora_bench.core.registry import Registry
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score

METRICS: Registry[type[Metric]] = Registry("metric")
PROFILES: Registry[list[str]] = Registry("metric profile")
"""Profile name -> its metric names in column order."""


def register_metric(name: str, target: str | type[Metric], profiles: Iterable[str] = ()) -> None:
    """Register a metric (a class, or ``"module:Class"`` imported on first use) and add it to ``profiles``."""
    if isinstance(target, str):
        METRICS.register_lazy(name, target)
    else:
        METRICS.register(name, target)
    for profile in profiles:
        if profile not in PROFILES:
            PROFILES.register(profile, [])
        PROFILES.get(profile).append(name)


_M = "idlora_bench.metrics"
# offline: real weights shipped inside PyPI packages
register_metric("speaker_similarity.resemblyzer", f"{_M}.speaker_similarity_resemblyzer:SpeakerSimilarityResemblyzer",
                ["offline"])
register_metric("face_similarity.dlib", f"{_M}.face_similarity_dlib:FaceSimilarityDlib", ["offline"])
register_metric("lip_motion.dlib", f"{_M}.lip_motion_dlib:LipMotionDlib", ["offline"])
register_metric("wer.pocketsphinx", f"{_M}.wer_pocketsphinx:WerPocketsphinx", ["offline"])
# standard: the paper's metric families, upstream-canonical
register_metric("speaker_similarity.wavlm_ecapa", f"{_M}.speaker_similarity_wavlm_ecapa:SpeakerSimilarityWavLM",
                ["standard"])
register_metric("face_similarity.arcface", f"{_M}.face_similarity_arcface:FaceSimilarityArcFace", ["standard"])
register_metric("lse_d.syncnet", f"{_M}.lse_d_syncnet:LipSyncSyncNet", ["standard"])
register_metric("lse_c.syncnet", f"{_M}.lse_c_syncnet:LipSyncConfidenceSyncNet", ["standard"])
register_metric("clap.htsat_unfused", f"{_M}.clap_htsat_unfused:ClapAdherence", ["standard"])
register_metric("wer.whisper_large_v3", f"{_M}.wer_whisper_large_v3:WerWhisper", ["standard"])
register_metric("wer_whisper_norm.whisper_large_v3",
                f"{_M}.wer_whisper_norm_whisper_large_v3:WerWhisperNorm", ["standard"])
register_metric("lip_motion.insightface", f"{_M}.lip_motion_insightface:LipMotionInsightFace", ["standard"])
# paper: as the ID-LoRA authors' code computes them
register_metric("speaker_similarity.wavlm_ecapa_authors",
                f"{_M}.speaker_similarity_wavlm_ecapa_authors:SpeakerSimilarityWavLMAuthors", ["paper"])
register_metric("face_similarity.arcface_authors", f"{_M}.face_similarity_arcface_authors:FaceSimilarityArcFaceAuthors",
                ["paper"])
register_metric("lse_d.syncnet_run_pipeline", f"{_M}.lse_d_syncnet_run_pipeline:LipSyncSyncNetRunPipeline", ["paper"])
register_metric("lse_c.syncnet_run_pipeline",
                f"{_M}.lse_c_syncnet_run_pipeline:LipSyncConfidenceSyncNetRunPipeline", ["paper"])
register_metric("clap.htsat_unfused_authors", f"{_M}.clap_htsat_unfused_authors:ClapAuthors", ["paper"])
register_metric("clap_env.htsat_unfused_authors", f"{_M}.clap_env_htsat_unfused_authors:ClapEnvAuthors", ["paper"])
register_metric("clap_style.htsat_unfused_authors",
                f"{_M}.clap_style_htsat_unfused_authors:ClapStyleAuthors", ["paper"])
register_metric("wer.whisper_large_v3_authors", f"{_M}.wer_whisper_large_v3_authors:WerWhisperAuthors", ["paper"])
PROFILES.get("paper").append("lip_motion.insightface")  # no authors' code exists: the standard definition


def profile_classes(profile: str) -> list[type[Metric]]:
    """The metric classes of a profile, in column order (imports them)."""
    return [METRICS.get(name) for name in PROFILES.get(profile)]


def missing_packages(classes: Iterable[type[Metric]]) -> dict[str, str]:
    """Import name -> pip requirement of every package the metrics need and that is not installed."""
    missing: dict[str, str] = {}
    for cls in classes:
        missing.update(cls.missing_packages())
    return missing


def build_profile(profile: str, device: str = "cpu", only: list[str] | None = None) -> list[Metric]:
    """Instantiate the metrics of a profile (optionally a subset by name or family), not yet loaded.

    Raises a :class:`BenchError` naming the packages to install when a metric's optional library is missing.
    """
    names = tuple(PROFILES.get(profile))
    if only:
        chosen = [name for name in names if name in only or name.split(".")[0] in only]
        unknown = set(only) - set(chosen) - {name.split(".")[0] for name in chosen}
        if unknown:
            known = ", ".join(sorted(set(names) | {name.split(".")[0] for name in names}))
            raise RegistryError(f"metric(s) {sorted(unknown)} are not in profile {profile!r}. Known: {known}.")
        names = tuple(chosen)
    classes = [METRICS.get(name) for name in names]
    missing = missing_packages(classes)
    if missing:
        raise BenchError(f"profile {profile!r} needs packages that are not installed: "
                         + ", ".join(f"{module} ({requirement})" for module, requirement in missing.items())
                         + ". Fix: scripts/setup.sh, or pip install -c constraints.txt each of them.")
    return [cls(device=device) for cls in classes]


def __getattr__(attribute: str) -> Any:
    """``from idlora_bench.metrics import SpeakerSimilarityResemblyzer`` imports that one metric's module."""
    for name in METRICS.names():
        target = METRICS.target(name)
        if (target or "").endswith(f":{attribute}") or (target is None and METRICS.get(name).__name__ == attribute):
            return METRICS.get(name)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


__all__ = [
    "METRICS", "PROFILES", "Features", "Metric", "MetricInput", "Score", "build_profile", "missing_packages",
    "profile_classes", "register_metric",
]
