"""Lip motion, offline profile: std over time of the normalised inner-mouth opening (dlib 68 points), x100.

Per frame (every frame): the largest face's 68 landmarks; inner-mouth opening = mean of the vertical
gaps |p61-p67|, |p62-p66|, |p63-p65| (0-based inner-lip points) divided by the face height |p27-p8|
(nose bridge top to chin). dlib's landmarks are whole pixels, so they are predicted on the frame
upscaled ``landmark_upscale`` times (bicubic) and scaled back: on a still H.264 video this lowers the
value from about 0.3 to about 0.03 (demo split, 256 px), against about 3-4 for the talking targets.
Value = 100 x std over frames (population std, ddof=0), as the paper's
Table 4 (x 10^2). The paper does not state its normaliser; face height is this benchmark's choice and is
stamped in ``params``. Frames without a face are skipped and counted; fewer than ``min_face_fraction`` of
frames with a face (or fewer than 2 frames) fails with ``no_face``. The target's value is reported in the
details for reference; it never fails the generated sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idlora_bench.errors import SampleFailure
from idlora_bench.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.dlib_faces import LANDMARKS_68, DlibFaces
from idlora_bench.types import Pair

UPPER_INNER_LIP = (61, 62, 63)
LOWER_INNER_LIP = (67, 66, 65)
NOSE_BRIDGE_TOP, CHIN = 27, 8


def normalised_mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-mouth opening / face height for landmark tracks ``(T, 68, 2)`` -> ``(T,)``."""
    landmarks = np.asarray(landmarks, np.float64)
    gaps = np.linalg.norm(landmarks[:, UPPER_INNER_LIP] - landmarks[:, LOWER_INNER_LIP], axis=-1)
    face_height = np.linalg.norm(landmarks[:, NOSE_BRIDGE_TOP] - landmarks[:, CHIN], axis=-1)
    return gaps.mean(axis=1) / face_height


def lip_motion_x100(landmarks: np.ndarray) -> float:
    """100 x std over time (ddof=0) of the normalised inner-mouth opening of ``(T, 68, 2)`` landmarks."""
    return float(100.0 * np.std(normalised_mouth_opening(landmarks)))


class LipMotionDlib(Metric):
    name = "lip_motion.dlib"
    family = "lip_motion"
    version = "1"
    direction = "higher"
    needs = frozenset({MetricInput.GENERATED_VIDEO})
    optional_target = True
    weights = (LANDMARKS_68,)
    params = {
        "frames": "all",
        "opening": "mean |p61-p67|,|p62-p66|,|p63-p65|",
        "normaliser": "face height |p27-p8|",
        "statistic": "100 x std over frames (ddof=0)",
        "min_face_fraction": 0.5,
        "detector_upsample": 1,
        "landmark_upscale": 2,
    }
    description = "100 x std over time of the inner-mouth opening / face height (dlib 68 landmarks)"

    def _load(self, paths: dict[str, Path]) -> None:
        self._faces = DlibFaces(paths[LANDMARKS_68.name], upsample=self.params["detector_upsample"])

    def extract(self, media: DecodedMedia) -> Features:
        frames = media.require_video()
        tracks, missing = [], []
        for index, frame in enumerate(frames):
            box = self._faces.largest_face(frame)
            if box is None:
                missing.append(index)
                continue
            tracks.append(self._faces.landmarks(frame, box, upscale=self.params["landmark_upscale"]))
        face_fraction = len(tracks) / len(frames)
        if len(tracks) < 2 or face_fraction < self.params["min_face_fraction"]:
            raise SampleFailure(
                "no_face",
                f"a face in {len(tracks)} of {len(frames)} frames of {media.path.name} "
                f"(needs >= {self.params['min_face_fraction']:.0%} and >= 2)",
            )
        landmarks = np.stack(tracks)
        return {
            "lip_motion_x100": lip_motion_x100(landmarks),
            "opening": normalised_mouth_opening(landmarks).astype(np.float32),
            "frames_without_face": np.asarray(missing, np.int64),
        }

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        details = {
            "generated_frames_without_face": len(generated["frames_without_face"]),
            "target_lip_motion_x100": None if target is None else float(target["lip_motion_x100"]),
        }
        return Score(float(generated["lip_motion_x100"]), details)
