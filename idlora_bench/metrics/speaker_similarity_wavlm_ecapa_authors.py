"""Speaker similarity, paper profile: the ID-LoRA authors' WavLM-ECAPA variant (``speaker_similarity.wavlm_ecapa_authors``).

The authors' ``WavLMECAPASimilarityMetric`` (``packages/ltx-trainer/src/ltx_trainer/metrics/evaluation_metrics.py:
196-338`` and ``.../unispeech_sv/wavlm_ecapa.py``, commit 399bf3e), reproduced as far as the weights allow:
- model: the PRE-TRAINED hub ``microsoft/wavlm-large`` backbone + the ECAPA head and layer weights of UniSpeech's
  ``wavlm_large_finetune.pth`` (its fine-tuned backbone is unused, as in their code): see
  :mod:`idlora_bench.models.wavlm_ecapa_authors`;
- audio: channels averaged (``waveform.mean(dim=0)``, :280-281), resampled to 16 kHz with torchaudio's
  ``Resample`` defaults (sinc, Hann window, 6 zero crossings, rolloff 0.99; :284-286; reimplemented in
  :mod:`idlora_bench.models.sinc_resample`, identical to torchaudio 2.9.1), NO waveform layer norm (:228 of
  ``wavlm_ecapa.py``), the whole clip in one forward pass;
- score: cosine of the two 256-d embeddings (:295-317).

Kept from the house rules, unlike the authors' code: a missing checkpoint is an error (they fall back to a random
head, ``evaluation_metrics.py:247-252``); silent or under-0.5 s audio is a ``no_speech`` failure row (they score it);
a failed sample is a failure row (they drop it and average the rest, :331-338). Decoding is PyAV here, torchaudio
(FFmpeg) there: the same FFmpeg AAC decoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.data.media import DecodedMedia, to_mono
from idlora_bench.metrics.speaker_similarity_wavlm_ecapa import CHECKPOINT, SpeakerSimilarityWavLM
from idlora_bench.models.wavlm_ecapa import SAMPLE_RATE_HZ

WAVLM_LARGE_REPO = "microsoft/wavlm-large"
WAVLM_LARGE_REVISION = "c1423ed94bb01d80a3f5ce5bc39f6026a0f4828c"
WAVLM_LARGE_MODEL = "wavlm-large"
WAVLM_LARGE_CONFIG = WeightsFile(
    model=WAVLM_LARGE_MODEL, file="config.json",
    source=f"hf:{WAVLM_LARGE_REPO}@{WAVLM_LARGE_REVISION}:config.json", sha256=None, licence="MIT",
)
WAVLM_LARGE_WEIGHTS = WeightsFile(
    model=WAVLM_LARGE_MODEL, file="pytorch_model.bin",
    source=f"hf:{WAVLM_LARGE_REPO}@{WAVLM_LARGE_REVISION}:pytorch_model.bin",
    sha256="fdee460e529396ddb2f8c8e8ce0ad74cfb747b726bc6f612e666c7c1e1963c9d", licence="MIT",
    size_bytes=1_261_990_257,
)


class SpeakerSimilarityWavLMAuthors(SpeakerSimilarityWavLM):
    name = "speaker_similarity.wavlm_ecapa_authors"
    version = "1"
    weights = (WAVLM_LARGE_CONFIG, WAVLM_LARGE_WEIGHTS, CHECKPOINT)
    params = {
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "downmix": "mean of channels",
        "resampler": "torchaudio Resample defaults (sinc_interp_hann, lowpass_filter_width 6, rolloff 0.99)",
        "backbone": f"{WAVLM_LARGE_REPO}@{WAVLM_LARGE_REVISION} (pre-trained; the checkpoint's fine-tuned one unused)",
        "waveform_layer_norm": False,
        "silence_peak": 1e-3,
        "min_duration_s": 0.5,
        "batch": "one file per forward pass",
    }
    description = "the ID-LoRA authors' speaker similarity: hub WavLM-Large + UniSpeech ECAPA head, no layer norm"
    paper_reference = "ID-LoRA Sec. 5.1, Tables 1-2; authors' evaluation_metrics.py:196-338 (commit 399bf3e)"

    def _load(self, paths: dict[str, Path]) -> None:
        from idlora_bench.models.wavlm_ecapa_authors import load_wavlm_ecapa_authors

        backbone_dir = paths[WAVLM_LARGE_WEIGHTS.name].parent
        self._model, self.load_report = load_wavlm_ecapa_authors(  # type: ignore[assignment]
            backbone_dir, paths[CHECKPOINT.name], self.architecture, self.device)

    def mono_16k(self, media: DecodedMedia) -> np.ndarray:
        """Mono (channel mean) at 16 kHz through the torchaudio-default sinc resampler, ``(N,)`` float32."""
        import torch

        from idlora_bench.models.sinc_resample import resample

        audio = media.require_audio()
        assert media.sample_rate is not None
        mono = torch.from_numpy(np.ascontiguousarray(to_mono(audio)))
        return resample(mono, int(media.sample_rate), SAMPLE_RATE_HZ).numpy()
