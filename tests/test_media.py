"""Media I/O: round trip, resampling, frame sampling, and errors that name the file."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from idlora_bench.core.errors import MediaError
from idlora_bench.data.media import (
    decode,
    resample_audio,
    uniform_frame_indices,
    write_mp4,
)


def _av(path: Path, frames: int = 25, rate: int = 48_000, tone: float = 440.0) -> tuple[np.ndarray, np.ndarray]:
    video = np.zeros((frames, 64, 48, 3), np.uint8)
    video[:, :, :, 0] = np.linspace(0, 255, frames, dtype=np.uint8)[:, None, None]  # red ramps over time
    t = np.arange(int(frames / 25 * rate)) / rate
    audio = (0.5 * np.sin(2 * np.pi * tone * t)).astype(np.float32)
    write_mp4(path, video, 25, audio, rate)
    return video, audio


def test_round_trip_keeps_frames_rate_and_audio(tmp_path: Path) -> None:
    video, audio = _av(tmp_path / "a.mp4")
    media = decode(tmp_path / "a.mp4")
    assert media.frames is not None and media.frames.shape == video.shape
    assert media.fps == 25.0 and media.sample_rate == 48_000
    assert abs(media.audio_duration_s - 1.0) < 0.01  # AAC pads at most one 1024-sample frame
    assert np.abs(media.frames[:, :, :, 0].mean(axis=(1, 2)) - video[:, 0, 0, 0]).max() < 4
    decoded = media.audio[0, 2000:40000]
    assert np.corrcoef(decoded, audio[2000:40000])[0, 1] > 0.99
    assert len(media.sha256) == 64


def test_mono_resampled_keeps_tone_frequency(tmp_path: Path) -> None:
    _av(tmp_path / "a.mp4", tone=1000.0)
    mono = decode(tmp_path / "a.mp4").mono(16_000)
    assert abs(len(mono) - 16_000) < 400
    spectrum = np.abs(np.fft.rfft(mono))
    peak_hz = np.argmax(spectrum) * 16_000 / len(mono)
    assert abs(peak_hz - 1000.0) < 5.0


def test_resample_audio_length_and_identity() -> None:
    x = np.random.default_rng(0).standard_normal((2, 48_000)).astype(np.float32)
    assert resample_audio(x, 48_000, 16_000).shape == (2, 16_000)
    assert resample_audio(x, 48_000, 48_000) is x or np.array_equal(resample_audio(x, 48_000, 48_000), x)


def test_uniform_frame_indices_match_linspace_rule() -> None:
    assert uniform_frame_indices(121, 5).tolist() == [0, 30, 60, 90, 120]
    assert uniform_frame_indices(10, 5).tolist() == [0, 2, 4, 7, 9]
    assert uniform_frame_indices(1, 5).tolist() == [0, 0, 0, 0, 0]
    with pytest.raises(ValueError):
        uniform_frame_indices(0, 5)


def test_missing_empty_and_corrupt_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"nope.mp4: does not exist"):
        decode(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty.mp4: is empty"):
        decode(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(MediaError, match=r"junk.mp4: cannot be opened"):
        decode(tmp_path / "junk.mp4")


def test_truncated_file_is_an_error_naming_it(tmp_path: Path) -> None:
    _av(tmp_path / "a.mp4")
    data = (tmp_path / "a.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError, match=r"cut.mp4"):
        decode(tmp_path / "cut.mp4")


def test_missing_streams_are_reported(tmp_path: Path) -> None:
    write_mp4(tmp_path / "silent.mp4", np.zeros((5, 16, 16, 3), np.uint8), 25, None, None)
    with pytest.raises(MediaError, match=r"silent.mp4: has no audio stream"):
        decode(tmp_path / "silent.mp4")
    assert decode(tmp_path / "silent.mp4", need_audio=False).num_frames == 5
    with av.open(str(tmp_path / "audio.m4a"), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16_000, layout="mono")
        samples = np.zeros((1, 1024), np.float32)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16_000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(MediaError, match=r"audio.m4a: has no video stream"):
        decode(tmp_path / "audio.m4a")


def test_write_rejects_bad_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "x.mp4", np.zeros((2, 15, 16, 3), np.uint8), 25, None, None)
    with pytest.raises(ValueError, match="zero frames"):
        write_mp4(tmp_path / "x.mp4", np.zeros((0, 16, 16, 3), np.uint8), 25, None, None)
    assert not list(tmp_path.iterdir())  # nothing half-written
