"""Cascade baselines ``<tts>+<video>``: clone the voice with a TTS part, then animate the first frame with that
speech with a video part (paper Tables 1-2: CosyVoice 3.0 / VoiceCraft / ElevenLabs + WAN2.2, and the same three
+ LTX).

Every pair of registered parts is a method (:func:`cascade_methods`, loaded through the ``idlora_bench.method_families``
entry point), e.g. ``bench run --method cosyvoice3+wan2.2``. Options:

- ``model``: ``"real"`` (default) or ``"tiny-random"``: both parts in their fake/tiny mode (CPU, seconds; results
  marked smoke and refused by comparison tables);
- ``reference_transcripts``: a JSON file ``{reference clip path (as in pairs.jsonl): words spoken}`` for TTS systems
  that need the reference's words (the split's pairs carry only the target's);
- ``tts.KEY=VALUE`` / ``video.KEY=VALUE``: options of the TTS / video part (each part validates its own).

The speech is stored once per (TTS config, pair, seed) in ``<runs>/<split>/_intermediate/speech/``
(:mod:`baselines.speech_store`), so ``cosyvoice3+wan2.2`` and ``cosyvoice3+ltx`` share it; the generation record
of each output names the speech file, whether it was reused, and what each part reported.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from baselines.parts import TTS_PARTS, VIDEO_PARTS, SpeechRequest, TTSPart, VideoPart
from baselines.speech_store import SpeechStore
from idlora_bench.core.errors import BenchError, ValidationError
from idlora_bench.data.splits import ResolvedPair, Split
from idlora_bench.methods.base import Method, MethodOptions

PART_PREFIXES = ("tts.", "video.")


class CascadeOptions(MethodOptions):
    """The cascade's own options (the parts' options arrive as ``tts.*`` / ``video.*``)."""

    model: Literal["real", "tiny-random"] = "real"
    reference_transcripts: str | None = None


class CascadeMethod(Method):
    """A TTS part followed by a video part (subclassed per pair of parts by :func:`cascade_method`)."""

    tts_name: ClassVar[str]
    video_name: ClassVar[str]
    options_model: ClassVar[type[MethodOptions]] = CascadeOptions
    options: CascadeOptions

    def __init__(self, **options: Any) -> None:
        own = {k: v for k, v in options.items() if not k.startswith(PART_PREFIXES)}
        super().__init__(**own)
        fake = self.options.model == "tiny-random"
        self.smoke = fake
        self.tts: TTSPart = TTS_PARTS.get(self.tts_name)(
            fake=fake, **{k.removeprefix("tts."): v for k, v in options.items() if k.startswith("tts.")})
        self.video: VideoPart = VIDEO_PARTS.get(self.video_name)(
            fake=fake, **{k.removeprefix("video."): v for k, v in options.items() if k.startswith("video.")})
        self.reference_transcripts: dict[str, str] = {}
        self.speech_store: SpeechStore | None = None

    @classmethod
    def composition(cls) -> list[tuple[str, str, str]]:
        """``(kind, name, description)`` of the two parts (``bench methods list``); a part that cannot be imported
        says why in its description."""
        entries = []
        for registry, name in ((TTS_PARTS, cls.tts_name), (VIDEO_PARTS, cls.video_name)):
            try:
                description = registry.get(name).description
            except BenchError as exc:
                description = f"(cannot be imported here: {exc})"
            entries.append((registry.what, name, description))
        return entries

    @classmethod
    def declared_weights(cls) -> tuple[Any, ...]:
        """The weights cards of both parts (``bench models list|pull``); a part not importable here declares none."""
        cards: list[Any] = []
        for registry, name in ((TTS_PARTS, cls.tts_name), (VIDEO_PARTS, cls.video_name)):
            try:
                cards += registry.get(name).weights
            except BenchError:
                continue
        return tuple(cards)

    def config(self) -> dict[str, Any]:
        transcripts = self.options.reference_transcripts
        return {
            "method": self.name, "model": self.options.model, "tts": self.tts.config(), "video": self.video.config(),
            "reference_transcripts_sha256": (hashlib.sha256(Path(transcripts).read_bytes()).hexdigest()
                                             if transcripts else None),
        }

    def prepare(self, split: Split) -> None:
        path = self.options.reference_transcripts
        if path:
            try:
                self.reference_transcripts = {str(k): str(v) for k, v in json.loads(Path(path).read_text()).items()}
            except (OSError, ValueError, AttributeError) as exc:
                raise ValidationError(f"{path}: reference_transcripts must be a JSON object "
                                      f"{{clip path: words}}: {exc}") from None
        self.tts.prepare()
        self.video.prepare()

    def _store(self) -> SpeechStore:
        if self.speech_store is None:
            if self.run_dir is None:
                raise RuntimeError(f"method {self.name!r}: no run folder attached (the runner calls attach_run; "
                                   "a library user calls method.attach_run(folder) first)")
            self.speech_store = SpeechStore(self.run_dir.parent / "_intermediate" / "speech")
        return self.speech_store

    def generate(self, item: ResolvedPair, out_path: Path, seed: int) -> dict[str, Any]:
        request = SpeechRequest.from_item(item, self.reference_transcripts.get(item.pair.reference.path))
        speech = self._store().get_or_make(self.tts, request, seed, run=str(self.run_dir))
        video_details = self.video.animate(item, speech.wav_path, out_path, seed)
        return {"speech": speech.details(), "video": video_details}


def cascade_method(tts_name: str, video_name: str) -> type[CascadeMethod]:
    """The method class ``<tts_name>+<video_name>`` (parts are imported only when it is instantiated)."""
    return type(
        f"Cascade_{tts_name}_{video_name}".replace(".", "_").replace("-", "_"), (CascadeMethod,),
        {"name": f"{tts_name}+{video_name}", "tts_name": tts_name, "video_name": video_name,
         "description": f"cascade: {tts_name} voice cloning, then {video_name} audio-driven image-to-video",
         "__module__": __name__},
    )


def cascade_methods() -> dict[str, type[Method]]:
    """Every ``<tts>+<video>`` of the registered parts (the ``idlora_bench.method_families`` entry point)."""
    return {f"{t}+{v}": cascade_method(t, v) for t in TTS_PARTS.names() for v in VIDEO_PARTS.names()}
