"""Cut a clip out of a source video with PyAV: frames resampled to a fixed rate, audio kept at its native rate.

Frame-rate conversion: output frame ``i`` shows the source frame whose presentation time is nearest to
``start_s + i / fps`` (ties to the earlier frame); a 25 fps source cut at frame boundaries is copied frame for frame,
a 30 fps one drops every sixth frame. Audio: the samples in ``[start_s, start_s + duration)`` of the first audio
stream, all channels, at the source rate (float32 in [-1, 1]).

Shapes: frames ``(T, H, W, 3)`` uint8 RGB; audio ``(C, N)`` float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from idlora_bench.core.errors import MediaError


@dataclass(frozen=True)
class CutClip:
    """A cut: ``frames`` at ``fps``, ``audio`` at ``sample_rate``, and what the source was."""

    frames: np.ndarray
    fps: float
    audio: np.ndarray
    sample_rate: int
    source_fps: float
    start_s: float
    duration_s: float


def _video_frames(container: av.container.InputContainer, start_s: float, end_s: float) -> list[tuple[float, np.ndarray]]:
    stream = container.streams.video[0]
    container.seek(max(0, int((start_s - 1.0) / stream.time_base)), stream=stream, backward=True)
    kept: list[tuple[float, np.ndarray]] = []
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        time = float(frame.pts * stream.time_base)
        if time > end_s:
            break
        if time >= start_s - 0.5:
            kept.append((time, frame.to_ndarray(format="rgb24")))
    return kept


def _audio_samples(container: av.container.InputContainer, start_s: float, end_s: float) -> tuple[np.ndarray, int]:
    stream = container.streams.audio[0]
    rate = int(stream.rate or stream.codec_context.sample_rate)
    container.seek(max(0, int((start_s - 1.0) / stream.time_base)), stream=stream, backward=True)
    first, last = round(start_s * rate), round(end_s * rate)
    chunks: list[np.ndarray] = []
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        offset = round(float(frame.pts * stream.time_base) * rate)
        array = frame.to_ndarray()
        if not frame.format.is_planar:
            array = array.reshape(-1, len(frame.layout.channels)).T
        if np.issubdtype(array.dtype, np.integer):
            array = array.astype(np.float32) / float(np.iinfo(array.dtype).max + 1)
        lo, hi = max(first - offset, 0), min(last - offset, array.shape[1])
        if hi > lo:
            chunks.append(array[:, lo:hi].astype(np.float32))
        if offset + array.shape[1] >= last:
            break
    audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((1, 0), np.float32)
    return audio, rate


def cut_clip(path: str | Path, start_s: float, *, num_frames: int | None = None, end_s: float | None = None,
             fps: float = 25.0) -> CutClip:
    """Frames ``[start_s, start_s + num_frames / fps)`` (or ``[start_s, end_s)``) at ``fps`` and the matching audio.

    Raises :class:`MediaError` naming the file when it cannot be read, lacks a stream, or ends before the cut does.
    """
    path = Path(path)
    if (num_frames is None) == (end_s is None):
        raise ValueError("give num_frames or end_s")
    count = int(num_frames) if num_frames is not None else int(math.floor((float(end_s) - start_s) * fps + 1e-6))
    if count <= 0:
        raise ValueError(f"the cut [{start_s}, {end_s}) holds no frame at {fps} fps")
    duration = count / fps
    try:
        with av.open(str(path)) as container:
            if not container.streams.video or not container.streams.audio:
                raise MediaError(path, "needs a video and an audio stream")
            source_fps = float(container.streams.video[0].average_rate or 0) or fps
            frames = _video_frames(container, start_s, start_s + duration)
            audio, rate = _audio_samples(container, start_s, start_s + duration)
    except av.error.FFmpegError as exc:
        raise MediaError(path, f"cannot be decoded ({exc})") from None
    times = np.array([t for t, _ in frames])
    wanted = start_s + np.arange(count) / fps
    if len(times) == 0 or times[-1] < wanted[-1] - 0.5 / source_fps or times[0] > start_s + 0.5 / source_fps:
        available = f"{times[0]:.3f}-{times[-1]:.3f} s" if len(times) else "none"
        raise MediaError(path, f"has no frames for [{start_s:.3f}, {start_s + duration:.3f}) s (frames: {available})")
    picks = np.abs(times[None, :] - wanted[:, None]).argmin(axis=1)
    expected_samples = round(duration * rate)
    if audio.shape[1] < expected_samples - round(0.02 * rate):
        raise MediaError(path, f"audio ends before {start_s + duration:.3f} s ({audio.shape[1] / rate:.3f} s cut)")
    audio = audio[:, :expected_samples]
    return CutClip(np.stack([frames[i][1] for i in picks]), fps, audio, rate, source_fps, start_s, duration)
