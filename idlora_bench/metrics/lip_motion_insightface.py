"""Lip motion, standard profile: std over time of the normalised inner-mouth opening (insightface 1k3d68), x100.

Per frame (every frame, indices not seconds): SCRFD det_10g at ``det_size`` 320x320, ``det_thresh`` 0.3 (the
face-similarity settings); the largest face by box area; its 68 landmarks from buffalo_l's 1k3d68 (x, y in
pixels; z dropped). Same definition as ``lip_motion.dlib`` (shared code): inner-mouth opening = mean of the
vertical gaps |p61-p67|, |p62-p66|, |p63-p65| (0-based) divided by the face height |p27-p8|; value = 100 x
std over frames (population std, ddof=0), as the paper's Table 4 (x 10^2). The paper does not state its
normaliser; face height is this benchmark's choice and is stamped in ``params``.

Frames without a face are skipped and counted; fewer than ``min_face_fraction`` of frames with a face (or
fewer than 2 frames) fails with ``no_face``. The target's value is reported in the details for reference;
it never fails the generated sample.
"""

from __future__ import annotations

from pathlib import Path

from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.mouth import lip_motion_features, lip_motion_score
from idlora_bench.models.insightface_onnx import DET_10G, LANDMARK_1K3D68, BuffaloL


class LipMotionInsightFace(Metric):
    name = "lip_motion.insightface"
    family = "lip_motion"
    version = "1"
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
        tracks, missing = [], []
        for index, frame in enumerate(frames):
            face = self._models.largest_face(frame)
            if face is None:
                missing.append(index)
                continue
            tracks.append(self._models.landmarks68(frame, face))
        return lip_motion_features(tracks, missing, len(frames), self.params["min_face_fraction"], media.path.name)

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        return lip_motion_score(generated, target)
