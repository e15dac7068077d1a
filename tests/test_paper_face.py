"""Paper-profile face metrics (insightface buffalo_l): ArcFace face similarity and 1k3d68 lip motion.

The real buffalo_l files cannot be downloaded here, so every test builds TINY ONNX graphs in the real
files' input/output format with ``onnx.helper`` (builders in ``tiny_weights.py``); insightface's ``model_zoo.get_model`` routes them to its
own SCRFD / ArcFaceONNX / Landmark classes, so its real pre/post-processing runs. They go through the
real loading path: weights cards (monkeypatched to the tiny files' sha256) -> ``metric.load()`` ->
signature checks -> insightface.

The tiny detector is deterministic: on the network's channel 0 (red, once insightface has swapped the BGR
frame back to RGB) a uniform square of side s, aligned to the s-pixel grid, is a face at stride s when its
red value is 64 (s=8), 160 (s=16) or 255 (s=32); its box is exactly the square and its 5 keypoints sit at
the ArcFace template positions inside it. Blue squares are never faces.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_cache_round_trip, constructed_media, make_pair
from synthetic import landmark_track
from tiny_weights import (
    ARCFACE_DST,
    LANDMARK_BIAS,
    broken_landmark,
    install_tiny_buffalo,
    tiny_arcface,
    tiny_landmark,
    tiny_scrfd,
)

from idlora_bench.core.errors import SampleFailure, WeightsError
from idlora_bench.metrics.face_similarity_arcface import FaceSimilarityArcFace
from idlora_bench.metrics.lip_motion_insightface import LipMotionInsightFace
from idlora_bench.metrics.similarity import cosine_similarity, mean_then_normalise
from idlora_bench.models import insightface_onnx
from idlora_bench.models.insightface_onnx import (
    BUFFALO_L_SOURCE,
    DET_10G,
    LANDMARK_1K3D68,
    W600K_R50,
    DetectedFace,
    onnx_providers,
)

_install = install_tiny_buffalo  # the tiny files in a fresh store, the metrics' cards pointed at them


@pytest.fixture
def face_metric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FaceSimilarityArcFace:
    _install(tmp_path, monkeypatch)
    metric = FaceSimilarityArcFace()
    metric.load()
    return metric


@pytest.fixture
def lip_metric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LipMotionInsightFace:
    _install(tmp_path, monkeypatch)
    metric = LipMotionInsightFace()
    metric.load()
    return metric


# ============================================================================ media helpers
def _frame(faces: list[tuple[int, int, int, tuple[int, int, int]]], size: int = 320) -> np.ndarray:
    """A black RGB frame with uniform squares ``(x, y, side, rgb)``."""
    frame = np.zeros((size, size, 3), np.uint8)
    for x, y, side, colour in faces:
        frame[y:y + side, x:x + side] = colour
    return frame


BIG = (64, 64, 32, (255, 100, 30))  # a stride-32 face
MEDIUM = (32, 160, 16, (160, 0, 0))  # a stride-16 face
SMALL = (200, 200, 8, (64, 220, 220))  # a stride-8 face
BLUE = (256, 256, 32, (0, 0, 255))  # never a face (a face if red and blue were swapped)


# ============================================================================ 1. loading through the real code
def test_tiny_files_load_through_the_real_path(face_metric: FaceSimilarityArcFace, lip_metric: LipMotionInsightFace) -> None:
    from insightface.model_zoo import SCRFD, ArcFaceONNX, Landmark

    assert face_metric._loaded and lip_metric._loaded
    assert isinstance(face_metric._models.detector, SCRFD) and isinstance(face_metric._models.recogniser, ArcFaceONNX)
    assert isinstance(lip_metric._models.landmarker, Landmark) and lip_metric._models.recogniser is None
    detector = face_metric._models.detector
    assert detector.det_thresh == 0.3 and detector.input_size == (320, 320) and detector.nms_thresh == 0.4
    assert face_metric.params["det_size"] == [320, 320] and face_metric.params["det_thresh"] == 0.3


def test_wrong_sha256_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install(tmp_path, monkeypatch)
    det, rec = FaceSimilarityArcFace.weights
    monkeypatch.setattr(FaceSimilarityArcFace, "weights", (det, dataclasses.replace(rec, sha256="f" * 64)))
    metric = FaceSimilarityArcFace()
    expected = r"w600k_r50.onnx has sha256 [0-9a-f]{64}, expected f{64}.*bench models pull insightface-buffalo-l"
    with pytest.raises(WeightsError, match=expected):
        metric.load()
    assert not metric._loaded and not hasattr(metric, "_models")


@pytest.mark.parametrize(
    ("file", "bad", "message"),
    [
        (DET_10G.file, lambda: tiny_scrfd(with_kps=False), r"6 outputs .*expected 9"),
        (DET_10G.file, lambda: tiny_scrfd(spatial=(640, 640)), r"fixed input size 640x640 differs from det_size 320x320"),
        (DET_10G.file, tiny_arcface, r"1 outputs \['683'\], expected 9"),
        (W600K_R50.file, lambda: tiny_arcface(dim=256), r"output 0 \('683'\) has shape \[\?,256\], expected \[\?,512\]"),
        (W600K_R50.file, lambda: tiny_arcface(extra_input=True), r"2 inputs \['input.1', 'extra'\], expected 1"),
        (W600K_R50.file, lambda: tiny_arcface(size=128),
         r"input 0 \('input.1'\) has shape \[\?,3,128,128\], expected \[\?,3,112,112\]"),
        (LANDMARK_1K3D68.file, lambda: tiny_landmark(points=212),
         r"output 0 \('fc1'\) has shape \[\?,212\], expected \[\?,3309\]"),
        (LANDMARK_1K3D68.file, lambda: tiny_landmark(mxnet_normalisation=False),
         r"loaded with \{'input_mean': 127.5, 'input_std': 128.0\}"),
        (LANDMARK_1K3D68.file, lambda: b"not an onnx file", r"not a readable ONNX file for the 68-point 3D landmark model"),
        (LANDMARK_1K3D68.file, broken_landmark, r"insightface/onnxruntime cannot load the 68-point 3D landmark model"),
    ],
    ids=["det-no-keypoints", "det-fixed-640", "arcface-as-det", "arcface-256d", "arcface-extra-input",
         "arcface-128px", "2d106-as-1k3d68", "landmark-wrong-preprocessing", "garbage", "unknown-op"],
)
def test_wrong_onnx_signature_is_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file: str, bad, message: str
) -> None:
    folder = _install(tmp_path, monkeypatch, {file: bad()})  # the card's sha256 matches: only the signature is wrong
    metric = (LipMotionInsightFace if file == LANDMARK_1K3D68.file else FaceSimilarityArcFace)()
    with pytest.raises(WeightsError, match=message) as info:
        metric.load()
    assert str(info.value).startswith(str(folder / file)) and not metric._loaded


def test_real_cards_pin_the_buffalo_l_members() -> None:
    expected = {
        "det_10g.onnx": "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
        "w600k_r50.onnx": "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
        "1k3d68.onnx": "df5c06b8a0c12e422b2ed8947b8869faa4105387f199c477af038aa01f9a45cc",
    }
    cards = {card.file: card for card in (DET_10G, W600K_R50, LANDMARK_1K3D68)}
    assert {name: card.sha256 for name, card in cards.items()} == expected
    for card in cards.values():
        assert card.source == BUFFALO_L_SOURCE and card.archive_member == card.file and card.model == "insightface-buffalo-l"
    assert FaceSimilarityArcFace.weights == (DET_10G, W600K_R50)
    assert LipMotionInsightFace.weights == (DET_10G, LANDMARK_1K3D68)


def test_onnx_providers_follow_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert onnx_providers("cuda") == ["CPUExecutionProvider"]  # asked for, not available: CPU
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert onnx_providers("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]


# ============================================================================ 2. known answers: detection, embeddings
def test_detector_finds_the_placed_faces_and_the_largest_is_chosen(face_metric: FaceSimilarityArcFace) -> None:
    models = face_metric._models
    frame = _frame([SMALL, MEDIUM, BIG, BLUE])
    boxes = sorted(tuple(face.bbox.tolist()) for face in models.detect(frame))
    assert boxes == [(32.0, 160.0, 48.0, 176.0), (64.0, 64.0, 96.0, 96.0), (200.0, 200.0, 208.0, 208.0)]
    largest = models.largest_face(frame)
    assert largest.bbox.tolist() == [64.0, 64.0, 96.0, 96.0] and largest.score == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(largest.kps, 64.0 + ARCFACE_DST * 32 / 112, atol=1e-4)
    assert models.largest_face(_frame([BLUE])) is None
    # a faint face scores 1 - 4 |(236 - 127.5) / 128 - (255 - 127.5) / 128| = 0.406: kept at det_thresh 0.3 (not 0.5)
    faint = models.detect(_frame([(128, 128, 32, (236, 0, 0))]))
    assert len(faint) == 1 and faint[0].score == pytest.approx(1 - 4 * 19 / 128, abs=1e-5)


def test_detector_works_at_det_size_320_and_maps_boxes_back_to_the_frame(face_metric: FaceSimilarityArcFace) -> None:
    # 640x640 frame -> resized by 0.5 to 320x320: a 64-px red square becomes a stride-32 face. At det_size 640
    # it would be 4 stride-32 cells of 32 px instead of one 64-px box.
    frame = _frame([(128, 128, 64, (255, 0, 0))], size=640)
    faces = face_metric._models.detect(frame)
    assert len(faces) == 1 and faces[0].bbox.tolist() == [128.0, 128.0, 192.0, 192.0]


def test_arcface_embeds_the_aligned_face_in_rgb_order(face_metric: FaceSimilarityArcFace) -> None:
    models = face_metric._models
    box = np.array([64, 64, 96, 96], np.float32)
    face = DetectedFace(box, 1.0, (64 + ARCFACE_DST * 32 / 112).astype(np.float32))
    # the square overhangs the box by 1 px so that the bilinear 112x112 crop holds only its colour
    embedding = models.embedding(_frame([(63, 63, 34, BIG[3])]), face)
    assert embedding.shape == (512,) and embedding.dtype == np.float32
    # dims 0-2 = mean R, G, B of the crop as the network sees them: (c - 127.5) / 127.5
    expected = (np.array(BIG[3]) - 127.5) / 127.5
    assert np.abs(embedding[:3] - expected).max() < 1e-5
    assert np.abs(embedding[:3] - expected[::-1]).max() > 1.0  # BGR order would put blue first


def test_face_similarity_uses_the_largest_face_only(face_metric: FaceSimilarityArcFace) -> None:
    models = face_metric._models
    alone = _frame([BIG])
    reference = mean_then_normalise(models.embedding(alone, models.largest_face(alone))[None])
    crowded = np.stack([_frame([SMALL, BIG, MEDIUM])] * 7)
    features = face_metric.extract(constructed_media(crowded))
    assert np.abs(features["embedding"] - reference).max() < 1e-6
    assert features["frames"].tolist() == [0, 2, 3, 4, 6] and features["frames_without_face"].tolist() == []
    small_only = mean_then_normalise(models.embedding(crowded[0], models.detect(_frame([SMALL]))[0])[None])
    assert cosine_similarity(features["embedding"], small_only) < 0.99


def test_frames_without_a_face_are_listed_and_embeddings_averaged_then_normalised(
    face_metric: FaceSimilarityArcFace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 9 frames: sampled 0, 2, 4, 6, 8; frames 2 and 6 are black
    frames = np.stack([np.zeros((320, 320, 3), np.uint8) if i in (2, 6) else _frame([BIG]) for i in range(9)])
    constructed = iter([np.r_[10.0, 0.0, np.zeros(510)], np.r_[0.0, 1.0, np.zeros(510)], np.r_[0.0, 1.0, np.zeros(510)]])
    monkeypatch.setattr(face_metric._models, "embedding", lambda rgb, face: next(constructed).astype(np.float32))
    features = face_metric.extract(constructed_media(frames))
    assert_cache_round_trip(features)
    assert features["frames"].tolist() == [0, 2, 4, 6, 8] and features["frames_without_face"].tolist() == [2, 6]
    mean = np.array([10.0, 2.0]) / 3
    np.testing.assert_allclose(features["embedding"][:2], mean / np.linalg.norm(mean), atol=1e-7)  # (0.9806, 0.1961)
    assert np.abs(features["embedding"][2:]).max() == 0.0
    # normalising each frame first would give (1, 2) / sqrt(5) = (0.447, 0.894): far from the protocol's answer
    assert features["embedding"][0] > 0.98
    target = {"embedding": np.r_[1.0, 0.0, np.zeros(510)].astype(np.float32), "frames_without_face": np.array([4])}
    score = face_metric.compare(features, target, make_pair())
    assert score.value == pytest.approx(10 / np.hypot(10, 2), abs=1e-6)
    assert score.details == {"generated_frames_without_face": [2, 6], "target_frames_without_face": [4]}


def test_no_face_in_any_sampled_frame_fails(face_metric: FaceSimilarityArcFace) -> None:
    frames = np.stack([_frame([BLUE])] * 6)
    with pytest.raises(SampleFailure) as info:
        face_metric.extract(constructed_media(frames, name="faceless.mp4"))
    assert info.value.code == "no_face" and "[0, 1, 2, 4, 5]" in info.value.message and "faceless.mp4" in info.value.message


def test_identical_faces_score_one_and_different_faces_less(face_metric: FaceSimilarityArcFace) -> None:
    same = face_metric.score(constructed_media(np.stack([_frame([BIG])] * 5)), constructed_media(np.stack([_frame([BIG])] * 5)), make_pair())
    assert same.value == pytest.approx(1.0, abs=1e-6)
    other = (64, 64, 32, (255, 230, 200))
    different = face_metric.score(constructed_media(np.stack([_frame([BIG])] * 5)), constructed_media(np.stack([_frame([other])] * 5)), make_pair())
    assert different.value < 0.99


# ============================================================================ 3. lip motion


def test_lip_motion_of_a_sinusoidal_opening_through_the_metric(
    lip_metric: LipMotionInsightFace, monkeypatch: pytest.MonkeyPatch
) -> None:
    amplitude, height = 3.0, 120.0
    t = np.arange(100)
    track = landmark_track(5.0 + amplitude * np.sin(2 * np.pi * t / 20), height)  # 5 whole periods
    frames = np.stack([_frame([BIG])] * 100)
    seen = []

    def constructed(rgbs: list[np.ndarray], boxes: np.ndarray) -> np.ndarray:  # the face pass: one batched call
        seen.extend(boxes.tolist())
        return track[len(seen) - len(boxes):len(seen)]

    monkeypatch.setattr(lip_metric._models, "landmarks_batch", constructed)
    features = lip_metric.extract(constructed_media(frames))
    assert_cache_round_trip(features)
    expected = 100 * amplitude / np.sqrt(2) / height  # 1.7678
    assert features["lip_motion_x100"] == pytest.approx(expected, rel=1e-9)
    assert len(seen) == 100 and seen[0] == [64.0, 64.0, 96.0, 96.0]  # every frame, on the detected face
    score = lip_metric.compare(features, {"lip_motion_x100": 0.5}, make_pair())
    assert score.value == pytest.approx(expected, rel=1e-9)
    assert score.details == {"generated_frames_without_face": 0, "target_lip_motion_x100": 0.5}


def test_1k3d68_landmarks_are_mapped_back_to_frame_pixels(lip_metric: LipMotionInsightFace) -> None:
    # the tiny 1k3d68 outputs the constant LANDMARK_BIAS in [-1, 1] crop units; insightface crops 1.5 x the
    # box side around its centre to 192 px, so frame = centre + bias * 0.75 * side
    models = lip_metric._models
    frame = _frame([(96, 128, 32, (255, 0, 0))])
    points = models.landmarks68(frame, models.largest_face(frame))
    expected = np.array([112.0, 144.0]) + LANDMARK_BIAS[:, :2] * 0.75 * 32
    assert points.shape == (68, 2) and np.abs(points - expected).max() < 1e-3


@pytest.mark.parametrize(("with_face", "fails"), [(5, False), (4, True), (1, True)])
def test_lip_motion_needs_half_the_frames_with_a_face(lip_metric: LipMotionInsightFace, with_face: int, fails: bool) -> None:
    frames = np.stack([_frame([BIG]) if i < with_face else _frame([]) for i in range(10)])
    if not fails:
        features = lip_metric.extract(constructed_media(frames))
        assert features["frames_without_face"].tolist() == [5, 6, 7, 8, 9]
        assert features["lip_motion_x100"] == pytest.approx(0.0, abs=1e-9)  # a still constant face
        return
    with pytest.raises(SampleFailure) as info:
        lip_metric.extract(constructed_media(frames))
    assert info.value.code == "no_face" and f"a face in {with_face} of 10 frames" in info.value.message


# ============================================================================ 4. colour order
def test_insightface_receives_bgr_frames(
    face_metric: FaceSimilarityArcFace, lip_metric: LipMotionInsightFace, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = []
    detectors = (face_metric._models.detector, lip_metric._models.detector)
    for model in (*detectors, face_metric._models.recogniser, lip_metric._models.landmarker):
        entry = "detect" if model in detectors else "get"
        original = getattr(model, entry)

        def spy(img, *args, _original=original, **kwargs):
            received.append(img.copy())
            return _original(img, *args, **kwargs)

        monkeypatch.setattr(model, entry, spy)
    red = _frame([(64, 64, 32, (255, 0, 0))])
    face_metric.extract(constructed_media(np.stack([red] * 5)))
    lip_metric.extract(constructed_media(np.stack([red] * 2)))
    # (detect + embed) x 5, detect x 2 (lip motion's landmarks go through BuffaloL.landmarks_batch, whose blobs
    # tests/test_face_speed.py compares with Landmark.get's)
    assert len(received) == 5 * 2 + 2
    for image in received:
        assert image[80, 80].tolist() == [0, 0, 255]  # B, G, R: red is last
    # end to end: a red face is found, the same square in blue is not
    assert face_metric._models.largest_face(red) is not None
    assert face_metric._models.largest_face(red[:, :, ::-1].copy()) is None


def test_to_bgr_rejects_non_rgb_arrays() -> None:
    assert insightface_onnx.to_bgr(np.arange(6, dtype=np.uint8).reshape(1, 2, 3)).tolist() == [[[2, 1, 0], [5, 4, 3]]]
    with pytest.raises(ValueError, match="RGB frame"):
        insightface_onnx.to_bgr(np.zeros((4, 4), np.uint8))
