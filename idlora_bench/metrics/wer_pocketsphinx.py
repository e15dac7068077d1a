"""WER, offline profile: PocketSphinx 5 (CMU US English acoustic model + LM) transcription, jiwer WER.

Audio: mono, 16 kHz, 16-bit PCM, one utterance. Hypothesis and the pair's transcript are normalised with
the paper's rule (lowercase, punctuation stripped) before ``jiwer.wer``; CER is in the details. An empty
transcription is a valid result (WER 1.0: every word deleted), not a failure: a method that generates no
speech scores as such. Audio whose peak is below ``silence_peak`` (-60 dBFS) is not decoded (the
recogniser hallucinates words in silence): its transcription is empty and ``silent`` is set. PocketSphinx is a weak recogniser: absolute WER is not comparable with
Whisper-large-v3 numbers; use it to rank methods within the offline profile only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.text_normalisation import paper_normalise

SAMPLE_RATE_HZ = 16_000
_PACKAGE = "pypi:pocketsphinx==5.1.1:model/en-us/"
_FILES = {
    "en-us/feat.params": "c982c5f75e2a30c34d2c9ef1f6b129a5a00e67e3e927565076b58664cc2404c9",
    "en-us/mdef": "2360f9a86889c1cfee8bd618a0269387911e5fb2920a594f506b18b8c79683b0",
    "en-us/means": "832019e32cac12eb318964f96f469034acb12d0348eeddc3831831a100cb4dd4",
    "en-us/noisedict": "7295b07df2c204c4f87c6782b6be1a3859d7006d4e3864181c955d6dab105a33",
    "en-us/sendump": "8c9564c0d5bef69ca9d9bf1014abe162f071644cf02cf1fa8a483c3dc165a7a8",
    "en-us/transition_matrices": "c1f7f28ea43177be734be1f88bd7f1b9a853d0e660f8599c67c6eaeca8bb539a",
    "en-us/variances": "b00d696f85e96834fc10f8e5f06428d8c4db6bffdbe5845b6f69bf6efbc48fa5",
    "en-us.lm.bin": "db21d0642286677699e6dbc859d2e5395570222361999387ce60f6e1d01995d6",
    "cmudict-en-us.dict": "20b5c293e1f311fb375fe067e500ec5636f4fc7af5594967263696def9b23bfe",
}


class WerPocketsphinx(Metric):
    name = "wer.pocketsphinx"
    family = "wer"
    version = "1"
    direction = "lower"
    needs = frozenset({MetricInput.GENERATED_AUDIO, MetricInput.TRANSCRIPT})
    weights = tuple(
        WeightsFile(model="pocketsphinx-en-us", file=file, source=_PACKAGE + file, sha256=sha,
                    licence="BSD-2-Clause (CMU)")
        for file, sha in _FILES.items()
    )
    params = {"sample_rate_hz": SAMPLE_RATE_HZ, "normalisation": "paper: lowercase, strip punctuation",
              "silence_peak": 1e-3}
    description = "word error rate of a PocketSphinx transcription of the generated audio vs the transcript"
    label = "WER (PocketSphinx)"
    unit = "word error rate"
    paper_reference = "offline stand-in for ID-LoRA Sec. 5.1 WER"
    requires = {"pocketsphinx": "pocketsphinx==5.1.1", "jiwer": "jiwer==4.0.0"}

    def _load(self, paths: dict[str, Path]) -> None:
        from pocketsphinx import Decoder

        model_dir = paths["pocketsphinx-en-us/en-us.lm.bin"].parent
        self._decoder = Decoder(
            hmm=str(model_dir / "en-us"),
            lm=str(model_dir / "en-us.lm.bin"),
            dict=str(model_dir / "cmudict-en-us.dict"),
            samprate=SAMPLE_RATE_HZ,
            loglevel="FATAL",
        )

    def extract(self, media: DecodedMedia) -> Features:
        wav = media.mono(SAMPLE_RATE_HZ)
        peak = float(np.abs(wav).max()) if len(wav) else 0.0
        if peak < self.params["silence_peak"]:  # PocketSphinx hallucinates words in silence
            return {"hypothesis": "", "silent": True}
        pcm = (np.clip(wav, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return {"hypothesis": "" if hypothesis is None else hypothesis.hypstr, "silent": False}

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        import jiwer

        reference = paper_normalise(pair.transcript)
        hypothesis = paper_normalise(generated["hypothesis"])
        if not reference:
            raise ValueError(f"pair {pair.pair_id}: transcript is empty after normalisation")
        output = jiwer.process_words(reference, hypothesis)
        cer = jiwer.cer(reference, hypothesis) if hypothesis else 1.0
        return Score(
            float(output.wer),
            {"hypothesis": hypothesis, "reference": reference, "cer": float(cer),
             "silent": bool(generated.get("silent", False))},
        )
