"""The reference-audio front end shared by inference (``pipeline.py``) and training (``dataset.py``): a clip ->
the LTX-2 audio VAE's log-mel input.

Channels -> stereo (mono duplicated), resampled to 16 kHz (scipy polyphase; the authors use torchaudio's sinc
resampler: both band-limited, values differ slightly), STFT n_fft 1024, hop 160 (10 ms), Hann window, centred
reflect padding, magnitude, Slaney mel scale and norm, 0-8 kHz, ``log(max(x, 1e-5))``; 64 bins for LTX-2.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from reference_impl.idlora import positions as pos

MEL_N_FFT = 1024
MEL_LOG_FLOOR = 1e-5


def slaney_mel_filterbank(
    n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular mel filters on the Slaney mel scale with Slaney (area) normalisation: ``(n_freqs, n_mels)``.

    Slaney scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4).
    """
    f_max = sample_rate / 2.0 if f_max is None else f_max
    f_sp, min_log_hz, min_log_mel = 200.0 / 3.0, 1000.0, 15.0
    log_step = math.log(6.4) / 27.0

    def hz_to_mel(freq: np.ndarray) -> np.ndarray:
        freq = np.asarray(freq, dtype=np.float64)
        return np.where(freq < min_log_hz, freq / f_sp,
                        min_log_mel + np.log(np.maximum(freq, 1e-10) / min_log_hz) / log_step)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        return np.where(mel < min_log_mel, mel * f_sp, min_log_hz * np.exp(log_step * (mel - min_log_mel)))

    all_freqs = np.linspace(0.0, sample_rate // 2, n_freqs)
    mel_points = np.linspace(hz_to_mel(np.array(f_min)), hz_to_mel(np.array(f_max)), n_mels + 2)
    hz_points = mel_to_hz(mel_points)
    spacing = np.diff(hz_points)
    slopes = hz_points[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / spacing[:-1]
    up = slopes[:, 2:] / spacing[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    filters *= (2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels]))[None, :]
    return torch.from_numpy(filters.astype(np.float32))


def reference_log_mel(
    waveform: np.ndarray | torch.Tensor,
    sample_rate: int,
    *,
    n_mels: int = 64,
    target_rate: int = pos.AUDIO_SAMPLE_RATE,
    hop_length: int = pos.MEL_HOP_LENGTH,
    n_fft: int = MEL_N_FFT,
) -> torch.Tensor:
    """Reference clip -> the audio VAE's input: ``(1, 2, T_mel, n_mels)`` float32 log-mel.

    Args:
        waveform: ``(N,)`` mono or ``(C, N)`` with C in {1, 2}, float in [-1, 1], at ``sample_rate`` Hz.
        sample_rate: its rate in Hz (resampled to ``target_rate`` = 16 kHz with a polyphase filter).

    ``T_mel = N_16k // hop + 1`` (centred frames, 10 ms each); mono is duplicated to stereo.
    """
    from idlora_bench.data.media import resample_audio

    audio = np.asarray(waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else waveform,
                       dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise ValueError(f"reference audio must be (N,) or (C, N) with C in 1..2, got shape {audio.shape}")
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    audio = resample_audio(audio, int(sample_rate), target_rate)
    if audio.shape[-1] <= n_fft // 2:
        raise ValueError(f"reference audio too short: {audio.shape[-1]} samples at {target_rate} Hz; need more than "
                         f"{n_fft // 2} ({(n_fft // 2) / target_rate * 1000:.0f} ms)")
    signal = torch.from_numpy(np.ascontiguousarray(audio))
    spectrum = torch.stft(
        signal, n_fft=n_fft, hop_length=hop_length, win_length=n_fft, window=torch.hann_window(n_fft),
        center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
    ).abs()  # (2, n_fft // 2 + 1, T) magnitude (power 1)
    filters = slaney_mel_filterbank(n_fft // 2 + 1, n_mels, target_rate, 0.0, target_rate / 2.0)
    mel = torch.einsum("cft,fm->ctm", spectrum, filters)
    return torch.log(torch.clamp(mel, min=MEL_LOG_FLOOR))[None].to(torch.float32)

