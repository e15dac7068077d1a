"""Identity-guided sampling: the five guidance passes and how their x0 predictions are combined.

Every pass is one transformer forward on the current noisy state; its velocity output is turned into an
x0 (clean-latent) prediction ``x0 = x - sigma_token * v`` (``sigma_token = 0`` on clean tokens: the
reference audio and the conditioning first video frame). Per modality, with ``D+`` the positive pass:

- ``D+``  (:attr:`GuidancePass.POSITIVE`): prompt, reference tokens in the audio sequence.
- ``D-``  (:attr:`GuidancePass.NEGATIVE`): negative prompt, reference tokens kept.
- ``Dnr`` (:attr:`GuidancePass.NO_REFERENCE`): prompt, reference tokens *removed from the sequence*
  (the audio sequence is the target tokens only, at their unchanged positions).
- ``Dstg`` (:attr:`GuidancePass.STG`): prompt + reference, self-attention skipped (its residual
  contribution dropped) in the chosen block(s), both modalities (LTX-2 block 29 by default).
- ``Diso`` (:attr:`GuidancePass.ISOLATED`): prompt + reference, audio->video and video->audio
  cross-attention skipped in every block.

Combination (applied to x0 predictions)::

    video           = D+ + (w_v - 1)(D+ - D-) + s_stg (D+ - Dstg) + (w_av - 1)(D+ - Diso)
    audio (targets) = D+ + (w_a - 1)(D+ - D-) + s_id (D+ - Dnr) + s_stg (D+ - Dstg) + (w_av - 1)(D+ - Diso)

The reference rows of the combined audio carry the same formula without the identity term; the sampler
overwrites them with the clean reference after every step, so they never matter.

Identity scale conventions (both are accepted by :meth:`GuidanceConfig.create`, one at a time):
the paper writes ``eps = eps_u + s (eps_ref - eps_u)`` (``s = identity_scale_paper``, default 4.0); the
released code adds ``s_id (D+ - Dnr)`` on top of ``D+`` (``s_id = identity_scale_code``, default 3.0).
They are the same rule with ``s_id = s - 1``.

Skipping a sub-layer means dropping its residual contribution (``x + gate * attn(x)`` becomes ``x``), as in
the authors' code; diffusers' own ``LTX2PerturbedAttnProcessor`` (LTX-2.3) instead passes the value
projection through, which is a different perturbation and is not used here. The skips are implemented as
forward hooks on the ``LTX2Attention`` modules that multiply their output by a per-batch-element keep mask
(0 = skipped), so passes with different perturbations can share one batch.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

DEFAULT_VIDEO_SCALE = 3.0
DEFAULT_AUDIO_SCALE = 7.0
DEFAULT_IDENTITY_SCALE_CODE = 3.0
DEFAULT_IDENTITY_SCALE_PAPER = DEFAULT_IDENTITY_SCALE_CODE + 1.0
DEFAULT_STG_SCALE = 1.0
DEFAULT_STG_BLOCK = 29
DEFAULT_MODALITY_SCALE = 3.0


class GuidancePass(str, enum.Enum):
    """One transformer forward of the guided prediction."""

    POSITIVE = "positive"
    NEGATIVE = "negative"
    NO_REFERENCE = "no_reference"
    STG = "stg"
    ISOLATED = "isolated"

    @property
    def uses_negative_prompt(self) -> bool:
        return self is GuidancePass.NEGATIVE

    @property
    def keeps_reference(self) -> bool:
        return self is not GuidancePass.NO_REFERENCE


@dataclass(frozen=True)
class GuidanceConfig:
    """Guidance scales (released ID-LoRA defaults).

    Attributes:
        video_scale: ``w_v``, video text CFG (1 disables).
        audio_scale: ``w_a``, audio text CFG (1 disables).
        identity_scale_code: ``s_id``, code convention (0 disables); paper convention = this + 1.
        stg_scale: ``s_stg``, spatio-temporal guidance (0 disables).
        stg_blocks: transformer block indices whose self-attention the STG pass skips (both modalities).
        modality_scale: ``w_av``, audio-video isolation guidance (1 disables).
    """

    video_scale: float = DEFAULT_VIDEO_SCALE
    audio_scale: float = DEFAULT_AUDIO_SCALE
    identity_scale_code: float = DEFAULT_IDENTITY_SCALE_CODE
    stg_scale: float = DEFAULT_STG_SCALE
    stg_blocks: tuple[int, ...] = (DEFAULT_STG_BLOCK,)
    modality_scale: float = DEFAULT_MODALITY_SCALE

    def __post_init__(self) -> None:
        object.__setattr__(self, "stg_blocks", tuple(int(b) for b in self.stg_blocks))
        if self.stg_scale != 0 and not self.stg_blocks:
            raise ValueError("stg_scale != 0 needs at least one STG block")
        if any(b < 0 for b in self.stg_blocks):
            raise ValueError(f"STG blocks must be >= 0, got {self.stg_blocks}")

    @classmethod
    def create(
        cls,
        *,
        video_scale: float = DEFAULT_VIDEO_SCALE,
        audio_scale: float = DEFAULT_AUDIO_SCALE,
        identity_scale_paper: float | None = None,
        identity_scale_code: float | None = None,
        stg_scale: float = DEFAULT_STG_SCALE,
        stg_blocks: Sequence[int] = (DEFAULT_STG_BLOCK,),
        modality_scale: float = DEFAULT_MODALITY_SCALE,
    ) -> GuidanceConfig:
        """Build a config; give the identity scale in ONE convention (paper ``s`` or code ``s_id = s - 1``).

        Neither given: the released default (paper 4.0 == code 3.0).
        """
        if identity_scale_paper is not None and identity_scale_code is not None:
            raise ValueError(
                "give the identity scale in one convention only: identity_scale_paper (s, paper Eq. 5) or "
                "identity_scale_code (s_id = s - 1, the released code)"
            )
        if identity_scale_paper is not None:
            code = float(identity_scale_paper) - 1.0
        elif identity_scale_code is not None:
            code = float(identity_scale_code)
        else:
            code = DEFAULT_IDENTITY_SCALE_CODE
        return cls(float(video_scale), float(audio_scale), code, float(stg_scale), tuple(stg_blocks),
                   float(modality_scale))

    @property
    def identity_scale_paper(self) -> float:
        """The paper's ``s`` (Eq. 5): ``identity_scale_code + 1``."""
        return self.identity_scale_code + 1.0

    def without_identity(self) -> GuidanceConfig:
        """The same scales with identity guidance off (zero-shot, or no reference)."""
        return GuidanceConfig(self.video_scale, self.audio_scale, 0.0, self.stg_scale, self.stg_blocks,
                              self.modality_scale)

    def passes(self, has_reference: bool) -> tuple[GuidancePass, ...]:
        """The forward passes needed: a pass whose guidance coefficient is 0 is skipped."""
        needed = [GuidancePass.POSITIVE]
        if self.video_scale != 1.0 or self.audio_scale != 1.0:
            needed.append(GuidancePass.NEGATIVE)
        if has_reference and self.identity_scale_code != 0.0:
            needed.append(GuidancePass.NO_REFERENCE)
        if self.stg_scale != 0.0:
            needed.append(GuidancePass.STG)
        if self.modality_scale != 1.0:
            needed.append(GuidancePass.ISOLATED)
        return tuple(needed)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stg_blocks"] = list(self.stg_blocks)
        out["identity_scale_paper"] = self.identity_scale_paper
        return out


