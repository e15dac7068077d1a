"""Lip sync, paper profile: SyncNet v2 LSE-D as joonson's ``run_pipeline.py`` measures it (``lse_d.syncnet_run_pipeline``).

The ID-LoRA authors released no LSE code (no SyncNet call anywhere in their repository; their environment carries
syncnet_python's dependencies ``python-speech-features`` and ``scenedetect``, ``packages/ltx-trainer/pyproject.toml:39``).
The usual way to get the paper's LSE-D/LSE-C is joonson/syncnet_python's ``run_pipeline.py`` followed by
``calculate_scores_real_videos.py`` / ``run_syncnet.py``. This variant is the standard pinned pipeline
(:mod:`idlora_bench.metrics.lse_d_syncnet`) with the one thing that pipeline does to the audio before SyncNet hears
it: the re-encode to AVI, whose default audio codec is MP3 and whose demuxer keeps the encoder's priming samples,
so the audio arrives 1105 samples late (23 ms at 48 kHz, 46 ms at 24 kHz) and MP3-coded
(:func:`idlora_bench.models.avi_mp3.mp3_in_avi_round_trip`). The round trip runs at the file's native rate, then the
audio is downmixed and resampled to 16 kHz as in the standard metric.

Not emulated (out of reach or measured as negligible beside the delay): the lossy MPEG-4 (``-qscale:v 2``) and JPEG
re-encodes of the frames and the XVID crop videos, and ``-async 1``'s start padding. A late audio track of 23-46 ms is
about a full video frame at 25 fps: SyncNet's best offset moves by about one frame and LSE-D/LSE-C shift with it.
"""

from __future__ import annotations

import numpy as np

from idlora_bench.data.media import DecodedMedia, resample_audio, to_mono
from idlora_bench.metrics.lse_d_syncnet import LipSyncSyncNet
from idlora_bench.models.avi_mp3 import MP3_BIT_RATE, mp3_in_avi_round_trip
from idlora_bench.models.syncnet import PINNED


class LipSyncSyncNetRunPipeline(LipSyncSyncNet):
    name = "lse_d.syncnet_run_pipeline"
    features_id = "syncnet_v2.lse_run_pipeline"  # shared with lse_c.syncnet_run_pipeline
    version = "1"
    params = {**PINNED.as_params(), "audio_round_trip": f"MP3 in AVI, libmp3lame {MP3_BIT_RATE} bit/s, "
                                                        "native rate, priming samples kept"}
    description = "SyncNet v2 LSE-D after run_pipeline.py's AVI/MP3 round trip of the audio (delay kept)"
    paper_reference = "ID-LoRA Sec. 5.1, Tables 1-2 (SyncNet, as joonson/syncnet_python run_pipeline.py measures it)"

    def audio_16k(self, media: DecodedMedia) -> np.ndarray:
        """The MP3-in-AVI round trip at the native rate, then mono at 16 kHz: ``(N,)`` float32."""
        audio = media.require_audio()
        assert media.sample_rate is not None
        coded = mp3_in_avi_round_trip(audio, int(media.sample_rate))
        return resample_audio(to_mono(coded), int(media.sample_rate), PINNED.sample_rate_hz)
