"""ID-LoRA adapters on the LTX-2 transformer (diffusers ``LTX2VideoTransformer3DModel`` + peft).

The released recipe puts rank-128 / alpha-128 / dropout-0 LoRA adapters on 18 audio-path module kinds of
every transformer block and on nothing else (no video self-attention, video-text attention or video FFN):

- audio self-attention ``audio_attn1`` and audio-text attention ``audio_attn2``: ``to_q, to_k, to_v, to_out.0``
- audio->video cross-attention ``audio_to_video_attn`` (queries: video, keys/values: audio) and
  video->audio cross-attention ``video_to_audio_attn`` (queries: audio, keys/values: video): same four
- the audio feed-forward ``audio_ff``: ``net.0.proj`` and ``net.2``

These names are the same in ltx-core (the authors' code) and in diffusers 0.42.1, so a module kind is just
the path below ``transformer_blocks.<i>.``. peft matches each kind as a name suffix.

Checkpoint key formats are converted in :mod:`reference_impl.idlora.convert`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from reference_impl.idlora.module_kinds import (  # noqa: F401 (re-exported)
    AUDIO_PATH_MODULE_KINDS,
    BLOCK_PREFIX,
    VIDEO_MODULE_KINDS,
    module_kind,
)

ADAPTER_NAME = "default"


def idlora_lora_config(
    rank: int = 128,
    alpha: float = 128.0,
    dropout: float = 0.0,
    target_modules: Sequence[str] = AUDIO_PATH_MODULE_KINDS,
):  # -> peft.LoraConfig
    """The released recipe's peft ``LoraConfig`` (rank 128, alpha 128, dropout 0, the 18 audio-path kinds).

    ``init_lora_weights=True`` is peft's default: A Kaiming-uniform, B zero, so a fresh adapter is the identity.
    """
    from peft import LoraConfig

    if rank <= 0:
        raise ValueError(f"LoRA rank must be positive, got {rank}")
    unknown = [kind for kind in target_modules if kind not in AUDIO_PATH_MODULE_KINDS]
    if unknown:
        raise ValueError(
            f"target modules {unknown} are not audio-path module kinds; the ID-LoRA recipe trains only "
            f"{list(AUDIO_PATH_MODULE_KINDS)}"
        )
    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        init_lora_weights=True,
    )


def add_idlora_adapter(
    transformer: torch.nn.Module,
    rank: int = 128,
    alpha: float = 128.0,
    dropout: float = 0.0,
    target_modules: Sequence[str] = AUDIO_PATH_MODULE_KINDS,
    adapter_name: str = ADAPTER_NAME,
) -> list[str]:
    """Freeze ``transformer`` and inject the ID-LoRA adapters in place (diffusers ``add_adapter``).

    Returns the names of the adapted modules (``transformer_blocks.<i>.<kind>``), sorted. Raises if any
    requested kind matched no module in some block, or if a video module got an adapter.
    """
    transformer.requires_grad_(False)
    config = idlora_lora_config(rank=rank, alpha=alpha, dropout=dropout, target_modules=target_modules)
    transformer.add_adapter(config, adapter_name=adapter_name)
    adapted = lora_module_names(transformer)
    num_layers = len(transformer.transformer_blocks)  # type: ignore[arg-type]
    expected = {f"{BLOCK_PREFIX}{i}.{kind}" for i in range(num_layers) for kind in target_modules}
    missing = sorted(expected - set(adapted))
    extra = sorted(set(adapted) - expected)
    if missing or extra:
        raise RuntimeError(f"LoRA injection mismatch: missing {missing[:10]}, unexpected {extra[:10]}")
    return adapted


def lora_module_names(model: torch.nn.Module) -> list[str]:
    """Names of the modules that carry a peft LoRA layer, sorted."""
    from peft.tuners.lora import LoraLayer

    return sorted(name for name, module in model.named_modules() if isinstance(module, LoraLayer))


def lora_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable LoRA parameters (``lora_A`` / ``lora_B`` weights) of ``model``."""
    return [param for name, param in model.named_parameters() if ".lora_A." in name or ".lora_B." in name]


