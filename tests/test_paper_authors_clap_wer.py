"""The ID-LoRA authors' CLAP and WER variants (``clap*.htsat_unfused_authors``, ``wer.whisper_large_v3_authors``)
and the ffmpeg-equivalent resampler they read audio through.

Tiny random models written in the real hub layouts (``laion/clap-htsat-unfused``: pickled ``pytorch_model.bin`` +
RoBERTa tokenizer files; ``openai/whisper-large-v3``: ``model.safetensors``, ``generation_config.json`` and the
Whisper tokenizer files) are loaded through ``metric.load()`` -> the metrics' real ``_load`` with monkeypatched
weights cards (sha256 of the tiny files).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import assert_cache_round_trip, constructed_media, make_pair
from tiny_weights import CallRecorder, cards_for, write_tiny_clap

from idlora_bench.checkpoints.weights import MODELS_ENV
from idlora_bench.core.errors import BenchError, SampleFailure, WeightsError
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics import clap_htsat_unfused, clap_htsat_unfused_authors, wer_whisper_large_v3_authors
from idlora_bench.metrics.clap_env_htsat_unfused_authors import ClapEnvAuthors
from idlora_bench.metrics.clap_htsat_unfused import ClapAdherence
from idlora_bench.metrics.clap_htsat_unfused_authors import (
    ENV_NONE_REPLACEMENT,
    ClapAuthors,
    authors_clap_audio,
    environment_text,
    media_seed,
)
from idlora_bench.metrics.clap_style_htsat_unfused_authors import ClapStyleAuthors
from idlora_bench.metrics.text_normalisation import authors_normalise, paper_normalise
from idlora_bench.metrics.wer_whisper_large_v3_authors import WerWhisperAuthors, authors_error_rates
from idlora_bench.models.ffmpeg_audio import swresample

SHA_A, SHA_B = "a" * 64, "b" * 64


# ---------------------------------------------------------------------------- helpers (as in test_paper_clap_whisper)
def _tone(freq_hz: float, seconds: float, rate: int, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def _speechlike(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    carrier = np.sin(2 * np.pi * (180 + 60 * np.sin(2 * np.pi * 0.7 * t)) * t)
    return (0.3 * carrier * (0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t))).astype(np.float32)


# ============================================================================ (a) the authors' normaliser + jiwer
def _authors_regex_restated(text: str) -> str:
    """evaluation_metrics.py:1013-1017 (ID-LoRA commit 399bf3e), re-stated: lower().strip(), delete [^\\w\\s],
    collapse \\s+ to one space, strip()."""
    text = text.lower().strip()
    text = re.sub(r"[^\w\s]", "", text)
    text = re.sub(r"\s+", " ", text)
    return text.strip()


# (reference, hypothesis, authors' normalised reference, authors' WER, paper_normalise WER); WERs counted by hand
NORMALISER_TABLE = [
    ("ID-LoRA", "id lora", "idlora", 2.0, 0.0),  # 1 S + 1 I over 1 word
    ("id lora", "ID-LoRA", "id lora", 1.0, 0.0),  # 1 S + 1 D over 2
    ("He said\u2014no way.", "he said no way", "he saidno way", 2 / 3, 0.0),  # em dash deleted: saidno
    ("he said no way", "He said\u2014no way.", "he said no way", 2 / 4, 0.0),
    ("well-known", "well known", "wellknown", 2.0, 0.0),
    ("It's 3:30, don't worry.", "its 330 dont worry", "its 330 dont worry", 0.0, 4 / 5),  # paper: it's 3 30 don't
    ("I'm here", "im here", "im here", 0.0, 1 / 2),
    ("snake_case name", "snake case name", "snake_case name", 2 / 2, 0.0),  # '_' is \w: kept by the authors
    ("caf\u00e9\u2013bar", "cafe bar", "caf\u00e9bar", 2.0, 1 / 2),  # en dash deleted; \u00e9 stays
    ("A \u2013 B", "a b", "a b", 0.0, 0.0),  # a spaced dash leaves two spaces, collapsed
    ("U.S.A. today", "usa today", "usa today", 0.0, 3 / 4),  # paper: u s a today (1 S + 2 D over 4)
    ("Don't stop", "do not stop", "dont stop", 2 / 2, 2 / 2),
    ("Room 101", "room one oh one", "room 101", 3 / 2, 3 / 2),  # digits are words, not spelled out
    ("Wait...what?", "wait what", "waitwhat", 2.0, 0.0),
    ("  Multiple   spaces\tand\nnewlines ", "multiple spaces and newlines", "multiple spaces and newlines", 0.0, 0.0),
    ("\u00c9COLE", "\u00e9cole", "\u00e9cole", 0.0, 0.0),
    ("Hello, world!", "", "hello world", 1.0, 1.0),  # empty hypothesis: every word deleted
    ("x", "x x x x", "x", 3.0, 3.0),  # insertions push WER above 1 (hallucinations)
]


@pytest.mark.parametrize(("reference", "hypothesis", "normalised", "wer", "wer_paper"), NORMALISER_TABLE)
def test_authors_normaliser_and_wer_known_answers(reference: str, hypothesis: str, normalised: str, wer: float,
                                                  wer_paper: float) -> None:
    import jiwer

    assert authors_normalise(reference) == _authors_regex_restated(reference) == normalised
    assert authors_normalise(hypothesis) == _authors_regex_restated(hypothesis)
    rates = authors_error_rates(reference, hypothesis)
    assert rates["reference_normalised"] == normalised
    assert rates["wer"] == pytest.approx(wer, abs=1e-12)
    assert rates["wer"] == pytest.approx(jiwer.wer(normalised, _authors_regex_restated(hypothesis)), abs=1e-12)
    paper = paper_normalise(reference), paper_normalise(hypothesis)
    assert jiwer.process_words(*paper).wer == pytest.approx(wer_paper, abs=1e-12)


def test_the_two_normalisers_differ_on_the_table() -> None:
    differing = [row[:2] for row in NORMALISER_TABLE if row[3] != row[4]]
    assert len(differing) >= 10
    assert ("ID-LoRA", "id lora") in differing and ("I'm here", "im here") in differing


def test_wer_compare_details_and_empty_reference() -> None:
    features = {"hypothesis": " He said no way. ", "silent": False, "peak": 0.3, "duration_s": 1.0}
    score = WerWhisperAuthors().compare(features, None, make_pair("He said\u2014no way."))
    assert score.value == pytest.approx(2 / 3)
    assert score.details["hypothesis"] == "He said no way."  # stripped, as evaluation_metrics.py:1004
    assert score.details["reference_normalised"] == "he saidno way"
    assert score.details["hypothesis_normalised"] == "he said no way"
    assert score.details["cer"] == pytest.approx(1 / 13)  # one inserted space over 13 characters
    with pytest.raises(SampleFailure, match="empty_reference.*returns WER = CER = 1.0"):
        WerWhisperAuthors().compare(features, None, make_pair("?!"))


# ============================================================================ the ffmpeg-equivalent resampler
def _pyav_wav_round_trip(audio: np.ndarray, rate: int, fmt: str, tmp_path: Path) -> np.ndarray:
    """Reference: write ``audio`` (C, N) as a float WAV with PyAV, decode it back packet by packet and convert each
    decoded frame with a streaming ``av.AudioResampler`` graph (as the ffmpeg CLI does), then flush."""
    import av

    path = tmp_path / "ref.wav"
    layout = {1: "mono", 2: "stereo"}[audio.shape[0]]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_f32le", rate=rate, layout=layout)
        for start in range(0, audio.shape[1], 1000):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, start:start + 1000]), format="fltp",
                                               layout=layout)
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    resampler = av.AudioResampler(format=fmt, layout="mono", rate=16_000)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
    chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    out = np.concatenate(chunks)
    return out.astype(np.float32) / 32768.0 if fmt == "s16" else out


@pytest.mark.parametrize("fmt", ["flt", "s16"])
def test_swresample_equals_pyav_decode_and_streaming_resampler(fmt: str, tmp_path: Path) -> None:
    stereo = np.stack([_speechlike(1.5, 24_000), _tone(5_000, 1.5, 24_000, 0.2)])
    ours = swresample(stereo, 24_000, 16_000, fmt=fmt)
    reference = _pyav_wav_round_trip(stereo, 24_000, fmt, tmp_path)
    assert ours.dtype == np.float32 and ours.shape == reference.shape == (24_000,)
    assert float(np.abs(ours - reference).max()) == 0.0  # same library, chunking does not matter (measured 0.0)


def test_swresample_properties() -> None:
    tone = _tone(1_000, 2.0, 44_100, 0.4)
    for fmt in ("flt", "s16"):
        out = swresample(tone, 44_100, 16_000, fmt=fmt)
        assert abs(len(out) - 32_000) <= 1
        spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
        assert abs(np.argmax(spectrum) * 16_000 / len(out) - 1_000) < 1.0  # the tone keeps its frequency
    assert float(np.abs(swresample(_speechlike(1.0, 16_000), 16_000, 16_000) - _speechlike(1.0, 16_000)).max()) == 0.0

    left, right = _tone(440, 1.0, 16_000, 0.4), _tone(440, 1.0, 16_000, 0.2)
    s16 = swresample(np.stack([left, right]), 16_000, 16_000, fmt="s16")
    flt = swresample(np.stack([left, right]), 16_000, 16_000, fmt="flt")
    # integer output: the downmix matrix is normalised -> the channel mean, quantised to int16
    assert float(np.abs(s16 - (left + right) / 2).max()) <= 1 / 32768 + 1e-7
    assert np.all(s16 * 32768 == np.round(s16 * 32768))
    # float output (the Whisper pipeline's f32le read): 1/sqrt(2) per channel, not normalised
    assert float(np.abs(flt - (left + right) / np.sqrt(2)).max()) < 1e-6
    with pytest.raises(ValueError, match="only mono"):
        swresample(left, 16_000, 16_000, layout="stereo")


# ============================================================================ (c) the CLAP authors' audio path
def _band_db(signal: np.ndarray, rate: int, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    freqs = np.fft.rfftfreq(len(signal), 1 / rate)
    return float(20 * np.log10(spectrum[np.abs(freqs - freq) < 50].max() + 1e-20))


def test_clap_audio_path_drops_energy_above_8khz_and_matches_the_authors_steps(tmp_path: Path) -> None:
    import librosa
    import soundfile as sf
    import soxr

    high, mid = _tone(12_000, 3.0, 48_000), _tone(3_000, 3.0, 48_000)
    high_out, mid_out = authors_clap_audio(np.stack([high, high]), 48_000), authors_clap_audio(mid, 48_000)
    assert high_out.shape == mid_out.shape == (144_000,) and high_out.dtype == np.float32
    assert _band_db(high_out, 48_000, 12_000) - _band_db(high, 48_000, 12_000) < -60.0  # gone (measured -inf..-100)
    assert abs(_band_db(mid_out, 48_000, 3_000) - _band_db(mid, 48_000, 3_000)) < 0.5  # passes

    # the authors' steps by hand: ffmpeg -> 16 kHz pcm_s16le WAV (emulated by PyAV), soundfile.read float32
    # (EM:718), librosa.resample to 48 kHz with its default res_type (EM:737) and soxr HQ directly
    audio = np.stack([_speechlike(4.84, 24_000), _tone(5_000, 4.84, 24_000, 0.1)])
    pcm = np.round(swresample(audio, 24_000, 16_000, fmt="s16") * 32768).astype(np.int16)
    sf.write(tmp_path / "a.wav", pcm, 16_000, subtype="PCM_16")
    wav16, rate = sf.read(tmp_path / "a.wav", dtype="float32")
    assert rate == 16_000
    via_librosa = librosa.resample(wav16, orig_sr=16_000, target_sr=48_000)
    via_soxr = soxr.resample(wav16, 16_000, 48_000, quality="HQ")
    ours = authors_clap_audio(audio, 24_000)
    assert ours.shape == via_librosa.shape == (3 * len(wav16),)
    assert float(np.abs(ours - via_librosa).max()) < 1e-6  # measured 0.0
    assert float(np.abs(ours - via_soxr[: len(ours)]).max()) < 1e-6

    # -t 30: at most 30 s at 16 kHz reach the resampler
    assert len(authors_clap_audio(np.zeros((1, 31 * 8_000), np.float32) + 0.01, 8_000)) == 30 * 48_000


# ============================================================================ CLAP: tiny model, hub layout
CLAP_MODEL = clap_htsat_unfused.MODEL
TEXT_POSITIONS = 160  # RoBERTa positions of the tiny text tower: 158 tokens fit (the real model: 514 -> 512)
@pytest.fixture(scope="module")
def clap_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("models")
    write_tiny_clap(store / CLAP_MODEL, text_positions=TEXT_POSITIONS)
    return store


@pytest.fixture
def clap_cards(clap_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(MODELS_ENV, str(clap_store))
    cards = cards_for(clap_store, CLAP_MODEL, list(clap_htsat_unfused.HUB_FILES))
    for cls in (ClapAdherence, ClapAuthors):  # the env and style variants inherit ClapAuthors.weights
        monkeypatch.setattr(cls, "weights", cards)
    return clap_store / CLAP_MODEL


@pytest.fixture
def clap(clap_cards: Path) -> ClapAuthors:
    metric = ClapAuthors()
    metric.load()
    return metric


def test_clap_authors_extractor_input_is_the_authors_audio(clap: ClapAuthors, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = CallRecorder(clap._extractor)
    monkeypatch.setattr(clap, "_extractor", recorder)
    audio = np.stack([_speechlike(4.84, 24_000), _tone(12_000, 4.84, 24_000, 0.1)])
    features = clap.extract(constructed_media(None, audio, 24_000))
    (call,) = recorder.calls
    assert call["kwargs"] == {"sampling_rate": 48_000, "return_tensors": "pt"}  # no truncation/padding given
    (fed,) = call["raw"]
    np.testing.assert_array_equal(fed, authors_clap_audio(audio, 24_000))
    assert features["duration_s"] == pytest.approx(4.84, abs=1e-3) and features["cropped"] is False
    assert_cache_round_trip(features)


def test_clap_authors_score_equals_the_authors_full_forward(clap: ClapAuthors, clap_cards: Path) -> None:
    """evaluation_metrics.py:785-805: tokenizer(padding=True), feature_extractor defaults, model(**inputs), cosine of
    audio_embeds and text_embeds; re-run here with transformers directly on the same 48 kHz array."""
    from transformers import ClapModel, ClapProcessor

    audio = _speechlike(3.0, 44_100)
    pair = make_pair(style="a calm voice", environment="rain on a tin roof")
    score = clap.compare(clap.extract(constructed_media(None, audio, 44_100)), None, pair)
    assert score.details["text"] == "a calm voice, rain on a tin roof." == pair.prompt_parts["sounds"]

    model, processor = ClapModel.from_pretrained(clap_cards).eval(), ClapProcessor.from_pretrained(clap_cards)
    text = processor.tokenizer([score.details["text"]], return_tensors="pt", padding=True)
    sound = processor.feature_extractor([authors_clap_audio(audio, 44_100)], sampling_rate=48_000, return_tensors="pt")
    with torch.no_grad():
        out = model(**text, input_features=sound.input_features)
    expected = float(torch.nn.functional.cosine_similarity(out.audio_embeds, out.text_embeds, dim=-1)[0])
    assert abs(score.value - expected) < 1e-6  # float64 vs float32 cosine (measured ~1e-8)


def test_clap_three_variants_share_one_audio_entry_and_pick_their_texts(clap_cards: Path) -> None:
    env, style, combined = ClapEnvAuthors(), ClapStyleAuthors(), ClapAuthors()
    assert env.cache_key(SHA_A) == style.cache_key(SHA_A) == combined.cache_key(SHA_A) != combined.cache_key(SHA_B)
    assert ClapAdherence().cache_key(SHA_A) != combined.cache_key(SHA_A)
    assert (env.family, style.family, combined.family) == ("clap_env", "clap_style", "clap")
    assert env.params == style.params == combined.params and env.version == style.version == combined.version

    for metric in (env, style, combined):
        metric.load()
    features = combined.extract(constructed_media(None, _speechlike(2.0, 48_000), 48_000))
    pair = make_pair(style="Whispering softly", environment="None.")
    texts = {m.family: m.compare(features, None, pair).details["text"] for m in (env, style, combined)}
    assert texts == {"clap_env": ENV_NONE_REPLACEMENT, "clap_style": "Whispering softly",
                     "clap": "Whispering softly, None.."}  # the [SOUNDS] part verbatim; no replacement there
    replaced, _ = env.text_embedding(ENV_NONE_REPLACEMENT)
    literal, _ = env.text_embedding("None.")
    value = env.compare(features, None, pair).value
    assert value == pytest.approx(float(np.dot(features["embedding"], replaced)), abs=1e-6)
    assert abs(value - float(np.dot(features["embedding"], literal))) > 1e-4  # the replacement changes the score


@pytest.mark.parametrize(("raw", "expected"), [
    ("None", ENV_NONE_REPLACEMENT), ("none.", ENV_NONE_REPLACEMENT), (" NONE ", ENV_NONE_REPLACEMENT),
    ("None at all", "None at all"), ("none..", "none.."), ("birds chirping", "birds chirping"),
])
def test_env_none_replacement(raw: str, expected: str) -> None:
    assert environment_text(raw) == expected  # evaluation_metrics.py:659-661


def test_clap_text_is_not_truncated_at_77_tokens(clap: ClapAuthors, clap_cards: Path) -> None:
    standard = ClapAdherence()
    standard.load()
    features = clap.extract(constructed_media(None, _speechlike(2.0, 48_000), 48_000))
    audio_embedding = features["embedding"]
    long_env = "heavy rain " * 9  # with the style: ~100 tokens of the tiny byte-level tokenizer
    pair = make_pair(style="calm", environment=long_env.strip())
    ours = clap.compare(features, None, pair)
    assert 90 <= ours.details["text_tokens"] <= 130  # a ~100-token text, scored whole
    full, _ = clap.text_embedding(pair.prompt_parts["sounds"])
    cut, cut_tokens = standard.text_embedding(pair.prompt_parts["sounds"])
    assert cut_tokens == ours.details["text_tokens"]
    assert ours.value == pytest.approx(float(np.dot(audio_embedding, full)), abs=1e-6)
    assert abs(float(np.dot(audio_embedding, full)) - float(np.dot(audio_embedding, cut))) > 1e-4  # the cut matters

    limit = TEXT_POSITIONS - 2
    with pytest.raises(SampleFailure, match=f"too_long.*> the text tower's {limit} positions"):
        clap.compare(features, None, make_pair(environment="a" * 400))
    with pytest.raises(SampleFailure, match="empty_reference"):
        ClapEnvAuthors().compare(features, None, make_pair(environment=" "))


def test_clap_long_audio_crop_is_seeded_by_the_file_and_restores_numpy_state(clap: ClapAuthors) -> None:
    audio = _speechlike(25.0, 16_000) * np.linspace(0.05, 1.0, 400_000, dtype=np.float32)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = clap.extract(constructed_media(None, audio, 16_000, sha=SHA_A))
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # the caller's RNG state is untouched
    np.random.seed(7)
    again = clap.extract(constructed_media(None, audio, 16_000, sha=SHA_A))
    other = clap.extract(constructed_media(None, audio, 16_000, sha=SHA_B))
    np.testing.assert_array_equal(first["embedding"], again["embedding"])
    assert first["cropped"] is True and first["capped"] is False and first["duration_s"] == pytest.approx(25.0)
    assert media_seed(SHA_A) != media_seed(SHA_B)
    assert float(np.abs(first["embedding"] - other["embedding"]).max()) > 1e-6  # another file, another crop
    assert_cache_round_trip(first)


def test_clap_no_audio_fails() -> None:
    with pytest.raises(SampleFailure, match="no_audio"):
        ClapAuthors().extract(DecodedMedia(Path("v.mp4"), SHA_A, None, None, None, None))


# ============================================================================ Whisper (HF format): tiny model
WHISPER_MODEL = wer_whisper_large_v3_authors.MODEL
WHISPER_MERGES = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("a", "n"), ("\u0120", "a")]
TASK_TOKENS = ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
               "<|notimestamps|>"]


def _whisper_vocabulary() -> tuple[dict[str, int], dict[str, int], list[str], list[str]]:
    """Byte-level vocabulary + a few merges + ``<|endoftext|>`` (vocab.json), then the large-v3 special tokens
    (100 languages) and 1501 timestamps (added_tokens.json), in the hub's order."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    vocab = {char: index for index, char in enumerate(sorted(bytes_to_unicode().values()))}
    for a, b in WHISPER_MERGES:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    languages = [f"<|{code}|>" for code in list(LANGUAGES)[:100]]
    specials = ["<|startoftranscript|>", *languages, *TASK_TOKENS]
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    added = {token: len(vocab) + i for i, token in enumerate([*specials, *stamps])}
    return vocab, added, specials, languages


