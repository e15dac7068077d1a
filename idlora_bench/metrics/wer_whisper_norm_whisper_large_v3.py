"""WER with Whisper's English normaliser, standard profile: the Whisper-large-v3 transcription of
:class:`~idlora_bench.metrics.wer_whisper_large_v3.WerWhisper` scored with Whisper's ``EnglishTextNormalizer``
on both texts (numbers, contractions, spellings, fillers) as the value; the paper's normalisation stays in the
details.
"""

from __future__ import annotations

from idlora_bench.core.errors import SampleFailure
from idlora_bench.core.types import Pair
from idlora_bench.metrics.base import Features, Score
from idlora_bench.metrics.wer_whisper_large_v3 import WerWhisper


class WerWhisperNorm(WerWhisper):
    """The same transcription scored with Whisper's English normaliser as the value (the paper's is in details).

    It shares :class:`WerWhisper`'s ``features_id`` (and params): whichever of the two runs first transcribes,
    the other reads the cache; the loaded model is shared too.
    """

    name = "wer_whisper_norm.whisper_large_v3"
    family = "wer_whisper_norm"
    version = "1"
    description = "WER of the Whisper-large-v3 transcription, Whisper's English normaliser on both texts"
    label = "WER (Whisper norm.)"

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        details = self.details(generated, pair)
        if details["wer_whisper"] is None:
            raise SampleFailure("empty_reference",
                                f"transcript {pair.transcript!r} is empty after Whisper's English normaliser")
        return Score(float(details["wer_whisper"]), details)
