"""Two-stage refinement (the paper's 1024 px outputs): the x2 latent upsampler, the distilled LoRA adapter and the
stage-2 sampler (:func:`refine_stage2`), used by :class:`~reference_impl.idlora.pipeline.IDLoRAPipeline` when
``two_stage=True`` (see its module docstring, steps 6-8).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from reference_impl.idlora import positions as pos
from reference_impl.idlora.guidance import GuidanceConfig, GuidancePass
from reference_impl.idlora.sampling import (
    DenoiserInputs,
    LatentState,
    StepCallback,
    TransformerDenoiser,
    sample,
)

# LTX-2's distilled stage-2 schedule: diffusers' STAGE_2_DISTILLED_SIGMA_VALUES + 0.
STAGE2_SIGMAS: tuple[float, ...] = (0.909375, 0.725, 0.421875, 0.0)
DEFAULT_DISTILLED_LORA_STRENGTH = 0.8
DISTILLED_ADAPTER_NAME = "distilled"
UPSAMPLER_SCALE = 2  # the x2 spatial upsampler: output height and width = 2 x stage 1


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


def tuner_layers(*models: torch.nn.Module | None) -> list[Any]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for model in models if model is not None for m in model.modules() if isinstance(m, BaseTunerLayer)]


def layer_adapters(layer: Any) -> set[str]:
    return set(getattr(layer, "lora_A", {}).keys())


def set_distilled_adapter(models: tuple[torch.nn.Module | None, ...], active: bool, strength: float = 1.0) -> int:
    """Switch the ``"distilled"`` adapter on (at ``strength``: scaling = strength * alpha / r) or off in every
    peft layer of ``models``, leaving the other adapters (the ID-LoRA ``"default"``) as they are. Returns the
    number of layers that hold the distilled adapter."""
    count = 0
    for layer in tuner_layers(*models):
        current = [name for name in layer.active_adapters if name != DISTILLED_ADAPTER_NAME]
        has = DISTILLED_ADAPTER_NAME in layer_adapters(layer)
        count += int(has)
        if has:
            layer.set_scale(DISTILLED_ADAPTER_NAME, float(strength) if active else 1.0)
        _set_active(layer, current + ([DISTILLED_ADAPTER_NAME] if has and active else []))
    return count


@contextmanager
def stage2_adapters(models: tuple[torch.nn.Module | None, ...], strength: float, keep_identity: bool) -> Iterator[int]:
    """Within the block, every peft layer of ``models`` runs the ``"distilled"`` adapter at ``strength`` (when loaded
    and ``strength`` != 0) and, unless ``keep_identity``, NO other adapter: the authors' stage 2 is the base model +
    the distilled LoRA only (``scripts/inference_two_stage.py:198-216, 273-288``). Every layer's active adapters, the
    distilled scale and ``requires_grad`` are restored afterwards, also on error. Yields the distilled layer count."""
    saved = []
    count = 0
    try:
        for layer in tuner_layers(*models):
            has = DISTILLED_ADAPTER_NAME in layer_adapters(layer)
            count += int(has)
            others = [name for name in layer.active_adapters if name != DISTILLED_ADAPTER_NAME]
            saved.append((layer, list(layer.active_adapters)))
            wanted = (others if keep_identity else []) + ([DISTILLED_ADAPTER_NAME] if has and strength != 0 else [])
            if has:
                layer.set_scale(DISTILLED_ADAPTER_NAME, float(strength) if strength != 0 else 1.0)
            _set_active(layer, wanted)
        yield count
    finally:
        for layer, active in saved:
            if DISTILLED_ADAPTER_NAME in layer_adapters(layer):
                layer.set_scale(DISTILLED_ADAPTER_NAME, 1.0)
            _set_active(layer, active)


def _set_active(layer: Any, names: list[str]) -> None:
    """``layer.set_adapter(names)`` keeping every parameter's ``requires_grad`` as it was."""
    grads = {name: param.requires_grad for name, param in layer.named_parameters()}
    layer.set_adapter(names)
    for name, param in layer.named_parameters():
        param.requires_grad_(grads.get(name, False))


def active_adapter_scales(models: tuple[torch.nn.Module | None, ...], adapter: str) -> list[float]:
    """Per layer holding ``adapter``: its effective scale multiplier if active (scaling * r / alpha), 0.0 if not."""
    out = []
    for layer in tuner_layers(*models):
        if adapter not in layer_adapters(layer):
            continue
        if adapter in layer.active_adapters and not layer.disable_adapters:
            out.append(float(layer.scaling[adapter] * layer.r[adapter] / layer.lora_alpha[adapter]))
        else:
            out.append(0.0)
    return out


def distilled_adapter_active(models: tuple[torch.nn.Module | None, ...]) -> list[float]:
    """Per layer holding the distilled adapter: its effective scale multiplier if active (scaling * r / alpha),
    0.0 if inactive. Empty if no distilled adapter is loaded."""
    return active_adapter_scales(models, DISTILLED_ADAPTER_NAME)



class TwoStageComponents:
    """The two-stage parts of :class:`~reference_impl.idlora.pipeline.IDLoRAPipeline` (a mixin over diffusers'
    LTX-2 pipeline): the attached x2 latent upsampler and the ``"distilled"`` LoRA adapter."""

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
        before = {id(layer): list(layer.active_adapters) for layer in tuner_layers(*models)}
        self.load_lora_weights(source, adapter_name=DISTILLED_ADAPTER_NAME)
        for layer in tuner_layers(*models):
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
        return any(DISTILLED_ADAPTER_NAME in layer_adapters(layer) for layer in tuner_layers(self.transformer))

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