PassPrediction = tuple[torch.Tensor, torch.Tensor]
"""``(video_x0 (B, N_video, C_video), audio_x0 (B, N_audio, C_audio))``; for ``NO_REFERENCE`` the audio
part covers the target tokens only (``N_audio - N_reference`` rows)."""


def combine_guidance(
    config: GuidanceConfig,
    predictions: Mapping[GuidancePass, PassPrediction],
    num_reference_tokens: int,
) -> PassPrediction:
    """Combine per-pass x0 predictions into the guided ``(video_x0, audio_x0)`` (formulas in the module doc).

    Args:
        config: the scales.
        predictions: one entry per pass in ``config.passes(num_reference_tokens > 0)``.
        num_reference_tokens: N_ref, reference rows at the start of the audio sequence.
    """
    has_reference = num_reference_tokens > 0
    required = config.passes(has_reference)
    missing = [p.value for p in required if p not in predictions]
    if missing:
        raise KeyError(f"missing predictions for passes {missing}")
    video_pos, audio_pos = predictions[GuidancePass.POSITIVE]
    video_delta = torch.zeros_like(video_pos)
    audio_delta = torch.zeros_like(audio_pos)
    if GuidancePass.NEGATIVE in required:
        video_neg, audio_neg = predictions[GuidancePass.NEGATIVE]
        video_delta = video_delta + (config.video_scale - 1.0) * (video_pos - video_neg)
        audio_delta = audio_delta + (config.audio_scale - 1.0) * (audio_pos - audio_neg)
    if GuidancePass.NO_REFERENCE in required:
        _, audio_noref = predictions[GuidancePass.NO_REFERENCE]
        expected = audio_pos.shape[1] - num_reference_tokens
        if audio_noref.shape[1] != expected:
            raise ValueError(f"no-reference audio prediction has {audio_noref.shape[1]} tokens, expected {expected}")
        identity = torch.zeros_like(audio_delta)
        identity[:, num_reference_tokens:] = config.identity_scale_code * (
            audio_pos[:, num_reference_tokens:] - audio_noref
        )
        audio_delta = audio_delta + identity
    if GuidancePass.STG in required:
        video_stg, audio_stg = predictions[GuidancePass.STG]
        video_delta = video_delta + config.stg_scale * (video_pos - video_stg)
        audio_delta = audio_delta + config.stg_scale * (audio_pos - audio_stg)
    if GuidancePass.ISOLATED in required:
        video_iso, audio_iso = predictions[GuidancePass.ISOLATED]
        video_delta = video_delta + (config.modality_scale - 1.0) * (video_pos - video_iso)
        audio_delta = audio_delta + (config.modality_scale - 1.0) * (audio_pos - audio_iso)
    return video_pos + video_delta, audio_pos + audio_delta


