"""The two halves of a cascade baseline and their registries.

A *TTS part* clones the reference voice and speaks the pair's transcript (with its style text where the system takes
one); a *video part* animates the target's first frame with that speech. ``baselines.cascade`` composes one of each
into the method ``<tts>+<video>`` (e.g. ``cosyvoice3+wan2.2``), with the speech stored once per (TTS config, pair,
seed) and shared by every video part.

Each part declares, like a method: ``name``, ``description``, ``licence``, an ``options_model`` (pydantic, unknown
keys refused), ``weights`` (cards) or ``api_key_env`` (the variable holding its key), and implements ``config()``
(everything that changes its output), ``prepare()`` (load, or raise a clear error naming the fix: weights, code
checkout or key) and its one operation. ``fake`` (the cascade's ``model=tiny-random``) swaps the system for a tiny
or fake stand-in that runs the same plumbing on CPU; results are then smoke. Nothing falls back to another model.

Parts register lazily (``"module:Class"``) here, or from other distributions through the entry-point groups
``idlora_bench.tts_parts`` / ``idlora_bench.video_parts``.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError as PydanticValidationError

from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.errors import ValidationError
from idlora_bench.core.registry import Registry
from idlora_bench.core.types import format_pydantic_error
from idlora_bench.data.splits import ResolvedPair
from idlora_bench.methods.base import MethodOptions


@dataclass(frozen=True)
class SpeechRequest:
    """What a TTS part is asked to say, for one pair.

    ``transcript``: the words (the prompt's ``[SPEECH]``); ``style``: the speaking-style text and ``sounds`` the
    environment text (from the pair; a system that takes a style instruction gets ``style``, environment sounds are
    the video part's business); ``reference_path``: the clip whose audio is the voice to clone (any container PyAV
    decodes); ``reference_transcript``: the words spoken in it when known (some systems need them), else None.
    """

    pair_id: str
    transcript: str
    style: str
    sounds: str
    reference_path: Path
    reference_transcript: str | None = None

    @classmethod
    def from_item(cls, item: ResolvedPair, reference_transcript: str | None = None) -> SpeechRequest:
        pair = item.pair
        return cls(pair.pair_id, pair.transcript, pair.speaking_style, pair.environment_sounds, item.reference_path,
                   reference_transcript)


@dataclass(frozen=True)
class SpeechResult:
    """A TTS part's output: ``wav_path`` (a WAV file at its own rate, mono or stereo) and ``details`` (JSON-able:
    the exact text sent, voice ids, durations ...) kept in the generation record."""

    wav_path: Path
    details: dict[str, Any]


class Part(ABC):
    """Shared by TTS and video parts: name, options, weights or key, config and its hash."""

    kind: ClassVar[str] = "part"
    name: ClassVar[str]
    description: ClassVar[str] = ""
    licence: ClassVar[str] = ""
    options_model: ClassVar[type[MethodOptions]] = MethodOptions
    weights: ClassVar[tuple[WeightsFile, ...]] = ()
    api_key_env: ClassVar[str | None] = None

    def __init__(self, fake: bool = False, **options: Any) -> None:
        self.fake = fake
        try:
            self.options = self.options_model(**options)
        except PydanticValidationError as exc:
            raise ValidationError(f"{self.kind} {self.name!r}: {format_pydantic_error(exc)}") from None

    def config(self) -> dict[str, Any]:
        """Everything that changes this part's output (the cascade's config and the speech cache key)."""
        return {"part": self.name, "fake": self.fake, **self.options.model_dump(mode="json")}

    def config_sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True, default=str).encode()).hexdigest()

    def prepare(self) -> None:
        """Load models / check the key or checkout before the first call; raise naming the fix (default: nothing)."""


class TTSPart(Part):
    """Voice cloning: reference clip + transcript (+ style) -> speech."""

    kind: ClassVar[str] = "TTS part"

    @abstractmethod
    def synthesize(self, request: SpeechRequest, out_wav: Path, seed: int) -> SpeechResult:
        """Write the speech to ``out_wav`` (atomically) and return it with its details."""


class VideoPart(Part):
    """Audio-driven image-to-video: first frame + speech + prompt -> a video carrying that speech."""

    kind: ClassVar[str] = "video part"

    @abstractmethod
    def animate(self, item: ResolvedPair, speech_wav: Path, out_path: Path, seed: int) -> dict[str, Any]:
        """Write an mp4 to ``out_path`` (atomically) whose video follows ``item.target_path``'s first frame and the
        pair's prompt, and whose audio track is ``speech_wav`` (resampled/re-encoded as needed, never altered in
        content); return details for the generation record."""


TTS_PARTS: Registry[type[TTSPart]] = Registry("TTS part")
VIDEO_PARTS: Registry[type[VideoPart]] = Registry("video part")

for _name, _target in (
    ("cosyvoice3", "baselines.tts.cosyvoice3:CosyVoice3"),
    ("voicecraft", "baselines.tts.voicecraft:VoiceCraft"),
    ("elevenlabs", "baselines.tts.elevenlabs:ElevenLabs"),
    ("f5tts", "baselines.tts.f5tts:F5TTS"),
):
    TTS_PARTS.register_lazy(_name, _target)
for _name, _target in (
    ("wan2.2", "baselines.video.wan22:Wan22SpeechToVideo"),
    ("ltx", "baselines.video.ltx_a2v:LTXAudioToVideo"),
):
    VIDEO_PARTS.register_lazy(_name, _target)
TTS_PARTS.register_entry_points("idlora_bench.tts_parts")
VIDEO_PARTS.register_entry_points("idlora_bench.video_parts")
