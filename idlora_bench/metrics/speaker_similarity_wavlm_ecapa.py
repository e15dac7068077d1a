"""Speaker similarity, standard profile: WavLM-Large + ECAPA-TDNN (UniSpeech), cosine of generated vs target embeddings.

Protocol (UniSpeech ``verification.py`` / seed-tts-eval "SIM", the ID-LoRA paper's speaker similarity):
- audio: the whole clip, channels averaged to mono, resampled to 16 kHz (scipy polyphase ``resample_poly``;
  UniSpeech uses torchaudio's sinc resampler, so values can differ in the last digits), no trimming, no
  loudness normalisation; the model layer-normalises the waveform itself (WavLM-Large ``normalize=True``);
- embedding: :class:`~idlora_bench.models.wavlm_ecapa.WavLMEcapa` on the whole waveform, one file at a time
  (batch of 1, as UniSpeech; padding would change the instance norm and the pooling), 256-d, not normalised;
- score: cosine of the two embeddings, in [-1, 1], higher is more similar.

Failures: audio whose peak is below ``silence_peak`` (1e-3, i.e. -60 dBFS) is ``no_speech`` (silence);
audio shorter than ``min_duration_s`` (0.5 s, about 24 WavLM frames of 20 ms) is ``no_speech`` as well (too little
audio to carry a voice; the code's message says which rule fired). Nothing is ever scored 0.0 instead.

Weights: ``wavlm_large_finetune.pth`` (1,301,926,579 bytes), the UniSpeech speaker-verification checkpoint
"WavLM large, Fix pre-train: No" (Google Drive id ``1-aE1NfzpRCLxA4GUxX9ITI3F9LlbtEGP``, linked from
microsoft/UniSpeech ``downstreams/speaker_verification/README.md``, unreachable for scripted downloads); the card
downloads its Hugging Face mirror ``bezzam/wavlm_large_finetune_seed_tts_eval`` at a pinned revision, checked by
sha256 (the same sha256 appears in other public evaluations that use this file; byte identity with the Drive
original could not be checked offline). It holds the fine-tuned WavLM backbone AND the head; both are loaded
strictly (see ``idlora_bench/models/wavlm_ecapa.py``).
Licence: CC BY-SA 3.0, the licence of the UniSpeech repository.

The architecture is the class attribute :attr:`SpeakerSimilarityWavLM.architecture` (WavLM-Large); the checkpoint
holds no config. Tests point ``weights`` at a tiny random checkpoint and ``architecture`` at its tiny config.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.errors import SampleFailure
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.similarity import cosine_similarity
from idlora_bench.models.wavlm_ecapa import (
    SAMPLE_RATE_HZ,
    WAVLM_ECAPA_LARGE,
    LoadReport,
    WavLMEcapaConfig,
)

CHECKPOINT = WeightsFile(
    model="wavlm-ecapa-unispeech",
    file="wavlm_large_finetune.pth",
    source=(
        "hf:bezzam/wavlm_large_finetune_seed_tts_eval@f127f699a44abb1c6e05f03522bd1b8c48be3184:wavlm_large_finetune.pth"
    ),
    sha256="51f07e3b94d9e0262a6a675ef5a087be3dd09e8c62e9d886827f44f82fe7f94b",
    licence="CC BY-SA 3.0 (UniSpeech repository LICENSE)",
    size_bytes=1_301_926_579,
)


class SpeakerSimilarityWavLM(Metric):
    name = "speaker_similarity.wavlm_ecapa"
    family = "speaker_similarity"
    version = "1"
    direction = "higher"
    needs = frozenset({MetricInput.GENERATED_AUDIO, MetricInput.TARGET_AUDIO})
    weights = (CHECKPOINT,)
    architecture: ClassVar[WavLMEcapaConfig] = WAVLM_ECAPA_LARGE
    params = {
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "downmix": "mean of channels",
        "resampler": "scipy.signal.resample_poly",
        "waveform_layer_norm": True,
        "silence_peak": 1e-3,
        "min_duration_s": 0.5,
        "batch": "one file per forward pass",
    }
    load_report: LoadReport
    """What strict loading did (tensors loaded, training-only keys left out), set by ``load()``."""
    description = "cosine of WavLM-Large + ECAPA-TDNN (UniSpeech, fine-tuned) speaker embeddings, generated vs target"
    label = "Spk Sim"
    unit = "cosine"
    paper_reference = "ID-LoRA Sec. 5.1 (speaker similarity, WavLM-Large + ECAPA-TDNN), Tables 1-2"
    requires = {"torch": "torch==2.13.0", "transformers": "transformers==5.17.0"}

    def _load(self, paths: dict[str, Path]) -> None:
        from idlora_bench.models.wavlm_ecapa import load_wavlm_ecapa

        (checkpoint,) = self.weights
        self._model, self.load_report = load_wavlm_ecapa(paths[checkpoint.name], self.architecture, self.device)

    def mono_16k(self, media: DecodedMedia) -> np.ndarray:
        """The clip as ``(N,)`` float32 mono at 16 kHz (channel mean, polyphase resampling)."""
        return media.mono(SAMPLE_RATE_HZ)

    def waveform(self, media: DecodedMedia) -> np.ndarray:
        """The 16 kHz mono waveform scored; raises ``no_speech`` for silent or too-short audio."""
        wav = self.mono_16k(media)
        duration_s = len(wav) / SAMPLE_RATE_HZ
        if duration_s < self.params["min_duration_s"]:
            minimum = self.params["min_duration_s"]
            raise SampleFailure("no_speech", f"audio of {media.path.name} lasts {duration_s:.3f} s (< {minimum} s)")
        peak = float(np.abs(wav).max())
        if not np.isfinite(peak):
            raise SampleFailure("no_speech", f"audio of {media.path.name} holds non-finite samples")
        if peak < self.params["silence_peak"]:
            raise SampleFailure("no_speech", f"audio of {media.path.name} is silent (peak {peak:.2e})")
        return wav

    def extract(self, media: DecodedMedia) -> Features:
        import torch

        wav = self.waveform(media)
        embedding = self._model.embed(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)))
        return {"embedding": embedding.float().cpu().numpy(), "duration_s": len(wav) / SAMPLE_RATE_HZ}

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        assert target is not None
        return Score(
            cosine_similarity(generated["embedding"], target["embedding"]),
            {"generated_duration_s": generated["duration_s"], "target_duration_s": target["duration_s"]},
        )
