"""Vector helpers shared by embedding metrics."""

from __future__ import annotations

import numpy as np

from idlora_bench.metrics.base import Features, Score


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two 1-d vectors (float64 arithmetic). Raises on a zero vector instead of returning 0."""
    a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    norm = np.linalg.norm(a64) * np.linalg.norm(b64)
    if norm == 0.0:
        raise ValueError("cosine similarity of a zero vector is undefined")
    return float(np.dot(a64, b64) / norm)


def mean_then_normalise(embeddings: np.ndarray) -> np.ndarray:
    """Average ``(K, D)`` embeddings, then L2-normalise the mean: ``(D,)``.

    This is the face-similarity protocol's order (average the per-frame embeddings, then normalise),
    which differs from normalising each embedding first when their norms differ.
    """
    mean = np.asarray(embeddings, np.float64).mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def face_similarity_score(generated: Features, target: Features | None) -> Score:
    """Cosine of the generated and target face embeddings, with the frames without a face of both."""
    assert target is not None
    return Score(
        cosine_similarity(generated["embedding"], target["embedding"]),
        {
            "generated_frames_without_face": [int(i) for i in generated["frames_without_face"]],
            "target_frames_without_face": [int(i) for i in target["frames_without_face"]],
        },
    )
