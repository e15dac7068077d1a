"""``IDLoRAPipeline``: one-stage ID-LoRA inference on LTX-2, built from diffusers' LTX-2 components.

Inputs: a prompt ``[VISUAL]: ... [SPEECH]: <transcript> [SOUNDS]: <style + ambience>``, the target's first
frame (the face), a reference audio clip (the voice), resolution, frames, fps, steps, seed and guidance
scales. Output: ``frames`` ``(T, H, W, 3)`` uint8 RGB at ``fps`` and ``audio`` ``(C, N)`` float32 at the
vocoder's rate (24 kHz for LTX-2).

Where things are: this file holds the pipeline and its one-stage sampler; ``audio_features.py`` the reference
log-mel (shared with training), ``stage2.py`` the two-stage refinement (upsampler, distilled LoRA, stage-2
sampler), ``tiny.py`` the tiny random components, ``pipeline_output.py`` the result type.

The pipeline subclasses diffusers' ``LTX2ImageToVideoPipeline`` for its components and helpers (Gemma text
encoder + tokenizer + ``LTX2TextConnectors``, ``AutoencoderKLLTX2Video``, ``AutoencoderKLLTX2Audio``,
``LTX2Vocoder``, ``LTX2VideoTransformer3DModel``, latent (un)packing and (de)normalisation) and replaces its
``__call__`` with the ID-LoRA sampler (the ID-LoRA adapter is loaded with :meth:`IDLoRAPipeline.load_id_lora`,
through ``reference_impl.idlora.convert`` and ``reference_impl.idlora.lora``):

1. text: prompt and negative prompt through Gemma and the connectors (as diffusers' LTX-2 pipelines), each text
   encoded once and cached (``codecs.PipelineCodecs``; a split is encoded up front by the method);
2. reference audio: channels -> stereo (mono duplicated), resampled to 16 kHz, log-mel (n_fft 1024, hop 160,
   Hann window, centred reflect padding, magnitude, Slaney mel scale and norm, 0-8 kHz, ``log(max(x, 1e-5))``;
   64 bins for LTX-2, the audio VAE's ``mel_bins`` in general), shape ``(1, 2, T_mel, 64)`` as
   ``AutoencoderKLLTX2Audio.encode`` expects; encoded to the posterior mean, packed to tokens and normalised
   with the audio VAE's latent statistics. No trimming, loudness normalisation or source separation;
3. first frame: resized (``"resize"``, the authors' one-stage script) or cover-resized and centre-cropped
   (``"crop"``, their two-stage and 2.3 scripts; the two-stage default) to the output size (bilinear, no
   antialiasing; ``first_frame.fit_frame``), scaled to [-1, 1], encoded
   (posterior mean) and normalised; it is the clean first latent frame (timestep 0) throughout sampling. No
   H.264 re-compression of the frame (diffusers' I2V pipeline applies CRF 33 by default; the authors' ID-LoRA
   code does not);
4. Euler sampling over the 30-step schedule (``sampling.SIGMAS_30_NOTES``, computed by
   ``sampling.ltx2_sigmas``) with the five-pass identity guidance (``guidance``); audio tokens are
   ``[reference (clean, t = 0, negative positions) ; target (noisy)]``;
5. decode: video VAE (decode timestep 0, as diffusers' default; tiled for two-stage, ``codecs.VAE_TILING``) and
   audio VAE + vocoder on the target tokens.

Optional two-stage refinement (``two_stage=True``; the paper's reported 1024x1024 outputs are two-stage):

6. the stage-1 video latents (base resolution, e.g. 512x512) are un-normalised with the video VAE's latent
   mean/std, upsampled x2 in space by ``LTX2LatentUpsamplerModel`` (which works on raw VAE latents, as in
   diffusers' ``LTX2LatentUpsamplePipeline``) and normalised again: ``(1, C, F_lat, 2 H_lat, 2 W_lat)``;
7. re-noised to ``s0 = stage2_sigmas[0]`` (0.909375): ``x = (1 - s0) x_up + s0 eps`` (eps from the same seeded
   CPU generator, drawn after the stage-1 noise, so stage 1 is unchanged); the first latent frame is the
   first image re-encoded at the 2x size and kept clean (timestep 0), as in stage 1;
8. 3 Euler steps over ``(0.909375, 0.725, 0.421875, 0)`` (diffusers' ``STAGE_2_DISTILLED_SIGMA_VALUES`` + 0) as
   the authors' stage 2 (``scripts/inference_two_stage.py:273-288, 463-469, 489-544``): the BASE transformer with
   the distilled LoRA (adapter ``"distilled"``, :meth:`IDLoRAPipeline.load_distilled_lora`) at
   ``distilled_lora_strength`` (0.8) and the ID-LoRA adapter OFF; the audio is the stage-1 TARGET tokens only, at
   their standard positions, clean (timestep 0) and frozen, so the output audio is bit-identical to one-stage
   audio with the same seed; no reference tokens; NO guidance (one positive pass per step); text embeddings of
   stage 1. Adapters are restored after stage 2 (also on error). ``stage2_keep_identity=True`` keeps the ID-LoRA
   and the reference tokens (an ablation).

LTX-2.3 (``reference_impl.idlora.weights_cards``; ``tiny_random(seed, "2.3")``): the same steps; the transformer's
2.3 switches select the 2.3 behaviour in :class:`~reference_impl.idlora.sampling.TransformerDenoiser` (A/V
cross-attention modulated by the other modality's sigma; STG as value pass-through). The vocoder's rate is read
from its config (48 kHz for the 2.3 bandwidth-extension vocoder).

Known differences from the authors' code (github.com/ID-LoRA/ID-LoRA; A1 = ``scripts/inference_one_stage.py``,
A2 = ``scripts/inference_two_stage.py``, core = ``packages/ltx-core/src/ltx_core/``), each small or documented:

- working precision: their latent state, x0 and guidance deltas are bf16 (A2:594, 614; core ``utils.py:38-51``);
  here float32 (``sampling.py``: ``sample``, ``euler_step``);
- stage-1 sigmas: theirs are float32 torch ops (core ``components/schedulers.py:21-56``); here float64 rounded to
  float32 (``sampling.ltx2_sigmas``): 14 of 31 values differ by 1 float32 ulp (sigma_0 0.99999994 vs 1.0);
- noise: their CUDA generator, bf16 draws, video over the whole grid then audio over ``[reference ; target]``
  (A2:335, 599, 636; core ``components/noisers.py:24-29``), seed ``42 + i`` (A2:875); here a CPU generator, float32,
  video then target audio only, the harness's seed: same distribution, different draws;
- video RoPE positions: theirs are cast to bf16 (core ``tools.py:159-171``; t = 0.36 s -> 0.359375); here float32
  (diffusers ``prepare_video_coords``). Reference AUDIO positions are rounded as theirs (``positions_dtype``);
- reference audio: their ``torchaudio`` sinc resampler and bf16-autocast encoder (A2:683-688); here scipy's
  polyphase resampler (``audio_features.py``) and the audio VAE in the pipeline dtype;
- resolution: their batch mode is 512x512 centre crop for every clip (A2:102-103, 744-747, 775-780); here the
  first frame's aspect at long side 512 (``first_frame.auto_resolution``) unless height and width are given;
- quantisation: their released example runs used int8 quanto (``examples/*/args.json`` ``"quantize": true``;
  A2:283-287); here bf16 weights;
- tiled decode: their trapezoidal tile blending (``TilingConfig.default()``, A2:555-560; core
  ``model/video_vae/tiling.py:8-42``); here diffusers' tiling (``codecs.VAE_TILING``): close, not identical;
- output: they truncate ``x * 255`` to uint8 and write libx264 CRF 18 (``ltx_trainer/video_utils.py:76-89,
  110-116``); here ``round`` and CRF 23 (``idlora_bench.data.media.write_mp4``): up to 1 LSB before the codec;
- LTX-2.3: their single-file checkpoint cannot be loaded by diffusers 0.42.1 (a diffusers-format folder is used,
  ``weights_cards``); their HQ two-stage variant (``ID-LoRA-2.3/scripts/inference_two_stage_hq.py``: res2s sampler,
  15 steps, token-count sigma shift, distilled LoRA 0.25 in stage 1) is not implemented.

``IDLoRAPipeline.tiny_random(seed)`` builds every component from tiny random configs (a real
``Gemma3ForConditionalGeneration`` and a real ``GemmaTokenizer`` with a byte-fallback vocabulary included) so
the whole path runs on CPU in seconds; outputs are noise (smoke tests only).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from diffusers.pipelines.ltx2.pipeline_ltx2_image2video import LTX2ImageToVideoPipeline

from reference_impl.idlora import positions as pos
from reference_impl.idlora.audio_features import reference_log_mel
from reference_impl.idlora.codecs import PipelineCodecs
from reference_impl.idlora.first_frame import (
    DEFAULT_LONG_SIDE,
    FirstFrameFit,
    auto_resolution,
    fit_frame,
    image_to_tensor,
)
from reference_impl.idlora.guidance import GuidanceConfig, GuidancePass
from reference_impl.idlora.pipeline_output import IDLoRAOutput
from reference_impl.idlora.prompts import DEFAULT_NEGATIVE_PROMPT, PROMPT_FORMAT
from reference_impl.idlora.sampling import (
    DenoiserInputs,
    LatentState,
    StepCallback,
    TransformerDenoiser,
    ltx2_sigmas,
    sample,
)
from reference_impl.idlora.stage2 import (
    DEFAULT_DISTILLED_LORA_STRENGTH,
    STAGE2_SIGMAS,
    UPSAMPLER_SCALE,
    TwoStageComponents,
    check_stage2_arguments,
    refine_stage2,
    set_distilled_adapter,
)

DEFAULT_NUM_FRAMES = 121
DEFAULT_FPS = 25.0
DEFAULT_STEPS = 30
DEFAULT_MAX_SEQUENCE_LENGTH = 1024



class IDLoRAPipeline(PipelineCodecs, TwoStageComponents, LTX2ImageToVideoPipeline):
    """ID-LoRA generation, one-stage or (``two_stage=True``) with the x2 distilled refinement (see the module
    docstring). Load with ``from_pretrained`` (a diffusers LTX-2 folder, e.g. ``Lightricks/LTX-2``) or build
    with :meth:`tiny_random`; add the ID-LoRA adapter with :meth:`load_id_lora`, then for two-stage the
    upsampler (:meth:`set_latent_upsampler` + :func:`load_latent_upsampler`) and the distilled LoRA
    (:meth:`load_distilled_lora`)."""

    # ------------------------------------------------------------------ construction

    @classmethod
    def tiny_random(cls, seed: int = 0, version: Literal["2.0", "2.3"] = "2.0") -> IDLoRAPipeline:
        """Every component from tiny random configs (CPU, float32, eval mode; LTX-2.0 or the 2.3 architecture; see
        :func:`reference_impl.idlora.tiny.tiny_pipeline_components`), with a tiny x2 latent upsampler attached for
        two-stage runs (built last, so the other components' seeds are unchanged)."""
        from reference_impl.idlora.tiny import (
            TINY_TRANSFORMER_CONFIG,
            tiny_latent_upsampler,
            tiny_pipeline_components,
        )

        pipeline = cls(**tiny_pipeline_components(seed, version))
        pipeline.set_latent_upsampler(tiny_latent_upsampler(seed + 6, TINY_TRANSFORMER_CONFIG["in_channels"]))
        return pipeline





    @torch.no_grad()
    def first_frame_video_state(self, start: torch.Tensor, first: torch.Tensor, device: torch.device) -> LatentState:
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


    def unpack_video(self, tokens: torch.Tensor, latent_frames: int, latent_height: int,
                     latent_width: int) -> torch.Tensor:
        """Packed video tokens ``(1, N, C)`` -> latents ``(1, C, F, H, W)`` with the transformer's patch sizes."""
        return self._unpack_latents(tokens, latent_frames, latent_height, latent_width,
                                    self.transformer_spatial_patch_size, self.transformer_temporal_patch_size)




    def load_id_lora(self, path: str, *, scale: float = 1.0) -> dict[str, int]:
        """Load an ID-LoRA adapter file into the transformer (ltx-core, peft or diffusers naming; checked strictly):
        see :func:`reference_impl.idlora.lora.load_id_lora_file`. Returns ``{"rank": r, "keys": n}``."""
        from reference_impl.idlora.lora import load_id_lora_file

        return load_id_lora_file(self.transformer, path, scale=scale)

    # ------------------------------------------------------------------ encoders

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
    def encode_first_frame(self, image: Any, height: int, width: int, fit: FirstFrameFit = "resize") -> torch.Tensor:
        """First frame -> normalised latents ``(1, C, 1, H / 32, W / 32)`` (``fit``: bilinear resize or
        cover-resize + centre crop, see :func:`~reference_impl.idlora.first_frame.fit_frame`; [-1, 1]; mean)."""
        pixels = fit_frame(image_to_tensor(image)[None], height, width, fit)
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


    def _check_call(self, prompt: str, pixels: torch.Tensor, has_reference: bool, reference_sample_rate: int | None,
                    height: int | None, width: int | None, long_side: int, num_frames: int, guidance: GuidanceConfig,
                    sigmas: list[float] | None, num_inference_steps: int,
                    check_prompt_format: bool) -> tuple[int, int, list[float]]:
        """Step 0: refuse arguments that cannot run; returns ``(height, width, sigmas)`` resolved."""
        if check_prompt_format and not PROMPT_FORMAT.match(prompt):
            raise ValueError("prompt must have the form '[VISUAL]: ... [SPEECH]: ... [SOUNDS]: ...' "
                             "(pass check_prompt_format=False to use free text)")
        self._check_audio_config()
        if has_reference and reference_sample_rate is None:
            raise ValueError("reference_sample_rate is required with reference_audio")
        if (height is None) != (width is None):
            raise ValueError("give both height and width, or neither (auto resolution)")
        if height is None or width is None:
            height, width = auto_resolution(int(pixels.shape[1]), int(pixels.shape[2]), long_side=long_side)
        spatial, temporal = self.vae_spatial_compression_ratio, self.vae_temporal_compression_ratio
        if height % spatial or width % spatial:
            raise ValueError(f"height and width must be multiples of {spatial}, got {width}x{height}")
        if num_frames < 1 or (num_frames - 1) % temporal:
            raise ValueError(f"num_frames must be {temporal}k + 1 (e.g. 121), got {num_frames}")
        sigmas = ltx2_sigmas(num_inference_steps) if sigmas is None else list(sigmas)
        if len(sigmas) != num_inference_steps + 1:
            raise ValueError(f"{num_inference_steps} steps need {num_inference_steps + 1} sigmas, got {len(sigmas)}")
        n_blocks = len(self.transformer.transformer_blocks)
        if guidance.stg_scale != 0 and any(b >= n_blocks for b in guidance.stg_blocks):
            raise ValueError(f"STG block(s) {list(guidance.stg_blocks)} outside the transformer's {n_blocks} blocks")
        return height, width, sigmas

    def _initial_video_state(self, pixels: torch.Tensor, height: int, width: int, num_frames: int,
                             generator: torch.Generator, fit: FirstFrameFit) -> tuple[LatentState, tuple[int, int, int]]:
        """Step 3: noise ``(1, C, F, H/32, W/32)`` (first draw of the generator) with the clean encoded first frame
        as latent frame 0; returns the packed state and the latent grid ``(F, H, W)``."""
        spatial, temporal = self.vae_spatial_compression_ratio, self.vae_temporal_compression_ratio
        grid = ((num_frames - 1) // temporal + 1, height // spatial, width // spatial)
        channels = int(self.transformer.config.in_channels)
        noise = torch.randn((1, channels, *grid), generator=generator)
        first = self.encode_first_frame(pixels, height, width, fit).cpu()
        return self.first_frame_video_state(noise, first, self._execution_device), grid

    def _initial_audio_state(self, reference: torch.Tensor | None, num_frames: int, frame_rate: float,
                             generator: torch.Generator) -> LatentState:
        """Step 2: audio tokens ``[reference (clean, mask 0) ; target (noise, mask 1)]``; the target has one token
        per 40 ms of the video's duration (second draw of the generator)."""
        latents_per_second = (float(self.audio_sampling_rate) / self.audio_hop_length
                              / self.audio_vae_temporal_compression_ratio)
        n_target = round(num_frames / frame_rate * latents_per_second)
        n_ref = 0 if reference is None else int(reference.shape[1])
        audio_channels = int(self.transformer.config.audio_in_channels)
        target_noise = torch.randn((1, n_target, audio_channels), generator=generator)
        clean_audio = torch.zeros((1, n_ref + n_target, audio_channels))
        if reference is not None:
            clean_audio[:, :n_ref] = reference
        audio_mask = torch.cat([torch.zeros((1, n_ref)), torch.ones((1, n_target))], dim=1)
        device = self._execution_device
        return LatentState(latents=torch.cat([clean_audio[:, :n_ref], target_noise], dim=1).to(device),
                           clean=clean_audio.to(device), denoise_mask=audio_mask.to(device))

    def _denoiser_inputs(self, text: dict[str, torch.Tensor | None], grid: tuple[int, int, int], n_ref: int,
                         n_target: int, frame_rate: float, reference_positions: pos.ReferencePositions,
                         positions_dtype: pos.PositionsDtype) -> DenoiserInputs:
        """Step 4a: text embeddings, RoPE coordinates (reference audio at negative positions) and token layout."""
        device = self._execution_device
        video_coords = self.transformer.rope.prepare_video_coords(1, *grid, device, fps=frame_rate)
        audio_coords = pos.audio_coords(n_ref, n_target, mode=reference_positions, positions_dtype=positions_dtype,
                                        device=device)
        return DenoiserInputs(
            prompt_embeds=text["prompt_embeds"], audio_prompt_embeds=text["audio_prompt_embeds"],  # type: ignore[arg-type]
            prompt_mask=text["prompt_mask"], negative_prompt_embeds=text["negative_prompt_embeds"],  # type: ignore[arg-type]
            negative_audio_prompt_embeds=text["negative_audio_prompt_embeds"],
            negative_prompt_mask=text["negative_prompt_mask"], video_coords=video_coords, audio_coords=audio_coords,
            num_reference_tokens=n_ref, latent_num_frames=grid[0], latent_height=grid[1], latent_width=grid[2],
            fps=frame_rate,
        )

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
        positions_dtype: pos.PositionsDtype = "bfloat16",
        first_frame_fit: FirstFrameFit | None = None,
        batched_guidance: bool = True,
        max_sequence_length: int | None = None,
        check_prompt_format: bool = True,
        output: Literal["media", "latent"] = "media",
        callback: StepCallback | None = None,
        two_stage: bool = False,
        latent_upsampler: Any = None,
        distilled_lora_strength: float = DEFAULT_DISTILLED_LORA_STRENGTH,
        stage2_sigmas: tuple[float, ...] | list[float] = STAGE2_SIGMAS,
        stage2_keep_identity: bool = False,
        decode_tiled: bool | None = None,
    ) -> IDLoRAOutput:
        """Generate one clip: steps 1-8 of the module docstring, numbered the same way below.

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
            positions_dtype: ``"bfloat16"`` (the authors' rounding, default) or ``"float32"`` reference positions.
            first_frame_fit: ``"resize"`` or ``"crop"`` (cover-resize + centre crop); default: ``"crop"`` for two-stage
                (both stages, as the authors' two-stage script), ``"resize"`` otherwise (their one-stage script).
            batched_guidance: share one forward between the passes that can (same result up to float rounding).
            output: ``"latent"`` skips decoding (``frames``/``audio`` are then empty arrays).
            callback: ``callback(step, video_state, audio_state)`` after every sampling step (stage-2 steps are
                numbered on from ``num_inference_steps``).
            two_stage: refine at 2x height and width (steps 6-8). ``height``/``width``/``long_side`` give the
                STAGE-1 size; the output is twice that (512 -> 1024). Off: exactly the one-stage path.
            latent_upsampler: a ``LTX2LatentUpsamplerModel`` to attach (default: the one already attached).
            distilled_lora_strength: stage-2 scale of the loaded ``"distilled"`` adapter (0.8; 0: base weights alone).
            stage2_sigmas: the stage-2 noise levels, descending, ending with 0; the first is the re-noise level.
            stage2_keep_identity: keep the ID-LoRA and the reference tokens in stage 2 (ablation; authors: neither).
            decode_tiled: tiled VAE decode (default: for two-stage, as the authors' stage 2).
        """
        has_reference = reference_audio is not None
        guidance = guidance if guidance is not None else GuidanceConfig()
        guidance = guidance if has_reference else guidance.without_identity()
        pixels = image_to_tensor(image)
        height, width, sigmas = self._check_call(prompt, pixels, has_reference, reference_sample_rate, height, width,
                                                 long_side, num_frames, guidance, sigmas, num_inference_steps,
                                                 check_prompt_format)
        stage2 = [float(v) for v in stage2_sigmas]
        if two_stage:
            check_stage2_arguments(self, stage2, latent_upsampler, float(distilled_lora_strength))
        if max_sequence_length is None:
            max_sequence_length = min(DEFAULT_MAX_SEQUENCE_LENGTH, int(self.tokenizer.model_max_length))
        if self.distilled_lora_loaded:  # stage 1 (and the text encoders) never see the distilled adapter
            set_distilled_adapter((self.transformer, self.connectors), active=False)

        # 1. text
        passes = guidance.passes(has_reference)
        text = self.encode_text(prompt, negative_prompt if GuidancePass.NEGATIVE in passes else None,
                                max_sequence_length)
        # 2. reference audio, then 3. first frame (noise drawn video first, then target audio: the seeded order)
        reference = (self.encode_reference_audio(reference_audio, int(reference_sample_rate)).cpu()  # type: ignore[arg-type]
                     if has_reference else None)
        generator = torch.Generator("cpu").manual_seed(int(seed))
        fit: FirstFrameFit = first_frame_fit or ("crop" if two_stage else "resize")
        video_state, grid = self._initial_video_state(pixels, height, width, num_frames, generator, fit)
        audio_state = self._initial_audio_state(reference, num_frames, frame_rate, generator)
        n_ref = 0 if reference is None else int(reference.shape[1])
        n_target = int(audio_state.latents.shape[1]) - n_ref
        # 4. sampling with the five-pass identity guidance
        inputs = self._denoiser_inputs(text, grid, n_ref, n_target, frame_rate, reference_positions, positions_dtype)
        denoiser = TransformerDenoiser(self.transformer, inputs, guidance, batched=batched_guidance)
        video_state, audio_state = sample(denoiser, video_state, audio_state, sigmas, callback)
        video_latents = self.unpack_video(video_state.latents, *grid)
        target_latents = audio_state.latents[:, n_ref:]
        info: dict[str, Any] = {
            "height": height, "width": width, "num_frames": num_frames, "fps": frame_rate, "latent_grid": list(grid),
            "video_tokens": int(video_latents[0, 0].numel()), "reference_tokens": n_ref,
            "target_audio_tokens": n_target, "sigmas": list(sigmas), "passes": [p.value for p in passes],
            "forward_calls": denoiser.forward_calls, "guidance": guidance.as_dict(),
            "reference_positions": reference_positions, "positions_dtype": positions_dtype, "first_frame_fit": fit,
            "max_sequence_length": max_sequence_length, "batched_guidance": batched_guidance,
        }
        # 6-8. two-stage refinement (x2 upsampler, re-noise, distilled-LoRA steps; audio frozen)
        if two_stage:
            video_latents, stage2_info = refine_stage2(
                self, video_latents, audio_state, lambda h, w: self.encode_first_frame(pixels, h, w, fit), inputs,
                generator, stage2, float(distilled_lora_strength), frame_rate, callback, len(sigmas) - 1,
                keep_identity=stage2_keep_identity,
            )
            info.update(two_stage={"stage1_height": height, "stage1_width": width, **stage2_info},
                        height=height * UPSAMPLER_SCALE, width=width * UPSAMPLER_SCALE,
                        latent_grid=[grid[0], *video_latents.shape[3:5]], video_tokens=int(video_latents[0, 0].numel()))
        # 5. decode
        return self._decode_output(video_latents, target_latents, reference, info, output,
                                   two_stage if decode_tiled is None else decode_tiled)

    def _decode_output(self, video_latents: torch.Tensor, target_latents: torch.Tensor, reference: torch.Tensor | None,
                       info: dict[str, Any], output: Literal["media", "latent"], tiled: bool) -> IDLoRAOutput:
        """Step 5: frames ``(T, H, W, 3)`` uint8 and audio ``(C, N)`` at the vocoder rate, or (``"latent"``) empty
        media with the latents only."""
        frame_rate, height, width = info["fps"], info["height"], info["width"]
        if output == "latent":
            empty = np.zeros((0,), np.float32)
            return IDLoRAOutput(np.zeros((0, height, width, 3), np.uint8), frame_rate, empty[None], 0,
                                video_latents, target_latents, reference, info)
        info["decode_tiled"] = tiled
        frames = self.decode_video(video_latents, tiled=tiled)
        audio, audio_rate_out = self.decode_audio(target_latents)
        return IDLoRAOutput(frames, frame_rate, audio, audio_rate_out, video_latents, target_latents, reference, info)

