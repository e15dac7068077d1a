"""insightface ``buffalo_l`` ONNX models: SCRFD face detector, ArcFace (w600k_r50), 68-point 3D landmarks.

Used by the standard profile's ``face_similarity.arcface`` and ``lip_motion.insightface`` metrics. Each file is
loaded through insightface's own model zoo (``insightface.model_zoo.get_model(path, providers=...)``), which
routes by ONNX signature: 5 or more outputs -> ``SCRFD``; a 192x192 input -> ``Landmark``; a square input
>= 112 (multiple of 16) -> ``ArcFaceONNX``. Their pre/post-processing (resize and pad to ``det_size``, mean
127.5 / std 128, anchor decoding, NMS 0.4, 5-point similarity alignment ``norm_crop`` to 112x112, landmark
crop of 1.5x the box) is insightface's, unchanged.

Before a file is handed to insightface its ONNX signature is checked against the real buffalo_l file's
(inputs and outputs: count, element type, rank, fixed sizes), and after routing the model object is checked
(class, keypoints, preprocessing). A file that does not match is refused with a
:class:`~idlora_bench.core.errors.WeightsError` naming it; it never reaches a metric.

Colour: idlora-bench frames are RGB ``(H, W, 3)`` uint8; insightface expects OpenCV's BGR (it swaps to RGB
inside ``cv2.dnn.blobFromImage(..., swapRB=True)``). Every public method here takes RGB and converts.

Shapes and units: boxes ``(4,)`` float32 ``x1, y1, x2, y2`` in frame pixels; 5 keypoints ``(5, 2)`` (eyes,
nose, mouth corners); ArcFace embedding ``(512,)`` float32, raw (not normalised); landmarks ``(68, 2)``
float64 pixel ``(x, y)`` in the iBUG 300-W 68-point order (0-based: jaw 0-16, nose bridge 27-30, inner lips
60-67), the ``z`` column of 1k3d68 dropped.

Real resolution: SCRFD already sees the frame resized to ``det_size`` and 1k3d68 a 192x192 crop of 1.5 x the box
side, so their cost does not grow with the frame. :class:`BuffaloL` is a
:class:`~idlora_bench.models.face_track.FaceBackend`: the face pass detects on keyframes only (det_10g's graph
has a batch axis of 1, so detection runs frame by frame) and :meth:`BuffaloL.landmarks_batch` runs 1k3d68 on many
faces per onnxruntime call (its input has a free batch axis), with insightface's own crop and back-projection
(``insightface/model_zoo/landmark.py:84-108`` ``Landmark.get``, insightface 2.1), equal to :meth:`BuffaloL.landmarks68`
up to float rounding. The onnxruntime provider follows the metric's device (:func:`onnx_providers`: CUDA when
asked for and present, else CPU).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.errors import WeightsError

logger = logging.getLogger(__name__)

# buffalo_l.zip: sha256 80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f, 288621354 bytes.
# As far as we know its members sit at the zip's top level (det_10g.onnx, w600k_r50.onnx, 1k3d68.onnx,
# 2d106det.onnx, genderage.onnx; insightface extracts it into a folder named buffalo_l), hence the plain
# member names below. The cards pin each member's own sha256, so a zip with another layout fails loudly.
BUFFALO_L_SOURCE = "url:https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"
BUFFALO_L_MODEL = "insightface-buffalo-l"
BUFFALO_L_LICENCE = "insightface models: non-commercial research only"

DET_10G = WeightsFile(
    model=BUFFALO_L_MODEL,
    file="det_10g.onnx",
    source=BUFFALO_L_SOURCE,
    sha256="5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
    licence=BUFFALO_L_LICENCE,
    archive_member="det_10g.onnx",
)
W600K_R50 = WeightsFile(
    model=BUFFALO_L_MODEL,
    file="w600k_r50.onnx",
    source=BUFFALO_L_SOURCE,
    sha256="4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
    licence=BUFFALO_L_LICENCE,
    archive_member="w600k_r50.onnx",
)
LANDMARK_1K3D68 = WeightsFile(
    model=BUFFALO_L_MODEL,
    file="1k3d68.onnx",
    source=BUFFALO_L_SOURCE,
    sha256="df5c06b8a0c12e422b2ed8947b8869faa4105387f199c477af038aa01f9a45cc",
    licence=BUFFALO_L_LICENCE,
    archive_member="1k3d68.onnx",
)

ANY = None
"""A dimension that may be symbolic or any size (batch axes, the detector's spatial axes)."""

_FLOAT = 1  # onnx.TensorProto.FLOAT


@dataclass(frozen=True)
class OnnxSignature:
    """The graph inputs/outputs a buffalo_l file must have (shapes: ``None`` = any or symbolic)."""

    role: str
    inputs: tuple[tuple[int | None, ...], ...]
    outputs: tuple[tuple[int | None, ...], ...]
    output_ranks: tuple[int, ...] = ()  # allowed ranks when outputs may be rank 2 or 3 (SCRFD)

    def describe(self) -> str:
        def shapes(items: tuple[tuple[int | None, ...], ...]) -> str:
            return ", ".join("[" + ",".join("?" if d is None else str(d) for d in shape) + "]" for shape in items)

        return f"inputs {shapes(self.inputs)}; outputs {shapes(self.outputs)}"


# det_10g.onnx: input [1, 3, ?, ?]; 9 outputs = scores (.., 1), box distances (.., 4), 5-point keypoint
# distances (.., 10) for strides 8, 16, 32 with 2 anchors per cell (rank 2, or rank 3 with a batch axis).
DETECTOR_SIGNATURE = OnnxSignature(
    role="SCRFD face detector (det_10g)",
    inputs=((ANY, 3, ANY, ANY),),
    outputs=tuple((ANY, width) for width in (1, 1, 1, 4, 4, 4, 10, 10, 10)),
    output_ranks=(2, 3),
)
# w600k_r50.onnx: input [N, 3, 112, 112] (aligned face, RGB, (x - 127.5) / 127.5) -> [N, 512].
RECOGNITION_SIGNATURE = OnnxSignature(
    role="ArcFace recogniser (w600k_r50)", inputs=((ANY, 3, 112, 112),), outputs=((ANY, 512),)
)
# 1k3d68.onnx: input [N, 3, 192, 192] (raw pixels, RGB) -> [N, 3309]; the last 68 x 3 values are the
# 68 landmarks (x, y, z) in [-1, 1] crop coordinates.
LANDMARK_SIGNATURE = OnnxSignature(
    role="68-point 3D landmark model (1k3d68)", inputs=((ANY, 3, 192, 192),), outputs=((ANY, 3309),)
)


def onnx_providers(device: str) -> list[Any]:
    """onnxruntime execution providers for a torch-style device string (``cpu``, ``cuda``, ``cuda:1``).

    CUDA is used when asked for and available in this onnxruntime build; otherwise CPU (with a warning when
    CUDA was asked for). The numbers do not depend on the provider beyond float rounding.
    """
    import onnxruntime

    if device.startswith("cuda"):
        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            device_id = int(device.split(":", 1)[1]) if ":" in device else 0
            return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
        logger.warning("device %r asked for, but onnxruntime has no CUDAExecutionProvider: running on CPU", device)
    return ["CPUExecutionProvider"]


def check_onnx_signature(path: Path, signature: OnnxSignature, *, det_size: tuple[int, int] | None = None) -> None:
    """Refuse ``path`` unless its graph inputs/outputs match ``signature`` (WeightsError naming the file).

    Initialisers listed among the graph inputs (old exporters do this) are not inputs. For the detector,
    fixed spatial sizes must equal ``det_size`` (insightface would otherwise silently ignore ``det_size``).
    """
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError, TypeError) as exc:
        raise WeightsError(f"{path}: not a readable ONNX file for the {signature.role} ({exc})") from exc
    initialisers = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initialisers]
    problems = _signature_problems("input", inputs, signature.inputs, ())
    problems += _signature_problems("output", list(model.graph.output), signature.outputs, signature.output_ranks)
    if det_size is not None and not problems:
        height, width = (_dims(inputs[0]) + [None, None, None, None])[2:4]
        if (height, width) not in ((None, None), (det_size[1], det_size[0])):
            problems.append(f"fixed input size {height}x{width} differs from det_size {det_size[1]}x{det_size[0]}")
    if problems:
        raise WeightsError(
            f"{path}: wrong ONNX signature for the {signature.role}: " + "; ".join(problems)
            + f". Expected {signature.describe()}."
        )