def _write_tokenizer(folder: Path) -> dict[str, int]:
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer

    vocab, added, specials, _ = _whisper_vocabulary()
    stamps = [token for token in added if token not in specials]
    tokenizer = WhisperTokenizer(vocab=dict(vocab), merges=list(WHISPER_MERGES))
    tokenizer.add_special_tokens({"additional_special_tokens": [AddedToken(t, special=True, normalized=False)
                                                                for t in specials]})
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in stamps])
    ids = {**vocab, **added}
    assert all(tokenizer.convert_tokens_to_ids(token) == index for token, index in ids.items())
    scratch = folder / "_tok"
    tokenizer.save_pretrained(scratch)
    shutil.move(scratch / "tokenizer.json", folder / "tokenizer.json")
    shutil.rmtree(scratch)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in WHISPER_MERGES))
    (folder / "added_tokens.json").write_text(json.dumps(added))
    (folder / "normalizer.json").write_text(json.dumps({"colour": "color"}))
    plain = {key: "<|endoftext|>" for key in ("bos_token", "eos_token", "pad_token", "unk_token")}
    (folder / "special_tokens_map.json").write_text(json.dumps({**plain, "additional_special_tokens": specials}))
    decoder = {str(index): {"content": token, "lstrip": False, "normalized": False, "rstrip": False,
                            "single_word": False, "special": token in specials or token == "<|endoftext|>"}
               for token, index in {"<|endoftext|>": vocab["<|endoftext|>"], **added}.items()}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        **plain, "add_prefix_space": False, "added_tokens_decoder": decoder, "additional_special_tokens": specials,
        "clean_up_tokenization_spaces": True, "errors": "replace", "model_max_length": 1024,
        "processor_class": "WhisperProcessor", "return_attention_mask": False, "tokenizer_class": "WhisperTokenizer"}))
    return ids


