"""Speaker similarity, offline profile: GE2E speaker embeddings (resemblyzer), cosine generated vs target.

Audio: mono, 16 kHz; resemblyzer's preprocessing (volume normalised to -30 dBFS, increase only; long
silences trimmed by WebRTC VAD), then partial 1.6 s windows averaged into one 256-d unit embedding.
Audio whose peak is below ``silence_peak`` (-60 dBFS) or with less than ``min_speech_s`` seconds of speech left after trimming fails with ``no_speech``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.errors import SampleFailure
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.similarity import cosine_similarity

SAMPLE_RATE_HZ = 16_000


class SpeakerSimilarityResemblyzer(Metric):
    name = "speaker_similarity.resemblyzer"
    family = "speaker_similarity"
    version = "1"
    direction = "higher"
    needs = frozenset({MetricInput.GENERATED_AUDIO, MetricInput.TARGET_AUDIO})
    weights = (
        WeightsFile(
            model="resemblyzer-ge2e",
            file="pretrained.pt",
            source="pypi:resemblyzer==0.1.4:pretrained.pt",
            sha256="39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
            licence="Apache-2.0",
        ),
    )
    params = {"sample_rate_hz": SAMPLE_RATE_HZ, "min_speech_s": 0.5, "partial_rate_per_s": 1.3, "silence_peak": 1e-3}
    description = "cosine of GE2E (resemblyzer) speaker embeddings of generated vs target audio"
    label = "Spk Sim"
    unit = "cosine"
    paper_reference = "offline stand-in for ID-LoRA Sec. 5.1 speaker similarity"
    requires = {"torch": "torch==2.13.0", "resemblyzer": "resemblyzer==0.1.4", "webrtcvad": "webrtcvad (with resemblyzer)"}

    def _load(self, paths: dict[str, Path]) -> None:
        from resemblyzer import VoiceEncoder

        self._encoder = VoiceEncoder(self.device, verbose=False, weights_fpath=paths["resemblyzer-ge2e/pretrained.pt"])

    def extract(self, media: DecodedMedia) -> Features:
        from resemblyzer import preprocess_wav

        wav = media.mono(SAMPLE_RATE_HZ)
        peak = float(np.abs(wav).max()) if len(wav) else 0.0
        if peak < self.params["silence_peak"]:  # resemblyzer's volume normalisation turns silence into NaN
            raise SampleFailure("no_speech", f"audio of {media.path.name} is silent (peak {peak:.2e})")
        speech = preprocess_wav(wav.astype(np.float32))
        speech_s = len(speech) / SAMPLE_RATE_HZ
        if speech_s < self.params["min_speech_s"]:
            raise SampleFailure(
                "no_speech",
                f"{speech_s:.2f} s of speech after VAD trimming (< {self.params['min_speech_s']} s) in {media.path.name}",
            )
        embedding = self._encoder.embed_utterance(speech, rate=self.params["partial_rate_per_s"])
        return {"embedding": embedding.astype(np.float32), "speech_s": float(speech_s)}

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        assert target is not None
        return Score(
            cosine_similarity(generated["embedding"], target["embedding"]),
            {"generated_speech_s": generated["speech_s"], "target_speech_s": target["speech_s"]},
        )