def _dims(value: Any) -> list[int | None]:
    """Dimensions of an ONNX value: an int for a fixed size, None for a symbolic or unknown one."""
    return [int(d.dim_value) if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def _signature_problems(
    kind: str, values: list[Any], expected: tuple[tuple[int | None, ...], ...], ranks: tuple[int, ...]
) -> list[str]:
    if len(values) != len(expected):
        names = [value.name for value in values]
        return [f"{len(values)} {kind}s {names}, expected {len(expected)}"]
    problems = []
    for index, (value, shape) in enumerate(zip(values, expected)):
        label = f"{kind} {index} ({value.name!r})"
        if value.type.tensor_type.elem_type != _FLOAT:
            problems.append(f"{label} is not float32")
        dims = _dims(value)
        allowed_ranks = ranks or (len(shape),)
        if len(dims) not in allowed_ranks:
            problems.append(f"{label} has rank {len(dims)}, expected {' or '.join(map(str, allowed_ranks))}")
            continue
        # rank-3 detector outputs carry a leading batch axis: compare the trailing axes
        for actual, wanted in zip(dims[len(dims) - len(shape):], shape):
            if wanted is not None and actual is not None and actual != wanted:
                problems.append(f"{label} has shape {_show(dims)}, expected {_show(list(shape))}")
                break
            if wanted is not None and actual is None and kind == "input":
                problems.append(f"{label} has shape {_show(dims)}, expected {_show(list(shape))} (fixed, not symbolic)")
                break
    return problems


def _show(dims: list[int | None]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def _load_routed(
    path: Path, expected_class: type, signature: OnnxSignature, providers: list[Any], **checks: Any
) -> Any:
    """Load ``path`` through ``insightface.model_zoo.get_model`` and check what it was routed to."""
    import onnxruntime
    from insightface.model_zoo import get_model

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # onnxruntime warnings about unused initialisers etc. are noise here
    try:
        model = get_model(str(path), providers=providers, sess_options=options)
    except Exception as exc:  # onnxruntime's errors (invalid graph, unsupported op) share no base class
        raise WeightsError(
            f"{path}: insightface/onnxruntime cannot load the {signature.role} ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(model, expected_class):
        routed = type(model).__name__ if model is not None else "nothing"
        raise WeightsError(
            f"{path}: insightface routed this file to {routed}, expected {expected_class.__name__} ({signature.role})"
        )
    found = {name: getattr(model, name, None) for name in checks}
    wrong = {name: value for name, value in found.items() if value != checks[name]}
    if wrong:
        raise WeightsError(
            f"{path}: the {signature.role} loaded with {wrong}, expected {checks} (not a buffalo_l file)"
        )
    return model


@dataclass(frozen=True)
class DetectedFace:
    """One SCRFD detection in frame pixels: box ``(4,)`` x1, y1, x2, y2; score; keypoints ``(5, 2)``."""

    bbox: np.ndarray
    score: float
    kps: np.ndarray

    @property
    def area(self) -> float:
        return float(max(0.0, self.bbox[2] - self.bbox[0]) * max(0.0, self.bbox[3] - self.bbox[1]))

    def insightface_face(self) -> Any:
        from insightface.app.common import Face

        return Face(bbox=self.bbox.copy(), kps=self.kps.copy(), det_score=self.score)


def to_bgr(rgb: np.ndarray) -> np.ndarray:
    """RGB ``(H, W, 3)`` uint8 -> contiguous BGR (what insightface and OpenCV expect)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {rgb.shape}")
    return np.ascontiguousarray(rgb[:, :, ::-1])


class BuffaloL:
    """The buffalo_l models a metric needs: always the detector, optionally ArcFace and/or 1k3d68.

    Args:
        detector_path: verified ``det_10g.onnx``.
        recognition_path: verified ``w600k_r50.onnx`` (needed by :meth:`embedding`).
        landmark_path: verified ``1k3d68.onnx`` (needed by :meth:`landmarks68`).
        device: ``cpu`` or ``cuda[:N]`` (onnxruntime provider, see :func:`onnx_providers`).
        det_size: detector input ``(width, height)``; frames are resized (aspect kept) and zero-padded to it.
        det_thresh: detection score threshold.
    """

    def __init__(
        self,
        detector_path: Path,
        *,
        recognition_path: Path | None = None,
        landmark_path: Path | None = None,
        device: str = "cpu",
        det_size: tuple[int, int] = (320, 320),
        det_thresh: float = 0.3,
    ) -> None:
        from insightface.model_zoo import SCRFD, ArcFaceONNX, Landmark

        providers = onnx_providers(device)
        ctx_id = -1 if providers == ["CPUExecutionProvider"] else 0
        self.det_size = (int(det_size[0]), int(det_size[1]))
        self.det_thresh = float(det_thresh)
        self.detector_key = f"scrfd:{Path(detector_path).resolve()}:{self.det_size}:{self.det_thresh}"
        self.landmark_key: str | None = f"1k3d68:{Path(landmark_path).resolve()}" if landmark_path else None

        check_onnx_signature(Path(detector_path), DETECTOR_SIGNATURE, det_size=self.det_size)
        self.detector = _load_routed(
            Path(detector_path), SCRFD, DETECTOR_SIGNATURE, providers, use_kps=True, fmc=3, _num_anchors=2
        )
        self.detector.prepare(ctx_id, input_size=self.det_size, det_thresh=self.det_thresh)

        self.recogniser = None
        if recognition_path is not None:
            check_onnx_signature(Path(recognition_path), RECOGNITION_SIGNATURE)
            self.recogniser = _load_routed(
                Path(recognition_path), ArcFaceONNX, RECOGNITION_SIGNATURE, providers,
                input_size=(112, 112), input_mean=127.5, input_std=127.5,
            )
            self.recogniser.prepare(ctx_id)

        self.landmarker = None
        if landmark_path is not None:
            check_onnx_signature(Path(landmark_path), LANDMARK_SIGNATURE)
            self.landmarker = _load_routed(
                Path(landmark_path), Landmark, LANDMARK_SIGNATURE, providers,
                input_size=(192, 192), lmk_num=68, lmk_dim=3, input_mean=0.0, input_std=1.0,
            )
            self.landmarker.prepare(ctx_id)

    # ------------------------------------------------------------------ detection
    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """All faces SCRFD finds in an RGB frame (after NMS), in insightface's order (score, descending)."""
        boxes, keypoints = self.detector.detect(to_bgr(rgb), input_size=self.det_size, max_num=0)
        return [
            DetectedFace(boxes[i, :4].astype(np.float32), float(boxes[i, 4]), keypoints[i].astype(np.float32))
            for i in range(boxes.shape[0])
        ]

    def largest_face(self, rgb: np.ndarray) -> DetectedFace | None:
        """The detection with the largest box area (the first, i.e. best scored, on ties), or None."""
        faces = self.detect(rgb)
        if not faces:
            return None
        return max(faces, key=lambda face: face.area)  # max keeps the first of equal areas

    def detect_largest(self, frames: Sequence[np.ndarray]) -> list[DetectedFace | None]:
        """:meth:`largest_face` of each RGB frame (one detector call per frame: det_10g's batch axis is 1)."""
        return [self.largest_face(rgb) for rgb in frames]

    # ------------------------------------------------------------------ per-face models
    def embedding(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        """Raw ArcFace embedding ``(512,)`` float32 of the face aligned by its 5 keypoints (``norm_crop``)."""
        if self.recogniser is None:
            raise RuntimeError("BuffaloL was built without the recognition model (w600k_r50.onnx)")
        return np.asarray(self.recogniser.get(to_bgr(rgb), face.insightface_face()), np.float32).ravel()

    def landmarks68(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The face's 68 landmarks ``(68, 2)`` float64 pixel (x, y) from 1k3d68 (z dropped)."""
        if self.landmarker is None:
            raise RuntimeError("BuffaloL was built without the landmark model (1k3d68.onnx)")
        points = np.asarray(self.landmarker.get(to_bgr(rgb), face.insightface_face()), np.float64)
        return points[:, :2]

    def landmarks_batch(self, frames: Sequence[np.ndarray], boxes: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """1k3d68 landmarks ``(N, 68, 2)`` float64 of the faces in ``boxes`` ``(N, 4)`` (x1, y1, x2, y2) of ``frames``.

        Per face exactly insightface's ``Landmark.get`` (insightface 2.1 ``model_zoo/landmark.py:84-108``): centre of
        the box, scale 192 / (1.5 x max(w, h)), ``face_align.transform`` (no rotation), ``blobFromImage`` (swapRB),
        output ``(p + 1) x 96`` mapped back with the inverse transform; the crops go through onnxruntime
        ``batch_size`` at a time. The crop is warped from the RGB frame and flipped to BGR afterwards (the warp is
        per channel, so this equals warping the BGR frame) to avoid copying whole frames.
        """
        import cv2
        from insightface.utils import face_align

        if self.landmarker is None:
            raise RuntimeError("BuffaloL was built without the landmark model (1k3d68.onnx)")
        model = self.landmarker
        size = int(model.input_size[0])
        blobs, inverses = [], []
        for rgb, box in zip(frames, np.asarray(boxes, np.float64).reshape(-1, 4)):
            box = box.astype(np.float32)  # insightface's boxes are float32
            width, height = box[2] - box[0], box[3] - box[1]
            centre = (box[2] + box[0]) / 2, (box[3] + box[1]) / 2
            crop, matrix = face_align.transform(rgb, centre, size, size / (max(width, height) * 1.5), 0)
            bgr = np.ascontiguousarray(crop[:, :, ::-1])
            blobs.append(cv2.dnn.blobFromImage(bgr, 1.0 / model.input_std, (size, size),
                                               (model.input_mean,) * 3, swapRB=True))
            inverses.append(cv2.invertAffineTransform(matrix))
        if not blobs:
            return np.zeros((0, 68, 2))
        outputs = [model.session.run(model.output_names, {model.input_name: np.concatenate(blobs[i:i + batch_size])})[0]
                   for i in range(0, len(blobs), batch_size)]
        points = []
        for pred, inverse in zip(np.concatenate(outputs), inverses):
            pred = pred.reshape((-1, 3))[-model.lmk_num:].copy()
            pred[:, 0:2] += 1
            pred[:, 0:2] *= size // 2
            pred[:, 2] *= size // 2
            points.append(np.asarray(face_align.trans_points(pred, inverse), np.float64)[:, :2])
        return np.stack(points)
