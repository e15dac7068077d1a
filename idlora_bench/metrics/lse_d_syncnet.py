"""Lip sync, standard profile: SyncNet v2 LSE-D (``lse_d.syncnet``, lower is better); LSE-C (``lse_c.syncnet``, in
``lse_c_syncnet.py``) reads the same features.

Both are computed on the generated file alone (its video and its own audio track; no target), with the
joonson/syncnet_python pipeline pinned in :mod:`idlora_bench.models.syncnet` (every parameter is stamped
in ``params``): 25 fps (other rates resampled to 25 fps by nearest frame), 16 kHz mono int16 PCM, S3FD faces
(scale 0.25, score > 0.9), PySceneDetect shots, IoU tracks of > 100 frames with a mean face side > 100 px,
crops (crop scale 0.4, 224 x 224), 5-frame windows vs 20 MFCC frames (13 coefficients), offsets -15..15
frames. LSE-D = min over offsets of the mean distance; LSE-C = median - min; the best offset (frames, 40 ms
each; ``k > 0``: audio leads video by ``k`` frames) goes in the details, with the track and window counts.

Failures (failure rows, never a 0.0): ``too_short`` when the clip has fewer than 101 frames at 25 fps
(4.04 s; a track must hold more than 100 detections) or less than 6 frames of audio; ``no_face_track`` when
no face track survives.

Sharing: the two metrics extract identical features (same class, params, version and weights). The runner
caches features per metric name, so to avoid running SyncNet twice on a file in one process, the features
(or the failure) are also kept in a small process-local memo keyed like the cache but without the metric
name; the second metric takes them from there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idlora_bench.core.errors import SampleFailure
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.models.syncnet import (
    OFFSET_CONVENTION,
    PINNED,
    S3FD_FACE,
    SYNCNET_V2,
    SyncNetLSE,
)


class LipSyncSyncNet(Metric):
    """LSE-D (SyncNet v2 distance at the best offset); :class:`LipSyncConfidenceSyncNet` gives LSE-C."""

    name = "lse_d.syncnet"
    family = "lse_d"
    features_id = "syncnet_v2.lse"  # LSE-C reads the same features: one SyncNet pass per file
    version = "1"
    direction = "lower"
    needs = frozenset({MetricInput.GENERATED_VIDEO, MetricInput.GENERATED_AUDIO})
    weights = (SYNCNET_V2, S3FD_FACE)
    params = PINNED.as_params()
    description = "SyncNet v2 LSE-D: min over offsets (+-15 frames) of the mean audio-lip embedding distance"
    label = "LSE-D"
    digits = 2
    unit = "SyncNet embedding distance"
    paper_reference = "ID-LoRA Sec. 5.1 (lip sync, SyncNet), Tables 1-2"
    requires = {"torch": "torch==2.13.0", "syncnet_python": "syncnet-python==0.2.3 (--no-deps)",
                "python_speech_features": "python-speech-features==0.6", "scenedetect": "scenedetect==0.6.7.1 (--no-deps)",
                "cv2": "opencv-python-headless"}

    def _load(self, paths: dict[str, Path]) -> None:
        self._pipeline = SyncNetLSE.from_files(paths[SYNCNET_V2.name], paths[S3FD_FACE.name], PINNED, self.device)

    def audio_16k(self, media: DecodedMedia) -> np.ndarray:
        """The audio SyncNet hears: ``(N,)`` float32 mono at 16 kHz (channel mean, polyphase resampling)."""
        return media.mono(PINNED.sample_rate_hz)

    def extract(self, media: DecodedMedia) -> Features:
        frames = media.require_video()
        if not media.fps:
            raise SampleFailure("decode_error", f"{media.path.name}: the video stream has no frame rate")
        audio = self.audio_16k(media)
        result = self._pipeline.score(frames, float(media.fps), audio, name=media.path.name)
        best = result.best
        return {
            "lse_d": best.scores.lse_d,
            "lse_c": best.scores.lse_c,
            "offset_frames": best.scores.offset,
            "mean_distances": best.scores.mean_distances,
            "num_windows": best.scores.num_windows,
            "track_start_frame": best.start,
            "track_end_frame": best.end,
            "num_tracks": len(result.tracks),
            "track_lse_d": np.array([t.scores.lse_d for t in result.tracks], np.float64),
            "track_lse_c": np.array([t.scores.lse_c for t in result.tracks], np.float64),
            "track_offset_frames": np.array([t.scores.offset for t in result.tracks], np.int64),
            "source_fps": result.source_fps,
            "frames_25fps": result.num_frames,
            "frames_with_face": result.frames_with_face,
            "num_shots": result.num_shots,
        }

    def _details(self, features: Features) -> dict[str, object]:
        return {
            "offset_frames": int(features["offset_frames"]),
            "offset_convention": OFFSET_CONVENTION,
            "lse_d": float(features["lse_d"]),
            "lse_c": float(features["lse_c"]),
            "track_frames": [int(features["track_start_frame"]), int(features["track_end_frame"])],
            "num_tracks": int(features["num_tracks"]),
            "num_windows": int(features["num_windows"]),
            "source_fps": float(features["source_fps"]),
            "frames_with_face": int(features["frames_with_face"]),
            "frames_25fps": int(features["frames_25fps"]),
        }

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        return Score(float(generated["lse_d"]), self._details(generated))
