"""What one ID-LoRA generation returns (:class:`IDLoRAOutput`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class IDLoRAOutput:
    """Result of one generation.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB.
        fps: frames per second.
        audio: ``(C, N)`` float32 in [-1, 1] (C = 2 for LTX-2's vocoder).
        sample_rate: audio rate in Hz.
        video_latents: ``(1, C, F_lat, H_lat, W_lat)`` normalised latents after sampling.
        audio_latents: ``(1, N_target, C_audio)`` packed normalised target audio latents after sampling.
        reference_latents: ``(1, N_ref, C_audio)`` packed normalised clean reference latents (None without).
        info: parameters actually used (resolution, token counts, sigmas, passes, guidance).
    """

    frames: np.ndarray
    fps: float
    audio: np.ndarray
    sample_rate: int
    video_latents: torch.Tensor
    audio_latents: torch.Tensor
    reference_latents: torch.Tensor | None
    info: dict[str, Any] = field(default_factory=dict)