def _write_tiny_whisper_hf(folder: Path, generation_edit: Any = None, state_edit: Any = None) -> None:
    """A seeded tiny WhisperForConditionalGeneration in the openai/whisper-large-v3 hub layout (128 mels, 1500 audio
    positions, 448 text positions, tied output projection; generation_config.json with the large-v3 keys and no
    num_beams). Its 5-beam path (9 tokens) differs from its greedy path: the pipeline's beam default shows."""
    from safetensors.torch import load_file, save_file
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    ids = _write_tokenizer(folder)
    _, _, specials, languages = _whisper_vocabulary()
    eot, sot, space = ids["<|endoftext|>"], ids["<|startoftranscript|>"], ids["\u0120"]
    WhisperFeatureExtractor(feature_size=128).save_pretrained(folder)
    suppress = [ids[c] for c in "\"#()*+/:;<=>@[\\]^_`{|}~"]
    config = WhisperConfig(vocab_size=len(ids), num_mel_bins=128, d_model=32, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                           max_source_positions=1500, max_target_positions=448, pad_token_id=eot, bos_token_id=eot,
                           eos_token_id=eot, decoder_start_token_id=sot, begin_suppress_tokens=[space, eot],
                           suppress_tokens=suppress)
    torch.manual_seed(3)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # a varied token path that ends: random token embeddings, EOT aligned with positions 12-20
        embeddings, positions = model.model.decoder.embed_tokens.weight, model.model.decoder.embed_positions.weight
        embeddings.normal_(0, 1.0)
        embeddings[eot + 1 + len(specials):] *= 0.05  # timestamps: rarely the argmax
        positions.normal_(0, 3.0)
        embeddings[eot] = positions[12:20].mean(0) * 3
    model.save_pretrained(folder)
    if state_edit is not None:
        state = load_file(folder / "model.safetensors")
        state_edit(state)
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    generation: dict[str, Any] = {
        "alignment_heads": [[0, 0], [0, 1]], "begin_suppress_tokens": [space, eot], "bos_token_id": eot,
        "decoder_start_token_id": sot, "eos_token_id": eot, "pad_token_id": eot,
        "forced_decoder_ids": [[1, None], [2, ids["<|transcribe|>"]]], "is_multilingual": True,
        "lang_to_id": {token: ids[token] for token in languages}, "max_initial_timestamp_index": 50,
        "max_length": 448, "no_timestamps_token_id": ids["<|notimestamps|>"],
        "prev_sot_token_id": ids["<|startofprev|>"], "return_timestamps": False, "suppress_tokens": suppress,
        "task_to_id": {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}}
    if generation_edit is not None:
        generation_edit(generation)
    GenerationConfig(**generation).save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(wer_whisper_large_v3_authors.HUB_FILES)


