"""WER, paper profile: Whisper-large-v3 transcription (openai-whisper's model and decoder), jiwer WER and CER.

Model: OpenAI's official ``large-v3.pt`` (``{"dims": ..., "model_state_dict": ...}``), loaded strictly by
:func:`load_whisper_checkpoint` into ``whisper.model.Whisper``; the tokenizer (``multilingual.tiktoken``) and mel
filters (``mel_filters.npz``) ship inside the openai-whisper package and are checked against the sha256 values in
``PACKAGE_ASSETS`` at load time.

Transcription of one file (at most 30 s):
- audio: mono, resampled ONCE from the file's native rate to 16 kHz (``DecodedMedia.mono(16000)``, polyphase
  filter), zero-padded to 30 s in the AUDIO domain (``whisper.pad_or_trim``), then Whisper's log-mel
  (128 mels for large-v3, n_fft 400, hop 160 = 10 ms, 3000 frames), computed on CPU in float32. This is the
  feature path of ``whisper.decode``'s documented use and of transformers' Whisper pipeline (which the authors'
  script used); ``whisper.transcribe`` instead pads the log-mel with zeros and can differ on short clips.
- decoding: ``whisper.decode`` with ``DECODING``: English, task transcribe, temperature 0 greedy (no beam search,
  no temperature fallback; the paper does not say, the authors' script used greedy), no timestamps, default
  non-speech token suppression, at most 224 tokens, float32 on every device.
- audio whose peak is below ``silence_peak`` (-60 dBFS) is not decoded (Whisper hallucinates text in silence):
  the hypothesis is empty (WER 1.0, every word deleted) and ``silent`` is set. Audio longer than 30 s fails
  with ``too_long`` rather than being silently truncated; a file without audio fails with ``no_audio``.

Scores (``compare``), reference = the pair's transcript:
- value: WER with the paper's normalisation (``paper_normalise``: lowercase, punctuation stripped).
- details: the same with Whisper's ``EnglishTextNormalizer`` (numbers, contractions, spellings, fillers), CER
  for both normalisations, both normalised texts and the raw hypothesis.
:class:`WerWhisperNorm` reports the Whisper-normalised WER as its value from the same transcription (it shares
the feature cache key and the loaded model with :class:`WerWhisper`, so the audio is transcribed once).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from idlora_bench.errors import SampleFailure, WeightsError
from idlora_bench.media import DecodedMedia, file_sha256
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.text_normalisation import paper_normalise
from idlora_bench.types import Pair
from idlora_bench.weights import WeightsFile

SAMPLE_RATE_HZ = 16_000
MAX_AUDIO_S = 30.0
WHISPER_PACKAGE = "openai-whisper==20250625"
WHISPER_FIX = f"pip install -c constraints.txt --force-reinstall --no-deps '{WHISPER_PACKAGE}'"
# Files inside the installed openai-whisper package (module ``whisper``) that the metric depends on.
PACKAGE_ASSETS = {
    "assets/multilingual.tiktoken": "b34b360dbb493e781e479794586d661700670d65564001f23024971d1f2fa126",
    "assets/mel_filters.npz": "7450ae70723a5ef9d341e3cee628c7cb0177f36ce42c44b7ed2bf3325f0f6d4c",
    "normalizers/english.json": "6607f948be9824d2e1b2fa2223cd94c06c45afa4e05ea0e3d5e1f2bdffde2465",
}
DECODING: dict[str, Any] = {
    "task": "transcribe",
    "language": "en",
    "temperature": 0.0,
    "beam_size": None,
    "best_of": None,
    "sample_len": None,  # n_text_ctx // 2 = 224 tokens
    "without_timestamps": True,
    "suppress_tokens": "-1",
    "suppress_blank": True,
    "fp16": False,
}
CHECKPOINT_KEYS = frozenset({"dims", "model_state_dict"})

MODEL = "whisper-large-v3"
_LARGE_V3_SHA256 = "e5b1a55b89c1367dacf97e3e19bfd829a01529dbfdeefa8caeb59b3f1b81dadb"
LARGE_V3 = WeightsFile(
    model=MODEL,
    file="large-v3.pt",
    source=f"url:https://openaipublic.azureedge.net/main/whisper/models/{_LARGE_V3_SHA256}/large-v3.pt",
    sha256=_LARGE_V3_SHA256,
    licence="MIT",
    size_bytes=3_087_371_615,
)

_COMMON_PARAMS: dict[str, Any] = {
    "sample_rate_hz": SAMPLE_RATE_HZ,
    "resampling": "native rate -> 16 kHz directly (scipy resample_poly), mono = channel mean",
    "padding": "audio zero-padded to 30 s before log-mel (whisper.pad_or_trim)",
    "max_audio_s": MAX_AUDIO_S,
    "decoding": DECODING,
    "compute_dtype": "float32",
    "silence_peak": 1e-3,
    "package": WHISPER_PACKAGE,
    "package_assets": PACKAGE_ASSETS,
}


# ----------------------------------------------------------------------------------------------- text scoring
@lru_cache(maxsize=1)
def whisper_normaliser() -> Any:
    """Whisper's English text normaliser (from the installed openai-whisper package)."""
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def whisper_normalise(text: str) -> str:
    return whisper_normaliser()(text)


