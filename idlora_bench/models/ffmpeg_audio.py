"""The ffmpeg command line's audio conversion, in process: libswresample through PyAV.

The ID-LoRA authors' metric code reads audio through the ``ffmpeg`` binary:

- CLAP (``evaluation_metrics.py:696-700``, ID-LoRA commit 399bf3e):
  ``ffmpeg -i VIDEO -vn -acodec pcm_s16le -ar 16000 -ac 1 -t 30 OUT.wav``;
- Whisper (transformers' ``pipelines/audio_utils.py:ffmpeg_read``, which the ASR pipeline calls on a path,
  ``evaluation_metrics.py:999-1003``): ``ffmpeg -i pipe:0 -ac 1 -ar 16000 -f f32le pipe:1``.

In both, the ffmpeg CLI decodes the stream and converts it in its output filter graph, where an ``aformat`` filter
(target sample format, rate and layout) makes libavfilter insert one ``aresample`` filter, i.e. one libswresample
context with its default options. PyAV's :class:`av.AudioResampler` builds the same
``abuffer -> aformat -> abuffersink`` graph ("similar to configure_output_audio_filter from ffmpeg", its source
says) on the same libraries, so :func:`swresample` reproduces that conversion on audio decoded in process, without
an ffmpeg binary. Measured against the ffmpeg 9.0 CLI (PyAV 18.1 bundles libswresample 6.3) on four AAC mp4s
(24/44.1/48/16 kHz, mono and stereo, written by ``write_mp4``): every output sample equal, for both commands (the
f32le one run on the file; through a pipe, as ``ffmpeg_read`` does, two of the four mp4s could not be demuxed at
all), except the last ~16 (the CLI also ends at the mp4's edit-list duration, dropping the AAC end padding).

libswresample's downmix, as measured here (tests/test_paper_authors_clap_wer.py):
- integer output (``s16``): stereo -> mono is ``0.5 * (L + R)``, the channel mean (the matrix is normalised so
  that no output exceeds full scale), rounded to int16, no dither;
- float output (``flt``): ``0.7071 * (L + R)``, not normalised: +3 dB over the mean for a signal equal in both
  channels.

Shapes: input ``(C, N)`` float32 (channels first, values in [-1, 1], as :class:`~idlora_bench.data.media.DecodedMedia`
holds them); output ``(N',)`` float32, ``N' ~= N * to_rate / rate``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

SampleFormat = Literal["flt", "s16"]
_LAYOUTS = {1: "mono", 2: "stereo"}


def _input_layout(channels: int) -> str:
    """ffmpeg's default layout name for a channel count (what its decoders report for plain mono/stereo)."""
    import av

    return _LAYOUTS.get(channels) or av.AudioLayout(channels).name


def swresample(audio: np.ndarray, rate: int, to_rate: int, layout: str = "mono",
               fmt: SampleFormat = "flt") -> np.ndarray:
    """Convert ``audio`` as the ffmpeg CLI's output filter graph does (libswresample via PyAV).

    Args:
        audio: ``(C, N)`` or ``(N,)`` float32 samples in [-1, 1] at ``rate`` Hz (planar float, as decoded).
        rate: input sample rate in Hz.
        to_rate: output sample rate in Hz (ffmpeg ``-ar``).
        layout: output channel layout (ffmpeg ``-ac 1`` is ``"mono"``); only mono output is supported.
        fmt: output sample format: ``"flt"`` (``-f f32le``) or ``"s16"`` (``-acodec pcm_s16le``).

    Returns:
        ``(N',)`` float32 mono samples at ``to_rate``. For ``s16`` the int16 values divided by 32768 (what
        ``soundfile.read(..., dtype="float32")`` returns for a 16-bit WAV).
    """
    import av

    if layout != "mono":
        raise ValueError(f"only mono output is supported, got layout {layout!r}")
    if fmt not in ("flt", "s16"):
        raise ValueError(f"fmt must be 'flt' or 's16', got {fmt!r}")
    if rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {rate} -> {to_rate}")
    planar = np.ascontiguousarray(np.atleast_2d(audio), dtype=np.float32)  # (C, N)
    channels, samples = planar.shape
    if samples == 0:
        return np.zeros(0, np.float32)
    frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=_input_layout(channels))
    frame.sample_rate = rate
    frame.pts = 0
    resampler = av.AudioResampler(format=fmt, layout=layout, rate=to_rate)
    chunks = [out.to_ndarray().reshape(-1) for out in (*resampler.resample(frame), *resampler.resample(None))]
    if not chunks:
        return np.zeros(0, np.float32)
    out = np.concatenate(chunks)
    if fmt == "s16":
        return (out.astype(np.float32) / 32768.0).astype(np.float32)
    return out.astype(np.float32, copy=False)
