"""Face similarity, standard profile: ArcFace (insightface buffalo_l: SCRFD det_10g + w600k_r50), cosine vs target.

Protocol (the ID-LoRA authors' settings): sample 5 frames at ``round(linspace(0, T-1, 5))`` (frame
indices, not seconds); detect faces with SCRFD at ``det_size`` 320x320 and ``det_thresh`` 0.3 (NMS 0.4,
insightface's default); keep the largest face by box area; ArcFace embedding (512-d) of the face aligned to
112x112 by its 5 keypoints; average the raw embeddings of the frames with a face, then L2-normalise the
mean; cosine between generated and target.

The detections come from the file's shared face pass (:mod:`idlora_bench.models.face_track`): a frame detected
for ``lip_motion.insightface`` (whose keyframes include these frames) is not detected again, and the other way
round. The detection and embedding code is unchanged (same numbers as before the pass was shared).

Unlike the authors' code, which silently drops a video without a detected face, frames without a face are
listed in the details, and a file with no face in any sampled frame fails with ``no_face`` (a failure row,
never a dropped sample or a 0.0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idlora_bench.core.errors import SampleFailure
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia, uniform_frame_indices
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.similarity import face_similarity_score, mean_then_normalise
from idlora_bench.models.face_track import face_pass
from idlora_bench.models.insightface_onnx import DET_10G, W600K_R50, BuffaloL


class FaceSimilarityArcFace(Metric):
    name = "face_similarity.arcface"
    family = "face_similarity"
    version = "1"
    direction = "higher"
    needs = frozenset({MetricInput.GENERATED_VIDEO, MetricInput.TARGET_VIDEO})
    weights = (DET_10G, W600K_R50)
    params = {
        "num_frames": 5,
        "frame_sampling": "round(linspace(0, T-1, n))",
        "detector": "insightface SCRFD det_10g",
        "det_size": [320, 320],
        "det_thresh": 0.3,
        "nms_thresh": 0.4,
        "face": "largest box area",
        "alignment": "5-point norm_crop 112x112",
        "aggregation": "mean of raw embeddings, then L2-normalise",
        "colour": "RGB frames converted to BGR for insightface",
    }
    description = "cosine of averaged ArcFace (buffalo_l w600k_r50) embeddings (5 frames) of generated vs target video"
    label = "Face Sim"
    unit = "cosine"
    paper_reference = "ID-LoRA Sec. 5.1 (face similarity, ArcFace), Tables 1-2"
    requires = {"onnxruntime": "onnxruntime==1.32.0", "onnx": "onnx==1.23.2",
                "insightface": "insightface==2.1 (--no-deps)", "cv2": "opencv-python-headless", "skimage": "scikit-image"}

    def _load(self, paths: dict[str, Path]) -> None:
        self._models = BuffaloL(
            paths[DET_10G.name],
            recognition_path=paths[W600K_R50.name],
            device=self.device,
            det_size=tuple(self.params["det_size"]),
            det_thresh=self.params["det_thresh"],
        )

    def frame_indices(self, num_frames: int) -> np.ndarray:
        """The sampled frame indices (``params["frame_sampling"]``) of a clip of ``num_frames`` frames."""
        return uniform_frame_indices(num_frames, self.params["num_frames"])

    def extract(self, media: DecodedMedia) -> Features:
        all_frames = media.require_video()
        indices = self.frame_indices(len(all_frames))
        faces = face_pass(all_frames).detections(all_frames, self._models, indices.tolist())
        embeddings, missing, scores = [], [], []
        for index, face in zip(indices.tolist(), faces):
            if face is None:
                missing.append(index)
                continue
            embeddings.append(self._models.embedding(all_frames[index], face))
            scores.append(face.score)
        if not embeddings:
            raise SampleFailure(
                "no_face",
                f"no face (det_thresh {self.params['det_thresh']}) in any of frames {indices.tolist()} "
                f"of {media.path.name}",
            )
        return {
            "embedding": mean_then_normalise(np.stack(embeddings)),
            "frames": indices.astype(np.int64),
            "frames_without_face": np.asarray(missing, np.int64),
            "det_scores": np.asarray(scores, np.float32),
        }

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        return face_similarity_score(generated, target)
