"""The ``audio_ref_only_ic`` training recipe of ID-LoRA on the diffusers LTX-2 transformer.

One training step (see :func:`prepare_training_inputs`, :func:`model_forward`, :func:`compute_loss`):

- Flow matching. One sigma per sample, ``s = sigmoid(N(shift, std=1))`` with
  ``shift = 0.95 + (L_video_tokens - 1024) * 1.1 / 3072`` (2.05 at 512x512x121: 16x16x16 = 4096 tokens). Noisy
  latents ``x_t = (1 - s) x0 + s eps``; the model predicts the velocity ``eps - x0``. Video and target audio
  share the sample's sigma.
- Audio sequence ``[reference (clean) ; target (noisy)]``. Reference tokens get timestep 0 and, by default,
  negative temporal positions (:mod:`reference_impl.idlora.positions`: they end one latent step, 40 ms,
  before the target's 0 s); they are excluded from the loss.
- First-frame conditioning with probability 0.9, drawn once per batch as in the authors' code: the first
  latent frame's tokens (H x W tokens) stay clean, get timestep 0 and are excluded from the video loss.
- Loss = MSE over unmasked video tokens + MSE over target audio tokens, unweighted.
- Training-only attention masks (diffusers 0.42.1 hard-codes the block masks to None, so they enter through
  the attention processors of :func:`install_training_masks`): in audio->video cross-attention video queries
  may not attend to reference-audio keys; in audio-text attention the reference rows are blocked from text.

Units: ``sigma`` in [0, 1]; the transformer's ``timestep`` is ``sigma * 1000`` (diffusers expects it already
scaled by ``timestep_scale_multiplier``). Video latents are (B, C, F, H, W) in latent frames/pixels; audio
latents (B, C, L, M) with L latent steps of 40 ms (16 kHz, hop 160, 4x temporal downsampling) and M latent mel
bins; tokens are the diffusers-packed sequences (video: F*H*W tokens of width C; audio: L tokens of width C*M).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_ltx2 import (
    LTX2AudioVideoAttnProcessor,
    apply_interleaved_rotary_emb,
    apply_split_rotary_emb,
)

from reference_impl.idlora import positions

TIMESTEP_SCALE = 1000.0

# ---------------------------------------------------------------------------------------------------------------
# Recipe parameters
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipeConfig:
    """Parameters of the ``audio_ref_only_ic`` strategy (defaults: the released CelebV-HQ / TalkVid recipe)."""

    first_frame_conditioning_p: float = 0.9
    mask_cross_attention_to_reference: bool = True
    mask_reference_from_text_attention: bool = True
    #: How reference rows blocked from text behave. ``"zero"``: they attend to nothing (attention output 0).
    #: ``"uniform"``: what the authors' additive ``finfo.min`` mask computes numerically - every score of the
    #: row becomes the same, so the row attends uniformly to all text tokens (padding included).
    blocked_text_rows: Literal["zero", "uniform"] = "zero"
    use_negative_ref_positions: bool = True
    #: Audio positions as the authors' training builds them: reference AND target rows rounded to bfloat16
    #: (``audio_ref_only_ic.py:248-267, 414-438``); "float32" keeps them exact.
    positions_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    #: Shifted logit-normal: ``shift = min_shift + (L - min_tokens) * (max_shift - min_shift) / (max_tokens - min_tokens)``.
    sigma_std: float = 1.0
    min_shift: float = 0.95
    max_shift: float = 2.05
    min_tokens: int = 1024
    max_tokens: int = 4096
    #: diffusers ``use_cross_timestep``: False is LTX-2.0 behaviour (the released LoRAs), True LTX-2.3.
    use_cross_timestep: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.first_frame_conditioning_p <= 1.0:
            raise ValueError(f"first_frame_conditioning_p must be in [0, 1], got {self.first_frame_conditioning_p}")
        if self.blocked_text_rows not in ("zero", "uniform"):
            raise ValueError(f"blocked_text_rows must be 'zero' or 'uniform', got {self.blocked_text_rows!r}")
        if self.sigma_std <= 0:
            raise ValueError("sigma_std must be positive")


# ---------------------------------------------------------------------------------------------------------------
# Sigma sampling
# ---------------------------------------------------------------------------------------------------------------


def shifted_logit_normal_shift(num_video_tokens: int, recipe: RecipeConfig = RecipeConfig()) -> float:
    """The logit-normal mean for ``num_video_tokens`` (F*H*W latent tokens); 0.95 at 1024, 2.05 at 4096 tokens.

    Linear in the token count and not clamped (as in the authors' sampler).
    """
    slope = (recipe.max_shift - recipe.min_shift) / (recipe.max_tokens - recipe.min_tokens)
    return recipe.min_shift + (num_video_tokens - recipe.min_tokens) * slope


def sample_sigmas(
    batch_size: int,
    num_video_tokens: int,
    generator: torch.Generator | None = None,
    recipe: RecipeConfig = RecipeConfig(),
) -> torch.Tensor:
    """One flow-matching sigma per sample, ``sigmoid(N(shift, std))``; (batch_size,) float32 on the CPU."""
    shift = shifted_logit_normal_shift(num_video_tokens, recipe)
    normal = torch.randn(batch_size, generator=generator, dtype=torch.float32) * recipe.sigma_std + shift
    return torch.sigmoid(normal)


# ---------------------------------------------------------------------------------------------------------------
# Training attention masks (attention-processor hook)
# ---------------------------------------------------------------------------------------------------------------

MaskRole = Literal["a2v", "audio_text"]


@dataclass
class TrainingMaskState:
    """Masks read by the :class:`MaskedAttnProcessor` instances at call time (shared by all blocks).

    ``a2v_allowed``: (B, N_video, N_audio) bool, True where a video query may attend to an audio key in
    ``audio_to_video_attn``. ``audio_text_allowed``: (B, N_audio, T_text) bool, True where an audio query may
    attend to a text key in ``audio_attn2`` (the text padding mask is applied on top by diffusers).
    ``None`` = no extra mask (exactly diffusers' behaviour). With ``capture`` the processors record their
    softmax probabilities (B, heads, Q, K) in ``captured[module_name]`` (slow path; tests and debugging).
    """

    a2v_allowed: torch.Tensor | None = None
    audio_text_allowed: torch.Tensor | None = None
    blocked_rows: Literal["zero", "uniform"] = "zero"
    capture: bool = False
    captured: dict[str, torch.Tensor] = field(default_factory=dict)

    def mask_for(self, role: MaskRole) -> torch.Tensor | None:
        return self.a2v_allowed if role == "a2v" else self.audio_text_allowed

    def set(self, a2v_allowed: torch.Tensor | None, audio_text_allowed: torch.Tensor | None) -> None:
        """Set both masks (None disables one); they persist until the next ``set`` or :meth:`clear`."""
        self.a2v_allowed, self.audio_text_allowed = a2v_allowed, audio_text_allowed

    def clear(self) -> None:
        self.a2v_allowed = self.audio_text_allowed = None
        self.captured.clear()

    @contextlib.contextmanager
    def active(
        self, a2v_allowed: torch.Tensor | None, audio_text_allowed: torch.Tensor | None
    ) -> Iterator[TrainingMaskState]:
        """Set the masks for a forward (and its checkpointed recomputation in backward); cleared on exit."""
        self.a2v_allowed, self.audio_text_allowed = a2v_allowed, audio_text_allowed
        try:
            yield self
        finally:
            self.a2v_allowed = self.audio_text_allowed = None


class MaskedAttnProcessor(LTX2AudioVideoAttnProcessor):
    """``LTX2AudioVideoAttnProcessor`` plus an extra boolean mask from a shared :class:`TrainingMaskState`.

    With no mask set (and no capture) it defers to the parent, so outputs are identical to diffusers'. With a
    mask, blocked (query, key) entries get ``-inf`` before the softmax; rows with every key blocked produce a
    zero attention output (``blocked_rows="zero"``) or - ``"uniform"`` - get the additive ``finfo.min`` the
    authors use, which makes the row's scores all equal (uniform attention).
    """

    def __init__(self, state: TrainingMaskState, role: MaskRole, name: str) -> None:
        super().__init__()
        self.state = state
        self.role: MaskRole = role
        self.name = name

    def __call__(  # type: ignore[override]
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        query_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        key_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        allowed = self.state.mask_for(self.role)
        if allowed is None and not self.state.capture:
            return super().__call__(
                attn, hidden_states, encoder_hidden_states, attention_mask, query_rotary_emb, key_rotary_emb
            )
        batch_size = hidden_states.shape[0]
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        key_length = encoder_hidden_states.shape[1]
        gate_logits = attn.to_gate_logits(hidden_states) if attn.to_gate_logits is not None else None

        query = attn.norm_q(attn.to_q(hidden_states))
        key = attn.norm_k(attn.to_k(encoder_hidden_states))
        value = attn.to_v(encoder_hidden_states)
        if query_rotary_emb is not None:
            rotate = apply_interleaved_rotary_emb if attn.rope_type == "interleaved" else apply_split_rotary_emb
            query = rotate(query, query_rotary_emb)
            key = rotate(key, key_rotary_emb if key_rotary_emb is not None else query_rotary_emb)
        # (B, S, H*D) -> (B, H, S, D)
        query, key, value = (t.unflatten(2, (attn.heads, -1)).transpose(1, 2) for t in (query, key, value))

        bias = torch.zeros(batch_size, 1, query.shape[2], key_length, dtype=query.dtype, device=query.device)
        if attention_mask is not None:
            prepared = attn.prepare_attention_mask(attention_mask, key_length, batch_size)
            bias = bias + prepared.view(batch_size, attn.heads, -1, prepared.shape[-1]).to(query.dtype)
        row_any: torch.Tensor | None = None
        if allowed is not None:
            expected = (batch_size, query.shape[2], key_length)
            if tuple(allowed.shape) != expected:
                raise ValueError(f"{self.name}: mask shape {tuple(allowed.shape)} != (B, Q, K) {expected}")
            allowed4 = allowed.to(query.device)[:, None]
            if self.state.blocked_rows == "uniform":
                bias = bias + torch.where(allowed4, 0.0, torch.finfo(query.dtype).min).to(query.dtype)
            else:
                row_any = allowed4.any(dim=-1, keepdim=True)  # (B, 1, Q, 1)
                keep = allowed4 | ~row_any  # fully blocked rows: computed unmasked, then zeroed
                bias = bias.masked_fill(~keep, float("-inf"))

        if self.state.capture:
            scores = (query @ key.transpose(-1, -2)).float() / math.sqrt(query.shape[-1]) + bias.float()
            probs = scores.softmax(dim=-1)
            if row_any is not None:
                probs = probs * row_any
            self.state.captured[self.name] = probs.detach()
            out = probs.to(value.dtype) @ value
        else:
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=0.0, is_causal=False)
            if row_any is not None:
                out = out * row_any.to(out.dtype)
        hidden = out.transpose(1, 2).flatten(2, 3).to(query.dtype)  # (B, Q, H*D)
        if gate_logits is not None:
            hidden = hidden.unflatten(2, (attn.heads, -1))
            hidden = (hidden * (2.0 * torch.sigmoid(gate_logits)).unsqueeze(-1)).flatten(2, 3)
        hidden = attn.to_out[0](hidden)
        return attn.to_out[1](hidden)


def install_training_masks(
    transformer: torch.nn.Module, blocked_rows: Literal["zero", "uniform"] = "zero"
) -> TrainingMaskState:
    """Give every block's ``audio_to_video_attn`` and ``audio_attn2`` a :class:`MaskedAttnProcessor`.

    Returns the shared state; set masks with ``state.active(...)``. Other attention modules keep diffusers'
    processors. Works before or after peft injection (processors live on the attention modules).
    """
    state = TrainingMaskState(blocked_rows=blocked_rows)
    blocks = transformer.transformer_blocks  # type: ignore[attr-defined]
    for index, block in enumerate(blocks):
        block.audio_to_video_attn.set_processor(
            MaskedAttnProcessor(state, "a2v", f"transformer_blocks.{index}.audio_to_video_attn")
        )
        block.audio_attn2.set_processor(
            MaskedAttnProcessor(state, "audio_text", f"transformer_blocks.{index}.audio_attn2")
        )
    return state


def build_training_masks(
    batch_size: int,
    num_video_tokens: int,
    num_ref_tokens: int,
    num_target_tokens: int,
    num_text_tokens: int,
    recipe: RecipeConfig,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(a2v_allowed (B, N_v, N_a), audio_text_allowed (B, N_a, T)) bool masks, or None where the recipe disables one."""
    num_audio = num_ref_tokens + num_target_tokens
    a2v = None
    if recipe.mask_cross_attention_to_reference:
        a2v = torch.ones(batch_size, num_video_tokens, num_audio, dtype=torch.bool, device=device)
        a2v[:, :, :num_ref_tokens] = False
    text = None
    if recipe.mask_reference_from_text_attention:
        text = torch.ones(batch_size, num_audio, num_text_tokens, dtype=torch.bool, device=device)
        text[:, :num_ref_tokens, :] = False
    return a2v, text


# ---------------------------------------------------------------------------------------------------------------
# Batches and model inputs
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class LatentBatch:
    """One training batch of cached latents (all samples share shapes).

    video_latents (B, C, F, H, W): normalised target video latents (the first latent frame is the first-frame
    condition). audio_latents (B, C_a, L, M): normalised target audio latents (L latent steps of 40 ms).
    ref_audio_latents (B, C_a, L_ref, M): the reference audio. video_prompt_embeds / audio_prompt_embeds
    (B, T, caption_channels): text-connector outputs as the transformer takes them. prompt_attention_mask (B, T):
    1 for real text tokens. fps: video frame rate (frames per second) of the target.
    """

    video_latents: torch.Tensor
    audio_latents: torch.Tensor
    ref_audio_latents: torch.Tensor
    video_prompt_embeds: torch.Tensor
    audio_prompt_embeds: torch.Tensor
    prompt_attention_mask: torch.Tensor
    fps: float = 25.0
    sample_ids: list[str] = field(default_factory=list)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> LatentBatch:
        moved = {
            name: getattr(self, name).to(device, non_blocking=non_blocking)
            for name in (
                "video_latents",
                "audio_latents",
                "ref_audio_latents",
                "video_prompt_embeds",
                "audio_prompt_embeds",
                "prompt_attention_mask",
            )
        }
        return LatentBatch(**moved, fps=self.fps, sample_ids=list(self.sample_ids))


def pack_video_latents(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, F, H, W) -> (B, F*H*W, C), diffusers' ``_pack_latents`` with patch size 1 (frame-major order)."""
    return latents.flatten(2).transpose(1, 2)


def pack_audio_latents(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, L, M) -> (B, L, C*M), diffusers' ``_pack_audio_latents`` (all mel bins of a step in one token)."""
    return latents.transpose(1, 2).flatten(2, 3)


@dataclass
class TrainingInputs:
    """Everything one forward + loss needs (token tensors on one device)."""

    video_tokens: torch.Tensor  # (B, N_v, C) noisy target video (first frame clean when conditioned)
    audio_tokens: torch.Tensor  # (B, N_ref + N_t, C_a*M): [clean reference ; noisy target]
    video_timestep: torch.Tensor  # (B, N_v) sigma*1000, 0 on conditioned first-frame tokens
    audio_timestep: torch.Tensor  # (B, N_ref + N_t) 0 on reference tokens, sigma*1000 on target tokens
    sigma: torch.Tensor  # (B,) in [0, 1]
    audio_coords: torch.Tensor  # (B, 1, N_ref + N_t, 2) seconds
    video_targets: torch.Tensor  # (B, N_v, C) velocity eps - x0
    audio_targets: torch.Tensor  # (B, N_t, C_a*M) velocity eps - x0 of the target tokens
    video_loss_mask: torch.Tensor  # (B, N_v) bool, False on conditioned first-frame tokens
    num_ref_tokens: int
    first_frame_conditioned: bool
    latent_shape: tuple[int, int, int]  # (F, H, W) latent video grid
    fps: float
    video_prompt_embeds: torch.Tensor
    audio_prompt_embeds: torch.Tensor
    prompt_attention_mask: torch.Tensor
    a2v_allowed: torch.Tensor | None
    audio_text_allowed: torch.Tensor | None


def prepare_training_inputs(
    batch: LatentBatch,
    recipe: RecipeConfig,
    generator: torch.Generator | None = None,
) -> TrainingInputs:
    """Noise the batch for one step of the recipe. Random draws (first-frame coin, sigmas, noises) come from
    ``generator`` (a CPU generator; tensors move to the batch's device afterwards), in that order."""
    device = batch.video_latents.device
    video_x0 = pack_video_latents(batch.video_latents.float())
    target_x0 = pack_audio_latents(batch.audio_latents.float())
    reference = pack_audio_latents(batch.ref_audio_latents.float())
    batch_size, num_video_tokens, _ = video_x0.shape
    num_frames, height, width = batch.video_latents.shape[2:]
    if reference.shape[-1] != target_x0.shape[-1]:
        raise ValueError(f"reference audio tokens have width {reference.shape[-1]}, target {target_x0.shape[-1]}")
    num_ref = reference.shape[1]

    first_frame = bool(
        recipe.first_frame_conditioning_p > 0
        and torch.rand((), generator=generator).item() < recipe.first_frame_conditioning_p
        and height * width < num_video_tokens
    )
    sigma = sample_sigmas(batch_size, num_video_tokens, generator, recipe)
    video_noise = torch.randn(video_x0.shape, generator=generator, dtype=torch.float32)
    audio_noise = torch.randn(target_x0.shape, generator=generator, dtype=torch.float32)
    sigma, video_noise, audio_noise = sigma.to(device), video_noise.to(device), audio_noise.to(device)
    s = sigma.view(-1, 1, 1)

    conditioned = torch.zeros(batch_size, num_video_tokens, dtype=torch.bool, device=device)
    if first_frame:
        conditioned[:, : height * width] = True
    noisy_video = (1 - s) * video_x0 + s * video_noise
    noisy_video = torch.where(conditioned[..., None], video_x0, noisy_video)
    noisy_target = (1 - s) * target_x0 + s * audio_noise

    video_timestep = (sigma[:, None] * TIMESTEP_SCALE).expand(batch_size, num_video_tokens) * (~conditioned)
    audio_timestep = torch.cat(
        [
            torch.zeros(batch_size, num_ref, device=device),
            (sigma[:, None] * TIMESTEP_SCALE).expand(batch_size, target_x0.shape[1]),
        ],
        dim=1,
    )
    audio_coords = positions.audio_coords(
        num_ref,
        target_x0.shape[1],
        batch_size=batch_size,
        mode="negative" if recipe.use_negative_ref_positions else "standard",
        positions_dtype=recipe.positions_dtype,
        training_target_dtype=True,
        device=device,
    )
    a2v, text = build_training_masks(
        batch_size,
        num_video_tokens,
        num_ref,
        target_x0.shape[1],
        batch.prompt_attention_mask.shape[1],
        recipe,
        device,
    )
    return TrainingInputs(
        video_tokens=noisy_video,
        audio_tokens=torch.cat([reference, noisy_target], dim=1),
        video_timestep=video_timestep,
        audio_timestep=audio_timestep,
        sigma=sigma,
        audio_coords=audio_coords,
        video_targets=video_noise - video_x0,
        audio_targets=audio_noise - target_x0,
        video_loss_mask=~conditioned,
        num_ref_tokens=num_ref,
        first_frame_conditioned=first_frame,
        latent_shape=(int(num_frames), int(height), int(width)),
        fps=float(batch.fps),
        video_prompt_embeds=batch.video_prompt_embeds,
        audio_prompt_embeds=batch.audio_prompt_embeds,
        prompt_attention_mask=batch.prompt_attention_mask,
        a2v_allowed=a2v,
        audio_text_allowed=text,
    )


def model_forward(
    transformer: torch.nn.Module,
    inputs: TrainingInputs,
    *,
    use_cross_timestep: bool = False,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the transformer on ``inputs``; returns float32 (video_pred (B, N_v, C), audio_pred (B, N_a, C_a*M)).

    The training masks are NOT set here (see :func:`training_loss` / ``TrainingMaskState.set``). ``dtype`` is the dtype inputs are cast to (the transformer's parameter dtype).
    """
    dtype = dtype or next(transformer.parameters()).dtype
    num_frames, height, width = inputs.latent_shape
    video_pred, audio_pred = transformer(
        hidden_states=inputs.video_tokens.to(dtype),
        audio_hidden_states=inputs.audio_tokens.to(dtype),
        encoder_hidden_states=inputs.video_prompt_embeds.to(dtype),
        audio_encoder_hidden_states=inputs.audio_prompt_embeds.to(dtype),
        timestep=inputs.video_timestep,
        audio_timestep=inputs.audio_timestep,
        sigma=inputs.sigma * TIMESTEP_SCALE,
        encoder_attention_mask=inputs.prompt_attention_mask,
        audio_encoder_attention_mask=inputs.prompt_attention_mask,
        num_frames=num_frames,
        height=height,
        width=width,
        fps=inputs.fps,
        audio_num_frames=inputs.audio_tokens.shape[1],
        audio_coords=inputs.audio_coords,
        use_cross_timestep=use_cross_timestep,
        return_dict=False,
    )
    return video_pred.float(), audio_pred.float()


@dataclass
class LossTerms:
    total: torch.Tensor
    video: torch.Tensor
    audio: torch.Tensor


def compute_loss(video_pred: torch.Tensor, audio_pred: torch.Tensor, inputs: TrainingInputs) -> LossTerms:
    """MSE over the video tokens outside the first-frame condition + MSE over the target audio tokens.

    ``audio_pred`` holds all audio tokens (reference first); its first ``num_ref_tokens`` are ignored.
    Video: sum of squared errors over kept tokens / (kept tokens * channels), pooled over the batch (the
    authors' ``mean(mask * err) / mean(mask)``).
    """
    mask = inputs.video_loss_mask[..., None].to(video_pred.dtype)
    squared = (video_pred - inputs.video_targets.to(video_pred.dtype)).pow(2)
    video = (squared * mask).sum() / (mask.sum() * squared.shape[-1]).clamp(min=1)
    target_pred = audio_pred[:, inputs.num_ref_tokens :]
    if target_pred.shape != inputs.audio_targets.shape:
        raise ValueError(f"audio prediction {tuple(target_pred.shape)} != targets {tuple(inputs.audio_targets.shape)}")
    audio = (target_pred - inputs.audio_targets.to(audio_pred.dtype)).pow(2).mean()
    return LossTerms(total=video + audio, video=video, audio=audio)


def training_loss(
    transformer: torch.nn.Module,
    inputs: TrainingInputs,
    mask_state: TrainingMaskState | None,
    *,
    use_cross_timestep: bool = False,
    dtype: torch.dtype | None = None,
) -> LossTerms:
    """Set this batch's training masks, run the forward and :func:`compute_loss`.

    The masks stay set after the call (until the next call or ``mask_state.clear()``), so that gradient
    checkpointing recomputes the forward in ``backward()`` with the same masks.
    """
    if mask_state is None:
        if inputs.a2v_allowed is not None or inputs.audio_text_allowed is not None:
            raise RuntimeError("the recipe asks for training masks but no mask processors are installed")
    else:
        mask_state.set(inputs.a2v_allowed, inputs.audio_text_allowed)
    video_pred, audio_pred = model_forward(transformer, inputs, use_cross_timestep=use_cross_timestep, dtype=dtype)
    return compute_loss(video_pred, audio_pred, inputs)
