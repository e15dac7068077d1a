"""Train an ID-LoRA adapter with the ``audio_ref_only_ic`` recipe: ``python -m reference_impl.idlora.train --config FILE``.

The YAML config (see ``reference_impl/configs/train_audio_ref_only_ic.yaml`` for the released recipe and every
key) is validated strictly: unknown keys are refused by name. ``--set a.b=value`` overrides single keys (YAML
values), e.g. ``--set optimization.steps=100 --set data.latents_dir=cache/``.

Device placement and multi-GPU go through accelerate (``accelerate launch -m reference_impl.idlora.train
--config FILE`` for several GPUs; ``optimization.batch_size`` is per process). On a GPU the transformer runs in
bfloat16 with bf16 autocast and gradient checkpointing; on the CPU in float32 (``auto`` settings). LoRA
weights are kept in float32.

Outputs in ``output_dir``: ``checkpoints/lora_weights_step_NNNNN.safetensors`` every ``checkpoints.interval``
steps (the last ``keep_last_n`` kept), ``lora_weights.safetensors`` at the end (ltx-core key names by default,
like the released checkpoints; convert with :mod:`reference_impl.idlora.convert`), ``training_config.yaml`` and
``train_log.jsonl`` (one row per optimizer step: loss, video and audio terms, sigma, lr).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reference_impl.idlora.lora import AUDIO_PATH_MODULE_KINDS

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train_audio_ref_only_ic.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Strict):
    #: ``pretrained``: LTX2VideoTransformer3DModel from a diffusers-format folder or hub id; ``tiny``: the tiny
    #: random transformer of :mod:`reference_impl.idlora.tiny` (CPU smoke runs and tests only).
    source: Literal["pretrained", "tiny"] = "pretrained"
    pretrained_path: str | None = "Lightricks/LTX-2"
    transformer_subfolder: str = "transformer"
    tiny_seed: int = 0
    #: Start from an existing LoRA (any key format: ltx-core, peft or diffusers).
    init_lora: str | None = None


class LoraSection(_Strict):
    rank: int = Field(128, gt=0)
    alpha: float = Field(128.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(AUDIO_PATH_MODULE_KINDS))


class DataSection(_Strict):
    #: ``latents``: a latent cache (reference_impl.idlora.dataset); ``pairs``: an idlora-bench pairs.jsonl,
    #: encoded once into ``<output_dir>/latent_cache`` with the VAEs and text encoder of ``model.pretrained_path``.
    mode: Literal["latents", "pairs"] = "latents"
    latents_dir: str | None = None
    pairs: str | None = None
    media_root: str | None = None
    num_frames: int = 121
    height: int = 512
    width: int = 512
    num_workers: int = Field(2, ge=0)
    shuffle: bool = True


class StrategySection(_Strict):
    name: Literal["audio_ref_only_ic"] = "audio_ref_only_ic"
    first_frame_conditioning_p: float = Field(0.9, ge=0, le=1)
    mask_cross_attention_to_reference: bool = True
    mask_reference_from_text_attention: bool = True
    blocked_text_rows: Literal["zero", "uniform"] = "zero"
    use_negative_ref_positions: bool = True
    positions_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    use_cross_timestep: bool = False


class FlowMatchingSection(_Strict):
    timestep_sampling: Literal["shifted_logit_normal"] = "shifted_logit_normal"
    std: float = Field(1.0, gt=0)
    min_shift: float = 0.95
    max_shift: float = 2.05
    min_tokens: int = 1024
    max_tokens: int = 4096


class OptimizationSection(_Strict):
    optimizer: Literal["adamw", "adamw8bit"] = "adamw8bit"
    learning_rate: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    scheduler: Literal["linear", "constant"] = "linear"
    #: linear decay from learning_rate to end_factor * learning_rate over ``steps`` optimizer steps
    end_factor: float = Field(0.1, ge=0)
    max_grad_norm: float = Field(1.0, ge=0)
    steps: int = Field(6000, gt=0)
    batch_size: int = Field(4, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    gradient_checkpointing: bool = True


class AccelerationSection(_Strict):
    #: ``auto``: bf16 on a GPU, no (float32) on the CPU.
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = "auto"
    #: ``auto``: bfloat16 on a GPU, float32 on the CPU.
    transformer_dtype: Literal["auto", "bfloat16", "float32"] = "auto"


class CheckpointSection(_Strict):
    interval: int = Field(200, ge=0)
    keep_last_n: int = Field(2, ge=0)
    precision: Literal["bfloat16", "float32"] = "bfloat16"
    key_format: Literal["ltx-core", "diffusers", "peft"] = "ltx-core"


class LoggingSection(_Strict):
    interval: int = Field(10, gt=0)


class TrainConfig(_Strict):
    seed: int = 42
    output_dir: str = "outputs/idlora/audio_ref_only_ic"
    model: ModelSection = Field(default_factory=ModelSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    data: DataSection = Field(default_factory=DataSection)
    strategy: StrategySection = Field(default_factory=StrategySection)
    flow_matching: FlowMatchingSection = Field(default_factory=FlowMatchingSection)
    optimization: OptimizationSection = Field(default_factory=OptimizationSection)
    acceleration: AccelerationSection = Field(default_factory=AccelerationSection)
    checkpoints: CheckpointSection = Field(default_factory=CheckpointSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)

    @field_validator("output_dir")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("output_dir must not be empty")
        return value

    def recipe(self):  # -> RecipeConfig
        from reference_impl.idlora.training import RecipeConfig

        s, f = self.strategy, self.flow_matching
        return RecipeConfig(
            first_frame_conditioning_p=s.first_frame_conditioning_p,
            mask_cross_attention_to_reference=s.mask_cross_attention_to_reference,
            mask_reference_from_text_attention=s.mask_reference_from_text_attention,
            blocked_text_rows=s.blocked_text_rows,
            use_negative_ref_positions=s.use_negative_ref_positions,
            positions_dtype=s.positions_dtype,
            sigma_std=f.std,
            min_shift=f.min_shift,
            max_shift=f.max_shift,
            min_tokens=f.min_tokens,
            max_tokens=f.max_tokens,
            use_cross_timestep=s.use_cross_timestep,
        )


def _apply_override(data: dict[str, Any], assignment: str) -> None:
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ValueError(f"--set expects key.path=value, got {assignment!r}")
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise TypeError(f"--set {key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(raw)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read and validate a YAML config (default: the released recipe), applying ``key.path=value`` overrides."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"training config {path} does not exist") from None
    if not isinstance(data, dict):
        raise TypeError(f"{path}: the config must be a YAML mapping")
    for assignment in overrides:
        _apply_override(data, assignment)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ValueError(f"{path}: invalid training config: {problems}") from None


# ---------------------------------------------------------------------------------------------------------------


def _load_transformer(cfg: TrainConfig, dtype: torch.dtype) -> torch.nn.Module:
    if cfg.model.source == "tiny":
        from reference_impl.idlora.tiny import tiny_transformer

        model = tiny_transformer(cfg.model.tiny_seed)
        return model if dtype == torch.float32 else model.to(dtype)
    if not cfg.model.pretrained_path:
        raise ValueError("model.pretrained_path is required with model.source: pretrained")
    from diffusers import LTX2VideoTransformer3DModel

    try:
        return LTX2VideoTransformer3DModel.from_pretrained(
            cfg.model.pretrained_path, subfolder=cfg.model.transformer_subfolder or None, torch_dtype=dtype
        )
    except Exception as exc:
        raise RuntimeError(
            f"cannot load the LTX-2 transformer from {cfg.model.pretrained_path!r} "
            f"(subfolder {cfg.model.transformer_subfolder!r}): {exc.__class__.__name__}: {exc}. Download a "
            "diffusers-format LTX-2 checkpoint (e.g. `huggingface-cli download Lightricks/LTX-2`) and set "
            "model.pretrained_path to the local folder; for a CPU smoke run use model.source: tiny."
        ) from exc


def _make_optimizer(cfg: OptimizationSection, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    try:
        from bitsandbytes.optim import AdamW8bit
    except ImportError as exc:
        raise RuntimeError(
            "optimization.optimizer: adamw8bit (the authors' optimizer) needs bitsandbytes and a CUDA GPU: "
            "`pip install bitsandbytes`, or set optimization.optimizer: adamw"
        ) from exc
    return AdamW8bit(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: OptimizationSection) -> float:
    """Learning-rate multiplier after ``step`` optimizer steps: linear 1 -> end_factor over ``steps``, then held."""
    if cfg.scheduler == "constant":
        return 1.0
    progress = min(step, cfg.steps) / cfg.steps
    return 1.0 + (cfg.end_factor - 1.0) * progress


def _build_dataset(cfg: TrainConfig, output_dir: Path, accelerator: Any):
    from reference_impl.idlora.dataset import LatentCacheDataset

    if cfg.data.mode == "latents":
        if not cfg.data.latents_dir:
            raise ValueError("data.latents_dir is required with data.mode: latents")
        return LatentCacheDataset(cfg.data.latents_dir)
    if not cfg.data.pairs:
        raise ValueError("data.pairs (a pairs.jsonl) is required with data.mode: pairs")
    cache_dir = output_dir / "latent_cache"
    if accelerator.is_main_process and not (cache_dir / "index.jsonl").exists():
        from reference_impl.idlora.dataset import (
            DiffusersLTX2Encoder,
            encode_pairs_to_cache,
            load_pairs,
        )

        if not cfg.model.pretrained_path:
            raise ValueError("data.mode: pairs needs model.pretrained_path (the VAEs and text encoder)")
        pairs_path = Path(cfg.data.pairs)
        encoder = DiffusersLTX2Encoder.from_pretrained(
            cfg.model.pretrained_path,
            height=cfg.data.height,
            width=cfg.data.width,
            device=accelerator.device,
            dtype=torch.bfloat16 if accelerator.device.type == "cuda" else torch.float32,
        )
        encode_pairs_to_cache(
            load_pairs(pairs_path),
            cfg.data.media_root or pairs_path.parent,
            encoder,
            cache_dir,
            num_frames=cfg.data.num_frames,
            info={"pairs": str(pairs_path), "pretrained_path": cfg.model.pretrained_path},
        )
        del encoder
    accelerator.wait_for_everyone()
    return LatentCacheDataset(cache_dir)


@dataclass
class TrainResult:
    final_checkpoint: Path
    checkpoints: list[Path]
    log: list[dict[str, float]] = field(default_factory=list)


def _adapted_transformer(cfg: TrainConfig, dtype: torch.dtype, recipe: Any) -> tuple[torch.nn.Module, list, Any]:
    """The base transformer with the ID-LoRA adapter (float32 LoRA weights, optionally initialised from
    ``model.init_lora``), the training attention masks of the recipe, and gradient checkpointing if asked.
    Returns ``(transformer, lora parameters, mask state or None)``."""
    from reference_impl.idlora import convert
    from reference_impl.idlora.lora import (
        add_idlora_adapter,
        load_lora_state_dict,
        lora_parameters,
    )
    from reference_impl.idlora.training import install_training_masks

    transformer = _load_transformer(cfg, dtype)
    add_idlora_adapter(transformer, rank=cfg.lora.rank, alpha=cfg.lora.alpha, dropout=cfg.lora.dropout,
                       target_modules=cfg.lora.target_modules)
    params = lora_parameters(transformer)
    for param in params:  # LoRA weights in float32 whatever the base dtype
        param.data = param.data.float()
    if cfg.model.init_lora:
        from safetensors.torch import load_file

        state = convert.to_format(load_file(cfg.model.init_lora), "peft", kinds=cfg.lora.target_modules)
        convert.check_fits_transformer(state, transformer)
        load_lora_state_dict(transformer, {k: v.float() for k, v in state.items()})
    needs_masks = recipe.mask_cross_attention_to_reference or recipe.mask_reference_from_text_attention
    mask_state = install_training_masks(transformer, recipe.blocked_text_rows) if needs_masks else None
    if cfg.optimization.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    return transformer, params, mask_state


def _data_loader(cfg: TrainConfig, dataset: Any) -> torch.utils.data.DataLoader:
    """Shuffled (seeded) batches of ``optimization.batch_size`` latent samples, last partial batch dropped."""
    from reference_impl.idlora.dataset import collate_latents

    if len(dataset) < cfg.optimization.batch_size:
        raise ValueError(
            f"the dataset has {len(dataset)} samples, fewer than optimization.batch_size={cfg.optimization.batch_size}"
        )
    return torch.utils.data.DataLoader(
        dataset, batch_size=cfg.optimization.batch_size, shuffle=cfg.data.shuffle, collate_fn=collate_latents,
        num_workers=cfg.data.num_workers, drop_last=True, generator=torch.Generator().manual_seed(cfg.seed),
    )


def _write_log_row(log_path: Path, row: dict[str, float], cfg: TrainConfig) -> None:
    """Append one step to ``train_log.jsonl`` (NaN as null) and print it every ``logging.interval`` steps."""
    with log_path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}) + "\n")
    step = int(row["step"])
    if step % cfg.logging.interval == 0 or step == 1:
        print(f"step {step}/{cfg.optimization.steps} loss {row['loss']:.4f} "
              f"(video {row['video_loss']:.4f}, audio {row['audio_loss']:.4f}) lr {row['lr']:.2e}", flush=True)


def _accelerator(cfg: TrainConfig) -> tuple[Any, torch.dtype]:
    """The ``accelerate.Accelerator`` (bf16 mixed precision on CUDA when ``auto``) and the transformer dtype."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    precision = cfg.acceleration.mixed_precision
    if precision == "auto":
        precision = "bf16" if cuda else "no"
    accelerator = Accelerator(mixed_precision=precision,
                              gradient_accumulation_steps=cfg.optimization.gradient_accumulation_steps, cpu=not cuda)
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}.get(
        cfg.acceleration.transformer_dtype, torch.bfloat16 if accelerator.device.type == "cuda" else torch.float32
    )
    return accelerator, dtype


