"""Audio token time intervals and the reference's negative temporal positions (ID-LoRA Sec. 3.2).

Units: every interval is ``[start, end)`` in **seconds**. One audio latent (= one audio token; LTX-2's audio
patchifier puts 8 channels x 16 mel bins of one latent step into one token of width 128) covers 4 mel frames
of 10 ms (16 kHz audio, mel hop 160 samples, 4x temporal downsampling in the audio VAE): 40 ms. The audio
VAE is causal, so the first latent only sees one mel frame:

    token i spans [max(0, 4i - 3) * 0.01, (4i + 1) * 0.01) seconds
    (i = 0: [0, 0.01); i = 1: [0.01, 0.05); i = 2: [0.05, 0.09); ...)

which is what diffusers' ``LTX2AudioVideoRotaryPosEmbed.prepare_audio_coords`` computes.

Reference tokens (the clean reference clip, put *before* the noisy target tokens in the audio sequence)
get the standard intervals of their own index, shifted by ``-(D + 0.04)``, where ``D = (4N - 3) * 0.01``
is the end bound of the last of the N reference tokens. The reference therefore occupies negative time
and its last interval ends exactly one latent step (40 ms) before the target's 0; spacing inside the
reference is unchanged, and the target keeps its pretrained positions.

How diffusers consumes the intervals: ``LTX2VideoTransformer3DModel.forward(audio_coords=...)`` takes a
``(B, 1, N, 2)`` tensor of ``[start, end)`` seconds; ``LTX2AudioVideoRotaryPosEmbed.forward`` reduces it to
the interval **midpoints** ``(start + end) / 2`` (no clamping there, so negative midpoints reach RoPE),
divides by ``audio_pos_embed_max_pos`` (20) and builds the rotary tables. The same audio coordinates feed
the audio self-attention RoPE and (through ``cross_attn_audio_rope``) the audio side of the audio<->video
cross-attention RoPE, so the reference is also "before" the video in cross-attention time.

Ablations (``ReferencePositions``):
- ``"negative"``: the released ID-LoRA rule above (default).
- ``"standard"``: the reference gets the standard intervals from 0, i.e. the same positions as the first
  target tokens (the paper's Table 3 "standard positional encoding" ablation, reference at positive
  positions overlapping the target).
- ``"after"``: the reference is placed at positive positions after the target, mirroring the negative
  rule: standard intervals shifted by ``+(D_target + 0.04)`` with ``D_target`` the end bound of the last
  target token (disjoint positive region; not in the paper, offered for ablations).

Precision (``positions_dtype``): the authors build the reference positions in bfloat16, at inference
(``scripts/inference_two_stage.py:621-635, 677-695``, commit 399bf3e) and in training
(``training_strategies/audio_ref_only_ic.py:248-267, 414-438``), so the released LoRAs learned the rounded values:
``((bf16(grid_f32) - D_bf16) -> bf16) - 0.04 -> bf16``, then promoted to float32 beside the float32 target rows. For
a 5 s reference (126 tokens) ``D`` rounds from 5.01 to 5.0, the first token becomes ``[-5.03125, -5.03125)`` and the
interval midpoints move by up to 0.029 s (73% of a latent step). ``"bfloat16"`` (default) reproduces that exactly;
``"float32"`` gives the exact shift ``-(D + 0.04)``. Training in the authors' code also rounds the TARGET rows to
bfloat16 (``training_target_dtype``); at inference the target rows stay float32.
"""

from __future__ import annotations

from typing import Literal

import torch

AUDIO_SAMPLE_RATE = 16_000
"""Hz: the rate the audio VAE's mel front end runs at."""
MEL_HOP_LENGTH = 160
"""samples: one mel frame = 10 ms at 16 kHz."""
AUDIO_TEMPORAL_DOWNSAMPLE = 4
"""mel frames per audio latent (the audio VAE's temporal compression)."""
CAUSAL_OFFSET = 1
"""mel frames seen by the first (causal) latent."""
LATENT_STEP_S = MEL_HOP_LENGTH * AUDIO_TEMPORAL_DOWNSAMPLE / AUDIO_SAMPLE_RATE
"""0.04 s: one audio latent step; also the gap between the reference's end and the target's 0."""

ReferencePositions = Literal["negative", "standard", "after"]
REFERENCE_POSITION_MODES: tuple[str, ...] = ("negative", "standard", "after")
PositionsDtype = Literal["bfloat16", "float32"]
POSITIONS_DTYPES: tuple[str, ...] = ("bfloat16", "float32")


