"""WER, standard profile: Whisper-large-v3 transcription (openai-whisper's model and decoder), jiwer WER and CER.

Model: OpenAI's official ``large-v3.pt`` (``{"dims": ..., "model_state_dict": ...}``), loaded strictly by
:func:`~idlora_bench.models.whisper.load_whisper_checkpoint` into ``whisper.model.Whisper``; the tokenizer (``multilingual.tiktoken``) and mel
filters (``mel_filters.npz``) ship inside the openai-whisper package and are checked against the sha256 values in
``PACKAGE_ASSETS`` at load time (:mod:`idlora_bench.models.whisper`).

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
:class:`~idlora_bench.metrics.wer_whisper_norm_whisper_large_v3.WerWhisperNorm` reports the Whisper-normalised WER as its value from the same transcription (it shares
the feature cache key and the loaded model with :class:`WerWhisper`, so the audio is transcribed once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from idlora_bench.core.errors import SampleFailure
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.text_normalisation import paper_normalise, whisper_normalise
from idlora_bench.models.whisper import (
    LARGE_V3,
    PACKAGE_ASSETS,
    WHISPER_PACKAGE,
    shared_model,
    verify_package_assets,
)

SAMPLE_RATE_HZ = 16_000
MAX_AUDIO_S = 30.0
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
    label = "WER"
    unit = "word error rate"
    paper_reference = "ID-LoRA Sec. 5.1 (WER, Whisper-large-v3), Tables 1-2"
    requires = {"torch": "torch==2.13.0", "whisper": "openai-whisper==20250625 (--no-deps)", "jiwer": "jiwer==4.0.0", "tiktoken": "tiktoken"}

    def _load(self, paths: dict[str, Path]) -> None:
        verify_package_assets()
        card = self.weights[0]
        self._model = shared_model(paths[card.name], self.device, card.name)

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