def error_rates(reference: str, hypothesis: str) -> tuple[float, float]:
    """``(WER, CER)`` of already-normalised texts (jiwer; an empty hypothesis gives 1.0 and 1.0)."""
    import jiwer

    if not reference:
        raise ValueError("the reference is empty")
    wer = float(jiwer.process_words(reference, hypothesis).wer)
    cer = float(jiwer.cer(reference, hypothesis)) if hypothesis else 1.0
    return wer, cer


def wer_scores(transcript: str, hypothesis: str) -> dict[str, Any]:
    """WER and CER under both normalisations.

    Keys: ``wer_paper``, ``cer_paper``, ``reference_paper``, ``hypothesis_paper``, and the same with ``_whisper``.
    The Whisper-normalised reference can be empty (a transcript of fillers only, e.g. "Um."): its rates are then
    None. An empty paper-normalised transcript is a split error (ValueError).
    """
    out: dict[str, Any] = {}
    for label, normalise in (("paper", paper_normalise), ("whisper", whisper_normalise)):
        reference, normalised = normalise(transcript), normalise(hypothesis)
        if reference:
            wer, cer = error_rates(reference, normalised)
        elif label == "paper":
            raise ValueError(f"transcript {transcript!r} is empty after the paper's normalisation")
        else:
            wer = cer = None
        out.update({f"wer_{label}": wer, f"cer_{label}": cer,
                    f"reference_{label}": reference, f"hypothesis_{label}": normalised})
    return out


# ----------------------------------------------------------------------------------------------- model loading
def _package_file(inner_path: str) -> Path:
    found = importlib.util.find_spec("whisper")
    if found is None or not found.submodule_search_locations:
        raise WeightsError(f"openai-whisper (module 'whisper') is not installed. Fix: {WHISPER_FIX}")
    return Path(list(found.submodule_search_locations)[0]) / inner_path


def verify_package_assets() -> None:
    """Check the tokenizer, mel filters and normaliser spellings shipped in openai-whisper against their sha256."""
    for inner_path, expected in PACKAGE_ASSETS.items():
        path = _package_file(inner_path)
        if not path.is_file():
            raise WeightsError(f"openai-whisper asset {inner_path}: {path} is missing. Fix: {WHISPER_FIX}")
        actual = file_sha256(path)
        if actual != expected:
            raise WeightsError(
                f"openai-whisper asset {inner_path}: {path} has sha256 {actual}, expected {expected} "
                f"(another openai-whisper version?). Fix: {WHISPER_FIX}"
            )


