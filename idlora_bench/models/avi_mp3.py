"""The audio path of joonson/syncnet_python's ``run_pipeline.py``: an MP3 round trip inside an AVI container.

``run_pipeline.py`` (syncnet_python @6efbb1c, the LSE evaluation most papers run) first re-encodes the input with
``ffmpeg -y -i VIDEO -qscale:v 2 -async 1 -r 25 pyavi/video.avi`` and later extracts the audio with ``ffmpeg -y -i
video.avi -ac 1 -vn -acodec pcm_s16le -ar 16000 audio.wav``. FFmpeg's AVI muxer encodes audio as MP3 by default
(libmp3lame, 128 kbit/s); AVI stores no encoder-delay metadata, so the decoder's output keeps the encoder's
priming samples: the audio starts later than the video by LAME's delay (576 + 529 = 1105 samples, about 23 ms at
48 kHz and 46 ms at 24 kHz) and is MP3-coded. :func:`mp3_in_avi_round_trip` does exactly this with PyAV's bundled
FFmpeg (libmp3lame encoder, AVI muxer and demuxer, mp3float decoder), in memory.

Shapes: ``(C, N)`` float32 in [-1, 1] at ``sample_rate`` -> ``(C, M)`` float32 at ``sample_rate``,
``M >= N + 1105`` (whole 1152-sample MP3 frames).
"""

from __future__ import annotations

import io

import av
import numpy as np

MP3_BIT_RATE = 128_000  # FFmpeg's default audio bit rate ("b" = 128k for libmp3lame)


def mp3_in_avi_round_trip(audio: np.ndarray, sample_rate: int, bit_rate: int = MP3_BIT_RATE) -> np.ndarray:
    """Encode ``audio`` as MP3 in an AVI container and decode it back, priming samples kept (see the module)."""
    audio = np.atleast_2d(np.asarray(audio, np.float32))
    layout = {1: "mono", 2: "stereo"}.get(audio.shape[0])
    if layout is None:
        raise ValueError(f"audio must have 1 or 2 channels, got shape {audio.shape}")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="avi") as container:
        stream = container.add_stream("libmp3lame", rate=int(sample_rate), layout=layout)
        stream.bit_rate = bit_rate
        frame_size = stream.codec_context.frame_size or 1152
        clipped = np.clip(audio, -1.0, 1.0)
        for start in range(0, clipped.shape[1], frame_size):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(clipped[:, start:start + frame_size]),
                                               format="fltp", layout=layout)
            frame.sample_rate = int(sample_rate)
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    buffer.seek(0)
    decoded = []
    with av.open(buffer, mode="r", format="avi") as container:
        for frame in container.decode(audio=0):
            decoded.append(frame.to_ndarray().reshape(audio.shape[0], -1).astype(np.float32))
    return np.concatenate(decoded, axis=1)
