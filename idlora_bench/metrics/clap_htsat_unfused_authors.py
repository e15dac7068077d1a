"""CLAP, the ID-LoRA authors' variant: their released ``CLAPSimilarityMetric`` (ID-LoRA
``packages/ltx-trainer/src/ltx_trainer/metrics/evaluation_metrics.py:590-939``, commit 399bf3e; cited below as
``EM:<line>``) reproduced in process, scoring the generated audio against one text per metric:

- ``clap.htsat_unfused_authors`` (:class:`ClapAuthors`, this file): the paper's single CLAP column. Paper App. A.3
  says "CLAP similarity between the generated audio and the combined prompt description of environment sounds and
  speaking style"; no released code forms that text (the authors' trainer scores environment sounds and speaking
  style separately, ``trainer.py:1272-1290``). THIS CHOICE IS OURS: the prompt's ``[SOUNDS]`` part
  (``pair.prompt_parts["sounds"]``), which is the prompt's own combined description of speaking style and
  environment sounds, verbatim.
- ``clap_env.htsat_unfused_authors`` (``clap_env_htsat_unfused_authors.py``): the environment-sounds text, with
  "None"/"None." (any case) replaced by "clear speech with no ambient or environmental sounds" (EM:641, 659-661).
- ``clap_style.htsat_unfused_authors`` (``clap_style_htsat_unfused_authors.py``): the speaking-style text
  (EM:664-674).

The three share one audio feature extraction (same ``features_id``, version, params and weights): the runner
embeds each file once and each metric only embeds its text and compares.

Audio (the authors' path for a video file, EM:767-781):
1. ``ffmpeg -i VIDEO -vn -acodec pcm_s16le -ar 16000 -ac 1 -t 30`` (EM:696-700): here libswresample through PyAV
   (:func:`~idlora_bench.models.ffmpeg_audio.swresample`, ``fmt="s16"``) on the decoded audio: 16 kHz mono
   int16 (stereo -> the channel mean), then the first 30 s. Everything above 8 kHz is gone from here on.
2. ``soundfile.read(dtype="float32")`` (EM:718): int16 / 32768.
3. ``librosa.resample(audio, orig_sr=16000, target_sr=48000)`` (EM:737), whose default in librosa 0.11 (the
   authors' lock) is ``res_type="soxr_hq"``: ``soxr.resample(x, 16000, 48000, quality="HQ")``, then librosa's
   ``fix_length`` to ``ceil(3 N)`` samples; float32.
4. ``processor.feature_extractor([audio], sampling_rate=48000, return_tensors="pt")`` with the checkpoint's own
   defaults (EM:788-790): ``repeatpad`` below 10 s; above 10 s ``rand_trunc`` takes a RANDOM 10 s crop through
   numpy's global RNG. The authors' crop is unseeded; here numpy's global RNG is seeded with
   ``int(media sha256[:8], 16)`` for that call and its previous state restored afterwards, so a file always gets
   the same crop (stamped in ``params["rand_trunc_seed"]``). ``is_longer`` is not passed (EM:791-794; the
   unfused model ignores it).
5. The model's audio embedding (``get_audio_features``, the ``audio_embeds`` of the authors' full forward,
   EM:798-803), a unit vector ``(512,)``: the cached feature.

Text (EM:785-787): ``tokenizer([text], padding=True, return_tensors="pt")``, NOT truncated (the standard metric
cuts at 77 tokens), embedded by the model (``text_embeds``), memoised per text in process.

Value: cosine of the audio and text embeddings, in [-1, 1] (EM:800-805; ``use_cosine=True``, what the trainer uses).

Deviations from the authors' code, each deliberate (house rules: no silent fallback, no made-up score):
- a file whose audio cannot be read fails (``no_audio``/``decode_error``); the authors score it 0.0 and count it in
  the mean (EM:771-774);
- an empty text fails with ``empty_reference``; the authors skip the sample (EM:842-843);
- a text longer than the text tower's positions fails with ``too_long``; the authors' forward raises and the sample
  is dropped (EM:912-913);
- the model is the pinned, strictly loaded ``laion/clap-htsat-unfused`` of the standard metric (the authors load
  the unpinned hub head, or whatever ``$CLAP_MODEL_ID`` names, EM:617); a missing librosa cannot silently leave the
  audio at 16 kHz (EM:739-741);
- the rand_trunc crop of >10 s audio is seeded (above); texts come from the pair's structured fields, not from the
  authors' regex over a caption (EM:652-674);
- the audio is the project's PyAV decode: the ffmpeg CLI also honours an mp4's edit list and drops the AAC end
  padding (up to 1023 samples at the native rate), which the project's decode keeps (a few ms of trailing
  near-silence). The 16 kHz int16 conversion itself matches the ffmpeg 9.0 CLI sample for sample except the last
  ~16 output samples.

Shapes: audio ``(N,)`` float32 at 48 kHz, ``N = 3 * min(N16, 480000)``; extractor input ``(1, 1, 1001, 64)``;
embeddings ``(512,)`` float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from idlora_bench.core.errors import SampleFailure, WeightsError
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, MetricInput, Score
from idlora_bench.metrics.clap_htsat_unfused import ClapAdherence, _pooled
from idlora_bench.metrics.similarity import cosine_similarity
from idlora_bench.models.ffmpeg_audio import swresample

SAMPLE_RATE_HZ = 48_000
FFMPEG_RATE_HZ = 16_000
MAX_AUDIO_S = 30  # ffmpeg -t 30 (EM:680, 699)
MAX_FFMPEG_SAMPLES = MAX_AUDIO_S * FFMPEG_RATE_HZ
WINDOW_SAMPLES = 10 * SAMPLE_RATE_HZ
ENV_NONE_REPLACEMENT = "clear speech with no ambient or environmental sounds"  # EM:641
TEXTS = {
    "clap": "the prompt's [SOUNDS] part, verbatim (our reading of paper App. A.3; no released code forms it)",
    "clap_env": f"environment_sounds; 'None'/'None.' (any case) -> {ENV_NONE_REPLACEMENT!r} (EM:659-661)",
    "clap_style": "speaking_style (EM:664-674)",
}


def authors_clap_audio(audio: np.ndarray, rate: int) -> np.ndarray:
    """The authors' mp4 audio path up to the feature extractor: ``(C, N)`` float32 at ``rate`` -> ``(M,)`` float32
    at 48 kHz (16 kHz mono int16 by libswresample, first 30 s, soxr HQ to 48 kHz, length ``3 * N16``)."""
    import soxr

    x16 = swresample(audio, rate, FFMPEG_RATE_HZ, fmt="s16")[:MAX_FFMPEG_SAMPLES]
    length = int(np.ceil(len(x16) * SAMPLE_RATE_HZ / FFMPEG_RATE_HZ))
    y = np.asarray(soxr.resample(x16, FFMPEG_RATE_HZ, SAMPLE_RATE_HZ, quality="HQ"), dtype=np.float32)
    if len(y) < length:  # librosa.util.fix_length: zero-pad or cut to ceil(N * ratio)
        y = np.pad(y, (0, length - len(y)))
    return y[:length]


def media_seed(sha256: str) -> int:
    """The numpy seed of a media file's rand_trunc crop: its sha256's first 32 bits."""
    return int(sha256[:8], 16)


@contextlib.contextmanager
def seeded_numpy(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG for the block, then restore the state it had before."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def environment_text(environment_sounds: str) -> str:
    """The authors' env text (EM:659-661): stripped, "None"/"None." (any case) replaced by ``ENV_NONE_REPLACEMENT``."""
    text = environment_sounds.strip()
    return ENV_NONE_REPLACEMENT if text.lower() in ("none", "none.") else text


