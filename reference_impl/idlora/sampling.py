"""The ID-LoRA sampler: sigma schedule, Euler steps on x0 predictions, guided transformer passes.

Shapes (packed tokens, diffusers' layout):
- video latents ``(B, N_video, C_video)`` with ``N_video = F_lat * H_lat * W_lat`` (LTX-2: C = 128,
  F_lat = (frames - 1) / 8 + 1, H_lat = H / 32, W_lat = W / 32; 512x512x121 -> 16 * 16 * 16 = 4096 tokens);
- audio latents ``(B, N_ref + N_target, C_audio)`` (LTX-2: C = 128 = 8 channels x 16 mel bins; one token
  = 40 ms; 121 frames at 25 fps -> 121 target tokens; a 5 s reference -> 126 reference tokens).

Noise levels ``sigma`` are in [0, 1] (flow matching: ``x_sigma = (1 - sigma) x0 + sigma eps``); the
transformer takes ``timestep = 1000 * sigma`` per token, and ``0`` on clean tokens (the reference audio and
the conditioning first video latent frame), i.e. ``timestep_token = 1000 * sigma * denoise_mask``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch

from reference_impl.idlora.guidance import (
    GuidanceConfig,
    GuidancePass,
    PassPrediction,
    combine_guidance,
    pass_perturbation,
    perturbed,
)

# The released 30-step schedule as printed in the notes (4 decimals): LTX-2's shifted schedule with shift
# 2.05 (the value for 4096 tokens, used by the authors' code whatever the resolution), stretched so that the
# last non-zero sigma is 0.1. ``ltx2_sigmas(30)`` reproduces it to < 5e-5.
SIGMAS_30_NOTES: tuple[float, ...] = (
    1.0, 0.995, 0.9896, 0.9839, 0.9778, 0.9714, 0.9644, 0.957, 0.949, 0.9403, 0.931, 0.9209, 0.9098, 0.8977,
    0.8845, 0.8699, 0.8537, 0.8356, 0.8153, 0.7924, 0.7664, 0.7364, 0.7017, 0.6608, 0.6121, 0.5531, 0.4802,
    0.3875, 0.2661, 0.1, 0.0,
)
SIGMA_SHIFT = 2.05
SIGMA_TERMINAL = 0.1
TIMESTEP_MULTIPLIER = 1000.0


def ltx2_sigmas(steps: int = 30, *, shift: float = SIGMA_SHIFT, terminal: float = SIGMA_TERMINAL) -> list[float]:
    """``steps + 1`` noise levels from 1 to 0 (the last is exactly 0).

    ``s_k = 1 - k / steps``; every non-zero ``s`` becomes ``e^shift / (e^shift + 1/s - 1)``; then the
    non-zero values are stretched, ``s' = 1 - (1 - s) * (1 - terminal) / (1 - s_last)``, so the last non-zero
    sigma equals ``terminal``. Computed in float64, returned rounded to float32 (as the authors' code).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    linear = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    exp_shift = math.exp(shift)
    nonzero = linear != 0
    shifted = torch.zeros_like(linear)
    shifted[nonzero] = exp_shift / (exp_shift + (1.0 / linear[nonzero] - 1.0))
    one_minus = 1.0 - shifted[nonzero]
    if float(one_minus[-1]) == 0.0:  # one step: the only non-zero sigma is 1, nothing to stretch (was 0/0 = NaN)
        return [float(v) for v in shifted.to(torch.float32)]
    scale = one_minus[-1] / (1.0 - terminal)
    shifted[nonzero] = 1.0 - one_minus / scale
    return [float(v) for v in shifted.to(torch.float32)]


@dataclass(frozen=True)
class LatentState:
    """One modality's packed latents during sampling.

    Attributes:
        latents: ``(B, N, C)`` float32, the current noisy sample.
        clean: ``(B, N, C)`` float32, the clean values of conditioned tokens (ignored where ``denoise_mask``
            is 1).
        denoise_mask: ``(B, N)`` float32, 1 = generated token, 0 = conditioned token kept clean (timestep 0).
    """

    latents: torch.Tensor
    clean: torch.Tensor
    denoise_mask: torch.Tensor

    def with_latents(self, latents: torch.Tensor) -> LatentState:
        return replace(self, latents=latents)

    def clamp_conditioned(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` with conditioned tokens replaced by their clean latents (bit-exact)."""
        keep = self.denoise_mask[..., None] > 0
        return torch.where(keep, values, self.clean.to(values.dtype))


def euler_step(sample: torch.Tensor, x0: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """Flow-matching Euler step from ``sigma`` to ``sigma_next`` given an x0 prediction (float32).

    ``v = (x - x0) / sigma``; ``x_next = x + v * (sigma_next - sigma)`` (``x_next = x0`` when ``sigma_next = 0``,
    up to rounding).
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0 for an Euler step, got {sigma}")
    sample32 = sample.to(torch.float32)
    velocity = (sample32 - x0.to(torch.float32)) / sigma
    return sample32 + velocity * (sigma_next - sigma)


GuidedDenoiseFn = Callable[[LatentState, LatentState, float, int], PassPrediction]
"""``(video_state, audio_state, sigma, step_index) -> (video_x0, audio_x0)`` for full sequences."""
StepCallback = Callable[[int, LatentState, LatentState], None]


def sample(
    denoise: GuidedDenoiseFn,
    video: LatentState,
    audio: LatentState,
    sigmas: Sequence[float],
    callback: StepCallback | None = None,
) -> tuple[LatentState, LatentState]:
    """Euler sampling over ``sigmas`` (descending, ending at 0): ``len(sigmas) - 1`` steps.

    Each step: guided x0 prediction -> conditioned tokens' x0 set to their clean value -> Euler step ->
    conditioned tokens re-clamped to their clean value (so the reference audio tokens and the first video
    latent frame are bit-identical to their clean latents after every step). ``callback(step, video, audio)``
    sees the states after each step.
    """
    sigmas = [float(s) for s in sigmas]
    if len(sigmas) < 2 or sigmas[-1] != 0.0:
        raise ValueError("sigmas must have at least two values and end with 0")
    video = video.with_latents(video.clamp_conditioned(video.latents))
    audio = audio.with_latents(audio.clamp_conditioned(audio.latents))
    for step, (sigma, sigma_next) in enumerate(itertools.pairwise(sigmas)):
        video_x0, audio_x0 = denoise(video, audio, sigma, step)
        video_x0 = video.clamp_conditioned(video_x0.to(torch.float32))
        audio_x0 = audio.clamp_conditioned(audio_x0.to(torch.float32))
        video = video.with_latents(video.clamp_conditioned(euler_step(video.latents, video_x0, sigma, sigma_next)))
        audio = audio.with_latents(audio.clamp_conditioned(euler_step(audio.latents, audio_x0, sigma, sigma_next)))
        if callback is not None:
            callback(step, video, audio)
    return video, audio


class PassDenoiser(Protocol):
    """Anything that returns per-pass x0 predictions (the real transformer wrapper or a test stub)."""

    num_reference_tokens: int

    def predict(
        self, video: LatentState, audio: LatentState, sigma: float, passes: Sequence[GuidancePass]
    ) -> dict[GuidancePass, PassPrediction]: ...


def guided_x0(
    denoiser: PassDenoiser, config: GuidanceConfig, video: LatentState, audio: LatentState, sigma: float
) -> PassPrediction:
    """Run the passes the config needs and combine them (see :mod:`reference_impl.idlora.guidance`)."""
    passes = config.passes(denoiser.num_reference_tokens > 0)
    predictions = denoiser.predict(video, audio, sigma, passes)
    return combine_guidance(config, predictions, denoiser.num_reference_tokens)


@dataclass
class DenoiserInputs:
    """What stays fixed during sampling (batch 1; the denoiser expands it per pass).

    Attributes:
        prompt_embeds / audio_prompt_embeds: ``(1, L, C_text)`` connector outputs for the prompt.
        prompt_mask: ``(1, L)`` text attention mask (1 = token).
        negative_*: the same for the negative prompt (None when no pass uses it).
        video_coords: ``(1, 3, N_video, 2)`` RoPE ``[start, end)`` bounds (time in seconds, space in pixels).
        audio_coords: ``(1, 1, N_ref + N_target, 2)`` ``[start, end)`` seconds (see ``positions``).
        num_reference_tokens: N_ref (0 without a reference).
        latent_num_frames / latent_height / latent_width: the video latent grid.
        fps: frames per second of the video (RoPE time scale; only used if coords are recomputed).
    """

    prompt_embeds: torch.Tensor
    audio_prompt_embeds: torch.Tensor
    prompt_mask: torch.Tensor
    negative_prompt_embeds: torch.Tensor | None
    negative_audio_prompt_embeds: torch.Tensor | None
    negative_prompt_mask: torch.Tensor | None
    video_coords: torch.Tensor
    audio_coords: torch.Tensor
    num_reference_tokens: int
    latent_num_frames: int
    latent_height: int
    latent_width: int
    fps: float


class TransformerDenoiser:
    """Per-pass x0 predictions from a diffusers ``LTX2VideoTransformer3DModel``.

    With ``batched=True`` the passes that keep the reference (D+, D-, Dstg, Diso) run as ONE forward of
    batch size up to 4 (per-element text embeddings and perturbation masks), and the no-reference pass
    (shorter audio sequence, so it cannot share that batch: diffusers' audio self-attention takes no mask)
    as a second forward. With ``batched=False`` every pass is its own forward of batch 1. Both give the same
    predictions up to float rounding.

    LTX-2.3 transformers (``config.cross_attn_mod``) are run as the authors' 2.3 code runs them: the A/V
    cross-attention modulation takes the OTHER modality's scalar sigma (``use_cross_timestep=True``; ltx-core 2.3
    ``transformer_args.py:248-263``; 2.0 uses each token's own timestep) and STG passes the attention values through
    (``perturbed_attn``; :meth:`_value_stg`). ``use_cross_timestep=None`` picks this from the config.
    """

    def __init__(
        self,
        transformer: torch.nn.Module,
        inputs: DenoiserInputs,
        config: GuidanceConfig,
        *,
        batched: bool = True,
        use_cross_timestep: bool | None = None,
        attention_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.transformer = transformer
        self.inputs = inputs
        self.config = config
        self.batched = batched
        if use_cross_timestep is None:
            use_cross_timestep = bool(getattr(getattr(transformer, "config", None), "cross_attn_mod", False))
        self.use_cross_timestep = use_cross_timestep
        self.attention_kwargs = attention_kwargs
        self.num_reference_tokens = inputs.num_reference_tokens
        self.forward_calls = 0  # number of transformer forwards so far (for tests and benchmarks)

    def groups(self, passes: Sequence[GuidancePass]) -> list[list[GuidancePass]]:
        """How passes are grouped into forwards."""
        if not self.batched:
            return [[p] for p in passes]
        with_reference = [p for p in passes if p.keeps_reference]
        without = [p for p in passes if not p.keeps_reference]
        return [group for group in (with_reference, without) if group]

    def predict(
        self, video: LatentState, audio: LatentState, sigma: float, passes: Sequence[GuidancePass]
    ) -> dict[GuidancePass, PassPrediction]:
        out: dict[GuidancePass, PassPrediction] = {}
        for group in self.groups(passes):
            video_x0, audio_x0 = self._forward(group, video, audio, sigma)
            for index, guidance_pass in enumerate(group):
                out[guidance_pass] = (video_x0[index : index + 1], audio_x0[index : index + 1])
        return out

    def __call__(self, video: LatentState, audio: LatentState, sigma: float, step: int) -> PassPrediction:
        return guided_x0(self, self.config, video, audio, sigma)

    def _text(self, group: Sequence[GuidancePass]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs = self.inputs
        video_text, audio_text, masks = [], [], []
        for guidance_pass in group:
            if guidance_pass.uses_negative_prompt:
                if inputs.negative_prompt_embeds is None or inputs.negative_audio_prompt_embeds is None:
                    raise ValueError("the negative pass needs negative prompt embeddings")
                video_text.append(inputs.negative_prompt_embeds)
                audio_text.append(inputs.negative_audio_prompt_embeds)
                masks.append(inputs.negative_prompt_mask if inputs.negative_prompt_mask is not None
                             else torch.ones(inputs.negative_prompt_embeds.shape[:2]))
            else:
                video_text.append(inputs.prompt_embeds)
                audio_text.append(inputs.audio_prompt_embeds)
                masks.append(inputs.prompt_mask)
        return torch.cat(video_text), torch.cat(audio_text), torch.cat(masks)

    def _value_stg(self, perturbations: Sequence[Any], device: torch.device) -> dict[str, Any]:
        """LTX-2.3's STG (``perturbed_attn`` models): diffusers' own value pass-through in the STG blocks for the
        batch elements whose ``perturbation_mask`` is 0. Empty for LTX-2.0 models (their STG drops the residual,
        done by the :func:`perturbed` hooks) and for groups without an STG pass."""
        if not getattr(self.transformer.config, "perturbed_attn", False):
            return {}
        blocks = sorted(set().union(*(p.skip_self_attention_blocks for p in perturbations)))
        if not blocks:
            return {}
        mask = torch.tensor([0.0 if p.skip_self_attention_blocks else 1.0 for p in perturbations], device=device)
        return {"spatio_temporal_guidance_blocks": blocks, "perturbation_mask": mask}

    @torch.no_grad()
    def _forward(
        self, group: Sequence[GuidancePass], video: LatentState, audio: LatentState, sigma: float
    ) -> PassPrediction:
        keep_reference = group[0].keeps_reference
        if any(p.keeps_reference != keep_reference for p in group):
            raise ValueError("passes with and without the reference cannot share a forward")
        batch = len(group)
        n_ref = self.inputs.num_reference_tokens
        skip = 0 if keep_reference else n_ref
        audio_latents = audio.latents[:, skip:]
        audio_mask = audio.denoise_mask[:, skip:]
        audio_coords = self.inputs.audio_coords[:, :, skip:]
        transformer = self.transformer
        dtype = next(transformer.parameters()).dtype
        device = video.latents.device
        video_text, audio_text, text_mask = self._text(group)
        timestep_video = (TIMESTEP_MULTIPLIER * sigma) * video.denoise_mask.to(torch.float32)
        timestep_audio = (TIMESTEP_MULTIPLIER * sigma) * audio_mask.to(torch.float32)
        scalar_timestep = torch.full((batch,), TIMESTEP_MULTIPLIER * sigma, device=device, dtype=torch.float32)

        def expand(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.expand(batch, *tensor.shape[1:])

        perturbations = [pass_perturbation(p, self.config) for p in group]
        stg = self._value_stg(perturbations, device)
        with perturbed(transformer, perturbations, self_attention=not stg):
            video_velocity, audio_velocity = transformer(
                hidden_states=expand(video.latents).to(dtype),
                audio_hidden_states=expand(audio_latents).to(dtype),
                encoder_hidden_states=video_text.to(device=device, dtype=dtype),
                audio_encoder_hidden_states=audio_text.to(device=device, dtype=dtype),
                timestep=expand(timestep_video),
                audio_timestep=expand(timestep_audio),
                sigma=scalar_timestep,
                audio_sigma=scalar_timestep,
                encoder_attention_mask=text_mask.to(device),
                audio_encoder_attention_mask=text_mask.to(device),
                num_frames=self.inputs.latent_num_frames,
                height=self.inputs.latent_height,
                width=self.inputs.latent_width,
                fps=self.inputs.fps,
                audio_num_frames=audio_latents.shape[1],
                video_coords=expand(self.inputs.video_coords).to(device),
                audio_coords=expand(audio_coords).to(device),
                use_cross_timestep=self.use_cross_timestep,
                attention_kwargs=self.attention_kwargs,
                return_dict=False,
                **stg,
            )
        self.forward_calls += 1
        video_sigma = (sigma * video.denoise_mask.to(torch.float32))[..., None]
        audio_sigma = (sigma * audio_mask.to(torch.float32))[..., None]
        video_x0 = expand(video.latents).to(torch.float32) - video_velocity.to(torch.float32) * video_sigma
        audio_x0 = expand(audio_latents).to(torch.float32) - audio_velocity.to(torch.float32) * audio_sigma
        return video_x0, audio_x0
