"""One face pass per decoded file: keyframe detection, box tracking between keyframes, landmarks, shared by metrics.

Every face metric of a file (e.g. ``face_similarity.dlib`` and ``lip_motion.dlib``) reads its faces from the
:class:`FacePass` of that file's frames (:func:`face_pass`): a detection or a landmark set is computed at most
once per frame and face model, whichever metric asks first, and the result never depends on which metric asked
first (the keyframe schedule is fixed; metrics only read).

Tracking (:meth:`FacePass.track`), for a clip of ``T`` frames (indices, not seconds):

1. **Keyframes**: frame 0, every ``keyframe_every``-th frame, the last frame, and the face-similarity frames
   ``round(linspace(0, T-1, 5))`` (so that a face-similarity metric reads detections the track has already made).
   Each keyframe gets the backend's largest detected face, or none.
2. **Bisection**: between two consecutive keyframes whose faces cannot be interpolated (one side without a face,
   or box IoU below ``min_keyframe_iou``: the face moved, or the largest face changed), the middle frame becomes a
   keyframe too, until every gap is interpolable or has no frame left inside. Two faceless keyframes bound a
   faceless gap (no detection inside: a face that appears and disappears strictly between two keyframes is
   missed).
3. **Boxes**: detected at keyframes, linearly interpolated (x1, y1, x2, y2) in between.
4. **Landmarks** of every frame with a box, in one backend call (batched where the backend can).
5. **Verification** of each interpolated frame: (a) *fit*: the landmarks' bounding box, in units of the box side,
   must sit where the keyframes' landmarks sat relative to their detected boxes (interpolated), within
   ``max_fit_error``; (b) *appearance*: the normalised cross-correlation of a 32x32 grey patch (1.5 x the box side,
   centred on the box) with the patch of either neighbouring keyframe must reach ``min_appearance_ncc``. A frame
   that fails becomes a keyframe (detected: face or no face) and steps 2-5 run again on what changed.

Boxes ``(4,)`` float64 are ``x1, y1, x2, y2`` in frame pixels; landmarks ``(68, 2)`` float64 pixel ``(x, y)``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from idlora_bench.data.media import uniform_frame_indices

FACE_SIMILARITY_FRAMES = 5
"""The face-similarity protocol's frame count: its frames ``round(linspace(0, T-1, 5))`` are always keyframes."""
PATCH_SIZE = 32
"""Side in pixels of the grey appearance patch compared between frames."""
PATCH_EXTENT = 1.5
"""The appearance patch covers this many box sides, centred on the box."""


class DetectedBox(Protocol):
    """What a backend's detection exposes: ``bbox`` ``(4,)`` x1, y1, x2, y2 in frame pixels and a ``score``."""

    bbox: np.ndarray
    score: float


