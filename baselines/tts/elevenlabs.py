"""TTS part ``elevenlabs``: ElevenLabs instant voice cloning, then text-to-speech (the cascades ``elevenlabs+wan2.2``
and ``elevenlabs+ltx`` of paper Tables 1-2), through the official ``elevenlabs`` SDK (PyPI, pinned 2.78.0).

Per pair: the reference clip's audio (mono 16-bit WAV at its own rate) is cloned once with
``client.voices.ivc.create(name=..., files=[...])`` (``POST /v1/voices/add``; SDK ``voices/ivc/client.py``
``IvcClient.create``), then ``client.text_to_speech.convert(voice_id, text=..., model_id=..., output_format=...,
seed=...)`` (``POST /v1/text-to-speech/{voice_id}``; SDK ``text_to_speech/raw_client.py`` ``convert``) speaks the
text; the returned mp3 (or raw PCM for ``pcm_<rate>`` formats) is decoded with PyAV and written as float WAV
(:func:`baselines.audio_io.write_wav`).

The text sent: the paper used ElevenLabs' prompt enhancement for pacing and emotion (an LLM rewrite in ElevenLabs'
web app, not an API). Here the same kind of direction is added deterministically: Eleven v3 audio tags (square-
bracketed delivery words placed before the text, e.g. ``[calm] [slowly] ...``; ElevenLabs' v3 prompting guide,
https://elevenlabs.io/docs/best-practices/prompting/eleven-v3, and https://runware.ai/docs/models/elevenlabs-v3/guides/
directing-with-audio-tags) derived from the pair's speaking-style text by :func:`v3_audio_tags` (a keyword table, at
most ``max_tags``, in the order the style names them). The exact text sent is recorded (``text_sent``). Tags are
only for ``eleven_v3`` models (older models read them aloud: the options refuse that combination).

Voices: cached per reference clip (sha256 of its file) in ``elevenlabs-voices.json`` beside the speech files (the
speech store's folder of this TTS config), so a clip is cloned once; a cached voice that the account no longer has
(``voice_not_found``, e.g. another key) is cloned again and that is recorded. Policy ``voice_policy``: ``keep``
(default) leaves the cloned voices in the account for reuse (named ``idlora-bench <sha256[:12]>``; delete them in
the ElevenLabs voice library when done: they count against the plan's voice slots); ``delete`` removes each voice
right after its speech and caches nothing (a clip is then cloned per pair).

Key: ``ELEVENLABS_API_KEY`` (``prepare`` raises naming it when unset and not fake). ``fake=True`` (the cascade's
``model=tiny-random``) writes :func:`baselines.tts.fake_speech.write_fake_speech` and makes no HTTP call. Retries:
429 / 5xx / connection errors with exponential backoff (``Retry-After`` honoured), the SDK's own retries off so the
policy is one; other 4xx fail at once. Licence: ElevenLabs terms of service (commercial API).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from baselines.audio_io import read_audio, write_wav
from baselines.kling.client import RetryPolicy, Retryable, call_with_retries, parse_retry_after
from baselines.parts import SpeechRequest, SpeechResult, TTSPart
from baselines.speech_store import file_lock
from baselines.tts.fake_speech import write_fake_speech
from idlora_bench.core.errors import BenchError
from idlora_bench.core.io import atomic_write_bytes, atomic_write_text, file_sha256
from idlora_bench.data.media import to_mono
from idlora_bench.methods.base import MethodOptions

API_KEY_ENV = "ELEVENLABS_API_KEY"
VOICES_FILE = "elevenlabs-voices.json"
VOICE_NAME_PREFIX = "idlora-bench"
SEED_MODULUS = 2**32  # the API accepts seeds 0..4294967295

# Eleven v3 audio tags and the style words (word starts, lower case) that call for them.
TAG_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("whispers", ("whisper",)),
    ("shouts", ("shout", "yell", "scream")),
    ("excited", ("excit", "enthusias", "energetic", "lively", "animated")),
    ("happy", ("happy", "cheerful", "joyful", "upbeat", "delighted")),
    ("sad", ("sad", "melanchol", "sorrow", "somber", "sombre", "gloomy", "mournful")),
    ("angry", ("angry", "anger", "furious", "irritat", "annoyed", "frustrat")),
    ("calm", ("calm", "relaxed", "soothing", "gentle", "soft", "peaceful", "tranquil")),
    ("serious", ("serious", "formal", "authoritative", "firm", "stern", "solemn")),
    ("curious", ("curious", "inquisitive", "questioning", "wondering")),
    ("sarcastic", ("sarcas", "ironic", "mocking")),
    ("nervous", ("nervous", "anxious", "hesitant", "tense", "worried", "uneasy")),
    ("warm", ("warm", "friendly", "affectionate")),
    ("laughs", ("laugh", "giggl", "chuckl")),
    ("sighs", ("sigh",)),
    ("slowly", ("slow", "measured", "deliberate", "unhurried", "drawl")),
    ("rushed", ("fast", "rapid", "quick", "hurried", "rushed", "brisk")),
)


def v3_audio_tags(style: str, max_tags: int = 3) -> list[str]:
    """The audio tags for a speaking-style text: each tag of :data:`TAG_RULES` whose word starts a word of
    ``style``, ordered by where ``style`` first names it, at most ``max_tags``. Negations are not understood
    ("not calm" gives ``calm``): the style texts of the splits describe what is heard."""
    lowered = style.lower()
    found: list[tuple[int, str]] = []
    for tag, stems in TAG_RULES:
        positions = [m.start() for stem in stems for m in re.finditer(rf"\b{re.escape(stem)}", lowered)]
        if positions:
            found.append((min(positions), tag))
    return [tag for _, tag in sorted(found)][: max(0, max_tags)]


def v3_text(transcript: str, style: str, max_tags: int = 3) -> tuple[str, list[str]]:
    """``(text sent, tags)``: the tags of :func:`v3_audio_tags` in square brackets, then the transcript, whose own
    square brackets become parentheses (v3 would take them for tags); whitespace collapsed."""
    words = re.sub(r"\s+", " ", transcript).strip().replace("[", "(").replace("]", ")")
    tags = v3_audio_tags(style, max_tags)
    return " ".join([*(f"[{tag}]" for tag in tags), words]), tags


class ElevenLabsOptions(MethodOptions):
    """What is sent: ``model_id`` (``eleven_v3``), ``output_format`` (``mp3_<rate>_<kbps>`` or ``pcm_<rate>``),
    ``audio_tags`` (v3 tags from the style text), ``max_tags``, ``stability`` (0-1; None: the voice's default),
    ``language_code`` (None: detected), ``remove_background_noise`` (on the clone's sample).

    Not part of the config (the output does not depend on them): ``voice_policy`` (``keep`` / ``delete``),
    ``base_url`` (None: ElevenLabs' production API), ``timeout_s`` (per request, s), ``max_retries``,
    ``backoff_s`` / ``max_backoff_s`` (s)."""

    model_id: str = "eleven_v3"
    output_format: str = Field("mp3_44100_128", pattern=r"^(mp3_\d+_\d+|pcm_\d+)$")
    audio_tags: bool = True
    max_tags: int = Field(3, ge=0)
    stability: float | None = Field(None, ge=0.0, le=1.0)
    language_code: str | None = None
    remove_background_noise: bool = False
    voice_policy: Literal["keep", "delete"] = "keep"
    base_url: str | None = None
    timeout_s: float = Field(240.0, gt=0)
    max_retries: int = Field(4, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    max_backoff_s: float = Field(60.0, ge=0)

    @model_validator(mode="after")
    def _tags_need_v3(self) -> ElevenLabsOptions:
        if self.audio_tags and not self.model_id.startswith("eleven_v3"):
            raise ValueError(f"audio tags would be read aloud by {self.model_id!r}: use model_id=eleven_v3 or "
                             "audio_tags=false")
        return self


OPERATIONAL_OPTIONS = frozenset({"voice_policy", "base_url", "timeout_s", "max_retries", "backoff_s",
                                 "max_backoff_s"})


class ElevenLabsError(BenchError):
    """A failure of the ElevenLabs part; ``details`` go to the generation record."""

    details: dict[str, Any] | None = None


class ElevenLabsKeyError(ElevenLabsError):
    """``ELEVENLABS_API_KEY`` is not set."""


class ElevenLabsApiError(ElevenLabsError):
    """An error answer (``http_status``, ElevenLabs' ``detail.status``)."""

    def __init__(self, text: str, http_status: int | None = None, detail_status: str | None = None) -> None:
        super().__init__(text)
        self.http_status, self.detail_status = http_status, detail_status


class ElevenLabsAuthError(ElevenLabsApiError):
    """The key was refused (HTTP 401)."""


class ElevenLabsResponseError(ElevenLabsError):
    """A response that is not what the API documents (no voice id, audio that does not decode)."""


def _detail(body: Any) -> tuple[str | None, str]:
    """``(detail.status, message)`` of an ElevenLabs error body (``{"detail": {"status", "message"}}``)."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        return detail.get("status"), str(detail.get("message") or detail.get("status") or "")
    text = body if isinstance(body, str) else json.dumps(body, default=str) if body is not None else ""
    return None, str(detail) if isinstance(detail, str) else text[:300]


def decode_tts_audio(data: bytes, output_format: str) -> tuple[np.ndarray, int]:
    """``(audio (C, N) float32, rate)`` of a text-to-speech answer: ``pcm_<rate>`` is raw 16-bit little-endian
    mono; anything else is decoded by PyAV. Raises ValueError when nothing decodes."""
    if output_format.startswith("pcm_"):
        if len(data) < 2:
            raise ValueError("the PCM answer is empty")
        pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        return pcm[None, :], int(output_format.split("_")[1])
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise ValueError("the answer has no audio stream")
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate or 0)
            chunks = []
            for frame in container.decode(stream):
                array = frame.to_ndarray()
                if not frame.format.is_planar:
                    array = array.reshape(-1, len(frame.layout.channels)).T
                chunks.append(array.astype(np.float32) / (32768.0 if array.dtype == np.int16 else 1.0))
    except av.error.FFmpegError as exc:
        raise ValueError(f"the answer does not decode as audio ({exc})") from None
    if not chunks or rate <= 0:
        raise ValueError("the answer holds no audio samples")
    return np.concatenate(chunks, axis=1), rate


def reference_wav_bytes(reference_path: Path) -> bytes:
    """The reference clip's audio as the sample uploaded for cloning: mono, 16-bit PCM WAV at the clip's rate."""
    from scipy.io import wavfile

    audio, rate = read_audio(reference_path)
    mono = np.clip(to_mono(audio), -1.0, 1.0)
    buffer = io.BytesIO()
    wavfile.write(buffer, rate, (mono * 32767.0).round().astype(np.int16))
    return buffer.getvalue()


class ElevenLabs(TTSPart):
    """ElevenLabs instant voice clone + text-to-speech (``eleven_v3`` with audio tags by default)."""

    name: ClassVar[str] = "elevenlabs"
    description: ClassVar[str] = "ElevenLabs instant voice cloning + text-to-speech (API; ELEVENLABS_API_KEY)"
    licence: ClassVar[str] = "ElevenLabs terms of service (commercial API)"
    options_model: ClassVar[type[MethodOptions]] = ElevenLabsOptions
    api_key_env: ClassVar[str | None] = API_KEY_ENV
    options: ElevenLabsOptions

    def __init__(self, fake: bool = False, **options: Any) -> None:
        super().__init__(fake=fake, **options)
        self.environ: Mapping[str, str] = os.environ
        self.sleep: Callable[[float], None] = time.sleep  # injectable: tests never wait
        self._sdk: Any = None
        self.events: list[dict[str, Any]] = []

    def config(self) -> dict[str, Any]:
        """What changes the speech (transport and voice-keeping options excluded)."""
        options = {k: v for k, v in self.options.model_dump(mode="json").items() if k not in OPERATIONAL_OPTIONS}
        return {"part": self.name, "fake": self.fake, "text_rule": "v3-audio-tags-1", **options}

    def _api_key(self) -> str:
        key = self.environ.get(API_KEY_ENV, "").strip()
        if not key:
            raise ElevenLabsKeyError(f"TTS part 'elevenlabs' needs an API key: set {API_KEY_ENV} (ElevenLabs "
                                     "settings, API keys), or run the cascade with model=tiny-random for the fake")
        return key

    def prepare(self) -> None:
        """Check ``ELEVENLABS_API_KEY`` (not in fake mode); no request is made."""
        if not self.fake:
            self._api_key()

    def sdk(self) -> Any:
        """The SDK client (built once; the key is passed explicitly: the SDK reads the environment at import)."""
        if self._sdk is None:
            from elevenlabs.client import ElevenLabs as ElevenLabsClient

            self._sdk = ElevenLabsClient(api_key=self._api_key(), base_url=self.options.base_url,
                                         timeout=self.options.timeout_s)
        return self._sdk

    def text(self, request: SpeechRequest) -> tuple[str, list[str]]:
        """The exact text sent for ``request`` and the tags in it."""
        if self.options.audio_tags:
            return v3_text(request.transcript, request.style, self.options.max_tags)
        return re.sub(r"\s+", " ", request.transcript).strip(), []

    def synthesize(self, request: SpeechRequest, out_wav: Path, seed: int) -> SpeechResult:
        text, tags = self.text(request)
        details: dict[str, Any] = {"system": "ElevenLabs", "model_id": self.options.model_id,
                                   "output_format": self.options.output_format, "text_prepared": text,
                                   "audio_tags": tags, "transcript": request.transcript, "style": request.style}
        if self.fake:
            fake = write_fake_speech(request.reference_path, request.transcript, out_wav)
            return SpeechResult(out_wav, {**details, "text_sent": None, "sent": False, **fake})
        self.events = []
        try:
            voice = self._voice(request.reference_path, out_wav.parent, details)
            data, request_id = self._convert_or_reclone(voice, request.reference_path, out_wav.parent, text, seed,
                                                        details)
            details.update({"text_sent": text, "sent": True, "request_id": request_id, "seed_sent": seed % SEED_MODULUS,
                            "response_bytes": len(data)})
            try:
                audio, rate = decode_tts_audio(data, self.options.output_format)
            except ValueError as exc:
                bad = out_wav.with_suffix(".bad-response.bin")
                atomic_write_bytes(bad, data)
                raise ElevenLabsResponseError(f"ElevenLabs' speech for pair {request.pair_id} is unusable: {exc} "
                                              f"(the answer is kept at {bad})") from None
            write_wav(out_wav, audio, rate)
            details.update({"sample_rate": rate, "seconds": audio.shape[-1] / rate})
            self._delete_voice_if_asked(details)
        except (BenchError, OSError, ValueError) as exc:
            try:
                self._delete_voice_if_asked(details)
            except ElevenLabsError as cleanup:
                details["voice_delete_error"] = str(cleanup)
            exc.details = {**details, "retries": self.events, "error": f"{type(exc).__name__}: {exc}"}
            raise
        return SpeechResult(out_wav, {**details, "retries": self.events})

    def _delete_voice_if_asked(self, details: dict[str, Any]) -> None:
        """Policy ``delete``: remove the voice cloned for this speech from the account (once)."""
        voice_id = details.get("voice_id")
        if self.options.voice_policy == "delete" and voice_id and not details.get("voice_deleted"):
            self._call(lambda ro: self.sdk().voices.delete(voice_id, request_options=ro), "voice delete")
            details["voice_deleted"] = True

    # ---------------------------------------------------------------------------------- API calls
    def _call(self, fn: Callable[[dict[str, Any]], Any], what: str) -> Any:
        """``fn(request_options)`` with this part's retry policy (the SDK's own retries off)."""
        import httpx
        from elevenlabs.core.api_error import ApiError

        o = self.options
        request_options = {"max_retries": 0, "timeout_in_seconds": int(math.ceil(o.timeout_s))}

        def attempt() -> Any:
            try:
                return fn(request_options)
            except ApiError as exc:
                status, (detail_status, message) = exc.status_code, _detail(exc.body)
                text = f"ElevenLabs {what}: HTTP {status}" + (f": {message}" if message else "")
                if status == 401:
                    raise ElevenLabsAuthError(f"{text}; check {API_KEY_ENV}", status, detail_status) from None
                if status is not None and 200 <= status < 300:
                    raise ElevenLabsResponseError(f"ElevenLabs {what}: the answer is not the documented JSON: "
                                                  f"{message}") from None
                if status == 429 or (status is not None and status >= 500):
                    retry_after = parse_retry_after((exc.headers or {}).get("retry-after"), time.time())
                    raise Retryable(text, retry_after, ElevenLabsApiError(text, status, detail_status)) from None
                raise ElevenLabsApiError(text, status, detail_status) from None
            except httpx.TransportError as exc:
                raise Retryable(f"{type(exc).__name__}: {exc}", None, ElevenLabsApiError(
                    f"ElevenLabs {what}: connection failed ({type(exc).__name__}: {exc})")) from None

        def note(reason: str, delay: float) -> None:
            self.events.append({"what": what, "reason": reason, "delay_s": delay})

        return call_with_retries(attempt, RetryPolicy(o.max_retries, o.backoff_s, o.max_backoff_s), self.sleep,
                                 f"ElevenLabs {what}", None, note)

    def _clone(self, reference_path: Path) -> dict[str, Any]:
        """Clone the reference clip's voice; returns the cache entry."""
        sample = reference_wav_bytes(reference_path)
        clip_sha = file_sha256(reference_path)
        name = f"{VOICE_NAME_PREFIX} {clip_sha[:12]}"
        kwargs: dict[str, Any] = {"name": name, "files": [("reference.wav", sample, "audio/wav")],
                                  "description": "cloned by idlora-bench from a benchmark reference clip"}
        if self.options.remove_background_noise:
            kwargs["remove_background_noise"] = True
        answer = self._call(lambda ro: self.sdk().voices.ivc.create(**kwargs, request_options=ro), "voice clone")
        voice_id = getattr(answer, "voice_id", None)
        if not isinstance(voice_id, str) or not voice_id:
            raise ElevenLabsResponseError(f"ElevenLabs voice clone answered without a voice_id: {answer!r:.300}")
        return {"voice_id": voice_id, "name": name, "reference_sha256": clip_sha,
                "sample_sha256": hashlib.sha256(sample).hexdigest(), "sample_bytes": len(sample),
                "requires_verification": bool(getattr(answer, "requires_verification", False)),
                "created_at": time.time()}

    def _voice(self, reference_path: Path, folder: Path, details: dict[str, Any], refresh: bool = False) -> str:
        """The voice id for the clip: cached (policy ``keep``) or cloned now; notes which in ``details``."""
        clip_sha = file_sha256(reference_path)
        cache_path = folder / VOICES_FILE
        keep = self.options.voice_policy == "keep"
        with file_lock(folder / f"{VOICES_FILE}.lock"):
            cache = json.loads(cache_path.read_text()) if keep and cache_path.is_file() else {}
            entry = None if refresh else cache.get(clip_sha)
            details["voice_cloned_now"] = entry is None
            if entry is None:
                entry = self._clone(reference_path)
                if keep:
                    cache[clip_sha] = entry
                    atomic_write_text(cache_path, json.dumps(cache, indent=2, sort_keys=True))
        details.update({"voice_id": entry["voice_id"], "voice_name": entry["name"], "reference_sha256": clip_sha,
                        "voice_sample_sha256": entry["sample_sha256"],
                        "voice_cache": str(cache_path) if keep else None})
        return str(entry["voice_id"])

    def _convert(self, voice_id: str, text: str, seed: int) -> tuple[bytes, str | None]:
        o = self.options
        kwargs: dict[str, Any] = {"text": text, "model_id": o.model_id, "output_format": o.output_format,
                                  "seed": seed % SEED_MODULUS}
        if o.language_code:
            kwargs["language_code"] = o.language_code
        if o.stability is not None:
            from elevenlabs.types import VoiceSettings

            kwargs["voice_settings"] = VoiceSettings(stability=o.stability)

        def call(ro: dict[str, Any]) -> tuple[bytes, str | None]:
            with self.sdk().text_to_speech.with_raw_response.convert(voice_id, **kwargs, request_options=ro) as raw:
                data = b"".join(raw.data)
                return data, raw.headers.get("request-id")

        return self._call(call, "text-to-speech")

    def _convert_or_reclone(self, voice_id: str, reference_path: Path, folder: Path, text: str, seed: int,
                            details: dict[str, Any]) -> tuple[bytes, str | None]:
        """Speech with the voice; a cached voice the account no longer has is cloned again once (recorded)."""
        try:
            return self._convert(voice_id, text, seed)
        except ElevenLabsApiError as exc:
            gone = exc.http_status == 404 or exc.detail_status == "voice_not_found"
            if not gone or details.get("voice_cloned_now"):
                raise
            details["voice_recloned_after"] = str(exc)
            voice_id = self._voice(reference_path, folder, details, refresh=True)
            return self._convert(voice_id, text, seed)
