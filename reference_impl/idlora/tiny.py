"""Tiny random LTX-2 components that build and run on CPU in milliseconds (tests and smoke runs only).

Results made with them are smoke configurations: tables meant for comparison refuse them.
"""

from __future__ import annotations

import torch

# Widths must agree: cross_attention_dim == video width (heads x head dim), audio_cross_attention_dim ==
# audio width (audio heads x audio head dim).
TINY_TRANSFORMER_CONFIG: dict[str, int] = {
    "in_channels": 8,
    "out_channels": 8,
    "num_attention_heads": 2,
    "attention_head_dim": 8,
    "cross_attention_dim": 16,
    "audio_in_channels": 4,
    "audio_out_channels": 4,
    "audio_num_attention_heads": 2,
    "audio_attention_head_dim": 4,
    "audio_cross_attention_dim": 8,
    "num_layers": 2,
    "caption_channels": 12,
}


def tiny_transformer(seed: int = 0, **overrides: int):  # -> LTX2VideoTransformer3DModel
    """A seeded tiny random ``LTX2VideoTransformer3DModel`` (eval mode, float32)."""
    from diffusers import LTX2VideoTransformer3DModel

    torch.manual_seed(seed)
    model = LTX2VideoTransformer3DModel(**{**TINY_TRANSFORMER_CONFIG, **overrides})
    return model.eval()