class FaceBackend(Protocol):
    """A face detector + 68-point landmark model as the pass uses it.

    ``detector_key`` / ``landmark_key``: identity of the detector and landmark model with their settings; two
    backends with equal keys give equal outputs, so their results are shared (``landmark_key`` is None for a
    backend without a landmark model).
    """

    detector_key: str
    landmark_key: str | None

    def detect_largest(self, frames: Sequence[np.ndarray]) -> list[DetectedBox | None]:
        """The largest detected face of each RGB uint8 ``(H, W, 3)`` frame, or None."""

    def landmarks_batch(self, frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        """68 landmarks ``(N, 68, 2)`` float64 of the faces in ``boxes`` ``(N, 4)`` of ``frames`` (N of them)."""


@dataclass(frozen=True)
class TrackParams:
    """Tracking settings (stamped in the metrics' ``params``; see the module docstring for their role)."""

    keyframe_every: int = 15
    min_keyframe_iou: float = 0.5
    max_fit_error: float = 0.1
    min_appearance_ncc: float = 0.5

    def describe(self) -> dict[str, Any]:
        """The settings as a JSON-able dict for a metric's ``params``."""
        return {
            "keyframes": f"0, every {self.keyframe_every} frames, T-1, round(linspace(0, T-1, "
                         f"{FACE_SIMILARITY_FRAMES})), bisection where not interpolable",
            "keyframe_detection": "largest face",
            "min_keyframe_iou": self.min_keyframe_iou,
            "between_keyframes": "boxes interpolated linearly, verified per frame",
            "max_fit_error": self.max_fit_error,
            "min_appearance_ncc": self.min_appearance_ncc,
        }


@dataclass(frozen=True)
class FaceTrack:
    """The face of every frame of a clip.

    Attributes:
        landmarks: ``(T, 68, 2)`` float64 pixel (x, y); NaN where the frame has no face.
        boxes: ``(T, 4)`` float64 x1, y1, x2, y2; NaN where the frame has no face.
        detected: ``(T,)`` bool, True where the box is a detection (a keyframe with a face).
        keyframes: the frames where the detector ran (sorted).
    """

    landmarks: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray
    keyframes: tuple[int, ...]

    @property
    def has_face(self) -> np.ndarray:
        """``(T,)`` bool: the frames with a face (detected or tracked)."""
        return ~np.isnan(self.boxes[:, 0])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(4,)`` x1, y1, x2, y2 boxes (0.0 when either is empty)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def box_side(box: np.ndarray) -> float:
    """The larger side of a ``(4,)`` box, in pixels."""
    return float(max(box[2] - box[0], box[3] - box[1]))


def square_region(frame: np.ndarray, centre: tuple[float, float], side: int) -> tuple[np.ndarray, int, int]:
    """The ``side x side`` region of ``frame`` whose centre is nearest ``centre`` (x, y), zero outside the frame.

    Returns ``(region (side, side, C) uint8, x0, y0)``: region pixel ``(u, v)`` is frame pixel ``(x0 + u, y0 + v)``.
    """
    side = max(int(side), 1)
    x0, y0 = int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2))
    height, width = frame.shape[:2]
    region = np.zeros((side, side, *frame.shape[2:]), frame.dtype)
    left, top = max(x0, 0), max(y0, 0)
    right, bottom = min(x0 + side, width), min(y0 + side, height)
    if right > left and bottom > top:
        region[top - y0:bottom - y0, left - x0:right - x0] = frame[top:bottom, left:right]
    return region, x0, y0


