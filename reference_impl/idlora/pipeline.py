"""``IDLoRAPipeline``: one-stage ID-LoRA inference on LTX-2, built from diffusers' LTX-2 components.

Inputs: a prompt ``[VISUAL]: ... [SPEECH]: <transcript> [SOUNDS]: <style + ambience>``, the target's first
frame (the face), a reference audio clip (the voice), resolution, frames, fps, steps, seed and guidance
scales. Output: ``frames`` ``(T, H, W, 3)`` uint8 RGB at ``fps`` and ``audio`` ``(C, N)`` float32 at the
vocoder's rate (24 kHz for LTX-2).

The pipeline subclasses diffusers' ``LTX2ImageToVideoPipeline`` for its components and helpers (Gemma text
encoder + tokenizer + ``LTX2TextConnectors``, ``AutoencoderKLLTX2Video``, ``AutoencoderKLLTX2Audio``,
``LTX2Vocoder``, ``LTX2VideoTransformer3DModel``, latent (un)packing and (de)normalisation) and replaces its
``__call__`` with the ID-LoRA sampler (the ID-LoRA adapter is loaded with :meth:`IDLoRAPipeline.load_id_lora`,
through ``reference_impl.idlora.convert`` and ``reference_impl.idlora.lora``):

1. text: prompt and negative prompt through Gemma and the connectors (as diffusers' LTX-2 pipelines);
2. reference audio: channels -> stereo (mono duplicated), resampled to 16 kHz, log-mel (n_fft 1024, hop 160,
   Hann window, centred reflect padding, magnitude, Slaney mel scale and norm, 0-8 kHz, ``log(max(x, 1e-5))``;
   64 bins for LTX-2, the audio VAE's ``mel_bins`` in general), shape ``(1, 2, T_mel, 64)`` as
   ``AutoencoderKLLTX2Audio.encode`` expects; encoded to the posterior mean, packed to tokens and normalised
   with the audio VAE's latent statistics. No trimming, loudness normalisation or source separation. (The
   resampler is scipy's polyphase filter; the authors' code uses torchaudio's sinc resampler: both are
   band-limited, values differ slightly.)
3. first frame: resized (bilinear, no antialiasing) to the output size, scaled to [-1, 1], encoded
   (posterior mean) and normalised; it is the clean first latent frame (timestep 0) throughout sampling. No
   H.264 re-compression of the frame (diffusers' I2V pipeline applies CRF 33 by default; the authors' ID-LoRA
   code does not);
4. Euler sampling over the 30-step schedule (``sampling.SIGMAS_30_NOTES``, computed by
   ``sampling.ltx2_sigmas``) with the five-pass identity guidance (``guidance``); audio tokens are
   ``[reference (clean, t = 0, negative positions) ; target (noisy)]``;
5. decode: video VAE (decode timestep 0, as diffusers' default) and audio VAE + vocoder on the target tokens.

Optional two-stage refinement (``two_stage=True``; the paper's reported 1024x1024 outputs are two-stage):

6. the stage-1 video latents (base resolution, e.g. 512x512) are un-normalised with the video VAE's latent
   mean/std, upsampled x2 in space by ``LTX2LatentUpsamplerModel`` (which works on raw VAE latents, as in
   diffusers' ``LTX2LatentUpsamplePipeline``) and normalised again: ``(1, C, F_lat, 2 H_lat, 2 W_lat)``;
7. re-noised to ``s0 = stage2_sigmas[0]`` (0.909375): ``x = (1 - s0) x_up + s0 eps`` (eps from the same seeded
   CPU generator, drawn after the stage-1 noise, so stage 1 is unchanged); the first latent frame is the
   first image re-encoded at the 2x size and kept clean (timestep 0), as in stage 1;
8. 3 Euler steps over ``(0.909375, 0.725, 0.421875, 0)`` (diffusers' ``STAGE_2_DISTILLED_SIGMA_VALUES`` + 0)
   with the distilled LoRA (adapter ``"distilled"``, loaded with :meth:`IDLoRAPipeline.load_distilled_lora`)
   active at ``distilled_lora_strength`` (0.8) and the ID-LoRA adapter left as it was in stage 1. NO guidance
   in stage 2: one positive pass per step (prompt + reference), as LTX-2's two-stage pipelines do for the
   distilled refinement (CFG/STG are for the base model; the distilled model is trained to work without
   them). AUDIO FROZEN: the whole audio sequence ``[reference ; stage-1 target]`` is passed clean (timestep 0,
   denoise mask 0) and never updated, so the output audio is bit-identical to single-stage audio with the same
   seed. Text embeddings are those of stage 1 (the distilled adapter is inactive while the prompt is encoded).
   The distilled adapter is switched off again after stage 2 (also on error), so later calls are unaffected.

``IDLoRAPipeline.tiny_random(seed)`` builds every component from tiny random configs (a real
``Gemma3ForConditionalGeneration`` and a real ``GemmaTokenizer`` with a byte-fallback vocabulary included) so
the whole path runs on CPU in seconds; outputs are noise (smoke tests only).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.pipelines.ltx2.pipeline_ltx2_image2video import LTX2ImageToVideoPipeline

from reference_impl.idlora import positions as pos
from reference_impl.idlora.guidance import GuidanceConfig, GuidancePass
from reference_impl.idlora.sampling import (
    DenoiserInputs,
    LatentState,
    StepCallback,
    TransformerDenoiser,
    ltx2_sigmas,
    sample,
)

DEFAULT_NUM_FRAMES = 121
DEFAULT_FPS = 25.0
DEFAULT_STEPS = 30
DEFAULT_LONG_SIDE = 512
RESOLUTION_MULTIPLE = 32
MAX_PIXELS = 576 * 1024
MEL_N_FFT = 1024
MEL_LOG_FLOOR = 1e-5
DEFAULT_MAX_SEQUENCE_LENGTH = 1024

# The negative prompt of the released ID-LoRA inference examples (one_stage/args.json).
DEFAULT_NEGATIVE_PROMPT = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive noise, grainy "
    "texture, poor lighting, flickering, motion blur, distorted proportions, unnatural skin tones, deformed facial "
    "features, asymmetrical face, missing facial features, extra limbs, disfigured hands, wrong hand count, "
    "artifacts around text, inconsistent perspective, camera shake, incorrect depth of field, background too "
    "sharp, background clutter, distracting reflections, harsh shadows, inconsistent lighting direction, color "
    "banding, cartoonish rendering, 3D CGI look, unrealistic materials, uncanny valley effect, incorrect "
    "ethnicity, wrong gender, exaggerated expressions, wrong gaze direction, mismatched lip sync, silent or muted "
    "audio, distorted voice, robotic voice, echo, background noise, off-sync audio, incorrect dialogue, added "
    "dialogue, repetitive speech, jittery movement, awkward pauses, incorrect timing, unnatural transitions, "
    "inconsistent framing, tilted camera, flat lighting, inconsistent tone, cinematic oversaturation, stylized "
    "filters, or AI artifacts."
)

PROMPT_FORMAT = re.compile(r"^\s*\[VISUAL\]:.+\[SPEECH\]:.+\[SOUNDS\]:.+$", re.DOTALL)

# Two-stage refinement (LTX-2's distilled stage-2 schedule: diffusers' STAGE_2_DISTILLED_SIGMA_VALUES + 0).
STAGE2_SIGMAS: tuple[float, ...] = (0.909375, 0.725, 0.421875, 0.0)
DEFAULT_DISTILLED_LORA_STRENGTH = 0.8
DISTILLED_ADAPTER_NAME = "distilled"
UPSAMPLER_SCALE = 2  # the x2 spatial upsampler: output height and width = 2 x stage 1


# ---------------------------------------------------------------------------------------------------------
# Two-stage components: latent upsampler and distilled LoRA
# ---------------------------------------------------------------------------------------------------------


def load_latent_upsampler(path: str | Path, *, dtype: torch.dtype = torch.float32):  # -> LTX2LatentUpsamplerModel
    """The single-file spatial upsampler (``ltx-2-spatial-upscaler-x2-1.0.safetensors``) as diffusers'
    ``LTX2LatentUpsamplerModel``.

    diffusers 0.42.1 has no ``from_single_file`` for this class, but its own conversion script
    (``scripts/convert_ltx2_to_diffusers.py``, ``convert_ltx2_spatial_latent_upsampler``) loads the original
    ltx-core state dict with ``load_state_dict(strict=True)`` unchanged: the key names are identical
    (``initial_conv``, ``initial_norm``, ``res_blocks.<i>.{conv1,norm1,conv2,norm2}``, ``upsampler.conv`` (+ the
    fixed ``upsampler.blur_down.kernel`` buffer), ``post_upsample_res_blocks.<i>``, ``final_conv``). So the
    key map is the identity; the config (LTX-2.0: in 128, mid 1024, 4 blocks per stage, 3-D convs, rational
    x2 resampler) is read off the tensors here (in/mid channels from ``initial_conv.weight``, block count from
    the keys, rational vs pixel-shuffle resampler from ``upsampler.conv`` vs ``upsampler.0``) and the load is
    strict: any missing or unexpected key raises. Not verified against the real file (not downloadable here).
    """
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
    from safetensors.torch import load_file

    state = load_file(str(path))
    if "initial_conv.weight" not in state or "final_conv.weight" not in state:
        raise KeyError(f"{path}: not an LTX-2 latent upsampler (no initial_conv/final_conv weights); "
                       f"first keys {sorted(state)[:5]}")
    initial = state["initial_conv.weight"]
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("res_blocks.")}
    rational = "upsampler.conv.weight" in state
    config = {
        "in_channels": int(initial.shape[1]), "mid_channels": int(initial.shape[0]),
        "num_blocks_per_stage": len(blocks), "dims": initial.ndim - 2, "spatial_upsample": True,
        "temporal_upsample": False, "rational_spatial_scale": 2.0, "use_rational_resampler": rational,
    }
    model = LTX2LatentUpsamplerModel(**config)
    if rational and "upsampler.blur_down.kernel" not in state:  # a buffer some exporters drop; it is fixed
        state["upsampler.blur_down.kernel"] = model.upsampler.blur_down.kernel.clone()
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval()


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


def _tuner_layers(*models: torch.nn.Module | None) -> list[Any]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for model in models if model is not None for m in model.modules() if isinstance(m, BaseTunerLayer)]


def _layer_adapters(layer: Any) -> set[str]:
    return set(getattr(layer, "lora_A", {}).keys())


def set_distilled_adapter(models: tuple[torch.nn.Module | None, ...], active: bool, strength: float = 1.0) -> int:
    """Switch the ``"distilled"`` adapter on (at ``strength``: scaling = strength * alpha / r) or off in every
    peft layer of ``models``, leaving the other adapters (the ID-LoRA ``"default"``) as they are. Returns the
    number of layers that hold the distilled adapter."""
    count = 0
    for layer in _tuner_layers(*models):
        current = [name for name in layer.active_adapters if name != DISTILLED_ADAPTER_NAME]
        has = DISTILLED_ADAPTER_NAME in _layer_adapters(layer)
        count += int(has)
        if has and active:
            current.append(DISTILLED_ADAPTER_NAME)
            layer.set_scale(DISTILLED_ADAPTER_NAME, float(strength))
        elif has:
            layer.set_scale(DISTILLED_ADAPTER_NAME, 1.0)
        grads = {name: param.requires_grad for name, param in layer.named_parameters()}
        layer.set_adapter(current)
        for name, param in layer.named_parameters():  # set_adapter touches requires_grad: keep it as it was
            param.requires_grad_(grads.get(name, False))
    return count


def distilled_adapter_active(models: tuple[torch.nn.Module | None, ...]) -> list[float]:
    """Per layer holding the distilled adapter: its effective scale multiplier if active (scaling * r / alpha),
    0.0 if inactive. Empty if no distilled adapter is loaded."""
    out = []
    for layer in _tuner_layers(*models):
        if DISTILLED_ADAPTER_NAME not in _layer_adapters(layer):
            continue
        if DISTILLED_ADAPTER_NAME in layer.active_adapters and not layer.disable_adapters:
            out.append(float(layer.scaling[DISTILLED_ADAPTER_NAME] * layer.r[DISTILLED_ADAPTER_NAME]
                             / layer.lora_alpha[DISTILLED_ADAPTER_NAME]))
        else:
            out.append(0.0)
    return out


# ---------------------------------------------------------------------------------------------------------
# Resolution and reference-audio preprocessing
# ---------------------------------------------------------------------------------------------------------


def auto_resolution(
    height: int, width: int, *, long_side: int = DEFAULT_LONG_SIDE, multiple: int = RESOLUTION_MULTIPLE,
    max_pixels: int = MAX_PIXELS,
) -> tuple[int, int]:
    """Output ``(height, width)`` in pixels for a first frame of ``height x width``: aspect kept, long side
    ``long_side`` (and at most ``max_pixels``), each side rounded to the nearest multiple of ``multiple``
    (at least ``multiple``). A 720x1280 frame gives (288, 512); a square one (512, 512)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    scale = min(long_side / max(height, width), math.sqrt(max_pixels / (height * width)))

    def snap(value: float) -> int:
        return max(round(round(value) / multiple) * multiple, multiple)

    return snap(height * scale), snap(width * scale)


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