class ClapAuthors(ClapAdherence):
    """The authors' CLAP on the prompt's ``[SOUNDS]`` text; the base class of the env and style variants.

    Subclasses change only :meth:`text` (and their name, family, label, description). Loading (the pinned
    ``laion/clap-htsat-unfused``, strict) is the standard metric's.
    """

    name = "clap.htsat_unfused_authors"
    family = "clap"
    version = "1"
    direction = "higher"
    needs = frozenset({MetricInput.GENERATED_AUDIO, MetricInput.PROMPT_SOUNDS})
    weights = ClapAdherence.weights
    features_id = "clap_htsat_unfused_authors.audio"  # one audio embedding per file for the three variants
    params: dict[str, Any] = {
        "audio_path": "libswresample (PyAV) as ffmpeg -vn -acodec pcm_s16le -ar 16000 -ac 1 -t 30, int16/32768, "
                      "soxr HQ 16 kHz -> 48 kHz (librosa 0.11 default), length ceil(3 N)",
        "ffmpeg_rate_hz": FFMPEG_RATE_HZ,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "max_audio_s": MAX_AUDIO_S,
        "extractor_call": "feature_extractor([audio], sampling_rate=48000): checkpoint defaults, no is_longer",
        "truncation": "rand_trunc (one random 10 s crop above 10 s)",
        "padding": "repeatpad",
        "rand_trunc_seed": "numpy global RNG seeded with int(media sha256[:8], 16), state restored after",
        "text_tokenization": "padding=True, no truncation",
        "texts": TEXTS,
        "score": "cosine of the model's audio and text embeddings",
        "compute_dtype": "float32",
    }
    description = ("the ID-LoRA authors' CLAP (16 kHz int16 detour, no text cut) of the generated audio vs the "
                   "prompt's [SOUNDS] text")
    label = "CLAP"
    unit = "cosine"
    paper_reference = ("ID-LoRA Sec. 5.1, App. A.3, Tables 1-2; authors' evaluation_metrics.py:590-939 "
                       "(commit 399bf3e)")
    requires = {"torch": "torch==2.13.0", "transformers": "transformers==5.17.0", "soxr": "soxr>=0.3"}

    # ------------------------------------------------------------------ loading
    def _load(self, paths: dict[str, Path]) -> None:
        super()._load(paths)  # strict ClapModel + processor, unfused, 48 kHz, 10 s
        truncation, padding = self._extractor.truncation, self._extractor.padding
        if (truncation, padding) != ("rand_trunc", "repeatpad"):
            raise WeightsError(f"weights {type(self).weights[0].model}: feature extractor defaults are truncation="
                               f"{truncation!r}, padding={padding!r}; this metric stamps rand_trunc/repeatpad")

    # ------------------------------------------------------------------ text
    def text(self, pair: Pair) -> str:
        """The text this metric scores the audio against (here: the prompt's ``[SOUNDS]`` part)."""
        return pair.prompt_parts["sounds"]

    def text_embedding(self, text: str) -> tuple[np.ndarray, int]:
        """Unit text embedding ``(D,)`` of ``text`` (not truncated) and its token count (memoised by text)."""
        if text not in self._text_cache:
            import torch

            self.load()
            tokens = self._tokenizer([text], return_tensors="pt", padding=True)  # EM:785-787, no truncation
            count = int(tokens["input_ids"].shape[-1])
            limit = _text_positions(self._model)
            if count > limit:
                raise SampleFailure("too_long", f"text of {count} tokens > the text tower's {limit} positions "
                                                f"(the authors' forward raises here): {text[:80]!r}...")
            with torch.no_grad():
                out = self._model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                                    attention_mask=tokens["attention_mask"].to(self.device))
            self._text_cache[text] = (_pooled(out)[0].float().cpu().numpy(), count)
        return self._text_cache[text]

    # ------------------------------------------------------------------ audio
    def audio_input_features(self, wav: np.ndarray, seed: int = 0) -> dict[str, Any]:
        """Extractor output for 48 kHz mono ``wav`` ``(N,)``, called as the authors do, numpy seeded with ``seed``:
        ``input_features`` ``(1, 1, 1001, 64)``."""
        with seeded_numpy(seed):
            return dict(self._extractor([np.asarray(wav, np.float32)], sampling_rate=SAMPLE_RATE_HZ,
                                        return_tensors="pt"))

    def audio_embedding(self, wav: np.ndarray, seed: int = 0) -> tuple[np.ndarray, int]:
        """Unit audio embedding ``(D,)`` of 48 kHz mono ``wav`` and the number of windows (always 1)."""
        import torch

        inputs = self.audio_input_features(wav, seed)
        with torch.no_grad():
            out = self._model.get_audio_features(input_features=inputs["input_features"].to(self.device, torch.float32))
        return _pooled(out)[0].float().cpu().numpy(), 1

    def extract(self, media: DecodedMedia) -> Features:
        if media.audio is None or media.audio.shape[-1] == 0 or not media.sample_rate:
            raise SampleFailure("no_audio", f"{media.path.name} has no audio samples")
        wav = authors_clap_audio(media.audio, media.sample_rate)
        if len(wav) == 0:
            raise SampleFailure("no_audio", f"{media.path.name}: no samples left at {FFMPEG_RATE_HZ} Hz")
        embedding, _ = self.audio_embedding(wav, media_seed(media.sha256))
        return {
            "embedding": embedding,
            "duration_s": len(wav) / SAMPLE_RATE_HZ,  # after the 30 s cap
            "capped": bool(media.audio.shape[-1] / media.sample_rate > MAX_AUDIO_S),
            "cropped": bool(len(wav) > WINDOW_SAMPLES),  # rand_trunc took a (seeded) random 10 s crop
        }

    # ------------------------------------------------------------------ score
    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        text = self.text(pair)
        if not text.strip():
            raise SampleFailure("empty_reference", f"{self.name}: the text to score against is empty")
        text_embedding, tokens = self.text_embedding(text)
        return Score(
            cosine_similarity(generated["embedding"], text_embedding),
            {"text": text, "text_tokens": int(tokens), "duration_s": float(generated["duration_s"]),
             "capped": bool(generated["capped"]), "cropped": bool(generated["cropped"])},
        )


def _text_positions(model: Any) -> int:
    """Most tokens the text tower embeds: RoBERTa positions minus its padding offset (``pad_token_id + 1``)."""
    config = model.config.text_config
    return int(config.max_position_embeddings) - int(config.pad_token_id) - 1
