"""Method adapters for the runner: ``idlora`` (ID-LoRA on LTX-2) and ``ltx-zeroshot`` (LTX-2, no LoRA, no
reference).

Both generate one clip per pair with :class:`~reference_impl.idlora.pipeline.IDLoRAPipeline`: the target's
first frame is the visual condition, the reference clip's audio the voice reference (``idlora`` only), the
pair's prompt the text. Options (all keyword, strings from a command line are coerced):

- ``model``: ``"ltx-2"`` (real weights from the model store; realistically a CUDA GPU), ``"ltx-2.3"`` (the 22B
  LTX-2.3 base from a diffusers-format folder and the 2.3 ID-LoRA adapters; see
  ``reference_impl.idlora.weights_cards`` for why not the single file), ``"tiny-random"`` / ``"tiny-random-2.3"``
  (every component tiny and random in the 2.0 / 2.3 architecture, CPU, seconds; results are marked smoke and
  refused by tables).
- ``checkpoint`` (``idlora`` only): ``"celebvhq"`` / ``"talkvid"`` (the released LoRAs from the model store) or
  a path to a LoRA ``.safetensors`` (ltx-core or diffusers naming). Ignored for ``tiny-random`` unless a path.
- guidance: ``video_scale`` (w_v, 3), ``audio_scale`` (w_a, 7), ``identity_scale_paper`` (s, 4) OR
  ``identity_scale_code`` (s_id = s - 1, 3) (``idlora`` only), ``stg_scale`` (1), ``stg_block`` (29 for
  LTX-2; the last block, 1, for tiny-random), ``modality_scale`` (w_av, 3).
- ``steps`` (30; 4 for tiny-random), ``frames`` (121; 9 for tiny-random), ``fps`` (25), ``long_side`` (512;
  64 for tiny-random) or explicit ``height`` + ``width``, ``reference_positions`` (``"negative"``),
  ``negative_prompt``, ``batched_guidance`` (True), ``device`` (``"auto"``), ``dtype`` (``"bfloat16"`` on CUDA,
  ``"float32"`` on CPU), ``offload`` (``"model"``: diffusers' model CPU offload on a GPU, the default for
  real models: one component on the GPU at a time, so the weights resident at once are at most the transformer's,
  35.2 GiB in bf16 for LTX-2's 18.9 B parameters (about 41 GiB for LTX-2.3's 22 B); Gemma-3-12B (12.2 B, 22.7 GiB
  bf16) visits the GPU only to encode prompts, once per distinct text with ``precompute_prompts``; ``"none"``:
  everything resident, about 60 GiB of weights (35.2 + 22.7 + VAEs, connectors, vocoder) plus activations, for an
  80 GB card; activation peaks per mode are measured by ``scripts/bench_idlora_gpu.py``), ``tiny_seed`` (0).
- ``two_stage`` (False; True for the paper's reported 1024x1024 outputs): stage 1 at the resolution above
  (512), then the x2 latent upsampler, re-noise to 0.909375 and 3 Euler steps (0.909375, 0.725, 0.421875, 0)
  with the distilled LoRA at ``distilled_lora_strength`` (0.8), no guidance, audio frozen (see
  ``reference_impl.idlora.pipeline``); the output is 2x the stage-1 size. Needs the model store files
  ``ltx-2-spatial-upscaler-x2/ltx-2-spatial-upscaler-x2-1.0.safetensors`` and
  ``ltx-2-distilled-lora/ltx-2-19b-distilled-lora-384.safetensors`` (for ``ltx-2.3``: the 2.3 upsampler v1.1 and
  ``ltx-2.3-22b-distilled-lora-384``). For ``tiny-random``: a tiny random
  upsampler and a random rank-4 stand-in LoRA (seeded by ``tiny_seed``) take their place.

Every option that changes outputs is in :meth:`config`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.errors import WeightsError
from idlora_bench.core.io import file_sha256
from idlora_bench.data.media import decode, write_mp4
from idlora_bench.data.splits import ResolvedPair, Split
from idlora_bench.methods.base import Method, MethodOptions
from reference_impl.idlora.weights_cards import (
    LTX2_MODEL,
    LTX23_MODEL,
    LTX_BASES,
    LTXBase,
    architecture_version,
    missing_shards,
)

# Re-exported names of the LTX-2 cards (see reference_impl.idlora.weights_cards for both bases).
LTX2_BASE = LTX_BASES[LTX2_MODEL]
LTX2_WEIGHTS: tuple[WeightsFile, ...] = LTX2_BASE.base
LTX2_UPSAMPLER, LTX2_DISTILLED_LORA = LTX2_BASE.upsampler, LTX2_BASE.distilled_lora
TWO_STAGE_WEIGHTS: tuple[WeightsFile, ...] = LTX2_BASE.two_stage
IDLORA_LORAS: dict[str, WeightsFile] = LTX2_BASE.id_loras
ALL_BASE_WEIGHTS: tuple[WeightsFile, ...] = tuple(w for b in LTX_BASES.values() for w in (*b.base, *b.two_stage))
ALL_ID_LORAS: tuple[WeightsFile, ...] = tuple(w for b in LTX_BASES.values() for w in b.id_loras.values())

MODELS = ("ltx-2", "ltx-2.3", "tiny-random", "tiny-random-2.3")
TINY_BASES = {"tiny-random": LTX2_MODEL, "tiny-random-2.3": LTX23_MODEL}  # the architecture each tiny model has
REAL_DEFAULTS: dict[str, Any] = {"steps": 30, "frames": 121, "long_side": 512, "stg_block": 29}
TINY_DEFAULTS: dict[str, Any] = {"steps": 4, "frames": 9, "long_side": 64, "stg_block": 1}


class LTXOptions(MethodOptions):
    """Options of ``ltx-zeroshot`` (and the shared ones of ``idlora``); see the module docstring.

    ``None`` means the model's default (``REAL_DEFAULTS`` / ``TINY_DEFAULTS``); an empty string from the command line
    is ``None`` too.
    """

    model: Literal["ltx-2", "ltx-2.3", "tiny-random", "tiny-random-2.3"] = "ltx-2"
    video_scale: float = 3.0
    audio_scale: float = 7.0
    stg_scale: float = 1.0
    stg_block: int | None = None
    modality_scale: float = 3.0
    steps: int | None = None
    frames: int | None = None
    fps: float = 25.0
    long_side: int | None = None
    height: int | None = None
    width: int | None = None
    negative_prompt: str | None = None
    batched_guidance: bool = True
    device: str = "auto"
    dtype: str | None = None
    offload: Literal["none", "model"] | None = None
    tiny_seed: int = 0
    two_stage: bool = False
    distilled_lora_strength: float = 0.8
    positions_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    first_frame_fit: Literal["resize", "crop"] | None = None
    stage2_keep_identity: bool = False
    decode_tiled: bool | None = None
    precompute_prompts: bool = True

    @field_validator("stg_block", "steps", "frames", "long_side", "height", "width", "dtype", "offload",
                     "first_frame_fit", "decode_tiled", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _both_sides_or_neither(self) -> LTXOptions:
        if (self.height is None) != (self.width is None):
            raise ValueError("give both height and width, or neither")
        return self

    @property
    def smoke(self) -> bool:
        return self.model in TINY_BASES

    @property
    def base(self) -> LTXBase:
        """The LTX base whose cards and architecture this model uses (tiny models: their architecture only)."""
        return LTX_BASES[TINY_BASES.get(self.model, self.model)]

    def default(self, key: str) -> Any:
        """The option's value, or the model's default when it is None."""
        value = getattr(self, key)
        return (TINY_DEFAULTS if self.smoke else REAL_DEFAULTS)[key] if value is None else value


class IDLoRAOptions(LTXOptions):
    """Options of ``idlora``: the LTX ones plus the LoRA checkpoint, the identity scale (one convention) and the
    reference positions."""

    checkpoint: str = "celebvhq"
    identity_scale_paper: float | None = None
    identity_scale_code: float | None = None
    reference_positions: str = "negative"

    @field_validator("identity_scale_paper", "identity_scale_code", mode="before")
    @classmethod
    def _empty_scale_is_default(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _valid_choices(self) -> IDLoRAOptions:
        from reference_impl.idlora.positions import REFERENCE_POSITION_MODES

        if self.identity_scale_paper is not None and self.identity_scale_code is not None:
            raise ValueError("give identity_scale_paper (s) or identity_scale_code (s - 1): one convention, not both")
        if self.checkpoint not in self.base.id_loras and not Path(self.checkpoint).is_file():
            raise ValueError(f"checkpoint must be one of {sorted(self.base.id_loras)} or an existing LoRA .safetensors "
                             f"file, got {self.checkpoint!r}")
        if self.reference_positions not in REFERENCE_POSITION_MODES:
            raise ValueError(f"reference_positions must be one of {REFERENCE_POSITION_MODES}, "
                             f"got {self.reference_positions!r}")
        return self


class LTXZeroShotMethod(Method):
    """``ltx-zeroshot``: LTX-2 image+text to audio-video with the ID-LoRA sampler, no LoRA and no reference.

    Guidance: text CFG, STG and modality isolation as in ``idlora``; no identity guidance (no reference).
    """

    name: ClassVar[str] = "ltx-zeroshot"
    description: ClassVar[str] = "LTX-2 zero-shot (no LoRA, no voice reference) with the ID-LoRA sampler"
    weights: ClassVar[tuple[WeightsFile, ...]] = ALL_BASE_WEIGHTS
    uses_reference: ClassVar[bool] = False

    options_model: ClassVar[type[MethodOptions]] = LTXOptions
    options: LTXOptions

    def __init__(self, **options: Any) -> None:
        from reference_impl.idlora.guidance import GuidanceConfig
        from reference_impl.idlora.prompts import DEFAULT_NEGATIVE_PROMPT

        super().__init__(**options)
        o = self.options
        self.model = o.model
        self.base = o.base
        self.smoke = o.smoke  # per instance: the runner reads method.smoke
        self.steps = int(o.default("steps"))
        self.frames = int(o.default("frames"))
        self.fps = float(o.fps)
        self.height, self.width = o.height, o.width
        self.long_side = int(o.default("long_side"))
        self.guidance = GuidanceConfig.create(
            video_scale=o.video_scale, audio_scale=o.audio_scale, identity_scale_code=0.0, stg_scale=o.stg_scale,
            stg_blocks=(int(o.default("stg_block")),), modality_scale=o.modality_scale,
        )
        self.negative_prompt = DEFAULT_NEGATIVE_PROMPT if o.negative_prompt is None else o.negative_prompt
        self.batched_guidance = o.batched_guidance
        self.device_option = o.device
        self.dtype_option = o.dtype
        self.tiny_seed = o.tiny_seed
        self.offload = o.offload if o.offload is not None else ("none" if self.smoke else "model")
        self.reference_positions = "negative"
        self.two_stage = o.two_stage
        self.distilled_lora_strength = o.distilled_lora_strength
        self._pipeline: Any = None

    # ------------------------------------------------------------------ config

    def _device(self) -> str:
        import torch

        if self.device_option != "auto":
            return self.device_option
        if self.smoke:
            return "cpu"
        if not torch.cuda.is_available():
            raise RuntimeError(f"method {self.name!r} with model {self.model!r} needs a CUDA GPU (19-22B parameters); "
                               "pass device='cpu' to force the CPU")
        return "cuda"

    def _dtype_name(self) -> str:
        if self.dtype_option is not None:
            return self.dtype_option
        return "float32" if self.smoke or self.device_option == "cpu" else "bfloat16"

    def guidance_config(self) -> Any:
        return self.guidance

    def config(self) -> dict[str, Any]:
        import diffusers

        from reference_impl.idlora.sampling import ltx2_sigmas

        config: dict[str, Any] = {
            "method": self.name,
            "model": self.model,
            "architecture": self.base.version,
            "base_weights": (f"{self.model}(seed={self.tiny_seed})" if self.smoke else self.base.source),
            "guidance": self.guidance_config().as_dict(),
            "steps": self.steps,
            "sigmas": ltx2_sigmas(self.steps),
            "frames": self.frames,
            "fps": self.fps,
            "resolution": ({"height": self.height, "width": self.width} if self.height is not None
                           else {"auto_long_side": self.long_side, "multiple": 32}),
            "reference_positions": self.reference_positions if self.uses_reference else None,
            "uses_reference": self.uses_reference,
            "negative_prompt_sha256": hashlib.sha256(self.negative_prompt.encode()).hexdigest(),
            "dtype": self._dtype_name(),
            "batched_guidance": self.batched_guidance,
            "two_stage": self.two_stage,
            "positions_dtype": self.options.positions_dtype,
            "first_frame_fit": self.options.first_frame_fit or ("crop" if self.two_stage else "resize"),
            "decode_tiled": self.two_stage if self.options.decode_tiled is None else self.options.decode_tiled,
            "diffusers": diffusers.__version__,
        }
        if self.two_stage:
            from reference_impl.idlora.stage2 import STAGE2_SIGMAS, UPSAMPLER_SCALE

            config["stage2"] = {
                "upscale": UPSAMPLER_SCALE,
                "sigmas": list(STAGE2_SIGMAS),
                "distilled_lora_strength": self.distilled_lora_strength,
                "guidance": "none (one positive pass)",
                "identity_lora": "kept" if self.options.stage2_keep_identity else "off",
                "audio": ("frozen [reference ; target]" if self.options.stage2_keep_identity
                          else "frozen target tokens only"),
                "upsampler": (f"tiny-random(seed={self.tiny_seed + 6})" if self.smoke
                              else {"source": self.base.upsampler.source,
                                    "sha256": self.base.upsampler.expected_sha256()}),
                "distilled_lora": (f"tiny-random(rank=4, seed={self.tiny_seed})" if self.smoke
                                   else {"source": self.base.distilled_lora.source,
                                         "sha256": self.base.distilled_lora.expected_sha256()}),
            }
        return config

    # ------------------------------------------------------------------ loading

    def _verify_weights(self, files: tuple[WeightsFile, ...]) -> None:
        problems = []
        for weights in files:
            try:
                weights.verify()
            except WeightsError as exc:
                problems.append(str(exc).split(" Fix: ")[0])
        if not problems and not self.base.shards_listed:
            folder = self.base.folder()
            problems += [f"{folder / name} is missing (named by its index file)" for name in missing_shards(folder)]
            if architecture_version(folder) != self.base.version:
                problems.append(f"{folder / 'transformer/config.json'} is an LTX-{architecture_version(folder)} "
                                f"transformer, not LTX-{self.base.version}")
        if problems:
            models = sorted({w.model for w in files})
            raise WeightsError(
                f"method {self.name!r} (model {self.model!r}) cannot load: {len(problems)} weights file(s) missing or "
                f"unverified, e.g. {problems[0]} Fix: bench models pull {' '.join(models)} "
                "(or, without internet, bench models import DIR)"
            )

    def _check_weights(self) -> None:
        """Raise a WeightsError naming ``bench models pull ...`` unless every needed file is verified."""
        if not self.smoke:
            self._verify_weights(self.base.base + (self.base.two_stage if self.two_stage else ()))

    def _load_base(self) -> Any:
        import torch

        from reference_impl.idlora.pipeline import IDLoRAPipeline

        if self.smoke:
            return IDLoRAPipeline.tiny_random(self.tiny_seed, self.base.version)  # type: ignore[arg-type]
        dtype = getattr(torch, self._dtype_name())
        return IDLoRAPipeline.from_pretrained(str(self.base.folder()), torch_dtype=dtype)

    def _load_adapters(self, pipeline: Any) -> None:
        """No adapter for the zero-shot baseline."""

    def _load_two_stage(self, pipeline: Any) -> None:
        """Attach the x2 upsampler and load the distilled LoRA (after the ID-LoRA adapter)."""
        import torch

        from reference_impl.idlora.stage2 import load_latent_upsampler
        from reference_impl.idlora.tiny import tiny_distilled_lora_state_dict

        if self.smoke:  # tiny_random already attached its tiny upsampler
            pipeline.load_distilled_lora(tiny_distilled_lora_state_dict(pipeline.transformer, self.tiny_seed))
            return
        dtype = getattr(torch, self._dtype_name())
        pipeline.set_latent_upsampler(load_latent_upsampler(self.base.upsampler.verify(), dtype=dtype))
        pipeline.load_distilled_lora(self.base.distilled_lora.verify())

    def prepare(self, split: Split | None) -> None:
        if self._pipeline is not None:
            return
        self._check_weights()
        device = self._device()
        pipeline = self._load_base()
        self._load_adapters(pipeline)
        if self.two_stage:
            self._load_two_stage(pipeline)
        if self.offload == "model" and device != "cpu":
            # Components move to the GPU one at a time (Gemma-3-12B, 24 GB in bf16, never sits beside the
            # 38 GB transformer); numerics are unchanged.
            pipeline.enable_model_cpu_offload(device=device)
            self._pipeline = pipeline
        else:
            self._pipeline = pipeline.to(device)
        if split is not None and self.options.precompute_prompts:
            self.precompute_prompts([pair.prompt for pair in split.pairs])

    def precompute_prompts(self, prompts: list[str]) -> int:
        """Encode every distinct prompt of the split (and the negative prompt once) up front, so Gemma runs once
        per text and not again while sampling (under model offload it is not moved to the GPU per pair)."""
        from reference_impl.idlora.pipeline import DEFAULT_MAX_SEQUENCE_LENGTH

        length = min(DEFAULT_MAX_SEQUENCE_LENGTH, int(self._pipeline.tokenizer.model_max_length))
        return self._pipeline.precompute_text([*prompts, self.negative_prompt], length)

    # ------------------------------------------------------------------ generation

    def _reference(self, item: ResolvedPair) -> tuple[Any, int | None]:
        return None, None

    def generate(self, item: ResolvedPair, out_path: Path, seed: int) -> None:
        if self._pipeline is None:
            self.prepare(None)
        target = decode(item.target_path, need_audio=False)
        first_frame = target.require_video()[0]
        reference_audio, reference_rate = self._reference(item)
        result = self._pipeline(
            item.pair.prompt, first_frame, reference_audio, reference_rate,
            height=self.height, width=self.width, long_side=self.long_side, num_frames=self.frames,
            frame_rate=self.fps, num_inference_steps=self.steps, seed=int(seed), guidance=self.guidance_config(),
            negative_prompt=self.negative_prompt, reference_positions=self.reference_positions,
            batched_guidance=self.batched_guidance, two_stage=self.two_stage,
            distilled_lora_strength=self.distilled_lora_strength, positions_dtype=self.options.positions_dtype,
            first_frame_fit=self.options.first_frame_fit, stage2_keep_identity=self.options.stage2_keep_identity,
            decode_tiled=self.options.decode_tiled,
        )
        write_mp4(out_path, result.frames, result.fps, result.audio, result.sample_rate)


class IDLoRAMethod(LTXZeroShotMethod):
    """``idlora``: ID-LoRA (LTX-2 + the identity LoRA) with the reference clip's audio as the voice reference,
    negative temporal positions and five-pass identity guidance (see the module docstring for options)."""

    name: ClassVar[str] = "idlora"
    description: ClassVar[str] = "ID-LoRA reference implementation (LTX-2 + identity LoRA, identity guidance)"
    weights: ClassVar[tuple[WeightsFile, ...]] = ALL_BASE_WEIGHTS + ALL_ID_LORAS
    uses_reference: ClassVar[bool] = True

    options_model: ClassVar[type[MethodOptions]] = IDLoRAOptions
    options: IDLoRAOptions

    def __init__(self, **options: Any) -> None:
        from reference_impl.idlora.guidance import GuidanceConfig

        super().__init__(**options)
        o = self.options
        self.checkpoint = o.checkpoint
        base = self.guidance
        self.guidance = GuidanceConfig.create(
            video_scale=base.video_scale, audio_scale=base.audio_scale, identity_scale_paper=o.identity_scale_paper,
            identity_scale_code=o.identity_scale_code, stg_scale=base.stg_scale, stg_blocks=base.stg_blocks,
            modality_scale=base.modality_scale,
        )
        self.reference_positions = o.reference_positions

    def _lora_file(self) -> Path | None:
        """The LoRA to load: a released card's verified path, a user file, or None (tiny-random, named)."""
        if Path(self.checkpoint).is_file():
            return Path(self.checkpoint)
        if self.smoke:
            return None  # tiny-random has no released adapter: the random base model alone
        return self.base.id_loras[self.checkpoint].verify()

    def _check_weights(self) -> None:
        if self.smoke:
            return
        lora = () if Path(self.checkpoint).is_file() else (self.base.id_loras[self.checkpoint],)
        self._verify_weights(self.base.base + (self.base.two_stage if self.two_stage else ()) + lora)

    def _load_adapters(self, pipeline: Any) -> None:
        path = self._lora_file()
        if path is not None:
            pipeline.load_id_lora(str(path))

    def config(self) -> dict[str, Any]:
        config = super().config()
        path = Path(self.checkpoint)
        if path.is_file():
            lora: dict[str, Any] = {"path": str(path.resolve()), "sha256": file_sha256(path)}
        elif self.smoke:
            lora = {"name": self.checkpoint, "loaded": False,
                    "note": "tiny-random has no released adapter; the random base model runs alone"}
        else:
            card = self.base.id_loras[self.checkpoint]
            lora = {"name": self.checkpoint, "source": card.source, "sha256": card.expected_sha256()}
        config["checkpoint"] = lora
        return config

    def _reference(self, item: ResolvedPair) -> tuple[Any, int | None]:
        reference = decode(item.reference_path, need_video=False)
        return reference.require_audio(), reference.sample_rate
