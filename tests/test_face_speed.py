"""Real-resolution face pass (issue 14): keyframe detection + tracking, fixed-size landmark crops, one pass per file.

1. The tracker on a constructed backend (known boxes, call counts): what is detected, when it re-detects.
2. The shared pass: each frame detected at most once across metrics; results independent of the metrics' order.
3. dlib at real resolution: downscaled detection on the detector's own pyramid steps, crop landmarks.
4. insightface (tiny models in the real format): batched 1k3d68 == insightface's per-face ``Landmark.get``.
5. Old (version 1, kept in ``scripts/bench_scoring.py`` only) against new on the demo split and on 1080x1920 copies
   (marked slow: the old code needs ~1 s per 1080x1920 frame). Tolerances, and why:

   - ``lip_motion.dlib`` (x100 units): |new - old| <= ``LIP_TOLERANCE`` = 0.30 per clip, |mean difference| over the
     split <= ``LIP_MEAN_TOLERANCE`` = 0.10. Measured: max 0.22 (lovelace-v1-ref, 3.73 -> 3.95), mean +0.021 on the
     16 demo clips (8 targets, 8 references); at most 0.01 on the two 61-frame 1080x1920 copies below, at most
     0.11 on four full 121-frame copies (``scripts/bench_scoring.py --resolution 1080x1920 --limit 4``). Version 1 itself moves by up to 0.17 on the same demo clips, and by 0.23 on the 61-frame
     lovelace copy, when only its landmark upscale changes (2x -> 1x, 3x or 4x): dlib's whole-pixel landmarks make
     the second decimal of this metric an implementation detail, and 0.30 (under 10% of a talking clip's 3-4)
     bounds it.
   - ``face_similarity.dlib`` (cosine): every pairwise face similarity of the clips within ``FACE_TOLERANCE`` = 0.01
     (measured on the demo clips: max 0.005, mean 0.001), each clip's embedding within cosine 0.99 of its old one
     (measured >= 0.9988).
"""

from __future__ import annotations

import gc
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import REPO_ROOT, constructed_media
from tiny_weights import install_tiny_buffalo

from idlora_bench.core.errors import SampleFailure
from idlora_bench.data.media import decode, uniform_frame_indices
from idlora_bench.data.splits import load_split
from idlora_bench.metrics.face_similarity_arcface import FaceSimilarityArcFace
from idlora_bench.metrics.face_similarity_dlib import FaceSimilarityDlib
from idlora_bench.metrics.lip_motion_dlib import LipMotionDlib
from idlora_bench.metrics.lip_motion_insightface import LipMotionInsightFace
from idlora_bench.models import face_track
from idlora_bench.models.dlib_faces import PYRAMID_STEP, detection_scale
from idlora_bench.models.face_track import TrackParams, box_iou, face_pass, square_region
from idlora_bench.models.insightface_onnx import DetectedFace

LIP_TOLERANCE = 0.30
LIP_MEAN_TOLERANCE = 0.10
FACE_TOLERANCE = 0.01


def _bench_script() -> ModuleType:
    """``scripts/bench_scoring.py``: the old implementations and the real-size copy builder live there."""
    spec = importlib.util.spec_from_file_location("bench_scoring", REPO_ROOT / "scripts" / "bench_scoring.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ============================================================================ 1. the tracker, constructed backend
SIDE, SIZE = 60, 200
TEMPLATE = np.random.default_rng(3).uniform(0.1, 0.9, (68, 2))
TEMPLATE[0], TEMPLATE[1] = (0.1, 0.1), (0.9, 0.9)  # the landmarks span [0.1, 0.9] of the face box
TEXTURE = np.random.default_rng(4).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)


@dataclass(frozen=True)
class Found:
    bbox: np.ndarray
    score: float = 1.0


