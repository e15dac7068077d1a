"""Text encoding (cached per text) and latent decoding (optionally tiled) of :class:`IDLoRAPipeline` (a mixin).

Text: each text (prompt or negative prompt) is encoded once through Gemma and the connectors and kept on the CPU,
so a split is encoded up front (:meth:`PipelineCodecs.precompute_text`, the negative prompt once) and the text
encoder is not needed again while sampling, as in the authors' scripts (``scripts/inference_two_stage.py:832-842``).
Memory: per text, two ``(1, L, C)`` connector outputs (L = 1024 tokens for LTX-2) and a mask, about 16 MB in float32.

Decoding: the authors decode the stage-2 video tiled (``TilingConfig.default()``: 512 px tiles with 64 px overlap,
64-frame tiles with 24-frame overlap; ``scripts/inference_two_stage.py:555-560``); diffusers' closest equivalent is
:data:`VAE_TILING` plus frame-wise decoding (its blend weights differ, so values are close, not identical).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

VAE_TILING: dict[str, int] = {
    "tile_sample_min_height": 512, "tile_sample_min_width": 512, "tile_sample_min_num_frames": 64,
    "tile_sample_stride_height": 448, "tile_sample_stride_width": 448, "tile_sample_stride_num_frames": 40,
}


class PipelineCodecs:
    """Mixin over diffusers' LTX-2 pipeline: cached text encoding and (tiled) decoding."""

    @property
    def text_cache(self) -> dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        if "_text_cache" not in self.__dict__:
            object.__setattr__(self, "_text_cache", {})
        return self.__dict__["_text_cache"]

    @torch.no_grad()
    def encode_one_text(self, text: str, max_sequence_length: int) -> tuple[torch.Tensor, ...]:
        """``(video (1, L, C), audio (1, L, C_a), mask (1, L))`` connector outputs of one text, from the cache or
        encoded now (and kept on the CPU)."""
        key = (text, int(max_sequence_length))
        if key not in self.text_cache:
            device = self._execution_device  # type: ignore[attr-defined]
            embeds, mask, _, _ = self.encode_prompt(  # type: ignore[attr-defined]
                prompt=text, negative_prompt="", do_classifier_free_guidance=False,
                max_sequence_length=max_sequence_length, device=device)
            padding_side = getattr(self.tokenizer, "padding_side", "left")  # type: ignore[attr-defined]
            outputs = self.connectors(embeds, mask, padding_side=padding_side)  # type: ignore[attr-defined]
            self.text_cache[key] = tuple(t.detach().cpu() for t in outputs)
        device = self._execution_device  # type: ignore[attr-defined]
        return tuple(t.to(device) for t in self.text_cache[key])

    def precompute_text(self, texts: Iterable[str], max_sequence_length: int) -> int:
        """Encode every distinct text once into the cache; returns how many were new."""
        before = len(self.text_cache)
        for text in dict.fromkeys(texts):
            self.encode_one_text(text, max_sequence_length)
        return len(self.text_cache) - before

    def encode_text(self, prompt: str, negative_prompt: str | None,
                    max_sequence_length: int) -> dict[str, torch.Tensor | None]:
        """Prompt (and negative prompt) -> connector outputs ``(1, L, C)`` for video and audio + masks ``(1, L)``."""
        video, audio, mask = self.encode_one_text(prompt, max_sequence_length)
        out: dict[str, torch.Tensor | None] = {
            "prompt_embeds": video, "audio_prompt_embeds": audio, "prompt_mask": mask,
            "negative_prompt_embeds": None, "negative_audio_prompt_embeds": None, "negative_prompt_mask": None,
        }
        if negative_prompt is not None:
            video_n, audio_n, mask_n = self.encode_one_text(negative_prompt, max_sequence_length)
            out.update(negative_prompt_embeds=video_n, negative_audio_prompt_embeds=audio_n, negative_prompt_mask=mask_n)
        return out

    @torch.no_grad()
    def decode_video(self, latents: torch.Tensor, tiled: bool = False) -> np.ndarray:
        """Normalised ``(1, C, F_lat, H_lat, W_lat)`` latents -> ``(T, H, W, 3)`` uint8 (decode timestep 0);
        ``tiled``: spatial and temporal tiles (:data:`VAE_TILING`)."""
        vae: Any = self.vae  # type: ignore[attr-defined]
        latents = self._denormalize_latents(latents.to(torch.float32), vae.latents_mean,  # type: ignore[attr-defined]
                                            vae.latents_std, vae.config.scaling_factor)
        temb = None
        if vae.config.timestep_conditioning:
            temb = torch.zeros((latents.shape[0],), device=latents.device, dtype=vae.dtype)
        framewise = getattr(vae, "use_framewise_decoding", False)
        try:
            if tiled:
                vae.enable_tiling(**VAE_TILING)
                vae.use_framewise_decoding = True
            video = vae.decode(latents.to(vae.dtype), temb, return_dict=False)[0]
        finally:
            if tiled:
                vae.disable_tiling()
                vae.use_framewise_decoding = framewise
        video = ((video.to(torch.float32) + 1.0) / 2.0).clamp(0.0, 1.0)[0]  # (3, T, H, W)
        return (video.permute(1, 2, 3, 0) * 255.0).round().to(torch.uint8).cpu().numpy()

    @torch.no_grad()
    def decode_audio(self, latents: torch.Tensor) -> tuple[np.ndarray, int]:
        """Packed normalised target latents ``(1, N, C)`` -> waveform ``(channels, samples)`` and its rate."""
        audio_vae: Any = self.audio_vae  # type: ignore[attr-defined]
        latents = self._denormalize_audio_latents(latents.to(torch.float32),  # type: ignore[attr-defined]
                                                  audio_vae.latents_mean, audio_vae.latents_std)
        latent_mel_bins = int(audio_vae.config.mel_bins) // self.audio_vae_mel_compression_ratio  # type: ignore[attr-defined]
        latents = self._unpack_audio_latents(latents, latents.shape[1], num_mel_bins=latent_mel_bins)  # type: ignore[attr-defined]
        mel = audio_vae.decode(latents.to(audio_vae.dtype), return_dict=False)[0]
        waveform = self.vocoder(mel.to(self.vocoder.dtype))[0].to(torch.float32).clamp(-1.0, 1.0)  # type: ignore[attr-defined]
        return waveform.cpu().numpy(), int(self.vocoder.config.output_sampling_rate)  # type: ignore[attr-defined]
