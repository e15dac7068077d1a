"""The stand-in video of video parts in fake mode: the target's first frame held still for the speech's duration.

Frames at 25 fps, the first frame resized so its long side is at most ``long_side`` px (even sizes for H.264),
the speech as the audio track at its own rate (AAC). Enough to run every step of a cascade on CPU; results are smoke.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from baselines.audio_io import read_audio
from idlora_bench.data.media import decode, write_mp4

FAKE_FPS = 25.0


def first_frame(target_path: Path) -> np.ndarray:
    """The first frame ``(H, W, 3)`` uint8 RGB of the target clip (the visual condition of every video part)."""
    return decode(target_path, need_audio=False).require_video()[0]


def even_resize(frame: np.ndarray, long_side: int) -> np.ndarray:
    """Resize (box filter, Pillow) so the long side is at most ``long_side`` and both sides are even."""
    from PIL import Image

    height, width = frame.shape[:2]
    scale = min(1.0, long_side / max(height, width))
    size = (max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX))


def write_still_video(target_path: Path, speech_wav: Path, out_path: Path, long_side: int = 256) -> dict[str, Any]:
    """Write the first frame of ``target_path`` held for the duration of ``speech_wav``, with that speech."""
    speech, rate = read_audio(speech_wav)
    frame = even_resize(first_frame(target_path), long_side)
    count = max(1, int(np.ceil(speech.shape[1] / rate * FAKE_FPS)))
    write_mp4(out_path, np.repeat(frame[None], count, axis=0), FAKE_FPS, speech, rate)
    return {"fake": "first frame held still", "frames": count, "fps": FAKE_FPS}