# ---------------------------------------------------------------------------------------------------------
# Perturbation hooks (STG and modality isolation) on diffusers' LTX2VideoTransformer3DModel
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Perturbation:
    """What one batch element skips.

    Attributes:
        skip_self_attention_blocks: blocks whose video AND audio self-attention (``attn1``, ``audio_attn1``)
            contribute nothing (STG).
        skip_cross_modal_attention: audio->video and video->audio cross-attention contribute nothing in
            every block (isolation).
    """

    skip_self_attention_blocks: frozenset[int] = field(default_factory=frozenset)
    skip_cross_modal_attention: bool = False

    @property
    def is_identity(self) -> bool:
        return not self.skip_self_attention_blocks and not self.skip_cross_modal_attention


NO_PERTURBATION = Perturbation()


def pass_perturbation(guidance_pass: GuidancePass, config: GuidanceConfig) -> Perturbation:
    """The perturbation a pass applies (none except STG and ISOLATED)."""
    if guidance_pass is GuidancePass.STG:
        return Perturbation(skip_self_attention_blocks=frozenset(config.stg_blocks))
    if guidance_pass is GuidancePass.ISOLATED:
        return Perturbation(skip_cross_modal_attention=True)
    return NO_PERTURBATION


SELF_ATTENTION_MODULES = ("attn1", "audio_attn1")
CROSS_MODAL_MODULES = ("audio_to_video_attn", "video_to_audio_attn")


@contextlib.contextmanager
def perturbed(transformer: torch.nn.Module, perturbations: Sequence[Perturbation],
              self_attention: bool = True) -> Iterator[None]:
    """Within the block, the transformer applies ``perturbations[b]`` to batch element ``b``.

    Forward hooks are registered only on the attention modules that at least one element skips; each
    multiplies the module's output ``(B, S, D)`` by a keep mask ``(B, 1, 1)`` (0 for skipping elements),
    which removes exactly that sub-layer's residual contribution (LTX-2.0's STG and the modality isolation of both
    versions). ``self_attention=False`` leaves the STG blocks alone: LTX-2.3's STG passes the values through
    instead, which diffusers does itself (``perturbed_attn`` models, ``perturbation_mask``; see
    :class:`~reference_impl.idlora.sampling.TransformerDenoiser`). Hooks are removed on exit, also on errors.

    Raises:
        ValueError: an STG block index outside the transformer's blocks.
    """
    blocks = transformer.transformer_blocks  # type: ignore[attr-defined]
    wanted_blocks = set().union(*(p.skip_self_attention_blocks for p in perturbations)) if perturbations else set()
    bad = sorted(b for b in wanted_blocks if b >= len(blocks))
    if bad:
        raise ValueError(f"STG block(s) {bad} do not exist: the transformer has {len(blocks)} blocks (0..{len(blocks) - 1})")
    batch = len(perturbations)
    handles: list[torch.utils.hooks.RemovableHandle] = []
    first = next(transformer.parameters(), None)
    home = first.device if first is not None and first.device.type != "meta" else torch.device("cpu")

    def keep_hook(keep: torch.Tensor):
        def hook(module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
            if output.shape[0] != batch:
                raise RuntimeError(f"perturbation set for batch {batch} but the transformer ran batch {output.shape[0]}")
            return output * keep.to(device=output.device, dtype=output.dtype).view(batch, 1, 1)
        return hook

    try:
        for index, block in enumerate(blocks):
            self_keep = torch.tensor([0.0 if index in p.skip_self_attention_blocks else 1.0 for p in perturbations],
                                     device=home)
            if self_attention and bool((self_keep == 0).any()):
                for name in SELF_ATTENTION_MODULES:
                    handles.append(getattr(block, name).register_forward_hook(keep_hook(self_keep)))
            cross_keep = torch.tensor([0.0 if p.skip_cross_modal_attention else 1.0 for p in perturbations],
                                      device=home)
            if bool((cross_keep == 0).any()):
                for name in CROSS_MODAL_MODULES:
                    handles.append(getattr(block, name).register_forward_hook(keep_hook(cross_keep)))
        yield
    finally:
        for handle in handles:
            handle.remove()