def audio_token_intervals(
    num_tokens: int,
    *,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    hop_length: int = MEL_HOP_LENGTH,
    downsample: int = AUDIO_TEMPORAL_DOWNSAMPLE,
    causal_offset: int = CAUSAL_OFFSET,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Standard ``[start, end)`` intervals in seconds of ``num_tokens`` audio tokens, shape ``(N, 2)``.

    ``start_i = max(0, downsample*i + causal_offset - downsample) * hop / sr`` and
    ``end_i = max(0, downsample*(i+1) + causal_offset - downsample) * hop / sr``; with the LTX-2 values
    (16 kHz, hop 160, x4, offset 1): ``[max(0, 4i-3) * 0.01, (4i+1) * 0.01)``.
    """
    if num_tokens < 0:
        raise ValueError(f"num_tokens must be >= 0, got {num_tokens}")
    index = torch.arange(num_tokens, dtype=torch.float64, device=device)
    seconds_per_mel = hop_length / sample_rate
    start = (index * downsample + causal_offset - downsample).clamp(min=0) * seconds_per_mel
    end = ((index + 1) * downsample + causal_offset - downsample).clamp(min=0) * seconds_per_mel
    return torch.stack([start, end], dim=-1).to(dtype)


def intervals_end_bound(num_tokens: int, **kwargs: object) -> float:
    """End bound ``D`` in seconds of the last of ``num_tokens`` standard intervals: ``(4N - 3) * 0.01``."""
    if num_tokens <= 0:
        return 0.0
    return float(audio_token_intervals(num_tokens, dtype=torch.float64, **kwargs)[-1, 1])  # type: ignore[arg-type]


def authors_grid_f32(num_tokens: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The standard intervals as ltx-core's audio patchifier computes them, in float32 and in its order of operations
    (``frame = arange * 4; frame = (frame + 1 - 4).clip(min=0); seconds = frame * 160 / 16000``), ``(N, 2)``."""
    def bound(first: int) -> torch.Tensor:
        frame = torch.arange(first, num_tokens + first, dtype=torch.float32, device=device) * AUDIO_TEMPORAL_DOWNSAMPLE
        frame = (frame + CAUSAL_OFFSET - AUDIO_TEMPORAL_DOWNSAMPLE).clip(min=0)
        return frame * MEL_HOP_LENGTH / AUDIO_SAMPLE_RATE

    return torch.stack([bound(0), bound(1)], dim=-1)


def reference_token_intervals(
    num_reference_tokens: int,
    *,
    mode: ReferencePositions = "negative",
    num_target_tokens: int | None = None,
    positions_dtype: PositionsDtype = "bfloat16",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``[start, end)`` seconds of the reference tokens, shape ``(N_ref, 2)``.

    Args:
        num_reference_tokens: N, audio latents of the encoded reference clip (126 for 5 s).
        mode: ``"negative"`` (ID-LoRA: shift by ``-(D + 0.04)``), ``"standard"`` (no shift) or ``"after"``
            (shift by ``+(D_target + 0.04)``; needs ``num_target_tokens``).
        positions_dtype: ``"bfloat16"`` reproduces the authors' rounding (module docstring), ``"float32"`` the
            exact shift.
    """
    if mode not in REFERENCE_POSITION_MODES:
        raise ValueError(f"reference position mode must be one of {REFERENCE_POSITION_MODES}, got {mode!r}")
    if positions_dtype not in POSITIONS_DTYPES:
        raise ValueError(f"positions_dtype must be one of {POSITIONS_DTYPES}, got {positions_dtype!r}")
    if positions_dtype == "bfloat16":
        grid = authors_grid_f32(num_reference_tokens, device=device)
        if mode == "standard" or num_reference_tokens == 0:
            return grid.to(torch.bfloat16).to(dtype)
        if mode == "negative":
            bound = float(grid.to(torch.bfloat16)[-1, 1])  # D as the authors read it: .item() of a bf16 tensor
            return ((grid.to(torch.bfloat16) - bound) - LATENT_STEP_S).to(dtype)
        if num_target_tokens is None:
            raise ValueError("mode 'after' needs num_target_tokens")
        bound = float(authors_grid_f32(num_target_tokens, device=device).to(torch.bfloat16)[-1, 1])
        return ((grid.to(torch.bfloat16) + bound) + LATENT_STEP_S).to(dtype)
    standard = audio_token_intervals(num_reference_tokens, dtype=torch.float64, device=device)
    if mode == "negative":
        shift = -(intervals_end_bound(num_reference_tokens) + LATENT_STEP_S)
    elif mode == "standard":
        shift = 0.0
    else:
        if num_target_tokens is None:
            raise ValueError("mode 'after' needs num_target_tokens")
        shift = intervals_end_bound(num_target_tokens) + LATENT_STEP_S
    return (standard + shift).to(dtype)


def audio_coords(
    num_reference_tokens: int,
    num_target_tokens: int,
    *,
    batch_size: int = 1,
    mode: ReferencePositions = "negative",
    positions_dtype: PositionsDtype = "bfloat16",
    training_target_dtype: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Coordinates for ``LTX2VideoTransformer3DModel.forward(audio_coords=...)``: ``(B, 1, N_ref + N_tgt, 2)``.

    The audio sequence is ``[reference ; target]``: the first ``num_reference_tokens`` rows are the
    reference intervals (see :func:`reference_token_intervals`, rounded per ``positions_dtype``), the rest the
    standard target intervals (float32, as at the authors' inference; ``training_target_dtype`` rounds them to
    bfloat16 as the authors' training does when ``positions_dtype`` is ``"bfloat16"``). The target rows do not depend
    on the reference (same values with or without one).
    """
    reference = reference_token_intervals(num_reference_tokens, mode=mode, num_target_tokens=num_target_tokens,
                                          positions_dtype=positions_dtype, dtype=torch.float64, device=device)
    target = audio_token_intervals(num_target_tokens, dtype=torch.float32, device=device).to(torch.float64)
    if training_target_dtype and positions_dtype == "bfloat16":
        target = authors_grid_f32(num_target_tokens, device=device).to(torch.bfloat16).to(torch.float64)
    coords = torch.cat([reference, target], dim=0).to(dtype)
    return coords[None, None].expand(batch_size, 1, -1, -1).contiguous()


def rope_positions(coords: torch.Tensor) -> torch.Tensor:
    """The positions RoPE actually uses: interval midpoints, ``(B, P, N, 2) -> (B, P, N)`` (seconds for time).

    Same reduction as ``LTX2AudioVideoRotaryPosEmbed.forward`` (``(start + end) / 2``).
    """
    start, end = coords.unbind(-1)
    return (start + end) / 2.0
