"""Media I/O on PyAV: decode an audio-video file once, resample audio, sample frames, write H.264 + AAC mp4.

Conventions used everywhere in idlora-bench:
- video frames: ``np.uint8`` array of shape ``(T, H, W, 3)``, RGB.
- audio: ``np.float32`` array of shape ``(C, N)`` (channels first), values in [-1, 1], at ``sample_rate`` Hz.
- times are in seconds unless a name says ``frames`` or ``samples``.

No ffmpeg binary is needed: PyAV wheels carry their own FFmpeg.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from scipy.signal import resample_poly

from idlora_bench.core.errors import MediaError
from idlora_bench.core.io import atomic_output, file_sha256

__all__ = [
    "DecodedMedia",
    "MediaError",
    "MediaInfo",
    "decode",
    "probe",
    "file_sha256",
    "resample_audio",
    "to_mono",
    "uniform_frame_indices",
    "write_mp4",
]


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels: ``(C, N)`` or ``(N,)`` -> ``(N,)`` float32."""
    if audio.ndim == 1:
        return audio.astype(np.float32, copy=False)
    return audio.mean(axis=0).astype(np.float32)


def resample_audio(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample along the last axis with a polyphase filter (scipy ``resample_poly``).

    Works on ``(N,)`` or ``(C, N)`` float arrays; returns float32.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate:
        return audio.astype(np.float32, copy=False)
    ratio = Fraction(to_rate, from_rate)
    return resample_poly(audio, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def uniform_frame_indices(num_frames: int, count: int) -> np.ndarray:
    """``count`` frame indices spread uniformly from the first to the last frame.

    Same rule as ``np.linspace(0, num_frames - 1, count)`` rounded to the nearest integer, the
    sampling used by the face-similarity protocol (5 frames).
    """
    if num_frames <= 0:
        raise ValueError("cannot sample frames from a clip with no frames")
    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    return np.rint(np.linspace(0, num_frames - 1, count)).astype(np.int64)


@dataclass(frozen=True)
class DecodedMedia:
    """One media file decoded once, shared by every metric that scores it.

    Attributes:
        path: the file that was decoded.
        sha256: hex sha256 of the file's bytes (the content address used by the cache).
        frames: ``(T, H, W, 3)`` uint8 RGB, or None when the file has no video stream.
        fps: video frame rate in frames per second, or None.
        audio: ``(C, N)`` float32 at ``sample_rate``, or None when the file has no audio stream.
        sample_rate: native audio sample rate in Hz, or None.
    """

    path: Path
    sha256: str
    frames: np.ndarray | None
    fps: float | None
    audio: np.ndarray | None
    sample_rate: int | None
    _mono_cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_frames(self) -> int:
        return 0 if self.frames is None else int(self.frames.shape[0])

    @property
    def video_duration_s(self) -> float:
        if self.frames is None or not self.fps:
            return 0.0
        return self.num_frames / self.fps

    @property
    def audio_duration_s(self) -> float:
        if self.audio is None or not self.sample_rate:
            return 0.0
        return self.audio.shape[-1] / self.sample_rate

    def require_video(self) -> np.ndarray:
        if self.frames is None or self.num_frames == 0:
            raise MediaError(self.path, "has no video frames", code="no_video")
        return self.frames

    def require_audio(self) -> np.ndarray:
        if self.audio is None or self.audio.shape[-1] == 0:
            raise MediaError(self.path, "has no audio samples", code="no_audio")
        return self.audio

    def mono(self, sample_rate: int) -> np.ndarray:
        """Mono audio resampled to ``sample_rate`` Hz, shape ``(N,)`` float32 (memoised per rate)."""
        audio = self.require_audio()
        if sample_rate not in self._mono_cache:
            assert self.sample_rate is not None
            self._mono_cache[sample_rate] = resample_audio(to_mono(audio), self.sample_rate, sample_rate)
        return self._mono_cache[sample_rate]

    def sample_frames(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` uniformly spaced frames: returns ``(indices (count,), frames (count, H, W, 3))``."""
        frames = self.require_video()
        indices = uniform_frame_indices(len(frames), count)
        return indices, frames[indices]


@dataclass(frozen=True)
class MediaInfo:
    """Durations of a file's streams read from its container, without decoding (seconds; 0.0 for a missing
    stream). ``duration_s`` is the longer of the two."""

    video_duration_s: float
    audio_duration_s: float
    fps: float | None = None  # the video stream's average frame rate, when there is one

    @property
    def duration_s(self) -> float:
        return max(self.video_duration_s, self.audio_duration_s)


def _stream_duration_s(stream: av.stream.Stream, container_duration_s: float) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if stream.type == "video" and stream.frames and stream.average_rate:
        return float(stream.frames / stream.average_rate)
    return container_duration_s


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Stream durations of a media file from its headers (cheap: nothing is decoded). Raises :class:`MediaError`
    naming the file when it cannot be opened."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "does not exist" if not path.exists() else "is not a regular file")
    try:
        with av.open(str(path)) as container:
            overall = float(container.duration / av.time_base) if container.duration else 0.0
            video = next((_stream_duration_s(s, overall) for s in container.streams.video), 0.0)
            audio = next((_stream_duration_s(s, overall) for s in container.streams.audio), 0.0)
            rate = next((s.average_rate for s in container.streams.video if s.average_rate), None)
    except (av.error.FFmpegError, ValueError) as exc:
        raise MediaError(path, f"cannot be opened ({exc})") from None
    return MediaInfo(video, audio, float(rate) if rate else None)


def decode(
    path: str | os.PathLike[str],
    *,
    need_video: bool = True,
    need_audio: bool = True,
    sha256: str | None = None,
) -> DecodedMedia:
    """Decode a file's first video stream (RGB frames) and first audio stream (float32, native rate).

    Raises:
        MediaError: naming the file, when it is missing, empty, not decodable, lacks a needed stream,
            or a needed stream holds no frames/samples.
    """
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "does not exist")
    if not path.is_file():
        raise MediaError(path, "is not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(path, "is empty (0 bytes)")
    digest = sha256 or file_sha256(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(path, f"cannot be opened as media ({exc.__class__.__name__}: {exc})") from exc
    frames: np.ndarray | None = None
    fps: float | None = None
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    with container:
        video_streams = list(container.streams.video)
        audio_streams = list(container.streams.audio)
        if need_video and not video_streams:
            raise MediaError(path, "has no video stream")
        if need_audio and not audio_streams:
            raise MediaError(path, "has no audio stream")
        try:
            if video_streams:
                stream = video_streams[0]
                rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                fps = float(rate) if rate else None
                decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
                frames = np.stack(decoded) if decoded else np.zeros((0, 0, 0, 3), np.uint8)
                container.seek(0)
            if audio_streams:
                stream = audio_streams[0]
                sample_rate = int(stream.rate or stream.codec_context.sample_rate)
                chunks = []
                for frame in container.decode(stream):
                    array = frame.to_ndarray()
                    if not frame.format.is_planar:  # interleaved (1, N*C) -> (C, N)
                        array = array.reshape(-1, len(frame.layout.channels)).T
                    chunks.append(_to_float32(array))
                channels = audio_streams[0].codec_context.channels or 1
                audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
        except av.error.FFmpegError as exc:
            raise MediaError(path, f"is corrupt: decoding failed ({exc})") from exc
    if need_video and (frames is None or len(frames) == 0):
        raise MediaError(path, "video stream holds no decodable frames")
    if need_video and not fps:
        raise MediaError(path, "video stream has no frame rate")
    if need_audio and (audio is None or audio.shape[-1] == 0):
        raise MediaError(path, "audio stream holds no decodable samples")
    return DecodedMedia(path, digest, frames, fps, audio, sample_rate)


def _to_float32(array: np.ndarray) -> np.ndarray:
    """Integer PCM -> float32 in [-1, 1]; float input is passed through as float32."""
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32, copy=False)
    info = np.iinfo(array.dtype)
    if info.min == 0:  # unsigned 8-bit PCM is offset binary
        return ((array.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    return (array.astype(np.float32) / float(-info.min)).astype(np.float32)


def write_mp4(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None,
    sample_rate: int | None,
    *,
    crf: int = 23,
    audio_bitrate: int = 96_000,
) -> Path:
    """Write an H.264 (yuv420p) + AAC mp4 atomically (temporary file in the same folder, then rename).

    Args:
        path: destination ``.mp4``.
        frames: ``(T, H, W, 3)`` uint8 RGB; H and W must be even (yuv420p).
        fps: frames per second.
        audio: ``(C, N)`` or ``(N,)`` float32 in [-1, 1], or None for a silent-less video-only file.
        sample_rate: audio rate in Hz (required with audio).
        crf: x264 constant rate factor (lower is better quality).

    Bytes are not guaranteed identical across processes for the same frames (libx264 was seen to differ on
    tiny noise frames now and then); outputs are identified by the sha256 of the file actually written.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ValueError("cannot write a video with zero frames")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"frame size must be even for yuv420p, got {width}x{height}")
    with atomic_output(path, suffix=".mp4.part") as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(100_000))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": str(crf), "preset": "medium"}
        audio_stream = None
        if audio is not None:
            if not sample_rate:
                raise ValueError("sample_rate is required when audio is given")
            audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
            layout = {1: "mono", 2: "stereo"}.get(audio.shape[0])
            if layout is None:
                raise ValueError(f"audio must have 1 or 2 channels, got {audio.shape[0]}")
            audio_stream = container.add_stream("aac", rate=int(sample_rate), layout=layout)
            audio_stream.bit_rate = audio_bitrate
        for rgb in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(video.encode())
        if audio_stream is not None:
            assert audio is not None and sample_rate is not None
            frame_size = audio_stream.codec_context.frame_size or 1024
            clipped = np.clip(audio, -1.0, 1.0)
            for start in range(0, clipped.shape[1], frame_size):
                chunk = np.ascontiguousarray(clipped[:, start : start + frame_size])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=audio_stream.layout.name)
                frame.sample_rate = int(sample_rate)
                frame.pts = start
                container.mux(audio_stream.encode(frame))
            container.mux(audio_stream.encode())
    return path
