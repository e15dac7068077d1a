"""WER, the ID-LoRA authors' variant (``wer.whisper_large_v3_authors``): their released ``WhisperWERMetric``
(ID-LoRA ``packages/ltx-trainer/src/ltx_trainer/metrics/evaluation_metrics.py:945-1062``, commit 399bf3e; cited
below as ``EM:<line>``), reproduced in process. The class is never called in the authors' repository (its
offline evaluation script is not released), so how they fed it files is unknown; this follows its code.

Transcription (EM:973-1004):
- model: the Hugging Face format of ``openai/whisper-large-v3`` (``WhisperForConditionalGeneration``), pinned here
  to hub revision ``HUB_REVISION`` (the authors load the unpinned hub head, EM:957, 975). float16 on CUDA as the
  authors (``dtype=torch.float16``, EM:977); float32 on CPU, where float16 is not a supported compute type. The
  dtype in use is part of this metric's params, hence of its cache key.
- ``transformers.pipeline("automatic-speech-recognition", ...)`` with the checkpoint's own tokenizer and feature
  extractor (what ``pipeline(model=<hub id>)`` loads), called with ``return_timestamps=False`` and
  ``generate_kwargs={"language": "en", "task": "transcribe"}`` and nothing else (EM:999-1003). Everything else
  comes from the pipeline's and the checkpoint's defaults: the audio is zero-padded to 30 s, 128-bin log-mel; and
  generation is BEAM SEARCH WITH 5 BEAMS, not greedy: the ASR pipeline's ``_default_generation_config``
  (``max_new_tokens=256, num_beams=5``, "follows openai's whisper implementation") fills every value that
  whisper-large-v3's ``generation_config.json`` leaves at the global default, and that file sets no ``num_beams``;
  ``max_new_tokens`` is then dropped in favour of the checkpoint's ``max_length`` 448 (4 prompt tokens + at most
  444 generated). Checked in transformers 4.57.3 (the authors' ``uv.lock``) and 5.17.0 (this project): both build
  the same effective config. :meth:`WerWhisperAuthors._load` verifies it (``EXPECTED_GENERATION``) and refuses to
  run if another transformers version or checkpoint changes it.
- input audio: the pipeline, given a path (EM:1000), runs ``ffmpeg -i pipe:0 -ac 1 -ar 16000 -f f32le pipe:1``
  (transformers ``pipelines/audio_utils.py:ffmpeg_read``). Here the decoded audio is converted by the same
  libswresample conversion in process (:func:`~idlora_bench.models.ffmpeg_audio.swresample`, ``fmt="flt"``), and
  the 16 kHz float array is what the pipeline receives. A stereo file is therefore downmixed to
  ``0.7071 * (L + R)``, not the channel mean (float output is not normalised by libswresample).
- no silence gate: silent audio is transcribed like any other (Whisper may hallucinate words, scored as
  insertions); ``silent`` (peak < ``silence_peak``, -60 dBFS) is recorded in the details only.

Scoring (EM:1035-1053): reference = the pair's transcript, hypothesis = the pipeline's text stripped (EM:1004),
both through :func:`~idlora_bench.metrics.text_normalisation.authors_normalise` (EM:1006-1017); value =
``jiwer.wer(reference, hypothesis)`` (a hypothesis that is empty after normalisation gives 1.0); details: the raw
hypothesis, both normalised texts, ``jiwer.cer``, ``silent`` and the peak.

Deviations from the authors' code, each deliberate (house rules: never a silent fallback, never a made-up score):
- an empty normalised reference fails with ``empty_reference``; the authors return WER = CER = 1.0 (EM:1042-1044);
- audio longer than 30 s fails with ``too_long`` before transcription; the authors' call raises there (transformers'
  long-form generation needs timestamps: "You have passed more than 3000 mel input features ... Please either pass
  ``return_timestamps=True``", checked in 4.57.3 and 5.17.0);
- the checkpoint is loaded strictly (every key present, nothing unexpected, same shapes) from the verified store;
- the audio comes from the project's PyAV decode, not an ffmpeg subprocess. The conversion is the same
  libswresample code (bit-identical to the ffmpeg 9.0 CLI on test mp4s except the last ~16 output samples), but the
  ffmpeg CLI also honours an mp4's edit list and drops the AAC encoder's end padding (up to 1023 samples at the
  native rate), which the project's decode keeps. Reading an mp4 from a pipe (the pipeline's ``ffmpeg_read``) also
  fails outright on files whose ``moov`` atom follows the media data (two of four test mp4s written by
  :func:`~idlora_bench.data.media.write_mp4`), where the authors' call would raise; here such files are scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from idlora_bench.checkpoints.weights import WeightsFile, refuse_inexact_load
from idlora_bench.core.errors import BenchError, SampleFailure, WeightsError
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.text_normalisation import authors_normalise
from idlora_bench.models.ffmpeg_audio import swresample

SAMPLE_RATE_HZ = 16_000
MAX_AUDIO_S = 30.0
MAX_AUDIO_SAMPLES = int(MAX_AUDIO_S * SAMPLE_RATE_HZ)  # 480000: the pipeline's single-window limit
SILENCE_PEAK = 1e-3
PIPELINE_CALL: dict[str, Any] = {
    "return_timestamps": False,
    "generate_kwargs": {"language": "en", "task": "transcribe"},
}
# The generation settings the authors' pipeline ends up with (transformers 4.57.3 and 5.17.0, see the docstring).
EXPECTED_GENERATION: dict[str, Any] = {"num_beams": 5, "do_sample": False, "max_length": 448, "max_new_tokens": None}

MODEL = "whisper-large-v3-hf"
HUB_REPO = "openai/whisper-large-v3"
HUB_REVISION = "06f233fe06e710322aca913c1bc4249a0d71fce1"
# What WhisperForConditionalGeneration.from_pretrained (config.json, generation_config.json, model.safetensors) and
# the pipeline's AutoTokenizer/AutoFeatureExtractor (the rest) read from the hub folder. The hub repository also
# holds pytorch_model.bin, flax_model.msgpack and float32 shards; the float16 model.safetensors is the one used.
HUB_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "normalizer.json",
    "added_tokens.json",
    "special_tokens_map.json",
)


def _card(file: str) -> WeightsFile:
    # sha256=None: pinned by the hub revision; `bench models pull` checks each file against the hub's metadata for
    # that revision and records its sha256 in <store>/whisper-large-v3-hf/.checksums.json, which loads verify.
    return WeightsFile(model=MODEL, file=file, source=f"hf:{HUB_REPO}@{HUB_REVISION}:{file}", sha256=None,
                       licence="Apache-2.0 (hub repository tag; OpenAI released the weights under MIT)")


def compute_dtype(device: str) -> str:
    """``"float16"`` on CUDA (the authors' ``dtype=torch.float16``), ``"float32"`` elsewhere."""
    return "float16" if str(device).startswith("cuda") else "float32"


def authors_error_rates(transcript: str, hypothesis: str) -> dict[str, Any]:
    """The authors' scoring (EM:1039-1053) of a raw ``transcript`` and raw ``hypothesis``.

    Returns ``wer``, ``cer``, ``reference_normalised`` and ``hypothesis_normalised``. Raises
    ``SampleFailure("empty_reference")`` where the authors return 1.0 (an empty normalised reference).
    """
    import jiwer

    reference, normalised = authors_normalise(transcript), authors_normalise(hypothesis)
    if not reference:
        raise SampleFailure("empty_reference", f"transcript {transcript!r} is empty after the authors' normalisation "
                                               "(their code returns WER = CER = 1.0 here, evaluation_metrics.py:1042)")
    return {"wer": float(jiwer.wer(reference, normalised)), "cer": float(jiwer.cer(reference, normalised)),
            "reference_normalised": reference, "hypothesis_normalised": normalised}


class WerWhisperAuthors(Metric):
    name = "wer.whisper_large_v3_authors"
    family = "wer"
    version = "1"
    direction = "lower"
    needs = frozenset({MetricInput.GENERATED_AUDIO, MetricInput.TRANSCRIPT})
    weights = tuple(_card(file) for file in HUB_FILES)
    params: dict[str, Any] = {
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "resampling": "libswresample via PyAV as ffmpeg -ac 1 -ar 16000 -f f32le (mono = 0.7071 * sum of L, R)",
        "pipeline": "transformers automatic-speech-recognition, checkpoint tokenizer + feature extractor",
        "pipeline_call": PIPELINE_CALL,
        "generation": EXPECTED_GENERATION,
        "max_audio_s": MAX_AUDIO_S,
        "silence_gate": None,
        "silence_peak": SILENCE_PEAK,
        "normalisation": "authors_normalise (evaluation_metrics.py:1006-1017)",
        "empty_reference": "failure (authors: 1.0)",
        "compute_dtype": "float16 on CUDA, float32 elsewhere",
    }
    description = ("the ID-LoRA authors' WER: transformers Whisper-large-v3 pipeline (5 beams, fp16 on CUDA), "
                   "their normaliser")
    label = "WER"
    digits = 3
    unit = "word error rate"
    paper_reference = "ID-LoRA Sec. 5.1 (WER), Tables 1-2; authors' evaluation_metrics.py:945-1062 (commit 399bf3e)"
    requires = {"torch": "torch==2.13.0", "transformers": "transformers==5.17.0", "jiwer": "jiwer==4.0.0"}

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        # the dtype in use, not the rule: CPU (float32) and CUDA (float16) transcripts never share a cache entry
        self.params = {**type(self).params, "compute_dtype": compute_dtype(device)}

    # ------------------------------------------------------------------ loading
    def _load(self, paths: dict[str, Path]) -> None:
        import torch
        from transformers import AutoFeatureExtractor, AutoTokenizer, WhisperForConditionalGeneration, pipeline

        folder = paths[f"{MODEL}/config.json"].parent
        where = f"{MODEL} ({folder})"
        dtype = getattr(torch, compute_dtype(self.device))
        try:
            model, info = WhisperForConditionalGeneration.from_pretrained(
                folder, local_files_only=True, output_loading_info=True, ignore_mismatched_sizes=True, dtype=dtype
            )
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            extractor = AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
        except (OSError, RuntimeError, ValueError) as exc:
            raise WeightsError(f"weights {where}: transformers refused the checkpoint: {exc}") from exc
        refuse_inexact_load(info, where, "WhisperForConditionalGeneration")
        if extractor.sampling_rate != SAMPLE_RATE_HZ or extractor.n_samples != MAX_AUDIO_SAMPLES:
            raise WeightsError(f"weights {where}: feature extractor expects {extractor.sampling_rate} Hz and "
                               f"{extractor.n_samples} samples, this metric feeds {SAMPLE_RATE_HZ} Hz up to 30 s")
        self._pipe = pipeline("automatic-speech-recognition", model=model.eval(), tokenizer=tokenizer,
                              feature_extractor=extractor, dtype=dtype, device=self.device)
        effective = {key: getattr(self._pipe.generation_config, key, None) for key in EXPECTED_GENERATION}
        if effective != EXPECTED_GENERATION:
            raise BenchError(
                f"{self.name}: the transformers ASR pipeline over {where} would generate with {effective}; the "
                f"authors' (transformers 4.57.3 + the pinned checkpoint) generated with {EXPECTED_GENERATION}. "
                "Fix: install transformers==5.17.0 (constraints.txt) and re-pull the checkpoint."
            )

    # ------------------------------------------------------------------ scoring
    def transcribe(self, wav: np.ndarray) -> str:
        """The pipeline's text for 16 kHz mono float32 ``wav`` ``(N,)`` (N <= 480000), called as the authors do."""
        call = {**PIPELINE_CALL, "generate_kwargs": dict(PIPELINE_CALL["generate_kwargs"])}
        return str(self._pipe(np.array(wav, dtype=np.float32), **call)["text"])

    def extract(self, media: DecodedMedia) -> Features:
        if media.audio is None or media.audio.shape[-1] == 0 or not media.sample_rate:
            raise SampleFailure("no_audio", f"{media.path.name} has no audio samples")
        wav = swresample(media.audio, media.sample_rate, SAMPLE_RATE_HZ, fmt="flt")
        if len(wav) == 0:
            raise SampleFailure("no_audio", f"{media.path.name}: no samples left at {SAMPLE_RATE_HZ} Hz")
        if len(wav) > MAX_AUDIO_SAMPLES:
            raise SampleFailure("too_long", f"{len(wav) / SAMPLE_RATE_HZ:.2f} s of audio in {media.path.name} "
                                            f"(> {MAX_AUDIO_S} s: the authors' pipeline call raises, long-form "
                                            "generation needs timestamps); not truncated")
        peak = float(np.abs(wav).max())
        return {
            "hypothesis": self.transcribe(wav),  # decoded even when silent, as the authors' code does
            "silent": bool(peak < SILENCE_PEAK),
            "peak": peak,
            "duration_s": len(wav) / SAMPLE_RATE_HZ,
        }

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        hypothesis = str(generated["hypothesis"]).strip()  # EM:1004
        rates = authors_error_rates(pair.transcript, hypothesis)
        details = {"hypothesis": hypothesis, **rates, "silent": bool(generated["silent"]),
                   "peak": float(generated["peak"]), "duration_s": float(generated["duration_s"])}
        return Score(rates["wer"], details)
