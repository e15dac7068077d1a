"""Offline-profile metrics: known-answer algorithm tests and the real shipped models on constructed input."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import constructed_media, make_pair
from synthetic import landmark_track

from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.errors import SampleFailure, WeightsError
from idlora_bench.metrics import (
    FaceSimilarityDlib,
    LipMotionDlib,
    SpeakerSimilarityResemblyzer,
    WerPocketsphinx,
)
from idlora_bench.metrics.lip_motion_dlib import (
    lip_motion_x100,
    normalised_mouth_opening,
)
from idlora_bench.metrics.similarity import cosine_similarity, mean_then_normalise
from idlora_bench.metrics.text_normalisation import paper_normalise

SHA = "0" * 64


# ----------------------------------------------------------------------------- lip motion (known answers)


def test_lip_motion_of_a_sinusoidal_opening() -> None:
    t = np.arange(200)
    gaps = 5.0 + 3.0 * np.sin(2 * np.pi * t / 20)  # 10 whole periods: std = 3 / sqrt(2)
    value = lip_motion_x100(landmark_track(gaps, face_height=120.0))
    assert value == pytest.approx(100 * 3 / np.sqrt(2) / 120.0, rel=1e-9)


def test_lip_motion_is_zero_for_a_still_mouth_and_scale_invariant() -> None:
    assert lip_motion_x100(landmark_track(np.full(50, 7.0), 100.0)) == 0.0
    gaps = np.random.default_rng(1).uniform(0, 10, 60)
    small = landmark_track(gaps, 100.0)
    assert lip_motion_x100(small) == pytest.approx(lip_motion_x100(small * 2.5), rel=1e-12)
    assert normalised_mouth_opening(small) == pytest.approx(gaps / 100.0)


# ----------------------------------------------------------------------------- embeddings
def test_face_embeddings_are_averaged_then_normalised() -> None:
    embeddings = np.array([[10.0, 0.0], [0.0, 1.0]])
    assert mean_then_normalise(embeddings) == pytest.approx(np.array([5.0, 0.5]) / np.hypot(5.0, 0.5))
    # normalising first would give a 45-degree vector: the order matters
    assert cosine_similarity(mean_then_normalise(embeddings), [1.0, 1.0]) < 0.8


def test_cosine_similarity_known_values_and_zero_vector() -> None:
    assert cosine_similarity([1, 0], [0, 1]) == 0.0
    assert cosine_similarity([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert cosine_similarity([1, 0], [-1, 0]) == -1.0
    with pytest.raises(ValueError, match="zero vector"):
        cosine_similarity([0, 0], [1, 0])


# ----------------------------------------------------------------------------- WER
def test_paper_normalisation() -> None:
    assert paper_normalise("Hello, World!  It's 5 o'clock.") == "hello world it's 5 o'clock"
    assert paper_normalise("'Quoted' words - and dashes") == "quoted words and dashes"


@pytest.mark.parametrize(
    ("hypothesis", "expected_wer"),
    [("the cat sat on the mat", 0.0), ("The cat sat on mat.", 1 / 6), ("a cat sat on the hat", 2 / 6),
     ("", 1.0), ("the cat sat on the mat today", 1 / 6)],
)
def test_wer_compare_known_pairs(hypothesis: str, expected_wer: float) -> None:
    score = WerPocketsphinx().compare({"hypothesis": hypothesis}, None, make_pair("The cat sat on the mat."))
    assert score.value == pytest.approx(expected_wer)
    assert score.details["reference"] == "the cat sat on the mat"


# ----------------------------------------------------------------------------- weights cards
def test_wrong_checksum_is_refused_with_the_fix() -> None:
    good = SpeakerSimilarityResemblyzer.weights[0]
    bad = WeightsFile(good.model, good.file, good.source, "f" * 64, good.licence)
    with pytest.raises(WeightsError, match=r"resemblyzer-ge2e/pretrained.pt.*pretrained.pt has sha256 .* expected f{64}.*Fix: pip"):
        bad.verify()


def test_missing_package_and_file_are_refused() -> None:
    with pytest.raises(WeightsError, match="package 'no-such-package' is not installed"):
        WeightsFile("x", "model.bin", "pypi:no-such-package==1:model.bin", SHA, "none").verify()
    with pytest.raises(WeightsError, match=r"missing\.bin is missing"):
        WeightsFile("x", "missing.bin", "pypi:resemblyzer==0.1.4:missing.bin", SHA, "none").verify()


def test_metric_with_mismatched_weights_never_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    good = LipMotionDlib.weights[0]
    monkeypatch.setattr(LipMotionDlib, "weights", (WeightsFile(good.model, good.file, good.source, "e" * 64, good.licence),))
    metric = LipMotionDlib()
    with pytest.raises(WeightsError):
        metric.load()
    assert not metric._loaded and not hasattr(metric, "_faces")


def test_shipped_weights_match_their_cards() -> None:
    for metric in (SpeakerSimilarityResemblyzer, FaceSimilarityDlib, LipMotionDlib, WerPocketsphinx):
        for weights in metric.weights:
            path = weights.verify()
            assert hashlib.sha256(path.read_bytes()).hexdigest() == weights.sha256


# ----------------------------------------------------------------------------- real models, constructed input
def test_silence_has_no_speech_for_speaker_similarity() -> None:
    metric = SpeakerSimilarityResemblyzer()
    metric.load()
    with pytest.raises(SampleFailure) as info:
        metric.extract(constructed_media(audio=np.zeros(32_000)))
    assert info.value.code == "no_speech" and "constructed.mp4" in info.value.message


def test_noise_frames_have_no_face() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (10, 96, 96, 3), dtype=np.uint8)
    for metric in (FaceSimilarityDlib(), LipMotionDlib()):
        metric.load()
        with pytest.raises(SampleFailure) as info:
            metric.extract(constructed_media(frames=frames))
        assert info.value.code == "no_face"


def test_pocketsphinx_hears_nothing_in_silence() -> None:
    metric = WerPocketsphinx()
    metric.load()
    features = metric.extract(constructed_media(audio=np.zeros(16_000)))
    assert features == {"hypothesis": "", "silent": True}
    score = metric.compare(features, None, make_pair("hello world"))
    assert score.value == 1.0 and score.details["silent"] is True
