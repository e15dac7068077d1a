"""Audio prompt adherence, standard profile: LAION CLAP (``laion/clap-htsat-unfused``) cosine of the generated audio
and the pair's sound description.

Protocol (ID-LoRA paper, "CLAP similarity between the generated audio and the combined prompt description of
environment sounds and speaking style"):

- text: ``TEXT_TEMPLATE`` filled with the pair's ``speaking_style`` and ``environment_sounds`` (the order of the
  prompt's ``[SOUNDS]`` part), RoBERTa-tokenised and truncated to ``TEXT_MAX_TOKENS`` = 77 tokens as LAION-CLAP's
  own tokenizer does. Its unit embedding depends only on the text: it is computed in ``compare`` and memoised by text.
- audio: mono, resampled ONCE from the file's native rate straight to 48 kHz (``DecodedMedia.mono(48000)``, a
  polyphase filter), never through 16 kHz (a 16 kHz detour, as in the authors' script, removes everything above
  8 kHz; the CLAP mel goes up to 14 kHz). Log-mel features: transformers' ``ClapFeatureExtractor`` with the
  checkpoint's preprocessor config (64 Slaney mels, 50 Hz - 14 kHz, n_fft 1024, hop 480 = 10 ms, 10 s input =
  1001 frames), ``repeatpad`` for audio shorter than 10 s.
- determinism: the extractor's ``rand_trunc`` mode takes a RANDOM 10 s crop of longer audio. This metric never
  hands it more than 10 s: audio longer than 10 s is cut into ``ceil(N / 10 s)`` windows of exactly 10 s, evenly
  spaced from the first to the last sample (the last may overlap its neighbour), each embedded, and the unit
  embeddings averaged then L2-normalised. Audio of 10 s or less (the paper's clips are 4.84 s) is one window.
- value: cosine of the audio and text unit embeddings, in [-1, 1] (not the temperature-scaled logit).

No sample is skipped and no failure is scored 0.0: a file without audio fails with ``no_audio``. Silence is a
valid input (its embedding is well defined) and is scored like any other audio.

Shapes: audio ``(N,)`` float32 at 48 kHz; extractor input ``(W, 1, 1001, 64)`` for W windows; embeddings ``(512,)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from idlora_bench.checkpoints.weights import WeightsFile, refuse_inexact_load
from idlora_bench.core.errors import SampleFailure, WeightsError
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.similarity import cosine_similarity, mean_then_normalise

SAMPLE_RATE_HZ = 48_000
WINDOW_S = 10
WINDOW_SAMPLES = WINDOW_S * SAMPLE_RATE_HZ
TEXT_TEMPLATE = "{speaking_style}, {environment_sounds}"
TEXT_MAX_TOKENS = 77

MODEL = "clap-htsat-unfused"
HUB_REPO = "laion/clap-htsat-unfused"
HUB_REVISION = "8fa0f1c6d0433df6e97c127f64b2a1d6c0dcda8a"
# The files of the hub repository at HUB_REVISION that transformers reads (README.md and .gitattributes are not
# needed). The weights are a pickled state dict (no safetensors file exists at this revision).
HUB_FILES = (
    "config.json",
    "pytorch_model.bin",
    "preprocessor_config.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def _card(file: str) -> WeightsFile:
    # sha256=None: not published where we could read it offline. The file is pinned by the hub revision above;
    # `bench models pull` checks it against the hub's metadata for that revision and records its sha256 in
    # <store>/clap-htsat-unfused/.checksums.json, which every later load verifies (see idlora_bench.checkpoints.weights).
    return WeightsFile(
        model=MODEL,
        file=file,
        source=f"hf:{HUB_REPO}@{HUB_REVISION}:{file}",
        sha256=None,
        licence="Apache-2.0",
    )


def sound_description(pair: Pair) -> str:
    """The text CLAP compares the audio with: ``TEXT_TEMPLATE`` filled from the pair's fields."""
    return TEXT_TEMPLATE.format(
        speaking_style=pair.speaking_style.strip(), environment_sounds=pair.environment_sounds.strip()
    )


def window_starts(num_samples: int, window: int = WINDOW_SAMPLES) -> list[int]:
    """Start sample of each analysis window: ``[0]`` up to one window, else ``ceil(N / window)`` windows of exactly
    ``window`` samples, evenly spaced from 0 to ``N - window`` (rounded), covering every sample."""
    if num_samples <= window:
        return [0]
    count = math.ceil(num_samples / window)
    return [int(s) for s in np.rint(np.linspace(0, num_samples - window, count))]


def audio_windows(wav: np.ndarray, window: int = WINDOW_SAMPLES) -> list[np.ndarray]:
    """``wav`` cut into the windows of :func:`window_starts` (each at most ``window`` samples)."""
    return [wav[start : start + window] for start in window_starts(len(wav), window)]


