"""The metric interface every metric file implements.

A metric works in two steps so that features can be cached by content hash and shared across methods:

1. ``extract(media) -> Features``: per media file (generated or target), independent of the pair. Cached
   under ``cache_key(media.sha256)``; a ground-truth target is therefore computed once for all methods.
2. ``compare(generated, target, pair) -> Score``: cheap, combines the features with the pair's texts.

A sample that cannot be scored raises :class:`~idlora_bench.core.errors.SampleFailure` with a reason code
(``no_face``, ``no_speech``, ``too_short``, ...): it becomes a failure row, never a dropped sample or a 0.0.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.types import Direction, MetricProvenance, Pair
from idlora_bench.data.media import DecodedMedia

Features = dict[str, Any]
"""Per-file features: numpy arrays, floats, ints or strings keyed by name."""


class MetricInput(StrEnum):
    """What a metric reads."""

    GENERATED_AUDIO = "generated_audio"
    GENERATED_VIDEO = "generated_video"
    TARGET_AUDIO = "target_audio"
    TARGET_VIDEO = "target_video"
    TRANSCRIPT = "transcript"
    PROMPT_SOUNDS = "prompt_sounds"  # speaking style + environment sounds texts


TARGET_INPUTS = frozenset({MetricInput.TARGET_AUDIO, MetricInput.TARGET_VIDEO})


@dataclass(frozen=True)
class Score:
    """The value of one metric on one pair, plus per-sample details (JSON-serialisable)."""

    value: float
    details: dict[str, Any] = field(default_factory=dict)


class Metric(ABC):
    """Base class. Subclasses set the class attributes and implement ``_load``, ``extract``, ``compare``.

    Class attributes:
        name: unique registry name, ``<family>.<backend>`` (e.g. ``speaker_similarity.resemblyzer``).
        family: the quantity measured; the table column (e.g. ``speaker_similarity``).
        version: bump whenever the numbers could change (it is part of the cache key).
        direction: ``higher`` or ``lower`` is better.
        needs: the inputs read; a target input in ``needs`` is required (its failure fails the sample).
        optional_target: target features passed to ``compare`` when available, for reference only.
        weights: the checkpoint files, verified against their sha256 before loading.
        params: preprocessing parameters (part of the cache key and of every result's provenance).
        features_id: metrics that read the same features from a file (e.g. LSE-D and LSE-C from one SyncNet
            pass) set the same ``features_id`` and identical version, params and weights: they then share
            one cache entry per file, so the runner extracts once and each metric only compares.
        label: the table header (e.g. ``Spk Sim``); digits: decimals shown in tables; unit: what one unit of
            the value is (e.g. ``cosine``); paper_reference: where the metric is defined (paper section/table).
        requires: import name -> pip requirement of every optional package the metric needs; ``bench doctor``
            and :func:`~idlora_bench.metrics.build_profile` check them before anything runs.

    The class is the one source of these facts: the run manifest records them (``MetricProvenance``) and
    tables, ``bench metrics list`` and ``bench doctor`` read them from there or from the class.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    version: ClassVar[str]
    direction: ClassVar[Direction]
    needs: ClassVar[frozenset[MetricInput]]
    optional_target: ClassVar[bool] = False
    features_id: ClassVar[str | None] = None
    weights: ClassVar[tuple[WeightsFile, ...]] = ()
    params: ClassVar[dict[str, Any]] = {}
    description: ClassVar[str] = ""
    label: ClassVar[str] = ""
    digits: ClassVar[int] = 3
    unit: ClassVar[str] = ""
    paper_reference: ClassVar[str] = ""
    requires: ClassVar[dict[str, str]] = {}

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._loaded = False

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        """Verify every weights file against its card, then load the model (once)."""
        if self._loaded:
            return
        paths = {weights.name: weights.verify() for weights in self.weights}
        self._load(paths)
        self._loaded = True

    @abstractmethod
    def _load(self, paths: dict[str, Path]) -> None:
        """Load the verified weights files (``paths``: weights name -> local path)."""

    # ------------------------------------------------------------------ scoring
    @abstractmethod
    def extract(self, media: DecodedMedia) -> Features:
        """Per-file features. Raise SampleFailure when the file cannot be scored."""

    @abstractmethod
    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        """Combine generated features with target features (None unless the metric uses them)."""

    def score(self, generated: DecodedMedia, target: DecodedMedia | None, pair: Pair) -> Score:
        """Library entry point: extract and compare in one call (no cache)."""
        self.load()
        target_features = self.extract(target) if (target is not None and self.uses_target) else None
        return self.compare(self.extract(generated), target_features, pair)

    # ------------------------------------------------------------------ metadata
    @property
    def uses_target(self) -> bool:
        """True when the target media's features are extracted (required or for reference)."""
        return bool(self.needs & TARGET_INPUTS) or self.optional_target

    @property
    def requires_target(self) -> bool:
        return bool(self.needs & TARGET_INPUTS)

    @classmethod
    def missing_packages(cls) -> dict[str, str]:
        """Import name -> pip requirement of each package in ``requires`` that is not installed."""
        return {module: requirement for module, requirement in cls.requires.items()
                if importlib.util.find_spec(module) is None}

    def weights_checksums(self) -> dict[str, str | None]:
        """Weights name -> sha256 (the card's, or the one recorded at pull for revision-pinned files)."""
        return {weights.name: weights.expected_sha256() for weights in self.weights}

    def cache_key(self, media_sha256: str) -> str:
        """Content address of this metric's features for one file."""
        identity = {
            "metric": self.features_id or self.name,
            "version": self.version,
            "params": self.params,
            "weights": self.weights_checksums(),
            "media": media_sha256,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()

    def provenance(self) -> MetricProvenance:
        return MetricProvenance(
            name=self.name,
            family=self.family,
            version=self.version,
            direction=self.direction,
            params=dict(self.params),
            weights=self.weights_checksums(),
            label=self.label or self.family,
            digits=self.digits,
            unit=self.unit,
            paper_reference=self.paper_reference,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r}, device={self.device!r})"
