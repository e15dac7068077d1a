"""Face similarity, paper profile: the ID-LoRA authors' ArcFace variant (``face_similarity.arcface_authors``).

Everything as :class:`~idlora_bench.metrics.face_similarity_arcface.FaceSimilarityArcFace` (SCRFD det_10g at
320x320, threshold 0.3, largest face, w600k_r50 raw embeddings averaged then L2-normalised, cosine), except the
frame sampling, which follows the authors' ``extract_embedding_multi_frame``:
``np.linspace(0, total_frames - 1, 5, dtype=int)`` (ID-LoRA ``packages/ltx-trainer/src/ltx_trainer/metrics/
evaluation_metrics.py:485``, commit 399bf3e), i.e. indices rounded DOWN where the standard metric rounds to the
nearest. Equal for 121-frame clips ([0, 30, 60, 90, 120]); different for most other lengths (120 frames:
[0, 29, 59, 89, 119] here, [0, 30, 60, 89, 119] in the standard metric).

Remaining differences from the authors' code, all by design or out of reach:
- ``total_frames``: the authors read OpenCV's ``CAP_PROP_FRAME_COUNT`` (container metadata) and seek with
  ``CAP_PROP_POS_FRAMES`` (:486-490); here the decoded frame count and the decoded frames (equal for well-formed
  mp4 files; a file whose metadata is wrong can differ);
- colour conversion: OpenCV's swscale to BGR24 there, PyAV RGB24 flipped to BGR here (at most 1-2 code values);
- a video without a detected face is dropped from the authors' mean (:533-534); here it is a ``no_face`` failure
  row, counted in coverage (the house rule: never a dropped sample).
"""

from __future__ import annotations

import numpy as np

from idlora_bench.metrics.face_similarity_arcface import FaceSimilarityArcFace


class FaceSimilarityArcFaceAuthors(FaceSimilarityArcFace):
    name = "face_similarity.arcface_authors"
    version = "1"
    params = {**FaceSimilarityArcFace.params, "frame_sampling": "linspace(0, T-1, n, dtype=int) (rounded down)"}
    description = "the ID-LoRA authors' ArcFace face similarity: as face_similarity.arcface, frames rounded down"
    paper_reference = ("ID-LoRA Sec. 5.1, Tables 1-2; authors' evaluation_metrics.py:365-582 (commit 399bf3e)")

    def frame_indices(self, num_frames: int) -> np.ndarray:
        """``np.linspace(0, num_frames - 1, 5, dtype=int)``: the authors' indices (truncation toward zero)."""
        if num_frames <= 0:
            raise ValueError("cannot sample frames from a clip with no frames")
        return np.linspace(0, num_frames - 1, self.params["num_frames"], dtype=int).astype(np.int64)
