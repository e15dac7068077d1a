"""The stand-in speech of TTS parts in fake mode (the cascade's ``model=tiny-random``): no model, no network.

The reference clip's own audio, mono, 16 kHz, looped or cut to the length the transcript would take at
2.5 words per second (at least 1 s), with 10 ms fades. It keeps the reference voice (so speaker metrics behave) and
says the wrong words (so WER does not): enough to run every step of a cascade on CPU; results are smoke.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from baselines.audio_io import read_audio, write_wav
from idlora_bench.data.media import resample_audio, to_mono

FAKE_RATE = 16_000
WORDS_PER_SECOND = 2.5


def fake_speech_duration_s(transcript: str) -> float:
    """Seconds of fake speech for ``transcript`` (2.5 words/s, at least 1 s)."""
    return max(1.0, len(transcript.split()) / WORDS_PER_SECOND)


def write_fake_speech(reference_path: Path, transcript: str, out_wav: Path) -> dict[str, float | int | str]:
    """Write the fake speech for ``transcript`` in the voice of ``reference_path`` to ``out_wav``; return details."""
    audio, rate = read_audio(reference_path)
    mono = resample_audio(to_mono(audio), rate, FAKE_RATE)
    if mono.size == 0 or not np.any(mono):
        raise ValueError(f"{reference_path}: the reference clip has no audio signal to clone")
    length = int(round(fake_speech_duration_s(transcript) * FAKE_RATE))
    speech = np.resize(mono, length).astype(np.float32)
    fade = min(int(0.01 * FAKE_RATE), length // 2)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    speech[:fade] *= ramp
    speech[length - fade:] *= ramp[::-1]
    write_wav(out_wav, speech, FAKE_RATE)
    return {"fake": "reference audio looped to the transcript's length", "seconds": length / FAKE_RATE,
            "sample_rate": FAKE_RATE}