class ConstructedBackend:
    """Detects the true face box of each frame (frame index coded in pixel (0, 0)); its "landmarks" are the
    template in the true box when the asked box overlaps the face, else in the asked box (like a landmark model
    that finds the face near its box, and returns its mean shape where there is none)."""

    detector_key = "constructed-detector"
    landmark_key = "constructed-landmarks"

    def __init__(self, truth: list[np.ndarray | None]) -> None:
        self.truth = truth
        self.detected: list[int] = []
        self.landmarked: list[int] = []

    @staticmethod
    def index(frame: np.ndarray) -> int:
        return int(frame[0, 0, 0]) + 256 * int(frame[0, 0, 1])

    def detect_largest(self, frames: list[np.ndarray]) -> list[Found | None]:
        indices = [self.index(frame) for frame in frames]
        self.detected += indices
        return [None if self.truth[i] is None else Found(self.truth[i].copy()) for i in indices]

    def landmarks_batch(self, frames: list[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        out = []
        for frame, box in zip(frames, boxes):
            index = self.index(frame)
            self.landmarked.append(index)
            true = self.truth[index]
            place = true if true is not None and box_iou(true, box) > 0.1 else box
            out.append(place[:2] + TEMPLATE * (place[2:] - place[:2]))
        return np.stack(out)


def _clip(positions: list[tuple[int, int] | None]) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Frames with the textured face at each ``(x, y)`` (None: a black frame) and the true boxes."""
    frames = np.zeros((len(positions), SIZE, SIZE, 3), np.uint8)
    truth: list[np.ndarray | None] = []
    for index, position in enumerate(positions):
        frames[index, 0, 0] = (index % 256, index // 256, 0)
        if position is None:
            truth.append(None)
            continue
        x, y = position
        frames[index, y:y + SIDE, x:x + SIDE] = TEXTURE
        truth.append(np.array([x, y, x + SIDE, y + SIDE], np.float64))
    return frames, truth


def _keyframes(count: int, every: int = TrackParams().keyframe_every) -> set[int]:
    return set(range(0, count, every)) | {count - 1} | set(uniform_frame_indices(count, 5).tolist())


def test_a_still_face_is_detected_on_the_keyframes_only() -> None:
    frames, truth = _clip([(70, 60)] * 31)
    backend = ConstructedBackend(truth)
    track = face_pass(frames).track(frames, backend)
    assert sorted(backend.detected) == sorted(_keyframes(31)) == [0, 8, 15, 22, 30]
    assert sorted(backend.landmarked) == list(range(31))  # landmarks once per frame
    assert track.has_face.all() and track.detected.sum() == 5
    np.testing.assert_allclose(track.boxes, np.tile(truth[0], (31, 1)))
    assert track.keyframes == (0, 8, 15, 22, 30)


def test_a_face_that_leaves_between_keyframes_is_caught_by_its_appearance() -> None:
    positions = [None if 3 <= t <= 5 else (70, 60) for t in range(31)]
    frames, truth = _clip(positions)
    backend = ConstructedBackend(truth)
    track = face_pass(frames).track(frames, backend)
    assert np.flatnonzero(~track.has_face).tolist() == [3, 4, 5]  # as detecting every frame would say
    assert len(backend.detected) == len(set(backend.detected)) < 31  # never twice, not every frame


def test_a_face_that_moves_between_keyframes_is_redetected_where_the_box_does_not_fit() -> None:
    # keyframes 8 and 15 see the face at the same place; frames 10-13 it is 25 px to the right
    positions = [(95, 60) if 10 <= t <= 13 else (70, 60) for t in range(31)]
    frames, truth = _clip(positions)
    backend = ConstructedBackend(truth)
    track = face_pass(frames).track(frames, backend)
    np.testing.assert_allclose(track.boxes, np.stack(truth))  # every frame's box is where the face is
    assert {10, 11, 12, 13} <= set(backend.detected) and len(backend.detected) < 31


def test_a_jump_between_keyframes_is_found_by_bisection() -> None:
    positions = [(20, 20) if t <= 10 else (120, 110) for t in range(31)]
    frames, truth = _clip(positions)
    backend = ConstructedBackend(truth)
    track = face_pass(frames).track(frames, backend)
    np.testing.assert_allclose(track.boxes, np.stack(truth))
    assert {9, 10, 11} <= set(backend.detected) and len(backend.detected) < 31


def test_a_faceless_clip_is_detected_on_its_keyframes_and_has_no_face() -> None:
    frames, truth = _clip([None] * 40)
    backend = ConstructedBackend(truth)
    track = face_pass(frames).track(frames, backend)
    assert not track.has_face.any() and np.isnan(track.landmarks).all()
    assert sorted(backend.detected) == sorted(_keyframes(40)) and backend.landmarked == []


def test_tracking_settings_are_stamped_in_the_metrics_params() -> None:
    described = TrackParams().describe()
    for metric in (LipMotionDlib, LipMotionInsightFace):
        assert metric.params["tracking"] == described
        assert metric.version == "2"
    assert FaceSimilarityDlib.version == "2" and FaceSimilarityArcFace.version == "1"  # arcface: same numbers
    assert "every 15 frames" in described["keyframes"]


# ============================================================================ 2. one pass per file, any order
def test_one_pass_per_frames_array_freed_with_it() -> None:
    frames, _ = _clip([(70, 60)] * 3)
    assert face_pass(frames) is face_pass(frames)
    copy = frames.copy()
    assert face_pass(copy) is not face_pass(frames)  # identity, not content (hand-made media share a hash)
    key = id(copy)
    del copy
    gc.collect()
    assert key not in face_track._PASSES


def test_metric_order_does_not_change_the_results_and_nothing_is_detected_twice() -> None:
    positions = [(70 + (t % 7), 60) for t in range(31)]
    first_frames, truth = _clip(positions)
    second_frames = first_frames.copy()
    first, second = ConstructedBackend(truth), ConstructedBackend(truth)
    indices = uniform_frame_indices(31, 5).tolist()
    a_faces = face_pass(first_frames).detected_landmarks(first_frames, first, indices)  # face similarity first
    a_track = face_pass(first_frames).track(first_frames, first)
    b_track = face_pass(second_frames).track(second_frames, second)  # lip motion first
    b_faces = face_pass(second_frames).detected_landmarks(second_frames, second, indices)
    np.testing.assert_array_equal(a_track.landmarks, b_track.landmarks)
    for (a_box, a_points), (b_box, b_points) in zip(a_faces, b_faces):
        np.testing.assert_array_equal(a_box.bbox, b_box.bbox)
        np.testing.assert_array_equal(a_points, b_points)
    for backend in (first, second):
        assert len(backend.detected) == len(set(backend.detected))
        assert len(backend.landmarked) == len(set(backend.landmarked))


# ============================================================================ 3. dlib at real resolution
def test_detection_scale_is_a_power_of_the_pyramid_step() -> None:
    assert detection_scale(256, 256) == 1.0 and detection_scale(200, 256) == 1.0
    scale = detection_scale(1080, 256)
    assert scale == pytest.approx(PYRAMID_STEP ** 8) and 1080 * scale <= 256 < 1080 * scale / PYRAMID_STEP
    assert detection_scale(2160, 256) == pytest.approx(PYRAMID_STEP ** 12)


def test_square_region_pads_with_zeros_outside_the_frame() -> None:
    frame = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3) + 1
    region, x0, y0 = square_region(frame, (0.0, 0.0), 4)
    assert (x0, y0) == (-2, -2) and region.shape == (4, 4, 3)
    assert (region[:2] == 0).all() and (region[:, :2] == 0).all()
    np.testing.assert_array_equal(region[2:, 2:], frame[:2, :2])


@pytest.fixture(scope="module")
def dlib_metrics() -> tuple[FaceSimilarityDlib, LipMotionDlib]:
    face, lip = FaceSimilarityDlib(), LipMotionDlib()
    face.load()
    lip.load()
    return face, lip


@pytest.fixture(scope="module")
def demo_targets() -> list[Path]:
    split = load_split("demo")
    return list(dict.fromkeys(split.media_path(pair.target) for pair in split.pairs))


def test_face_crop_maps_points_both_ways(dlib_metrics: tuple[FaceSimilarityDlib, LipMotionDlib]) -> None:
    faces = dlib_metrics[1]._faces
    frame = np.zeros((1920, 1080, 3), np.uint8)
    crop = faces.face_crop(frame, np.array([300.0, 700.0, 849.0, 1249.0]))
    assert crop.image.shape == (640, 640, 3)  # box side 550 -> 320 px, crop twice the box
    points = np.array([[300.0, 700.0], [849.0, 1249.0], [512.3, 901.7]])
    np.testing.assert_allclose(crop.to_frame(crop.to_crop(points)), points, atol=1e-9)
    np.testing.assert_allclose(crop.to_crop(points[:2]), [[160, 160], [479, 479]], atol=1.0)


def test_demo_faces_share_one_pass_between_face_similarity_and_lip_motion(
    dlib_metrics: tuple[FaceSimilarityDlib, LipMotionDlib], demo_targets: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    face, lip = dlib_metrics
    calls: list[int] = []
    for faces in (face._faces, lip._faces):
        original = faces.detect_boxes
        monkeypatch.setattr(faces, "detect_boxes", lambda rgb, _original=original: calls.append(1) or _original(rgb))
    media = decode(demo_targets[0])
    face_first = (face.extract(media), lip.extract(media))
    assert len(calls) == len(lip.extract(media)["keyframes"]) < media.num_frames  # keyframes once, both metrics
    again = decode(demo_targets[0])
    lip_first = (lip.extract(again)["lip_motion_x100"], face.extract(again)["embedding"])
    assert face_first[1]["lip_motion_x100"] == lip_first[0]
    np.testing.assert_array_equal(face_first[0]["embedding"], lip_first[1])


def test_a_faceless_real_size_clip_fails_with_no_face(dlib_metrics: tuple[FaceSimilarityDlib, LipMotionDlib]) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (12, 1920, 1080, 3), dtype=np.uint8)
    for metric in dlib_metrics:
        with pytest.raises(SampleFailure) as info:
            metric.extract(constructed_media(frames, name="noise-1080x1920.mp4"))
        assert info.value.code == "no_face" and "noise-1080x1920.mp4" in info.value.message
    with pytest.raises(SampleFailure, match="a face in 0 of 12 frames"):
        dlib_metrics[1].extract(constructed_media(frames))


# ============================================================================ 4. insightface: batched landmarks
def test_batched_1k3d68_equals_insightface_per_face(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_tiny_buffalo(tmp_path, monkeypatch)
    metric = LipMotionInsightFace()
    metric.load()
    models = metric._models
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (480, 360, 3), dtype=np.uint8) for _ in range(5)]
    boxes = np.array([[40, 60, 140, 170], [10.5, 20.25, 300, 330], [200, 300, 260, 350], [-20, -10, 80, 95],
                      [100, 100, 164, 164]], np.float64)
    feeds: list[np.ndarray] = []
    session = models.landmarker.session

    class Spy:  # records what onnxruntime is fed, in both paths
        def run(self, names, feed):  # type: ignore[no-untyped-def]
            feeds.append(next(iter(feed.values())).copy())
            return session.run(names, feed)

    monkeypatch.setattr(models.landmarker, "session", Spy())
    no_keypoints = np.zeros((5, 2), np.float32)
    single = np.stack([models.landmarks68(frame, DetectedFace(box.astype(np.float32), 1.0, no_keypoints))
                       for frame, box in zip(frames, boxes)])
    batched = models.landmarks_batch(frames, boxes, batch_size=3)
    assert batched.shape == (5, 68, 2) and len(feeds) == 5 + 2  # 5 single calls, then 2 batches (3 + 2)
    np.testing.assert_allclose(batched, single, atol=1e-3)
    np.testing.assert_array_equal(np.concatenate(feeds[5:]), np.concatenate(feeds[:5]))  # same BGR->RGB blobs


def test_insightface_metrics_share_detections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_tiny_buffalo(tmp_path, monkeypatch)
    face, lip = FaceSimilarityArcFace(), LipMotionInsightFace()
    face.load()
    lip.load()
    detected: list[int] = []
    for metric in (face, lip):
        original = metric._models.largest_face
        monkeypatch.setattr(metric._models, "largest_face",
                            lambda rgb, _original=original: detected.append(int(rgb[0, 0, 1])) or _original(rgb))
    frames = np.zeros((40, 320, 320, 3), np.uint8)
    frames[:, 64:96, 64:96] = (255, 100, 30)  # the tiny detector's stride-32 face
    frames[:, 0, 0, 1] = np.arange(40)
    media = constructed_media(frames)
    face.extract(media)
    features = lip.extract(media)
    assert features["lip_motion_x100"] == pytest.approx(0.0, abs=1e-9)  # a still face
    assert sorted(detected) == sorted(_keyframes(40)) == features["keyframes"].tolist()
    blue = np.zeros((12, 320, 320, 3), np.uint8)
    blue[:, 64:96, 64:96] = (0, 0, 255)
    with pytest.raises(SampleFailure, match="a face in 0 of 12 frames"):
        lip.extract(constructed_media(blue))


# ============================================================================ 5. old (version 1) against new
def _old_new_dlib(paths: list[Path], dlib_metrics: tuple[FaceSimilarityDlib, LipMotionDlib]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(old lip, new lip (N,), old embeddings, new embeddings (N, 128))`` of the clips."""
    script = _bench_script()
    face, lip = dlib_metrics
    lips, embeddings = [], []
    for path in paths:
        media = decode(path)
        lips.append((script.legacy_lip_motion_dlib(lip, media)["lip_motion_x100"],
                     lip.extract(media)["lip_motion_x100"]))
        embeddings.append((script.legacy_face_similarity_dlib(face, media)["embedding"],
                           face.extract(media)["embedding"]))
    lip_values, vectors = np.array(lips), np.array(embeddings, np.float64)
    return lip_values[:, 0], lip_values[:, 1], vectors[:, 0], vectors[:, 1]


def _assert_within_tolerance(old_lip: np.ndarray, new_lip: np.ndarray, old_emb: np.ndarray,
                             new_emb: np.ndarray) -> None:
    difference = new_lip - old_lip
    assert np.abs(difference).max() <= LIP_TOLERANCE, (old_lip, new_lip)
    if len(difference) >= 8:  # a bias check needs a split, not two clips
        assert abs(difference.mean()) <= LIP_MEAN_TOLERANCE, difference
    assert (np.sum(old_emb * new_emb, axis=1) >= 0.99).all()
    pairs = np.triu_indices(len(old_emb), 1)
    assert np.abs((old_emb @ old_emb.T)[pairs] - (new_emb @ new_emb.T)[pairs]).max() <= FACE_TOLERANCE


@pytest.mark.slow
def test_old_and_new_agree_on_the_demo_split(dlib_metrics: tuple[FaceSimilarityDlib, LipMotionDlib],
                                            demo_targets: list[Path]) -> None:
    split = load_split("demo")
    clips = list(dict.fromkeys(split.media_path(clip) for pair in split.pairs
                               for clip in (pair.target, pair.reference)))
    assert len(clips) == len(demo_targets) * 2 == 16  # the 8 targets (what gt outputs copy) and 8 references
    _assert_within_tolerance(*_old_new_dlib(clips, dlib_metrics))


@pytest.mark.slow
def test_old_and_new_agree_on_1080x1920_copies(dlib_metrics: tuple[FaceSimilarityDlib, LipMotionDlib],
                                               demo_targets: list[Path], tmp_path: Path) -> None:
    # 61 frames (2 s at 30 fps) per copy: version 1 needs about 1 s per 1080x1920 frame. The two demo targets
    # whose values moved most on the demo split.
    script = _bench_script()
    sources = [path for path in demo_targets if path.stem in ("lovelace-v1-tgt", "collins-v1-tgt")]
    copies = [script.make_resolution_copy(path, tmp_path / f"{path.stem}.mp4", 1080, 1920, 30.0, 61)
              for path in sources]
    media = decode(copies[0])
    assert media.frames.shape == (61, 1920, 1080, 3) and media.fps == 30.0
    assert media.sample_rate == 44_100 and media.audio.shape[0] == 2
    _assert_within_tolerance(*_old_new_dlib(copies, dlib_metrics))
