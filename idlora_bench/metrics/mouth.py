"""Lip motion from 68-point landmark tracks, shared by every lip-motion metric (dlib, insightface).

Inner-mouth opening per frame = mean of the vertical gaps |p61-p67|, |p62-p66|, |p63-p65| (0-based iBUG
68-point indices) divided by the face height |p27-p8| (nose bridge top to chin); lip motion = 100 x its
std over frames (ddof 0), the paper's Table 4 unit (x 10^2).
"""

from __future__ import annotations

import numpy as np

from idlora_bench.core.errors import SampleFailure
from idlora_bench.metrics.base import Features, Score

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


def lip_motion_features(tracks: list[np.ndarray], missing: list[int], num_frames: int,
                        min_face_fraction: float, file_name: str) -> Features:
    """Features from the per-frame landmarks of the frames with a face (``missing``: frames without one).

    Raises ``no_face`` when fewer than ``min_face_fraction`` of the frames (or fewer than 2) have a face.
    """
    if len(tracks) < 2 or len(tracks) / num_frames < min_face_fraction:
        raise SampleFailure(
            "no_face",
            f"a face in {len(tracks)} of {num_frames} frames of {file_name} "
            f"(needs >= {min_face_fraction:.0%} and >= 2)",
        )
    landmarks = np.stack(tracks)
    return {
        "lip_motion_x100": lip_motion_x100(landmarks),
        "opening": normalised_mouth_opening(landmarks).astype(np.float32),
        "frames_without_face": np.asarray(missing, np.int64),
    }


def lip_motion_score(generated: Features, target: Features | None) -> Score:
    """The generated file's lip motion; the target's (when available) in the details, for reference."""
    details = {
        "generated_frames_without_face": len(generated["frames_without_face"]),
        "target_lip_motion_x100": None if target is None else float(target["lip_motion_x100"]),
    }
    return Score(float(generated["lip_motion_x100"]), details)
