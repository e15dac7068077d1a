"""Windowed-sinc resampling with torchaudio's defaults, without torchaudio.

The ID-LoRA authors resample speaker-similarity audio with ``torchaudio.transforms.Resample(sr, 16000)``
(``evaluation_metrics.py:284-286``, commit 399bf3e): a band-limited sinc interpolation with a Hann window,
``lowpass_filter_width`` 6 zero crossings and ``rolloff`` 0.99 of the lower Nyquist rate, applied as a strided
``conv1d`` of one filter per output phase (torchaudio 2.9 ``functional/functional.py``,
``_get_sinc_resample_kernel`` and ``_apply_sinc_resample_kernel``). torchaudio's PyPI build does not load beside
the CPU torch this project pins, so the same filter is computed here with torch alone: the kernel in float64 and
stored as float32 (as ``Resample`` does with its default ``dtype=None``, whose phase offsets are float32), the signal
filtered in float32. Checked once against torchaudio 2.9.1's ``Resample`` from 8, 22.05, 24, 32, 44.1 and 48 kHz
to 16 kHz: identical kernels and outputs.

Shapes: ``(..., N)`` float32 at ``orig_hz`` -> ``(..., ceil(N * new_hz / orig_hz))`` float32 at ``new_hz``.
"""

from __future__ import annotations

import math

import torch

LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99


def sinc_hann_kernel(orig_hz: int, new_hz: int, lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
                     rolloff: float = ROLLOFF) -> tuple[torch.Tensor, int]:
    """Polyphase filter bank ``(new, 1, 2 * width + orig)`` for the reduced ratio ``orig / new`` and its half width.

    Output phase ``j`` (0..new-1) sits at input time ``j * orig / new``; tap ``i`` of it weights input sample
    ``i - width`` (relative to the stride start) by ``sinc(pi * f_c * dt) * hann(dt) * f_c / orig`` with
    ``dt = (i - width) / orig - j / new`` in reduced-rate units, ``f_c = min(orig, new) * rolloff`` and the Hann
    window ``cos(pi * dt * f_c / (2 * width_zc))^2`` clamped to ``lowpass_filter_width`` zero crossings.
    """
    gcd = math.gcd(int(orig_hz), int(new_hz))
    orig, new = int(orig_hz) // gcd, int(new_hz) // gcd
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    taps = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    # torchaudio builds the phase offsets from an integer arange divided in float32, then adds the float64 taps
    phases = (torch.arange(0, -new, -1)[:, None, None] / new).to(torch.float32)
    t = ((phases + taps) * base).clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    return (sinc * window * (base / orig)).to(torch.float32), width


def resample(waveform: torch.Tensor, orig_hz: int, new_hz: int) -> torch.Tensor:
    """Resample ``(..., N)`` float audio from ``orig_hz`` to ``new_hz`` (identity when equal)."""
    if not waveform.is_floating_point():
        raise TypeError(f"expected a floating-point waveform, got {waveform.dtype}")
    if int(orig_hz) == int(new_hz):
        return waveform
    kernel, width = sinc_hann_kernel(orig_hz, new_hz)
    gcd = math.gcd(int(orig_hz), int(new_hz))
    orig, new = int(orig_hz) // gcd, int(new_hz) // gcd
    shape = waveform.shape
    flat = waveform.reshape(-1, shape[-1])
    length = flat.shape[-1]
    padded = torch.nn.functional.pad(flat, (width, width + orig))
    out = torch.nn.functional.conv1d(padded[:, None], kernel.to(flat.dtype), stride=orig)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)[:, : math.ceil(new * length / orig)]
    return out.reshape(*shape[:-1], out.shape[-1])