def train(cfg: TrainConfig) -> TrainResult:
    """Run the recipe described by ``cfg``; returns the written checkpoints and the per-step log."""
    from accelerate.utils import set_seed

    from reference_impl.idlora.lora import save_lora_checkpoint
    from reference_impl.idlora.training import prepare_training_inputs, training_loss

    if cfg.optimization.optimizer == "adamw8bit":  # fail before loading a 19B transformer
        _make_optimizer(cfg.optimization, [torch.nn.Parameter(torch.zeros(1))])
    accelerator, dtype = _accelerator(cfg)
    set_seed(cfg.seed)
    output_dir = Path(cfg.output_dir)

    recipe = cfg.recipe()
    transformer, params, mask_state = _adapted_transformer(cfg, dtype, recipe)
    optimizer = _make_optimizer(cfg.optimization, params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg.optimization))
    loader = _data_loader(cfg, _build_dataset(cfg, output_dir, accelerator))
    if accelerator.is_main_process:  # written once model and data are known to load
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "training_config.yaml").write_text(
            yaml.safe_dump(cfg.model_dump(), sort_keys=False), encoding="utf-8"
        )
    # The scheduler is stepped once per optimizer step by hand (not prepared), so the decay spans
    # optimization.steps whatever the number of processes.
    transformer, optimizer, loader = accelerator.prepare(transformer, optimizer, loader)
    noise_generator = torch.Generator().manual_seed(cfg.seed + accelerator.process_index)

    checkpoints: list[Path] = []
    log: list[dict[str, float]] = []
    log_path = output_dir / "train_log.jsonl"
    if accelerator.is_main_process:
        log_path.write_text("", encoding="utf-8")
    precision_dtype = torch.bfloat16 if cfg.checkpoints.precision == "bfloat16" else torch.float32

    def save(path: Path) -> Path:
        return save_lora_checkpoint(
            path,
            accelerator.unwrap_model(transformer),
            rank=cfg.lora.rank,
            alpha=cfg.lora.alpha,
            target_modules=cfg.lora.target_modules,
            key_format=cfg.checkpoints.key_format,
            dtype=precision_dtype,
            extra_metadata={"step": str(global_step), "recipe": "audio_ref_only_ic", "seed": str(cfg.seed)},
        )

    global_step = 0
    data_iter = iter(loader)
    started = time.time()
    total_micro_steps = cfg.optimization.steps * cfg.optimization.gradient_accumulation_steps
    for _ in range(total_micro_steps):
        try:
            batch = next(data_iter)
        except StopIteration:
            data_iter = iter(loader)
            batch = next(data_iter)
        batch = batch.to(accelerator.device)
        with accelerator.accumulate(transformer):
            inputs = prepare_training_inputs(batch, recipe, noise_generator)
            with accelerator.autocast():
                loss = training_loss(
                    transformer, inputs, mask_state, use_cross_timestep=recipe.use_cross_timestep, dtype=dtype
                )
            if not torch.isfinite(loss.total):
                raise FloatingPointError(f"non-finite loss {loss.total.item()} at step {global_step + 1}")
            accelerator.backward(loss.total)
            grad_norm = float("nan")
            if accelerator.sync_gradients and cfg.optimization.max_grad_norm > 0:
                grad_norm = float(accelerator.clip_grad_norm_(params, cfg.optimization.max_grad_norm))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        global_step += 1
        row = {
            "step": global_step,
            "loss": float(loss.total.detach()),
            "video_loss": float(loss.video.detach()),
            "audio_loss": float(loss.audio.detach()),
            "sigma_mean": float(inputs.sigma.mean()),
            "first_frame": float(inputs.first_frame_conditioned),
            "grad_norm": grad_norm,
            "lr": lr,
            "elapsed_s": time.time() - started,
        }
        log.append(row)
        if accelerator.is_main_process:
            _write_log_row(log_path, row, cfg)
        if (
            cfg.checkpoints.interval
            and global_step % cfg.checkpoints.interval == 0
            and global_step < cfg.optimization.steps
        ):
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                checkpoints.append(save(output_dir / "checkpoints" / f"lora_weights_step_{global_step:05d}.safetensors"))
                while cfg.checkpoints.keep_last_n and len(checkpoints) > cfg.checkpoints.keep_last_n:
                    checkpoints.pop(0).unlink(missing_ok=True)
    if mask_state is not None:
        mask_state.clear()
    accelerator.wait_for_everyone()
    final = output_dir / "lora_weights.safetensors"
    if accelerator.is_main_process:
        save(final)
    accelerator.wait_for_everyone()
    return TrainResult(final_checkpoint=final, checkpoints=checkpoints, log=log)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train an ID-LoRA adapter (audio_ref_only_ic recipe).")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML config (default: the released recipe)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set optimization.steps=100 (repeatable)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        result = train(cfg)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    last = result.log[-1] if result.log else {}
    print(f"wrote {result.final_checkpoint} after {last.get('step', 0)} steps (last loss {last.get('loss', float('nan')):.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
