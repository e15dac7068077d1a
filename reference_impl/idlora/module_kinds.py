"""The module kinds of an LTX-2 transformer block that the ID-LoRA recipe adapts (audio path) or leaves alone
(video path), shared by the LoRA injection (``lora.py``) and the checkpoint key converter (``convert.py``)."""

from __future__ import annotations

#: The 18 audio-path module kinds of the released ID-LoRA checkpoints (path below ``transformer_blocks.<i>.``).
AUDIO_PATH_MODULE_KINDS: tuple[str, ...] = (
    "audio_attn1.to_q",
    "audio_attn1.to_k",
    "audio_attn1.to_v",
    "audio_attn1.to_out.0",
    "audio_attn2.to_q",
    "audio_attn2.to_k",
    "audio_attn2.to_v",
    "audio_attn2.to_out.0",
    "audio_to_video_attn.to_q",
    "audio_to_video_attn.to_k",
    "audio_to_video_attn.to_v",
    "audio_to_video_attn.to_out.0",
    "video_to_audio_attn.to_q",
    "video_to_audio_attn.to_k",
    "video_to_audio_attn.to_v",
    "video_to_audio_attn.to_out.0",
    "audio_ff.net.0.proj",
    "audio_ff.net.2",
)

#: Video-only module kinds of an LTX-2 block: they must never get an adapter in this recipe.
VIDEO_MODULE_KINDS: tuple[str, ...] = (
    "attn1.to_q",
    "attn1.to_k",
    "attn1.to_v",
    "attn1.to_out.0",
    "attn2.to_q",
    "attn2.to_k",
    "attn2.to_v",
    "attn2.to_out.0",
    "ff.net.0.proj",
    "ff.net.2",
)

BLOCK_PREFIX = "transformer_blocks."


def module_kind(module_name: str) -> str:
    """``transformer_blocks.3.audio_attn1.to_q`` -> ``audio_attn1.to_q`` (``ValueError`` outside the blocks)."""
    if not module_name.startswith(BLOCK_PREFIX):
        raise ValueError(f"{module_name!r} is not inside transformer_blocks")
    rest = module_name[len(BLOCK_PREFIX) :]
    index, _, kind = rest.partition(".")
    if not index.isdigit() or not kind:
        raise ValueError(f"{module_name!r} is not of the form transformer_blocks.<i>.<kind>")
    return kind
