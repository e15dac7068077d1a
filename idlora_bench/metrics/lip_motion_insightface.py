"""Lip motion, standard profile: std over time of the normalised inner-mouth opening (insightface 1k3d68), x100.

Per frame (every frame, indices not seconds): the face of the file's shared face pass
(:mod:`idlora_bench.models.face_track`): SCRFD det_10g at ``det_size`` 320x320, ``det_thresh`` 0.3 (the
face-similarity settings), largest face by box area, on keyframes (frame 0, every 15th frame, the last, the
face-similarity frames ``round(linspace(0, T-1, 5))`` and wherever the track needs one), the box interpolated and
verified in between; its 68 landmarks from buffalo_l's 1k3d68 (x, y in pixels; z dropped), many faces per
onnxruntime call (:meth:`~idlora_bench.models.insightface_onnx.BuffaloL.landmarks_batch`). Same definition as
``lip_motion.dlib`` (shared code): inner-mouth opening = mean of the vertical gaps |p61-p67|, |p62-p66|,
|p63-p65| (0-based) divided by the face height |p27-p8|; value = 100 x std over frames (population std, ddof=0),
as the paper's Table 4 (x 10^2). The paper does not state its
normaliser; face height is this benchmark's choice and is stamped in ``params``.

Frames without a face are skipped and counted; fewer than ``min_face_fraction`` of frames with a face (or
fewer than 2 frames) fails with ``no_face``. The target's value is reported in the details for reference;
it never fails the generated sample.

Version 2 (this file): the face pass above. Version 1 ran the detector on every frame (one SCRFD call per frame)
and 1k3d68 one face per call; SCRFD and 1k3d68 already see fixed-size inputs, so only the boxes between
keyframes differ (interpolated instead of detected). Not measured against version 1 on real weights here (the
buffalo_l files cannot be downloaded on this machine); ``tests/test_face_speed.py`` checks the batched landmarks
against insightface's own per-face path on tiny models in the real format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.mouth import lip_motion_features, lip_motion_score
from idlora_bench.models.face_track import TrackParams, face_pass
from idlora_bench.models.insightface_onnx import DET_10G, LANDMARK_1K3D68, BuffaloL

TRACK = TrackParams()
"""The face pass's tracking settings."""


class LipMotionInsightFace(Metric):
    name = "lip_motion.insightface"
    family = "lip_motion"
    version = "2"
    direction = "higher"
    needs = frozenset({MetricInput.GENERATED_VIDEO})
    optional_target = True
    weights = (DET_10G, LANDMARK_1K3D68)
    params = {
        "frames": "all",
        "detector": "insightface SCRFD det_10g",
        "det_size": [320, 320],
        "det_thresh": 0.3,
        "nms_thresh": 0.4,
        "face": "largest box area",
        "landmarks": "insightface 1k3d68, 68 points (x, y)",
        "opening": "mean |p61-p67|,|p62-p66|,|p63-p65|",
        "normaliser": "face height |p27-p8|",
        "statistic": "100 x std over frames (ddof=0)",
        "min_face_fraction": 0.5,
        "colour": "RGB frames converted to BGR for insightface",
        "tracking": TRACK.describe(),
    }
    description = "100 x std over time of the inner-mouth opening / face height (insightface 1k3d68 landmarks)"
    label = "Lip Mot. (x100)"
    digits = 2
    unit = "x100 std of mouth opening / face height"
    paper_reference = "ID-LoRA Table 4 (lip motion, 68-point landmarks)"
    requires = {"onnxruntime": "onnxruntime==1.32.0", "onnx": "onnx==1.23.2", "insightface": "insightface==2.1 (--no-deps)", "cv2": "opencv-python-headless", "skimage": "scikit-image"}

    def _load(self, paths: dict[str, Path]) -> None:
        self._models = BuffaloL(
            paths[DET_10G.name],
            landmark_path=paths[LANDMARK_1K3D68.name],
            device=self.device,
            det_size=tuple(self.params["det_size"]),
            det_thresh=self.params["det_thresh"],
        )

    def extract(self, media: DecodedMedia) -> Features:
        frames = media.require_video()
        track = face_pass(frames).track(frames, self._models, TRACK)
        with_face = track.has_face
        features = lip_motion_features(list(track.landmarks[with_face]), np.flatnonzero(~with_face).tolist(),
                                       len(frames), self.params["min_face_fraction"], media.path.name)
        return {**features, "keyframes": np.asarray(track.keyframes, np.int64)}

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        return lip_motion_score(generated, target)