@pytest.fixture(scope="module")
def whisper_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("models")
    _write_tiny_whisper_hf(store / WHISPER_MODEL)
    return store


def _use_whisper(monkeypatch: pytest.MonkeyPatch, store: Path) -> None:
    monkeypatch.setenv(MODELS_ENV, str(store))
    monkeypatch.setattr(WerWhisperAuthors, "weights",
                        cards_for(store, WHISPER_MODEL, list(wer_whisper_large_v3_authors.HUB_FILES)))


def _spy_generate(model: Any, calls: list[dict[str, Any]]) -> None:
    original = model.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        sequences = out["sequences"] if isinstance(out, dict) else out
        calls.append({"kwargs": kwargs, "tokens": sequences[0].tolist(), "features": kwargs["input_features"]})
        return out

    model.generate = spy


def test_wer_authors_equals_a_direct_transformers_pipeline_call(whisper_store: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The transformers pipeline vs the project: the metric's transcription of a 16 kHz array equals a pipeline
    built from the checkpoint folder (as ``pipeline(model=<hub id>)`` in evaluation_metrics.py:973-978) and called
    with the authors' arguments (evaluation_metrics.py:999-1003) on the same array: same features, same tokens,
    same text. The pipeline's 5-beam default is in force (its tokens differ from greedy decoding)."""
    from transformers import pipeline

    _use_whisper(monkeypatch, whisper_store)
    metric = WerWhisperAuthors()
    metric.load()
    ours: list[dict[str, Any]] = []
    _spy_generate(metric._pipe.model, ours)
    wav = _speechlike(2.5, 16_000)
    features = metric.extract(constructed_media(None, wav, 16_000))
    assert_cache_round_trip(features)

    reference = pipeline("automatic-speech-recognition", model=str(whisper_store / WHISPER_MODEL), device="cpu",
                         dtype=torch.float32)
    theirs: list[dict[str, Any]] = []
    _spy_generate(reference.model, theirs)
    text = reference(wav.copy(), return_timestamps=False,
                     generate_kwargs={"language": "en", "task": "transcribe"})["text"]

    assert float((ours[0]["features"] - theirs[0]["features"]).abs().max()) == 0.0
    assert ours[0]["tokens"] == theirs[0]["tokens"] and features["hypothesis"] == text
    tokens = ours[0]["tokens"]
    assert len(tokens) >= 5 and len(set(tokens)) >= 4  # a non-trivial token path
    config = metric._pipe.generation_config
    assert (config.num_beams, config.max_length, config.max_new_tokens) == (5, 448, None)
    with torch.no_grad():
        greedy = metric._pipe.model.generate(input_features=ours[0]["features"], language="en", task="transcribe",
                                             num_beams=1)
    assert greedy[0].tolist() != tokens  # beam search, not greedy, decides this transcript
    assert features["silent"] is False and features["duration_s"] == pytest.approx(2.5)
    assert metric.params["compute_dtype"] == "float32"
    assert WerWhisperAuthors("cuda").params["compute_dtype"] == "float16"
    assert WerWhisperAuthors("cuda").cache_key(SHA_A) != metric.cache_key(SHA_A)


def test_wer_authors_float16_path_equals_the_authors_float16_pipeline(whisper_store: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA path's dtype (the authors' ``dtype=torch.float16``, evaluation_metrics.py:977), run on CPU: the
    model loads in float16, the pipeline casts the log-mel to float16, and tokens and text equal a direct float16
    pipeline's."""
    from transformers import pipeline

    _use_whisper(monkeypatch, whisper_store)
    monkeypatch.setattr(wer_whisper_large_v3_authors, "compute_dtype", lambda device: "float16")
    metric = WerWhisperAuthors()
    metric.load()
    ours: list[dict[str, Any]] = []
    _spy_generate(metric._pipe.model, ours)
    wav = _speechlike(2.5, 16_000)
    hypothesis = metric.extract(constructed_media(None, wav, 16_000))["hypothesis"]
    reference = pipeline("automatic-speech-recognition", model=str(whisper_store / WHISPER_MODEL), device="cpu",
                         dtype=torch.float16)
    theirs: list[dict[str, Any]] = []
    _spy_generate(reference.model, theirs)
    text = reference(wav.copy(), return_timestamps=False,
                     generate_kwargs={"language": "en", "task": "transcribe"})["text"]
    assert metric._pipe.model.dtype == ours[0]["features"].dtype == torch.float16
    assert ours[0]["tokens"] == theirs[0]["tokens"] and hypothesis == text


def test_wer_authors_decodes_silence_and_reads_stereo_as_ffmpeg_f32le(whisper_store: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _use_whisper(monkeypatch, whisper_store)
    metric = WerWhisperAuthors()
    metric.load()
    seen: list[np.ndarray] = []
    transcribe = metric.transcribe
    monkeypatch.setattr(metric, "transcribe", lambda wav: seen.append(wav) or transcribe(wav))
    features = metric.extract(constructed_media(None, np.full((2, 44_100), 5e-4, np.float32), 44_100))
    assert len(seen) == 1 and features["silent"] is True  # decoded anyway: no silence gate
    assert isinstance(features["hypothesis"], str)
    stereo = np.stack([_speechlike(1.0, 24_000), _tone(700, 1.0, 24_000, 0.1)])
    metric.extract(constructed_media(None, stereo, 24_000))
    np.testing.assert_array_equal(seen[1], swresample(stereo, 24_000, 16_000, fmt="flt"))

    with pytest.raises(SampleFailure, match="too_long"):
        metric.extract(constructed_media(None, _tone(300, 30.01, 16_000), 16_000))
    with pytest.raises(SampleFailure, match="no_audio"):
        metric.extract(DecodedMedia(Path("v.mp4"), SHA_A, None, None, None, None))


def test_wer_authors_refuses_a_checkpoint_that_would_decode_otherwise(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _write_tiny_whisper_hf(tmp_path / WHISPER_MODEL, generation_edit=lambda g: g.update(num_beams=1))
    _use_whisper(monkeypatch, tmp_path)
    with pytest.raises(BenchError, match="would generate with .*'num_beams': 1"):
        WerWhisperAuthors().load()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.pop("model.decoder.layer_norm.weight"), r"missing keys: model\.decoder\.layer_norm\.weight"),
    (lambda s: s.__setitem__("model.decoder.extra", torch.zeros(3)), r"unexpected keys: model\.decoder\.extra"),
])
def test_wer_authors_checkpoint_with_a_wrong_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            edit: Any, message: str) -> None:
    _write_tiny_whisper_hf(tmp_path / WHISPER_MODEL, state_edit=edit)
    _use_whisper(monkeypatch, tmp_path)
    with pytest.raises(WeightsError, match=message):
        WerWhisperAuthors().load()


# ============================================================================ (f) real cards, missing weights
def test_real_cards_and_missing_weights_name_the_pull_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    whisper_cards = WerWhisperAuthors.weights
    assert {c.file for c in whisper_cards} == set(wer_whisper_large_v3_authors.HUB_FILES)
    assert all(c.hub().repo_id == "openai/whisper-large-v3" and c.hub().path == c.file and c.sha256 is None and
               c.hub().revision == "06f233fe06e710322aca913c1bc4249a0d71fce1" for c in whisper_cards)
    assert ClapAuthors.weights == ClapEnvAuthors.weights == ClapStyleAuthors.weights == ClapAdherence.weights
    with pytest.raises(WeightsError, match=r"is missing\. Fix: bench models pull whisper-large-v3-hf"):
        WerWhisperAuthors().load()
    for cls in (ClapAuthors, ClapEnvAuthors, ClapStyleAuthors):
        with pytest.raises(WeightsError, match=r"is missing\. Fix: bench models pull clap-htsat-unfused"):
            cls().load()
    assert clap_htsat_unfused_authors.ClapAuthors is ClapAuthors
