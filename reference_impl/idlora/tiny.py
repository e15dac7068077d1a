"""Tiny random LTX-2 components that build and run on CPU in milliseconds (tests and smoke runs only).

Results made with them are smoke configurations: tables meant for comparison refuse them.
"""

from __future__ import annotations

from typing import Any, Literal

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


def tiny_transformer(seed: int = 0, **overrides: int | bool):  # -> LTX2VideoTransformer3DModel
    """A seeded tiny random ``LTX2VideoTransformer3DModel`` (eval mode, float32)."""
    from diffusers import LTX2VideoTransformer3DModel

    torch.manual_seed(seed)
    model = LTX2VideoTransformer3DModel(**{**TINY_TRANSFORMER_CONFIG, **overrides})
    return model.eval()


def tiny_latent_upsampler(seed: int = 0, in_channels: int = 8):  # -> LTX2LatentUpsamplerModel
    """A seeded tiny random x2 spatial ``LTX2LatentUpsamplerModel`` (mid 32 channels, the GroupNorm minimum;
    1 block per stage; rational x2 resampler as LTX-2.0), float32, eval mode."""
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    torch.manual_seed(seed)
    return LTX2LatentUpsamplerModel(in_channels=in_channels, mid_channels=32, num_blocks_per_stage=1, dims=3,
                                    spatial_upsample=True, temporal_upsample=False,
                                    rational_spatial_scale=2.0, use_rational_resampler=True).eval()


def tiny_distilled_lora_state_dict(
    transformer: torch.nn.Module, seed: int = 0, rank: int = 4, std: float = 0.1
) -> dict[str, torch.Tensor]:
    """A random LoRA in ltx-core naming (``diffusion_model.transformer_blocks.<i>.<module>.lora_{A,B}.weight``)
    on every video and audio attention projection and FFN of ``transformer``: a stand-in for the distilled
    LoRA on tiny random models (it has no meaning; it only makes stage 2 differ measurably when active).
    ``lora_A``: ``(rank, in)``, ``lora_B``: ``(out, rank)``, both N(0, std^2) (B non-zero, unlike a fresh adapter).
    """
    kinds = ("attn1", "attn2", "audio_attn1", "audio_attn2", "audio_to_video_attn", "video_to_audio_attn")
    projections = ("to_q", "to_k", "to_v", "to_out.0")
    generator = torch.Generator("cpu").manual_seed(int(seed))
    state: dict[str, torch.Tensor] = {}
    for index, block in enumerate(transformer.transformer_blocks):  # type: ignore[union-attr]
        names = [f"{kind}.{proj}" for kind in kinds for proj in projections]
        names += ["ff.net.0.proj", "ff.net.2", "audio_ff.net.0.proj", "audio_ff.net.2"]
        for name in names:
            layer = block.get_submodule(name)
            base = getattr(layer, "base_layer", layer)
            prefix = f"diffusion_model.transformer_blocks.{index}.{name}"
            state[f"{prefix}.lora_A.weight"] = torch.randn((rank, base.in_features), generator=generator) * std
            state[f"{prefix}.lora_B.weight"] = torch.randn((base.out_features, rank), generator=generator) * std
    return state


# The LTX-2.3 architecture switches of ``LTX2VideoTransformer3DModel`` (diffusers 0.42.1,
# ``models/transformers/transformer_ltx2.py:1139-1177``): gated attention, prompt cross-attention AdaLN, no caption
# projection in the transformer (per-modality projections in the connectors) and STG as value pass-through.
LTX23_TRANSFORMER_FLAGS: dict[str, bool] = {
    "gated_attn": True, "audio_gated_attn": True, "cross_attn_mod": True, "audio_cross_attn_mod": True,
    "use_prompt_embeddings": False, "perturbed_attn": True,
}
Version = Literal["2.0", "2.3"]