def _listed(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_whisper_checkpoint(path: Path, device: str = "cpu", name: str = "whisper checkpoint") -> Any:
    """Load an OpenAI Whisper ``.pt`` checkpoint strictly into ``whisper.model.Whisper`` (float32, eval mode).

    The file must hold exactly ``dims`` (every ``ModelDimensions`` field, nothing else) and ``model_state_dict``
    (every key of the model built from ``dims``, nothing else, same shapes); anything else raises WeightsError.
    """
    import torch
    from whisper.model import ModelDimensions, Whisper

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, a pickle with code, a truncated download
        raise WeightsError(f"weights {name!r}: {path} is not a readable Whisper checkpoint: {exc}") from exc
    if not isinstance(checkpoint, dict) or set(checkpoint) != CHECKPOINT_KEYS:
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise WeightsError(f"weights {name!r}: {path} must hold exactly {sorted(CHECKPOINT_KEYS)}, found {found}")
    dims = checkpoint["dims"]
    fields = {field.name for field in dataclasses.fields(ModelDimensions)}
    if not isinstance(dims, dict) or set(dims) != fields:
        got = set(dims) if isinstance(dims, dict) else set()
        raise WeightsError(
            f"weights {name!r}: {path} 'dims' missing {sorted(fields - got)}, unexpected {sorted(got - fields)}"
        )
    model = Whisper(ModelDimensions(**dims))
    expected = model.state_dict()
    state = checkpoint["model_state_dict"]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in set(expected) & set(state)
        if tuple(state[key].shape) != tuple(expected[key].shape)
    )
    if missing or unexpected or mismatched:
        problems = [f"{kind}: {_listed(keys)}" for kind, keys in
                    (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
                    if keys]
        raise WeightsError(f"weights {name!r}: {path} does not match Whisper{dims}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


_LOADED: dict[tuple[str, int, int, str], Any] = {}


def _shared_model(path: Path, device: str, name: str) -> Any:
    """One loaded model per (file, device) in this process, shared by WerWhisper and WerWhisperNorm."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, device)
    if key not in _LOADED:
        _LOADED[key] = load_whisper_checkpoint(path, device, name)
    return _LOADED[key]


# ----------------------------------------------------------------------------------------------- metrics
class WerWhisper(Metric):
    name = "wer.whisper_large_v3"
    family = "wer"
    version = "1"
    direction = "lower"
    needs = frozenset({MetricInput.GENERATED_AUDIO, MetricInput.TRANSCRIPT})
    weights = (LARGE_V3,)
    params = _COMMON_PARAMS
    features_id = "whisper_large_v3.transcription"  # WerWhisperNorm scores the same transcription
    description = "word error rate of a Whisper-large-v3 transcription of the generated audio vs the transcript"

    def _load(self, paths: dict[str, Path]) -> None:
        verify_package_assets()
        card = self.weights[0]
        self._model = _shared_model(paths[card.name], self.device, card.name)

    def transcribe(self, wav: np.ndarray) -> Any:
        """``whisper.DecodingResult`` of 16 kHz mono ``wav`` (at most 30 s) with ``DECODING``."""
        import torch
        import whisper

        audio = whisper.pad_or_trim(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)))
        mel = whisper.log_mel_spectrogram(audio, n_mels=self._model.dims.n_mels)  # CPU, float32
        return whisper.decode(self._model, mel.to(self.device), whisper.DecodingOptions(**DECODING))

    def extract(self, media: DecodedMedia) -> Features:
        if media.audio is None or media.audio.shape[-1] == 0:
            raise SampleFailure("no_audio", f"{media.path.name} has no audio samples")
        wav = media.mono(SAMPLE_RATE_HZ)
        duration_s = len(wav) / SAMPLE_RATE_HZ
        if duration_s > MAX_AUDIO_S:
            raise SampleFailure("too_long", f"{duration_s:.2f} s of audio in {media.path.name} (> {MAX_AUDIO_S} s, "
                                            "one Whisper window); not truncated")
        peak = float(np.abs(wav).max())
        if peak < self.params["silence_peak"]:  # Whisper hallucinates words in silence
            return {"hypothesis": "", "tokens": np.zeros(0, np.int64), "silent": True}
        result = self.transcribe(wav)
        return {
            "hypothesis": result.text,
            "tokens": np.asarray(result.tokens, np.int64),
            "silent": False,
            "avg_logprob": float(result.avg_logprob),
            "no_speech_prob": float(result.no_speech_prob),
        }

    def details(self, generated: Features, pair: Pair) -> dict[str, Any]:
        scores = wer_scores(pair.transcript, str(generated["hypothesis"]))
        out = {"hypothesis": str(generated["hypothesis"]), "silent": bool(generated["silent"]), **scores}
        for key in ("avg_logprob", "no_speech_prob"):
            if key in generated:
                out[key] = float(generated[key])
        return out

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        details = self.details(generated, pair)
        return Score(float(details["wer_paper"]), details)


class WerWhisperNorm(WerWhisper):
    """The same transcription scored with Whisper's English normaliser as the value (the paper's is in details).

    It shares :class:`WerWhisper`'s ``features_id`` (and params): whichever of the two runs first transcribes,
    the other reads the cache; the loaded model is shared too.
    """

    name = "wer_whisper_norm.whisper_large_v3"
    family = "wer_whisper_norm"
    version = "1"
    description = "WER of the Whisper-large-v3 transcription, Whisper's English normaliser on both texts"

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        details = self.details(generated, pair)
        if details["wer_whisper"] is None:
            raise SampleFailure("empty_reference",
                                f"transcript {pair.transcript!r} is empty after Whisper's English normaliser")
        return Score(float(details["wer_whisper"]), details)