def lora_state_dict(
    model: torch.nn.Module, adapter_name: str = ADAPTER_NAME, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """The adapter's weights in peft naming: ``transformer_blocks.<i>.<kind>.lora_{A,B}.weight``.

    ``lora_A.weight`` has shape (rank, in_features), ``lora_B.weight`` (out_features, rank). Tensors are
    detached contiguous CPU copies (cast to ``dtype`` if given).
    """
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(model, adapter_name=adapter_name)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        tensor = value.detach().to("cpu")
        if dtype is not None:
            tensor = tensor.to(dtype)
        out[key] = tensor.contiguous()
    return out


def load_lora_state_dict(
    model: torch.nn.Module, state_dict: dict[str, torch.Tensor], adapter_name: str = ADAPTER_NAME
) -> None:
    """Load peft-named LoRA weights into an already adapted ``model``; refuses missing or unexpected keys."""
    expected = set(lora_state_dict(model, adapter_name).keys())
    given = set(state_dict)
    missing = sorted(expected - given)
    unexpected = sorted(given - expected)
    if missing or unexpected:
        raise KeyError(f"LoRA state dict does not fit the model: missing {missing[:10]}, unexpected {unexpected[:10]}")
    from peft.utils import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, state_dict, adapter_name=adapter_name)
    unexpected_after = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if unexpected_after:
        raise KeyError(f"peft refused LoRA keys: {unexpected_after[:10]}")


def adapter_metadata(rank: int, alpha: float, target_modules: Iterable[str], num_layers: int) -> dict[str, str]:
    """safetensors metadata (string values) stamped on every checkpoint this package writes."""
    return {
        "format": "pt",
        "idlora.rank": str(rank),
        "idlora.alpha": str(alpha),
        "idlora.target_modules": json.dumps(list(target_modules)),
        "idlora.num_layers": str(num_layers),
    }


def save_lora_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    *,
    rank: int,
    alpha: float,
    target_modules: Sequence[str] = AUDIO_PATH_MODULE_KINDS,
    key_format: Literal["ltx-core", "diffusers", "peft"] = "ltx-core",
    dtype: torch.dtype | None = torch.bfloat16,
    adapter_name: str = ADAPTER_NAME,
    extra_metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the adapter as safetensors in ``key_format`` naming (ltx-core by default, as the authors release it).

    ltx-core fuses ``B @ A`` with no ``alpha / rank`` factor, so with ``alpha != rank`` the scale is folded
    into ``lora_B`` for the ``ltx-core`` format (see :func:`reference_impl.idlora.convert.peft_to_ltx_core`).
    """
    from safetensors.torch import save_file

    from reference_impl.idlora import convert

    state = lora_state_dict(model, adapter_name, dtype=None)
    num_layers = len(model.transformer_blocks)  # type: ignore[arg-type]
    if key_format == "ltx-core":
        state = convert.peft_to_ltx_core(state, scale=alpha / rank)
    elif key_format == "diffusers":
        state = convert.peft_to_diffusers(state)
    elif key_format != "peft":
        raise ValueError(f"unknown key_format {key_format!r}: use 'ltx-core', 'diffusers' or 'peft'")
    if dtype is not None:
        state = {key: value.to(dtype).contiguous() for key, value in state.items()}
    metadata = adapter_metadata(rank, alpha if key_format != "ltx-core" else rank, target_modules, num_layers)
    metadata["idlora.key_format"] = key_format
    for key, value in (extra_metadata or {}).items():
        metadata[f"idlora.{key}"] = value if isinstance(value, str) else json.dumps(value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    return path


def load_id_lora_file(transformer: torch.nn.Module, path: str | Path, *, scale: float = 1.0) -> dict[str, int]:
    """Load an ID-LoRA adapter file into ``transformer`` (peft, on the 18 audio-path module kinds).

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

    num_layers = len(transformer.transformer_blocks)
    peft_state = to_format(load_file(str(path)), "peft", num_layers=num_layers)
    ranks = set(check_peft_state_dict(peft_state, num_layers=num_layers).values())
    if len(ranks) != 1:
        raise ValueError(f"{path}: LoRA modules have different ranks {sorted(ranks)}")
    rank = ranks.pop()
    check_fits_transformer(peft_state, transformer)
    add_idlora_adapter(transformer, rank=rank, alpha=rank * float(scale))
    load_lora_state_dict(transformer, peft_state)
    return {"rank": rank, "keys": len(peft_state)}