def check_stage2_arguments(pipeline: Any, sigmas: list[float], latent_upsampler: Any, strength: float) -> None:
    """Refuse a two-stage call that cannot run, naming the fix: the schedule, the upsampler, the distilled LoRA."""
    if len(sigmas) < 2 or sigmas[-1] != 0.0 or any(a <= b for a, b in itertools.pairwise(sigmas)):
        raise ValueError(f"stage2_sigmas must be descending and end with 0, got {sigmas}")
    if not 0.0 < sigmas[0] <= 1.0:
        raise ValueError(f"the re-noise level stage2_sigmas[0] must be in (0, 1], got {sigmas[0]}")
    if latent_upsampler is not None:
        pipeline.set_latent_upsampler(latent_upsampler)
    if pipeline.latent_upsampler is None:
        pipeline.upsample_video_latents(torch.zeros(0))  # raises the error naming the fix
    if strength != 0 and not pipeline.distilled_lora_loaded:
        raise ValueError(
            "two_stage=True refines with the distilled LoRA, which is not loaded: call "
            "pipeline.load_distilled_lora('ltx-2-19b-distilled-lora-384.safetensors') (method option "
            "two_stage=True does this from the model store), or pass distilled_lora_strength=0 to refine "
            "with the base weights alone")


@torch.no_grad()
def refine_stage2(
    pipeline: Any,
    video_latents: torch.Tensor,
    audio_state: LatentState,
    first_frame: Any,
    inputs: DenoiserInputs,
    generator: torch.Generator,
    sigmas: list[float],
    strength: float,
    frame_rate: float,
    callback: StepCallback | None,
    step_offset: int,
    keep_identity: bool = False,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Stage 2 (pipeline module docstring, steps 6-8): stage-1 normalised video latents ``(1, C, F, h, w)`` ->
    refined ``(1, C, F, 2h, 2w)``.

    As the authors' stage 2 (``scripts/inference_two_stage.py:463-469, 489-544``): the audio is the stage-1 TARGET
    tokens only, at their standard (float32) positions, frozen (timestep 0); no reference tokens; the model is the
    base transformer + the distilled LoRA, the ID-LoRA adapter off. ``keep_identity=True`` keeps the ID-LoRA adapter
    and the clean reference tokens at their stage-1 positions (this project's earlier behaviour, for ablations).
    ``first_frame`` is the image encoded at the 2x size by ``pipeline.encode_first_frame`` (fit as in stage 1).
    """
    device = pipeline._execution_device
    upsampled = pipeline.upsample_video_latents(video_latents).cpu()
    _, _, latent_frames, latent_height, latent_width = upsampled.shape
    spatial = pipeline.vae_spatial_compression_ratio
    first = first_frame(latent_height * spatial, latent_width * spatial).cpu()
    noise = torch.randn(tuple(upsampled.shape), generator=generator)
    s0 = sigmas[0]
    video_state = pipeline.first_frame_video_state((1.0 - s0) * upsampled + s0 * noise, first, device)
    n_ref = 0 if keep_identity else inputs.num_reference_tokens
    target_audio = audio_state.latents[:, n_ref:]
    frozen_audio = LatentState(latents=target_audio, clean=target_audio.clone(),
                               denoise_mask=torch.zeros(target_audio.shape[:2], device=target_audio.device))
    video_coords = pipeline.transformer.rope.prepare_video_coords(
        1, latent_frames, latent_height, latent_width, device, fps=frame_rate)
    audio_coords = (inputs.audio_coords if keep_identity
                    else pos.audio_coords(0, int(target_audio.shape[1]), device=device))
    stage_inputs = replace(inputs, video_coords=video_coords, latent_height=latent_height, latent_width=latent_width,
                           audio_coords=audio_coords, num_reference_tokens=inputs.num_reference_tokens - n_ref,
                           negative_prompt_embeds=None, negative_audio_prompt_embeds=None, negative_prompt_mask=None)
    no_guidance = GuidanceConfig(video_scale=1.0, audio_scale=1.0, identity_scale_code=0.0, stg_scale=0.0,
                                 stg_blocks=(), modality_scale=1.0)  # one positive pass per step
    denoiser = TransformerDenoiser(pipeline.transformer, stage_inputs, no_guidance, batched=True)
    step_callback = None
    if callback is not None:
        def step_callback(step: int, video: LatentState, audio: LatentState) -> None:
            callback(step + step_offset, video, audio)
    models = (pipeline.transformer, pipeline.connectors)
    active = pipeline.distilled_lora_loaded and strength != 0
    with stage2_adapters(models, strength if active else 0.0, keep_identity):
        video_state, _ = sample(denoiser, video_state, frozen_audio, sigmas, step_callback)
    refined = pipeline.unpack_video(video_state.latents, latent_frames, latent_height, latent_width)
    info = {"sigmas": list(sigmas), "renoise_sigma": s0, "distilled_lora_strength": strength if active else 0.0,
            "identity_lora": "kept" if keep_identity else "off", "passes": [GuidancePass.POSITIVE.value],
            "forward_calls": denoiser.forward_calls, "video_tokens": int(refined[0, 0].numel()),
            "audio_tokens": int(target_audio.shape[1]),
            "audio": "frozen stage-1 " + ("[reference ; target]" if keep_identity else "target tokens only")}
    return refined, info
