"""Speech files of the cascades: WAV written atomically, read back through PyAV.

Speech is stored as 32-bit float WAV (``(N,)`` mono or ``(C, N)`` channels-first arrays in [-1, 1], any rate), so
a TTS system's samples reach the video part unchanged (no lossy codec between the two parts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import wavfile

from idlora_bench.core.io import atomic_output
from idlora_bench.data.media import decode


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write ``audio`` (``(N,)`` or ``(C, N)`` float, Hz ``sample_rate``) as float32 WAV, atomically.

    Raises:
        ValueError: empty, non-finite audio or a non-positive rate (never written).
    """
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 2:
        array = array.T  # (N, C) for scipy
    if array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"{path}: refusing to write empty or non-finite audio")
    if sample_rate <= 0:
        raise ValueError(f"{path}: sample rate must be positive, got {sample_rate}")
    with atomic_output(path) as tmp:
        wavfile.write(tmp, int(sample_rate), array)
    return Path(path)


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """``(audio (C, N) float32, sample_rate)`` of any file PyAV decodes (its audio stream)."""
    media = decode(path, need_video=False)
    return media.require_audio(), int(media.sample_rate or 0)