def tiny_pipeline_components(seed: int = 0, version: Version = "2.0") -> dict[str, Any]:
    """The registered components of a tiny random LTX-2 pipeline (CPU, float32, eval mode), by name.

    ``version="2.3"`` builds the LTX-2.3 architecture (``LTX23_TRANSFORMER_FLAGS``; connectors with per-modality
    projections and gated attention, widths 16 video / 8 audio); the vocoder stays the plain one (the 2.3
    bandwidth-extension vocoder only changes the output rate).

    Compression ratios match LTX-2 (video VAE 32x spatial / 8x temporal, audio VAE 4x in time and mel),
    so token counts follow the real formulas; widths are tiny: 8 video latent channels, audio tokens of
    2 channels x 2 mel bins (8 mel bins in), 2-layer Gemma-3 of width 12, a 2-block transformer
    (``reference_impl.idlora.tiny.TINY_TRANSFORMER_CONFIG``). The vocoder outputs 16 kHz (160 samples
    per mel frame), so durations are right. Text is truncated/padded to 128 tokens.
    """
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        GemmaTokenizer,
    )

    text_hidden = TINY_TRANSFORMER_CONFIG["caption_channels"]  # 12
    text_layers = 2
    max_tokens = 128
    vocab: dict[str, int] = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for byte in range(256):  # byte fallback: every UTF-8 string is encodable
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    tokenizer = GemmaTokenizer(vocab=vocab, model_max_length=max_tokens)

    torch.manual_seed(seed)
    text_config = {
        "vocab_size": len(vocab), "hidden_size": text_hidden, "intermediate_size": 16,
        "num_hidden_layers": text_layers, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
        "max_position_embeddings": 2 * max_tokens, "sliding_window": max_tokens,
    }
    vision_config = {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "image_size": 16, "patch_size": 8}
    text_encoder = Gemma3ForConditionalGeneration(
        Gemma3Config(text_config=text_config, vision_config=vision_config, mm_tokens_per_image=4)
    ).eval()

    torch.manual_seed(seed + 1)
    if version == "2.3":
        width = TINY_TRANSFORMER_CONFIG["cross_attention_dim"]  # connectors project to the transformer widths
        audio_width = TINY_TRANSFORMER_CONFIG["audio_cross_attention_dim"]
        connector_config: dict[str, Any] = {
            "video_connector_attention_head_dim": width // 2, "audio_connector_attention_head_dim": audio_width // 2,
            "per_modality_projections": True, "video_hidden_dim": width, "audio_hidden_dim": audio_width,
            "video_gated_attn": True, "audio_gated_attn": True,
        }
    else:
        connector_config = {"video_connector_attention_head_dim": text_hidden // 2,
                            "audio_connector_attention_head_dim": text_hidden // 2}
    connectors = LTX2TextConnectors(
        caption_channels=text_hidden, text_proj_in_factor=text_layers + 1,
        video_connector_num_attention_heads=2, video_connector_num_layers=1, video_connector_num_learnable_registers=8,
        audio_connector_num_attention_heads=2, audio_connector_num_layers=1, audio_connector_num_learnable_registers=8,
        connector_rope_base_seq_len=max_tokens, **connector_config,
    ).eval()

    transformer = tiny_transformer(seed + 2, **(LTX23_TRANSFORMER_FLAGS if version == "2.3" else {}))

    torch.manual_seed(seed + 3)
    vae = AutoencoderKLLTX2Video(
        in_channels=3, out_channels=3, latent_channels=TINY_TRANSFORMER_CONFIG["in_channels"],
        block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 16, 32),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1), patch_size=4,
        timestep_conditioning=False, spatial_compression_ratio=32, temporal_compression_ratio=8,
    ).eval()

    torch.manual_seed(seed + 4)
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=4, output_channels=2, ch_mult=(1, 1, 1), num_res_blocks=1, in_channels=2,
        resolution=32, latent_channels=2, mel_bins=8,
    ).eval()

    torch.manual_seed(seed + 5)
    vocoder = LTX2Vocoder(
        in_channels=2 * 8, hidden_channels=16, out_channels=2, upsample_kernel_sizes=[16, 8, 10],
        upsample_factors=[8, 4, 5], resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]],
        output_sampling_rate=16_000,
    ).eval()

    return {
        "scheduler": FlowMatchEulerDiscreteScheduler(), "vae": vae, "audio_vae": audio_vae,
        "text_encoder": text_encoder, "tokenizer": tokenizer, "connectors": connectors, "transformer": transformer,
        "vocoder": vocoder,
    }