class ClapAdherence(Metric):
    name = "clap.htsat_unfused"
    family = "clap"
    version = "1"
    direction = "higher"
    needs = frozenset({MetricInput.GENERATED_AUDIO, MetricInput.PROMPT_SOUNDS})
    weights = tuple(_card(file) for file in HUB_FILES)
    params = {
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "resampling": "native rate -> 48 kHz directly (scipy resample_poly), mono = channel mean",
        "window_s": WINDOW_S,
        "long_audio": "evenly spaced 10 s windows, unit embeddings averaged then L2-normalised",
        "truncation": "rand_trunc (never triggered: inputs are at most 10 s)",
        "padding": "repeatpad",
        "text_template": TEXT_TEMPLATE,
        "text_max_tokens": TEXT_MAX_TOKENS,
        "score": "cosine of unit audio and text embeddings",
        "compute_dtype": "float32",
    }
    description = "CLAP cosine of the generated audio and the prompt's speaking style + environment sounds"
    label = "CLAP"
    unit = "cosine"
    paper_reference = "ID-LoRA Sec. 5.1 (audio prompt adherence), Tables 1-2"
    requires = {"torch": "torch==2.13.0", "transformers": "transformers==5.17.0"}

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self._text_cache: dict[str, tuple[np.ndarray, int]] = {}

    # ------------------------------------------------------------------ loading
    def _load(self, paths: dict[str, Path]) -> None:
        from transformers import ClapModel, ClapProcessor

        folder = paths[f"{MODEL}/config.json"].parent
        where = f"{MODEL} ({folder})"
        try:
            # ignore_mismatched_sizes=True only so that shape mismatches are reported by key (below) instead of
            # raised without names; any mismatch is refused.
            model, info = ClapModel.from_pretrained(
                folder, local_files_only=True, output_loading_info=True, ignore_mismatched_sizes=True
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise WeightsError(f"weights {where}: transformers refused the checkpoint: {exc}") from exc
        refuse_inexact_load(info, where, "ClapModel")
        if model.config.audio_config.enable_fusion:
            raise WeightsError(f"weights {where}: a fusion CLAP model; this metric runs the unfused model only")
        processor = ClapProcessor.from_pretrained(folder, local_files_only=True)
        extractor = processor.feature_extractor
        if extractor.sampling_rate != SAMPLE_RATE_HZ or extractor.nb_max_samples != WINDOW_SAMPLES:
            raise WeightsError(
                f"weights {where}: feature extractor expects {extractor.sampling_rate} Hz and "
                f"{extractor.nb_max_samples} samples, this metric feeds {SAMPLE_RATE_HZ} Hz windows of {WINDOW_SAMPLES}"
            )
        self._model = model.to(self.device).eval()
        self._extractor = extractor
        self._tokenizer = processor.tokenizer

    # ------------------------------------------------------------------ audio
    def audio_input_features(self, wav: np.ndarray) -> dict[str, Any]:
        """Extractor output for 48 kHz mono ``wav``: ``input_features`` ``(W, 1, 1001, 64)`` and ``is_longer``."""
        windows = audio_windows(np.asarray(wav, np.float32))
        return dict(self._extractor(
            windows, sampling_rate=SAMPLE_RATE_HZ, truncation="rand_trunc", padding="repeatpad", return_tensors="pt"
        ))

    def audio_embedding(self, wav: np.ndarray) -> tuple[np.ndarray, int]:
        """Unit audio embedding ``(D,)`` of 48 kHz mono ``wav`` and the number of 10 s windows it averages."""
        import torch

        inputs = self.audio_input_features(wav)
        with torch.no_grad():
            out = self._model.get_audio_features(
                input_features=inputs["input_features"].to(self.device, torch.float32),
                is_longer=inputs["is_longer"].to(self.device),
            )
        embeddings = _pooled(out).float().cpu().numpy()  # (W, D), each a unit vector
        return mean_then_normalise(embeddings), len(embeddings)

    def extract(self, media: DecodedMedia) -> Features:
        if media.audio is None or media.audio.shape[-1] == 0:
            raise SampleFailure("no_audio", f"{media.path.name} has no audio samples")
        wav = media.mono(SAMPLE_RATE_HZ)  # native rate -> 48 kHz in one step
        embedding, windows = self.audio_embedding(wav)
        return {"embedding": embedding, "windows": windows, "duration_s": len(wav) / SAMPLE_RATE_HZ}

    # ------------------------------------------------------------------ text
    def text_embedding(self, text: str) -> tuple[np.ndarray, int]:
        """Unit text embedding ``(D,)`` of ``text`` and its token count before truncation (memoised by text)."""
        if text not in self._text_cache:
            import torch

            self.load()
            full_length = len(self._tokenizer(text)["input_ids"])
            tokens = self._tokenizer(text, truncation=True, max_length=TEXT_MAX_TOKENS, return_tensors="pt")
            with torch.no_grad():
                out = self._model.get_text_features(
                    input_ids=tokens["input_ids"].to(self.device),
                    attention_mask=tokens["attention_mask"].to(self.device),
                )
            self._text_cache[text] = (_pooled(out)[0].float().cpu().numpy(), full_length)
        return self._text_cache[text]

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        text = sound_description(pair)
        text_embedding, text_tokens = self.text_embedding(text)
        return Score(
            cosine_similarity(generated["embedding"], text_embedding),
            {
                "text": text,
                "text_tokens": int(text_tokens),
                "text_truncated": bool(text_tokens > TEXT_MAX_TOKENS),
                "windows": int(generated["windows"]),
                "duration_s": float(generated["duration_s"]),
            },
        )


def _pooled(out: Any) -> Any:
    """transformers 5 returns a model output whose ``pooler_output`` holds the unit embeddings; 4.x a tensor."""
    return out.pooler_output if hasattr(out, "pooler_output") else out