def image_to_tensor(image: Any) -> torch.Tensor:
    """First frame -> ``(3, H, W)`` float32 in [0, 1]. Accepts ``(H, W, 3)`` uint8 numpy, a PIL image, or a
    ``(3, H, W)`` float tensor in [0, 1]."""
    if isinstance(image, torch.Tensor):
        tensor = image.detach().to(torch.float32).cpu()
        if tensor.ndim != 3 or tensor.shape[0] != 3:
            raise ValueError(f"image tensor must be (3, H, W), got {tuple(tensor.shape)}")
        return tensor
    if hasattr(image, "convert"):  # PIL
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {array.dtype} {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).to(torch.float32) / 255.0


# ---------------------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------------------


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


class IDLoRAPipeline(LTX2ImageToVideoPipeline):
    """ID-LoRA generation, one-stage or (``two_stage=True``) with the x2 distilled refinement (see the module
    docstring). Load with ``from_pretrained`` (a diffusers LTX-2 folder, e.g. ``Lightricks/LTX-2``) or build
    with :meth:`tiny_random`; add the ID-LoRA adapter with :meth:`load_id_lora`, then for two-stage the
    upsampler (:meth:`set_latent_upsampler` + :func:`load_latent_upsampler`) and the distilled LoRA
    (:meth:`load_distilled_lora`)."""

    # ------------------------------------------------------------------ construction

    @classmethod
    def tiny_random(cls, seed: int = 0) -> IDLoRAPipeline:
        """Every component from tiny random configs (CPU, float32, eval mode).

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

        from reference_impl.idlora.tiny import TINY_TRANSFORMER_CONFIG, tiny_transformer

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
        connectors = LTX2TextConnectors(
            caption_channels=text_hidden, text_proj_in_factor=text_layers + 1,
            video_connector_num_attention_heads=2, video_connector_attention_head_dim=text_hidden // 2,
            video_connector_num_layers=1, video_connector_num_learnable_registers=8,
            audio_connector_num_attention_heads=2, audio_connector_attention_head_dim=text_hidden // 2,
            audio_connector_num_layers=1, audio_connector_num_learnable_registers=8,
            connector_rope_base_seq_len=max_tokens,
        ).eval()

        transformer = tiny_transformer(seed + 2)

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

        pipeline = cls(
            scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, audio_vae=audio_vae, text_encoder=text_encoder,
            tokenizer=tokenizer, connectors=connectors, transformer=transformer, vocoder=vocoder,
        )
        # The x2 latent upsampler for two-stage runs (built last so the other components' seeds are unchanged).
        pipeline.set_latent_upsampler(tiny_latent_upsampler(seed + 6, TINY_TRANSFORMER_CONFIG["in_channels"]))
        return pipeline

    # ------------------------------------------------------------------ two-stage components

    @property
    def latent_upsampler(self) -> Any:
        """The x2 spatial ``LTX2LatentUpsamplerModel`` used by ``two_stage=True`` (None until set)."""
        return getattr(self, "_latent_upsampler", None)

    def set_latent_upsampler(self, upsampler: Any) -> None:
        """Attach the x2 latent upsampler (a loaded ``LTX2LatentUpsamplerModel``, e.g. from
        :func:`load_latent_upsampler`). Kept outside the registered components so ``from_pretrained`` and
        ``save_pretrained`` of the base pipeline are unchanged; it is moved to the execution device when used."""
        if upsampler is not None and not bool(upsampler.config.spatial_upsample):
            raise ValueError("two-stage needs a spatial latent upsampler (config.spatial_upsample=True)")
        object.__setattr__(self, "_latent_upsampler", upsampler)

    def load_distilled_lora(self, path_or_state_dict: str | Path | dict[str, torch.Tensor]) -> int:
        """Load the stage-2 distilled LoRA (``ltx-2-19b-distilled-lora-384.safetensors``, ltx-core naming) as
        the peft adapter ``"distilled"`` through diffusers' ``LTX2LoraLoaderMixin.load_lora_weights`` (which
        converts ltx-core keys; its ``text_embedding_projection`` part, if any, goes on the connectors). It is
        left INACTIVE: ``__call__(two_stage=True)`` switches it on for stage 2 only. Load the ID-LoRA adapter
        (:meth:`load_id_lora`) first: its strict check refuses modules that already carry another adapter.
        Returns the number of peft layers holding the distilled adapter."""
        if self.distilled_lora_loaded:
            raise ValueError(f"a distilled LoRA is already loaded (adapter {DISTILLED_ADAPTER_NAME!r})")
        source = str(path_or_state_dict) if isinstance(path_or_state_dict, (str, Path)) else path_or_state_dict
        models = (self.transformer, self.connectors)
        # diffusers' loader activates the new adapter ALONE in every layer (the ID-LoRA adapter would be
        # switched off): remember which adapters were active per layer and restore that afterwards.
        before = {id(layer): list(layer.active_adapters) for layer in _tuner_layers(*models)}
        self.load_lora_weights(source, adapter_name=DISTILLED_ADAPTER_NAME)
        for layer in _tuner_layers(*models):
            grads = {name: param.requires_grad for name, param in layer.named_parameters()}
            layer.set_adapter(before.get(id(layer), []))
            for name, param in layer.named_parameters():
                param.requires_grad_(grads.get(name, False))
        count = set_distilled_adapter(models, active=False)
        if count == 0:
            raise RuntimeError(f"{path_or_state_dict!r}: no LoRA layer was created for the distilled adapter")
        return count

    @property
    def distilled_lora_loaded(self) -> bool:
        """Whether the ``"distilled"`` adapter exists on the transformer."""
        return any(DISTILLED_ADAPTER_NAME in _layer_adapters(layer) for layer in _tuner_layers(self.transformer))

    @torch.no_grad()
    def _first_frame_video_state(self, start: torch.Tensor, first: torch.Tensor, device: torch.device) -> LatentState:
        """Packed video state from ``start`` latents ``(1, C, F, H, W)`` whose first latent frame is replaced by
        the clean encoded first frame ``first`` ``(1, C, 1, H, W)`` and kept clean (denoise mask 0)."""
        _, _, latent_frames, latent_height, latent_width = start.shape
        clean_video = torch.zeros_like(start)
        clean_video[:, :, :1] = first
        video_mask = torch.ones((1, 1, latent_frames, latent_height, latent_width))
        video_mask[:, :, 0] = 0.0
        pack = self._pack_latents
        patch, patch_t = self.transformer_spatial_patch_size, self.transformer_temporal_patch_size
        return LatentState(
            latents=pack(torch.where(video_mask > 0, start, clean_video), patch, patch_t).to(device),
            clean=pack(clean_video, patch, patch_t).to(device),
            denoise_mask=pack(video_mask, patch, patch_t).squeeze(-1).to(device),
        )

    def upsample_video_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised ``(1, C, F_lat, H_lat, W_lat)`` -> normalised ``(1, C, F_lat, 2 H_lat, 2 W_lat)``:
        un-normalise with the VAE's latent mean/std, run the upsampler (it works on raw VAE latents), normalise
        again (as diffusers' ``LTX2LatentUpsamplePipeline`` with ``latents_normalized=True`` and its DFR
        pipelines' ``upsample_latents``). float32 out."""
        upsampler = self.latent_upsampler
        if upsampler is None:
            raise ValueError("two_stage=True needs the x2 latent upsampler: pass latent_upsampler=... or call "
                             "pipeline.set_latent_upsampler(load_latent_upsampler('ltx-2-spatial-upscaler-x2-1.0"
                             ".safetensors')) (method option two_stage=True does this from the model store)")
        scaling = self.vae.config.scaling_factor
        raw = self._denormalize_latents(latents.to(torch.float32), self.vae.latents_mean, self.vae.latents_std,
                                        scaling)
        param = next(upsampler.parameters())
        if param.device != raw.device:
            upsampler.to(raw.device)
        up = upsampler(raw.to(param.dtype)).to(torch.float32)
        return self._normalize_latents(up, self.vae.latents_mean, self.vae.latents_std, scaling)

    def load_id_lora(self, path: str, *, scale: float = 1.0) -> dict[str, int]:
        """Load an ID-LoRA adapter file into the transformer (peft, on the 18 audio-path module kinds).

        The file may use ltx-core names (``diffusion_model.transformer_blocks.<i>.<kind>.lora_{A,B}.weight``, as
        the released ``lora_weights.safetensors``), peft or diffusers names; it is converted and checked strictly
        by :mod:`reference_impl.idlora.convert` (every key a LoRA A/B weight of an audio-path kind, every block
        and kind present, one rank, shapes fitting this transformer) and injected with
        :func:`reference_impl.idlora.lora.add_idlora_adapter`. ltx-core applies ``W + B @ A`` unscaled, so
        ``alpha = rank * scale`` (scale 1 = the released strength). Returns ``{"rank": r, "keys": n}``.

        Raises:
            reference_impl.idlora.convert.LoraKeyError: keys or shapes that do not fit, named.
        """
        from safetensors.torch import load_file

        from reference_impl.idlora.convert import (
            check_fits_transformer,
            check_peft_state_dict,
            to_format,
        )
        from reference_impl.idlora.lora import add_idlora_adapter, load_lora_state_dict

        num_layers = len(self.transformer.transformer_blocks)
        peft_state = to_format(load_file(str(path)), "peft", num_layers=num_layers)
        ranks = set(check_peft_state_dict(peft_state, num_layers=num_layers).values())
        if len(ranks) != 1:
            raise ValueError(f"{path}: LoRA modules have different ranks {sorted(ranks)}")
        rank = ranks.pop()
        check_fits_transformer(peft_state, self.transformer)
        add_idlora_adapter(self.transformer, rank=rank, alpha=rank * float(scale))
        load_lora_state_dict(self.transformer, peft_state)
        return {"rank": rank, "keys": len(peft_state)}

    # ------------------------------------------------------------------ encoders

    @torch.no_grad()
    def encode_text(
        self, prompt: str, negative_prompt: str | None, max_sequence_length: int
    ) -> dict[str, torch.Tensor | None]:
        """Prompt (and negative prompt) -> connector outputs ``(1, L, C)`` for video and audio + masks ``(1, L)``."""
        device = self._execution_device
        prompt_embeds, prompt_mask, negative_embeds, negative_mask = self.encode_prompt(
            prompt=prompt, negative_prompt=negative_prompt or "",
            do_classifier_free_guidance=negative_prompt is not None,
            max_sequence_length=max_sequence_length, device=device,
        )
        padding_side = getattr(self.tokenizer, "padding_side", "left")
        video, audio, mask = self.connectors(prompt_embeds, prompt_mask, padding_side=padding_side)
        out: dict[str, torch.Tensor | None] = {
            "prompt_embeds": video, "audio_prompt_embeds": audio, "prompt_mask": mask,
            "negative_prompt_embeds": None, "negative_audio_prompt_embeds": None, "negative_prompt_mask": None,
        }
        if negative_prompt is not None:
            video_n, audio_n, mask_n = self.connectors(negative_embeds, negative_mask, padding_side=padding_side)
            out.update(negative_prompt_embeds=video_n, negative_audio_prompt_embeds=audio_n, negative_prompt_mask=mask_n)
        return out

    @torch.no_grad()
    def encode_reference_audio(self, waveform: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Reference clip -> packed normalised latents ``(1, N_ref, C_audio)`` (N_ref = T_mel // 4 + 1, 40 ms each)."""
        mel = reference_log_mel(waveform, sample_rate, n_mels=int(self.audio_vae.config.mel_bins),
                                target_rate=int(self.audio_vae.config.sample_rate),
                                hop_length=int(self.audio_vae.config.mel_hop_length))
        mel = mel.to(device=self._execution_device, dtype=self.audio_vae.dtype)
        latents = self.audio_vae.encode(mel).latent_dist.mode()  # (1, C, T_lat, M_lat)
        packed = self._pack_audio_latents(latents.to(torch.float32))
        return self._normalize_audio_latents(packed, self.audio_vae.latents_mean, self.audio_vae.latents_std)

    @torch.no_grad()
    def encode_first_frame(self, image: Any, height: int, width: int) -> torch.Tensor:
        """First frame -> normalised latents ``(1, C, 1, H / 32, W / 32)`` (bilinear resize, [-1, 1], mean)."""
        pixels = image_to_tensor(image)[None]
        pixels = F.interpolate(pixels, size=(height, width), mode="bilinear", align_corners=False)
        pixels = (pixels * 2.0 - 1.0)[:, :, None].to(device=self._execution_device, dtype=self.vae.dtype)
        latents = self.vae.encode(pixels).latent_dist.mode().to(torch.float32)
        return self._normalize_latents(latents, self.vae.latents_mean, self.vae.latents_std,
                                       self.vae.config.scaling_factor)

    # ------------------------------------------------------------------ generation

    def _check_audio_config(self) -> None:
        config = self.transformer.config
        expected = {"audio_sampling_rate": pos.AUDIO_SAMPLE_RATE, "audio_hop_length": pos.MEL_HOP_LENGTH,
                    "audio_scale_factor": pos.AUDIO_TEMPORAL_DOWNSAMPLE, "causal_offset": pos.CAUSAL_OFFSET}
        wrong = {key: config[key] for key, value in expected.items() if config[key] != value}
        if wrong:
            raise ValueError(f"transformer audio config {wrong} differs from the LTX-2 values {expected}; "
                             "the reference positions assume the latter")

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        prompt: str,
        image: Any,
        reference_audio: np.ndarray | torch.Tensor | None,
        reference_sample_rate: int | None = None,
        *,
        height: int | None = None,
        width: int | None = None,
        long_side: int = DEFAULT_LONG_SIDE,
        num_frames: int = DEFAULT_NUM_FRAMES,
        frame_rate: float = DEFAULT_FPS,
        num_inference_steps: int = DEFAULT_STEPS,
        sigmas: list[float] | None = None,
        seed: int = 0,
        guidance: GuidanceConfig | None = None,
        negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
        reference_positions: pos.ReferencePositions = "negative",
        batched_guidance: bool = True,
        max_sequence_length: int | None = None,
        check_prompt_format: bool = True,
        output: Literal["media", "latent"] = "media",
        callback: StepCallback | None = None,
        two_stage: bool = False,
        latent_upsampler: Any = None,
        distilled_lora_strength: float = DEFAULT_DISTILLED_LORA_STRENGTH,
        stage2_sigmas: tuple[float, ...] | list[float] = STAGE2_SIGMAS,
    ) -> IDLoRAOutput:
        """Generate one clip.

        Args:
            prompt: ``[VISUAL]: ... [SPEECH]: ... [SOUNDS]: ...`` (checked unless ``check_prompt_format=False``).
            image: the first frame (``(H, W, 3)`` uint8, PIL, or ``(3, H, W)`` float tensor in [0, 1]).
            reference_audio: the voice reference ``(N,)``/``(C, N)`` at ``reference_sample_rate`` Hz; None runs
                without a reference (zero-shot LTX-2: no reference tokens, no identity guidance).
            height, width: output size in pixels (multiples of 32); both None = :func:`auto_resolution` of the
                image with ``long_side``.
            num_frames: video frames, ``8k + 1`` (121 = 4.84 s at 25 fps).
            frame_rate: fps (also the RoPE time scale of the video tokens).
            num_inference_steps: Euler steps (sigmas from :func:`~reference_impl.idlora.sampling.ltx2_sigmas`
                unless ``sigmas`` is given: ``steps + 1`` descending values ending with 0).
            seed: noise seed (CPU generator, so noise is identical on every device).
            guidance: scales (default: the released ones, see ``GuidanceConfig``).
            negative_prompt: text of the D- pass.
            reference_positions: ``"negative"`` (ID-LoRA), ``"standard"`` or ``"after"`` (ablations).
            batched_guidance: share one forward between the passes that can (same result up to float rounding).
            output: ``"latent"`` skips decoding (``frames``/``audio`` are then empty arrays).
            callback: ``callback(step, video_state, audio_state)`` after every sampling step (stage-2 steps are
                numbered on from ``num_inference_steps``).
            two_stage: refine at 2x height and width (module docstring, steps 6-8). ``height``/``width``/
                ``long_side`` give the STAGE-1 size; the output is twice that (512 -> 1024). Off: exactly the
                one-stage path (same outputs bit for bit).
            latent_upsampler: a ``LTX2LatentUpsamplerModel`` for this call (default: the one attached with
                :meth:`set_latent_upsampler`; ``tiny_random`` attaches a tiny random one).
            distilled_lora_strength: scale of the ``"distilled"`` adapter during stage 2 (0.8). It must be loaded
                (:meth:`load_distilled_lora`) unless this is 0 (stage 2 with the base weights alone).
            stage2_sigmas: the stage-2 noise levels, descending, ending with 0; the first is the re-noise level.
        """
        if check_prompt_format and not PROMPT_FORMAT.match(prompt):
            raise ValueError("prompt must have the form '[VISUAL]: ... [SPEECH]: ... [SOUNDS]: ...' "
                             "(pass check_prompt_format=False to use free text)")
        self._check_audio_config()
        guidance = guidance if guidance is not None else GuidanceConfig()
        has_reference = reference_audio is not None
        if has_reference and reference_sample_rate is None:
            raise ValueError("reference_sample_rate is required with reference_audio")
        if not has_reference:
            guidance = guidance.without_identity()
        device = self._execution_device
        pixels = image_to_tensor(image)
        if (height is None) != (width is None):
            raise ValueError("give both height and width, or neither (auto resolution)")
        if height is None or width is None:
            height, width = auto_resolution(int(pixels.shape[1]), int(pixels.shape[2]), long_side=long_side)
        spatial = self.vae_spatial_compression_ratio
        temporal = self.vae_temporal_compression_ratio
        if height % spatial or width % spatial:
            raise ValueError(f"height and width must be multiples of {spatial}, got {width}x{height}")
        if num_frames < 1 or (num_frames - 1) % temporal:
            raise ValueError(f"num_frames must be {temporal}k + 1 (e.g. 121), got {num_frames}")
        if sigmas is None:
            sigmas = ltx2_sigmas(num_inference_steps)
        if len(sigmas) != num_inference_steps + 1:
            raise ValueError(f"{num_inference_steps} steps need {num_inference_steps + 1} sigmas, got {len(sigmas)}")
        n_blocks = len(self.transformer.transformer_blocks)
        if guidance.stg_scale != 0 and any(b >= n_blocks for b in guidance.stg_blocks):
            raise ValueError(f"STG block(s) {list(guidance.stg_blocks)} outside the transformer's {n_blocks} blocks")
        if max_sequence_length is None:
            max_sequence_length = min(DEFAULT_MAX_SEQUENCE_LENGTH, int(self.tokenizer.model_max_length))
        stage2 = [float(v) for v in stage2_sigmas]
        if two_stage:
            if len(stage2) < 2 or stage2[-1] != 0.0 or any(a <= b for a, b in itertools.pairwise(stage2)):
                raise ValueError(f"stage2_sigmas must be descending and end with 0, got {stage2}")
            if not 0.0 < stage2[0] <= 1.0:
                raise ValueError(f"the re-noise level stage2_sigmas[0] must be in (0, 1], got {stage2[0]}")
            if latent_upsampler is not None:
                self.set_latent_upsampler(latent_upsampler)
            if self.latent_upsampler is None:
                self.upsample_video_latents(torch.zeros(0))  # raises the error naming the fix
            if distilled_lora_strength != 0 and not self.distilled_lora_loaded:
                raise ValueError(
                    "two_stage=True refines with the distilled LoRA, which is not loaded: call "
                    "pipeline.load_distilled_lora('ltx-2-19b-distilled-lora-384.safetensors') (method option "
                    "two_stage=True does this from the model store), or pass distilled_lora_strength=0 to refine "
                    "with the base weights alone")
        if self.distilled_lora_loaded:  # stage 1 (and the text encoders) never see the distilled adapter
            set_distilled_adapter((self.transformer, self.connectors), active=False)
        passes = guidance.passes(has_reference)
        text = self.encode_text(prompt, negative_prompt if GuidancePass.NEGATIVE in passes else None,
                                max_sequence_length)

        # Video: clean first latent frame + noise.
        latent_frames = (num_frames - 1) // temporal + 1
        latent_height, latent_width = height // spatial, width // spatial
        channels = int(self.transformer.config.in_channels)
        generator = torch.Generator("cpu").manual_seed(int(seed))
        noise = torch.randn((1, channels, latent_frames, latent_height, latent_width), generator=generator)
        first = self.encode_first_frame(pixels, height, width).cpu()
        video_state = self._first_frame_video_state(noise, first, device)
        patch, patch_t = self.transformer_spatial_patch_size, self.transformer_temporal_patch_size

        # Audio: [reference (clean) ; target (noise)].
        audio_rate = float(self.audio_sampling_rate)
        latents_per_second = audio_rate / self.audio_hop_length / self.audio_vae_temporal_compression_ratio
        n_target = round(num_frames / frame_rate * latents_per_second)
        reference = (self.encode_reference_audio(reference_audio, int(reference_sample_rate)).cpu()  # type: ignore[arg-type]
                     if has_reference else None)
        n_ref = 0 if reference is None else int(reference.shape[1])
        audio_channels = int(self.transformer.config.audio_in_channels)
        target_noise = torch.randn((1, n_target, audio_channels), generator=generator)
        clean_audio = torch.zeros((1, n_ref + n_target, audio_channels))
        if reference is not None:
            clean_audio[:, :n_ref] = reference
        audio_mask = torch.cat([torch.zeros((1, n_ref)), torch.ones((1, n_target))], dim=1)
        audio_state = LatentState(
            latents=torch.cat([clean_audio[:, :n_ref], target_noise], dim=1).to(device),
            clean=clean_audio.to(device), denoise_mask=audio_mask.to(device),
        )

        video_coords = self.transformer.rope.prepare_video_coords(
            1, latent_frames, latent_height, latent_width, device, fps=frame_rate)
        audio_coords = pos.audio_coords(n_ref, n_target, mode=reference_positions, device=device)
        inputs = DenoiserInputs(
            prompt_embeds=text["prompt_embeds"], audio_prompt_embeds=text["audio_prompt_embeds"],  # type: ignore[arg-type]
            prompt_mask=text["prompt_mask"], negative_prompt_embeds=text["negative_prompt_embeds"],  # type: ignore[arg-type]
            negative_audio_prompt_embeds=text["negative_audio_prompt_embeds"],
            negative_prompt_mask=text["negative_prompt_mask"], video_coords=video_coords, audio_coords=audio_coords,
            num_reference_tokens=n_ref, latent_num_frames=latent_frames, latent_height=latent_height,
            latent_width=latent_width, fps=frame_rate,
        )
        denoiser = TransformerDenoiser(self.transformer, inputs, guidance, batched=batched_guidance,
                                       attention_kwargs=None)
        video_state, audio_state = sample(denoiser, video_state, audio_state, sigmas, callback)

        video_latents = self._unpack_latents(video_state.latents, latent_frames, latent_height, latent_width,
                                             patch, patch_t)
        target_latents = audio_state.latents[:, n_ref:]
        stage1_size = (height, width)
        stage2_info: dict[str, Any] | None = None
        if two_stage:
            video_latents, stage2_info = self._refine_stage2(
                video_latents, audio_state, pixels, inputs, generator, stage2, float(distilled_lora_strength),
                frame_rate, callback, len(sigmas) - 1,
            )
            height, width = height * UPSAMPLER_SCALE, width * UPSAMPLER_SCALE
            latent_height, latent_width = int(video_latents.shape[3]), int(video_latents.shape[4])
        info: dict[str, Any] = {
            "height": height, "width": width, "num_frames": num_frames, "fps": frame_rate,
            "latent_grid": [latent_frames, latent_height, latent_width], "video_tokens": int(video_latents[0, 0].numel()),
            "reference_tokens": n_ref, "target_audio_tokens": n_target, "sigmas": list(sigmas),
            "passes": [p.value for p in passes], "forward_calls": denoiser.forward_calls,
            "guidance": guidance.as_dict(), "reference_positions": reference_positions,
            "max_sequence_length": max_sequence_length, "batched_guidance": batched_guidance,
        }
        if stage2_info is not None:
            info["latent_grid"] = [latent_frames, latent_height, latent_width]
            info["two_stage"] = {"stage1_height": stage1_size[0], "stage1_width": stage1_size[1], **stage2_info}
        if output == "latent":
            empty = np.zeros((0,), np.float32)
            return IDLoRAOutput(np.zeros((0, height, width, 3), np.uint8), frame_rate, empty[None], 0,
                                video_latents, target_latents, reference, info)
        frames = self.decode_video(video_latents)
        audio, audio_rate_out = self.decode_audio(target_latents)
        return IDLoRAOutput(frames, frame_rate, audio, audio_rate_out, video_latents, target_latents, reference, info)

    @torch.no_grad()
    def _refine_stage2(
        self,
        video_latents: torch.Tensor,
        audio_state: LatentState,
        pixels: torch.Tensor,
        inputs: DenoiserInputs,
        generator: torch.Generator,
        sigmas: list[float],
        strength: float,
        frame_rate: float,
        callback: StepCallback | None,
        step_offset: int,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Stage 2 (module docstring, steps 6-8): stage-1 normalised video latents ``(1, C, F, h, w)`` ->
        refined ``(1, C, F, 2h, 2w)``; the audio state is passed frozen (all tokens clean, timestep 0)."""
        device = self._execution_device
        upsampled = self.upsample_video_latents(video_latents).cpu()
        _, _, latent_frames, latent_height, latent_width = upsampled.shape
        spatial = self.vae_spatial_compression_ratio
        height, width = latent_height * spatial, latent_width * spatial
        first = self.encode_first_frame(pixels, height, width).cpu()
        noise = torch.randn(tuple(upsampled.shape), generator=generator)
        s0 = sigmas[0]
        noisy = (1.0 - s0) * upsampled + s0 * noise
        video_state = self._first_frame_video_state(noisy, first, device)
        patch, patch_t = self.transformer_spatial_patch_size, self.transformer_temporal_patch_size
        frozen_audio = LatentState(latents=audio_state.latents, clean=audio_state.latents.clone(),
                                   denoise_mask=torch.zeros_like(audio_state.denoise_mask))
        video_coords = self.transformer.rope.prepare_video_coords(
            1, latent_frames, latent_height, latent_width, device, fps=frame_rate)
        stage_inputs = replace(inputs, video_coords=video_coords, latent_height=latent_height,
                               latent_width=latent_width, negative_prompt_embeds=None,
                               negative_audio_prompt_embeds=None, negative_prompt_mask=None)
        no_guidance = GuidanceConfig(video_scale=1.0, audio_scale=1.0, identity_scale_code=0.0, stg_scale=0.0,
                                     stg_blocks=(), modality_scale=1.0)  # one positive pass per step
        denoiser = TransformerDenoiser(self.transformer, stage_inputs, no_guidance, batched=True,
                                       attention_kwargs=None)
        step_callback = None
        if callback is not None:
            def step_callback(step: int, video: LatentState, audio: LatentState) -> None:
                callback(step + step_offset, video, audio)
        models = (self.transformer, self.connectors)
        active = self.distilled_lora_loaded and strength != 0
        try:
            if active:
                set_distilled_adapter(models, active=True, strength=strength)
            video_state, _ = sample(denoiser, video_state, frozen_audio, sigmas, step_callback)
        finally:
            if active:
                set_distilled_adapter(models, active=False)
        refined = self._unpack_latents(video_state.latents, latent_frames, latent_height, latent_width, patch, patch_t)
        info = {"sigmas": list(sigmas), "renoise_sigma": s0, "distilled_lora_strength": strength if active else 0.0,
                "passes": [GuidancePass.POSITIVE.value], "forward_calls": denoiser.forward_calls,
                "video_tokens": int(refined[0, 0].numel()), "audio": "frozen (stage-1 latents, timestep 0)"}
        return refined, info

    @torch.no_grad()
    def decode_video(self, latents: torch.Tensor) -> np.ndarray:
        """Normalised ``(1, C, F_lat, H_lat, W_lat)`` latents -> ``(T, H, W, 3)`` uint8 (decode timestep 0)."""
        latents = self._denormalize_latents(latents.to(torch.float32), self.vae.latents_mean, self.vae.latents_std,
                                            self.vae.config.scaling_factor)
        temb = None
        if self.vae.config.timestep_conditioning:
            temb = torch.zeros((latents.shape[0],), device=latents.device, dtype=self.vae.dtype)
        video = self.vae.decode(latents.to(self.vae.dtype), temb, return_dict=False)[0]
        video = ((video.to(torch.float32) + 1.0) / 2.0).clamp(0.0, 1.0)[0]  # (3, T, H, W)
        return (video.permute(1, 2, 3, 0) * 255.0).round().to(torch.uint8).cpu().numpy()

    @torch.no_grad()
    def decode_audio(self, latents: torch.Tensor) -> tuple[np.ndarray, int]:
        """Packed normalised target latents ``(1, N, C)`` -> waveform ``(channels, samples)`` and its rate."""
        latents = self._denormalize_audio_latents(latents.to(torch.float32), self.audio_vae.latents_mean,
                                                  self.audio_vae.latents_std)
        latent_mel_bins = int(self.audio_vae.config.mel_bins) // self.audio_vae_mel_compression_ratio
        latents = self._unpack_audio_latents(latents, latents.shape[1], num_mel_bins=latent_mel_bins)
        mel = self.audio_vae.decode(latents.to(self.audio_vae.dtype), return_dict=False)[0]
        waveform = self.vocoder(mel.to(self.vocoder.dtype))[0].to(torch.float32).clamp(-1.0, 1.0)
        return waveform.cpu().numpy(), int(self.vocoder.config.output_sampling_rate)
