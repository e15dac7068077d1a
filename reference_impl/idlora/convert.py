"""Convert ID-LoRA checkpoints between ltx-core, peft and diffusers key names.

Three namings of the same tensors (``<kind>`` is one of the 18 audio-path module kinds of
:data:`reference_impl.idlora.module_kinds.AUDIO_PATH_MODULE_KINDS`, ``<i>`` the block index, 0..47 for LTX-2 19B):

- ``ltx-core``  ``diffusion_model.transformer_blocks.<i>.<kind>.lora_{A,B}.weight`` - what the authors' trainer
  writes (peft names with ComfyUI's ``diffusion_model.`` prefix) and what ``AviadDahan/ID-LoRA-CelebVHQ``
  ``lora_weights.safetensors`` holds. ltx-core fuses ``W + B @ A`` with no ``alpha / rank`` factor.
- ``peft``      ``transformer_blocks.<i>.<kind>.lora_{A,B}.weight`` - ``get_peft_model_state_dict`` /
  ``set_peft_model_state_dict`` on a diffusers ``LTX2VideoTransformer3DModel``.
- ``diffusers`` ``transformer.transformer_blocks.<i>.<kind>.lora_{A,B}.weight`` - ``LTX2Pipeline.save_lora_weights``
  / ``load_lora_weights``.

ltx-core and diffusers 0.42.1 name these 18 modules identically (``audio_attn1``, ``audio_attn2``,
``audio_to_video_attn``, ``video_to_audio_attn`` with ``to_q/to_k/to_v/to_out.0``; ``audio_ff.net.0.proj``,
``audio_ff.net.2``), so conversion is prefix handling plus strict checking: every key must be a LoRA A/B
weight of a known kind, every (block, kind) must have both A (rank, in_features) and B (out_features, rank)
with one rank, and - when asked for completeness - every block must have every kind. Anything else is refused
by name (no silent dropping, unlike diffusers' loader which filters on the prefix).

Usage: ``python -m reference_impl.idlora.convert IN.safetensors OUT.safetensors --to diffusers``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch

from reference_impl.idlora.module_kinds import AUDIO_PATH_MODULE_KINDS

KeyFormat = Literal["ltx-core", "peft", "diffusers"]

LTX_CORE_PREFIX = "diffusion_model."
DIFFUSERS_PREFIX = "transformer."
_PEFT_MODEL_PREFIX = "base_model.model."
_PEFT_KEY = re.compile(r"^transformer_blocks\.(\d+)\.(.+)\.lora_([AB])(?:\.[A-Za-z0-9_-]+)?\.weight$")
_PEFT_KEY_NO_ADAPTER = re.compile(r"^transformer_blocks\.(\d+)\.(.+)\.lora_([AB])\.weight$")


class LoraKeyError(KeyError):
    """A LoRA state dict has missing, unexpected or inconsistent keys (the message names them)."""

    def __str__(self) -> str:  # KeyError quotes its message; print it plainly
        return str(self.args[0]) if self.args else ""


def _natural(key: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _names(keys: Iterable[str], limit: int = 12) -> str:
    keys = sorted(keys, key=_natural)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def detect_format(state_dict: Mapping[str, torch.Tensor]) -> KeyFormat:
    """Which naming ``state_dict`` uses; refuses mixtures and unknown prefixes by name."""
    if not state_dict:
        raise LoraKeyError("empty LoRA state dict")
    formats: dict[KeyFormat, list[str]] = {"ltx-core": [], "peft": [], "diffusers": []}
    unknown = []
    for key in state_dict:
        if key.startswith(LTX_CORE_PREFIX):
            formats["ltx-core"].append(key)
        elif key.startswith(DIFFUSERS_PREFIX):
            formats["diffusers"].append(key)
        elif key.startswith(("transformer_blocks.", _PEFT_MODEL_PREFIX)):
            formats["peft"].append(key)
        else:
            unknown.append(key)
    if unknown:
        raise LoraKeyError(f"keys with no known prefix (diffusion_model. / transformer. / transformer_blocks.): {_names(unknown)}")
    present = [name for name, keys in formats.items() if keys]
    if len(present) != 1:
        raise LoraKeyError(f"mixed key formats {present} in one state dict")
    return present[0]


def _strip(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    wrong = [key for key in state_dict if not key.startswith(prefix)]
    if wrong:
        raise LoraKeyError(f"keys without the expected prefix {prefix!r}: {_names(wrong)}")
    return {key[len(prefix) :]: value for key, value in state_dict.items()}


def normalise_peft_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop peft's in-model decorations: ``base_model.model.`` prefix and ``.lora_A.<adapter>.`` names."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        bare = key.removeprefix(_PEFT_MODEL_PREFIX)
        match = _PEFT_KEY.match(bare)
        if match is not None:
            index, kind, ab = match.groups()
            bare = f"transformer_blocks.{index}.{kind}.lora_{ab}.weight"
        if bare in out:
            raise LoraKeyError(f"two keys map to {bare!r} (several adapters in one state dict?)")
        out[bare] = value
    return out


def check_peft_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    *,
    kinds: Sequence[str] = AUDIO_PATH_MODULE_KINDS,
    num_layers: int | None = None,
    require_complete: bool = True,
) -> dict[str, int]:
    """Validate peft-named LoRA weights; returns ``{"<i>.<kind>": rank}``.

    Refuses (``LoraKeyError``, naming the keys): keys that are not ``transformer_blocks.<i>.<kind>.lora_{A,B}.weight``
    (e.g. ``.alpha``, ``lora_down``, DoRA scales), kinds outside ``kinds`` (e.g. any video module), block
    indices ``>= num_layers``, a module with only one of A/B, A/B ranks that disagree, non-2-D tensors; and,
    with ``require_complete``, any (block, kind) of ``range(num_layers) x kinds`` that is absent
    (``num_layers`` defaults to the largest index + 1).
    """
    allowed = set(kinds)
    bad_form: list[str] = []
    bad_kind: list[str] = []
    bad_index: list[str] = []
    parts: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        match = _PEFT_KEY_NO_ADAPTER.match(key)
        if match is None:
            bad_form.append(key)
            continue
        index_s, kind, ab = match.groups()
        index = int(index_s)
        if kind not in allowed:
            bad_kind.append(key)
            continue
        if num_layers is not None and index >= num_layers:
            bad_index.append(key)
            continue
        parts.setdefault((index, kind), {})[ab] = value
    problems = []
    if bad_form:
        problems.append(f"not LoRA A/B weights of a transformer block: {_names(bad_form)}")
    if bad_kind:
        problems.append(f"module kinds outside the {len(allowed)} audio-path kinds: {_names(bad_kind)}")
    if bad_index:
        problems.append(f"block index >= num_layers={num_layers}: {_names(bad_index)}")
    ranks: dict[str, int] = {}
    half: list[str] = []
    shape_problems: list[str] = []
    for (index, kind), ab in sorted(parts.items()):
        name = f"transformer_blocks.{index}.{kind}"
        if set(ab) != {"A", "B"}:
            missing_ab = "B" if "A" in ab else "A"
            half.append(f"{name}.lora_{missing_ab}.weight")
            continue
        a, b = ab["A"], ab["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            shape_problems.append(f"{name} (A {tuple(a.shape)}, B {tuple(b.shape)})")
            continue
        ranks[f"{index}.{kind}"] = int(a.shape[0])
    if half:
        problems.append(f"missing the other half of a LoRA pair: {_names(half)}")
    if shape_problems:
        problems.append(f"A must be (rank, in) and B (out, rank): {_names(shape_problems)}")
    if require_complete and not problems:
        layers = num_layers if num_layers is not None else (max((i for i, _ in parts), default=-1) + 1)
        if layers <= 0:
            problems.append("no LoRA weights at all")
        missing = [
            f"transformer_blocks.{i}.{kind}.lora_{ab}.weight"
            for i in range(layers)
            for kind in kinds
            for ab in ("A", "B")
            if (i, kind) not in parts
        ]
        if missing:
            problems.append(f"missing keys for {layers} blocks x {len(kinds)} kinds: {_names(missing)}")
    if problems:
        raise LoraKeyError("; ".join(problems))
    return ranks


def ltx_core_to_peft(
    state_dict: Mapping[str, torch.Tensor],
    *,
    kinds: Sequence[str] = AUDIO_PATH_MODULE_KINDS,
    num_layers: int | None = None,
    require_complete: bool = True,
) -> dict[str, torch.Tensor]:
    """ltx-core names -> peft names (same tensor objects; load with alpha == rank, i.e. scale 1)."""
    out = _strip(state_dict, LTX_CORE_PREFIX)
    check_peft_state_dict(out, kinds=kinds, num_layers=num_layers, require_complete=require_complete)
    return out


def peft_to_ltx_core(
    state_dict: Mapping[str, torch.Tensor],
    *,
    scale: float = 1.0,
    kinds: Sequence[str] = AUDIO_PATH_MODULE_KINDS,
    num_layers: int | None = None,
    require_complete: bool = True,
) -> dict[str, torch.Tensor]:
    """peft names -> ltx-core names.

    ``scale`` is peft's ``alpha / rank``: ltx-core applies ``B @ A`` unscaled, so ``scale != 1`` is folded into
    ``lora_B`` (then the tensors are new, not bit-identical). With ``scale == 1`` the tensors pass through.
    """
    bare = normalise_peft_keys(state_dict)
    check_peft_state_dict(bare, kinds=kinds, num_layers=num_layers, require_complete=require_complete)
    out = {}
    for key, value in bare.items():
        if scale != 1.0 and key.endswith(".lora_B.weight"):
            value = value * scale
        out[LTX_CORE_PREFIX + key] = value
    return out


def peft_to_diffusers(state_dict: Mapping[str, torch.Tensor], **check: object) -> dict[str, torch.Tensor]:
    """peft names -> diffusers pipeline names (``transformer.`` prefix)."""
    bare = normalise_peft_keys(state_dict)
    check_peft_state_dict(bare, **check)  # type: ignore[arg-type]
    return {DIFFUSERS_PREFIX + key: value for key, value in bare.items()}


def diffusers_to_peft(state_dict: Mapping[str, torch.Tensor], **check: object) -> dict[str, torch.Tensor]:
    """diffusers pipeline names -> peft names."""
    out = _strip(state_dict, DIFFUSERS_PREFIX)
    check_peft_state_dict(out, **check)  # type: ignore[arg-type]
    return out


def ltx_core_to_diffusers(state_dict: Mapping[str, torch.Tensor], **check: object) -> dict[str, torch.Tensor]:
    """ltx-core names -> diffusers pipeline names (what ``LTX2Pipeline.load_lora_weights`` takes)."""
    return peft_to_diffusers(ltx_core_to_peft(state_dict, **check), **check)  # type: ignore[arg-type]


def diffusers_to_ltx_core(state_dict: Mapping[str, torch.Tensor], **check: object) -> dict[str, torch.Tensor]:
    """diffusers pipeline names -> ltx-core names (scale 1)."""
    return peft_to_ltx_core(diffusers_to_peft(state_dict, **check), **check)  # type: ignore[arg-type]


def to_format(state_dict: Mapping[str, torch.Tensor], target: KeyFormat, **check: object) -> dict[str, torch.Tensor]:
    """Convert from whatever naming ``state_dict`` has (see :func:`detect_format`) to ``target``."""
    source = detect_format(state_dict)
    if source == "ltx-core":
        peft = ltx_core_to_peft(state_dict, **check)  # type: ignore[arg-type]
    elif source == "diffusers":
        peft = diffusers_to_peft(state_dict, **check)  # type: ignore[arg-type]
    else:
        peft = normalise_peft_keys(state_dict)
        check_peft_state_dict(peft, **check)  # type: ignore[arg-type]
    if target == "peft":
        return peft
    if target == "ltx-core":
        return peft_to_ltx_core(peft, **check)  # type: ignore[arg-type]
    if target == "diffusers":
        return peft_to_diffusers(peft, **check)  # type: ignore[arg-type]
    raise ValueError(f"unknown target format {target!r}")


def check_fits_transformer(peft_state_dict: Mapping[str, torch.Tensor], transformer: torch.nn.Module) -> None:
    """Refuse peft-named LoRA weights whose A/B shapes do not fit ``transformer``'s Linear layers (names them)."""
    bare = normalise_peft_keys(peft_state_dict)
    modules = dict(transformer.named_modules())
    problems = []
    for key, value in bare.items():
        module_name, _, rest = key.rpartition(".lora_")
        module = modules.get(module_name)
        base = getattr(module, "base_layer", module)
        if not isinstance(base, torch.nn.Linear):
            problems.append(f"{module_name} (no such Linear)")
            continue
        if rest.startswith("A") and value.shape[1] != base.in_features:
            problems.append(f"{key} in_features {value.shape[1]} != {base.in_features}")
        if rest.startswith("B") and value.shape[0] != base.out_features:
            problems.append(f"{key} out_features {value.shape[0]} != {base.out_features}")
    if problems:
        raise LoraKeyError(f"LoRA weights do not fit the transformer: {_names(problems)}")