def appearance_patch(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Zero-mean unit-norm grey patch ``(PATCH_SIZE**2,)`` float32 of ``PATCH_EXTENT`` x the box side around the box
    centre (all zeros when the patch is flat: it then matches nothing)."""
    import cv2

    side = int(round(PATCH_EXTENT * box_side(box)))
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    step = max(1, side // (4 * PATCH_SIZE))  # subsample large faces before the area resize (cost, not accuracy)
    region, _, _ = square_region(frame[::step, ::step], (centre[0] / step, centre[1] / step), max(side // step, 1))
    grey = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY).astype(np.float32)
    patch = cv2.resize(grey, (PATCH_SIZE, PATCH_SIZE), interpolation=cv2.INTER_AREA).ravel()
    patch -= patch.mean()
    norm = float(np.linalg.norm(patch))
    return patch / norm if norm >= PATCH_SIZE else np.zeros_like(patch)  # flat: grey std under 1 level


def _fit(landmarks: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Where the landmarks' bounding box sits relative to ``box``: ``(4,)`` edge offsets in box sides."""
    extent = np.r_[landmarks.min(axis=0), landmarks.max(axis=0)]
    return (extent - box) / box_side(box)


@dataclass
class FacePass:
    """The faces of one file's ``num_frames`` frames, computed on demand and kept, per detector / landmark model.

    Methods take the frames ``(T, H, W, 3)`` uint8 RGB and the backend on every call (the pass holds neither, so
    it never keeps a decoded file alive). Results are memoised by frame (and box, for landmarks).
    """

    num_frames: int
    _detections: dict[str, dict[int, DetectedBox | None]] = field(default_factory=dict)
    _landmarks: dict[str | None, dict[tuple[int, bytes], np.ndarray]] = field(default_factory=dict)
    _patches: dict[tuple[int, bytes], np.ndarray] = field(default_factory=dict)
    _tracks: dict[tuple[str, str | None, TrackParams], FaceTrack] = field(default_factory=dict)
    _lock: Any = field(default_factory=threading.RLock, repr=False)

    def detections(self, frames: np.ndarray, backend: FaceBackend, indices: Sequence[int]) -> list[DetectedBox | None]:
        """The largest detected face at each of ``indices`` (or None); frames not yet detected go in one call."""
        with self._lock:
            memo = self._detections.setdefault(backend.detector_key, {})
            todo = sorted({int(i) for i in indices} - memo.keys())
            if todo:
                memo.update(zip(todo, backend.detect_largest([frames[i] for i in todo])))
            return [memo[int(i)] for i in indices]

    def landmarks(self, frames: np.ndarray, backend: FaceBackend, indices: Sequence[int],
                  boxes: np.ndarray) -> np.ndarray:
        """Landmarks ``(N, 68, 2)`` of the faces ``boxes`` ``(N, 4)`` at frames ``indices``; new ones in one call."""
        with self._lock:
            memo = self._landmarks.setdefault(backend.landmark_key, {})
            keys = [(int(i), np.asarray(box, np.float64).tobytes()) for i, box in zip(indices, boxes)]
            todo = [n for n, key in enumerate(keys) if key not in memo]
            if todo:
                found = backend.landmarks_batch([frames[keys[n][0]] for n in todo], np.asarray(boxes, np.float64)[todo])
                memo.update((keys[n], np.asarray(points, np.float64)) for n, points in zip(todo, found))
            return np.stack([memo[key] for key in keys]) if keys else np.zeros((0, 68, 2))

    def detected_landmarks(self, frames: np.ndarray, backend: FaceBackend,
                           indices: Sequence[int]) -> list[tuple[DetectedBox, np.ndarray] | None]:
        """``(detection, landmarks (68, 2))`` of the largest detected face at each of ``indices``, or None."""
        found = self.detections(frames, backend, indices)
        with_face = [n for n, face in enumerate(found) if face is not None]
        boxes = np.array([found[n].bbox for n in with_face], np.float64).reshape(-1, 4)
        points = self.landmarks(frames, backend, [indices[n] for n in with_face], boxes)
        out: list[tuple[DetectedBox, np.ndarray] | None] = [None] * len(found)
        for n, landmarks in zip(with_face, points):
            out[n] = (found[n], landmarks)  # type: ignore[assignment]
        return out

    def track(self, frames: np.ndarray, backend: FaceBackend, params: TrackParams = TrackParams()) -> FaceTrack:
        """The face of every frame (module docstring, steps 1-5); computed once per backend and params."""
        with self._lock:
            key = (backend.detector_key, backend.landmark_key, params)
            if key not in self._tracks:
                self._tracks[key] = self._compute_track(frames, backend, params)
            return self._tracks[key]

    def _compute_track(self, frames: np.ndarray, backend: FaceBackend, params: TrackParams) -> FaceTrack:
        count = self.num_frames
        keys = set(range(0, count, max(1, params.keyframe_every))) | {count - 1}
        keys |= set(uniform_frame_indices(count, FACE_SIMILARITY_FRAMES).tolist())
        self.detections(frames, backend, sorted(keys))
        while True:
            keys = self._bisect(frames, backend, keys, params)
            boxes, detected = self._boxes(backend, sorted(keys))
            with_face = np.flatnonzero(~np.isnan(boxes[:, 0]))
            landmarks = np.full((count, 68, 2), np.nan)
            landmarks[with_face] = self.landmarks(frames, backend, with_face.tolist(), boxes[with_face])
            failed = self._failures(frames, sorted(keys), boxes, detected, landmarks, params)
            if not failed:
                return FaceTrack(landmarks, boxes, detected, tuple(sorted(keys)))
            self.detections(frames, backend, failed)
            keys |= set(failed)

    def _bisect(self, frames: np.ndarray, backend: FaceBackend, keys: set[int], params: TrackParams) -> set[int]:
        """Add middle keyframes until every gap between keyframes is interpolable or faceless on both sides."""
        memo = self._detections[backend.detector_key]
        while True:
            ordered = sorted(keys)
            middles = []
            for a, b in zip(ordered, ordered[1:]):
                first, second = memo[a], memo[b]
                if b - a < 2 or (first is None and second is None):
                    continue
                if first is not None and second is not None and \
                        box_iou(first.bbox, second.bbox) >= params.min_keyframe_iou:
                    continue
                middles.append((a + b) // 2)
            if not middles:
                return keys
            self.detections(frames, backend, middles)
            keys = keys | set(middles)

    def _boxes(self, backend: FaceBackend, keys: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes (T, 4) NaN where no face, detected (T,) bool)``: keyframe detections, interpolated between."""
        memo = self._detections[backend.detector_key]
        boxes = np.full((self.num_frames, 4), np.nan)
        detected = np.zeros(self.num_frames, bool)
        for k in keys:
            if memo[k] is not None:
                boxes[k], detected[k] = np.asarray(memo[k].bbox, np.float64), True
        for a, b in zip(keys, keys[1:]):
            if b - a >= 2 and detected[a] and detected[b]:
                weights = (np.arange(a + 1, b) - a)[:, None] / (b - a)
                boxes[a + 1:b] = (1 - weights) * boxes[a] + weights * boxes[b]
        return boxes, detected

    def _patch(self, frames: np.ndarray, index: int, box: np.ndarray) -> np.ndarray:
        key = (index, box.tobytes())
        if key not in self._patches:
            self._patches[key] = appearance_patch(frames[index], box)
        return self._patches[key]

    def _failures(self, frames: np.ndarray, keys: list[int], boxes: np.ndarray, detected: np.ndarray,
                  landmarks: np.ndarray, params: TrackParams) -> list[int]:
        """Interpolated frames whose landmarks do not fit their box or whose appearance left both keyframes'."""
        failed = []
        for a, b in zip(keys, keys[1:]):
            if b - a < 2 or not (detected[a] and detected[b]):
                continue
            fit_a, fit_b = _fit(landmarks[a], boxes[a]), _fit(landmarks[b], boxes[b])
            patch_a, patch_b = self._patch(frames, a, boxes[a]), self._patch(frames, b, boxes[b])
            for t in range(a + 1, b):
                weight = (t - a) / (b - a)
                error = np.abs(_fit(landmarks[t], boxes[t]) - ((1 - weight) * fit_a + weight * fit_b)).max()
                patch = self._patch(frames, t, boxes[t])
                ncc = max(float(patch @ patch_a), float(patch @ patch_b))
                if error > params.max_fit_error or ncc < params.min_appearance_ncc:
                    failed.append(t)
        return failed


_PASSES: dict[int, tuple[weakref.ref[np.ndarray], FacePass]] = {}
_PASSES_LOCK = threading.RLock()


def face_pass(frames: np.ndarray) -> FacePass:
    """The :class:`FacePass` of this frames array ``(T, H, W, 3)`` (the same object for the same array, e.g. the
    ``frames`` of one :class:`~idlora_bench.data.media.DecodedMedia`, which every metric of a file receives).

    Keyed by the array's identity, not its content hash (hand-built media in tests share a hash); the entry goes
    when the array is freed.
    """
    key = id(frames)
    with _PASSES_LOCK:
        entry = _PASSES.get(key)
        if entry is not None and entry[0]() is frames:
            return entry[1]

        def forget(ref: weakref.ref[np.ndarray], key: int = key) -> None:
            with _PASSES_LOCK:
                if _PASSES.get(key, (None,))[0] is ref:
                    del _PASSES[key]

        made = FacePass(len(frames))
        _PASSES[key] = (weakref.ref(frames, forget), made)
        return made


def clear_face_passes() -> None:
    """Forget every kept face pass (benchmarks time cold passes with it)."""
    with _PASSES_LOCK:
        _PASSES.clear()