def convert_file(
    source: str | Path, destination: str | Path, target: KeyFormat, num_layers: int | None = None
) -> dict[str, int]:
    """Convert a safetensors LoRA file; returns ``{"keys": n, "blocks": layers, "rank": r}``. Keeps dtypes."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    state = load_file(str(source))
    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    converted = to_format(state, target, num_layers=num_layers)
    metadata["idlora.key_format"] = target
    metadata.setdefault("format", "pt")
    Path(destination).parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in converted.items()}, str(destination), metadata=metadata)
    ranks = check_peft_state_dict(to_format(converted, "peft", num_layers=num_layers), num_layers=num_layers)
    blocks = len({key.split(".", 1)[0] for key in ranks})
    return {"keys": len(converted), "blocks": blocks, "rank": max(ranks.values())}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--to", dest="target", choices=["ltx-core", "peft", "diffusers"], required=True)
    parser.add_argument("--num-layers", type=int, default=None, help="require exactly this many blocks (48 for LTX-2 19B)")
    args = parser.parse_args(argv)
    try:
        summary = convert_file(args.source, args.destination, args.target, args.num_layers)
    except (LoraKeyError, FileNotFoundError, ValueError) as exc:
        print(f"error: {args.source}: {exc}")
        return 2
    print(f"wrote {args.destination}: {summary['keys']} tensors, {summary['blocks']} blocks, rank {summary['rank']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
