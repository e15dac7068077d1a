"""Weights cards of the LTX bases the ``idlora`` and ``ltx-zeroshot`` methods run on, and of the released
ID-LoRA adapters, grouped per base in :class:`LTXBase` (``LTX_BASES["ltx-2"]``, ``LTX_BASES["ltx-2.3"]``).

LTX-2 (19B): the diffusers-format files of ``Lightricks/LTX-2`` at a pinned revision, plus the single-file x2
upsampler and distilled LoRA of the same revision; ID-LoRA adapters ``AviadDahan/ID-LoRA-{CelebVHQ,TalkVid}``.

LTX-2.3 (22B): the authors' 2.3 release (``ID-LoRA-2.3/scripts/download_models.sh:8-28`` of github.com/ID-LoRA/ID-LoRA)
uses the single-file ltx-core checkpoint ``ltx-2.3-22b-dev.safetensors``, ``ltx-2.3-spatial-upscaler-x2-1.1`` and
``ltx-2.3-22b-distilled-lora-384`` from ``Lightricks/LTX-2.3`` and the adapters
``AviadDahan/LTX-2.3-ID-LoRA-{CelebVHQ,TalkVid}-3K``. diffusers 0.42.1 builds the 2.3 transformer, connectors and
vocoder, but cannot load that single file: ``infer_diffusers_model_type`` maps every LTX-2 checkpoint to the 2.0
config and ``convert_ltx2_transformer_to_diffusers`` has only the 2.0 rename maps
(``diffusers/loaders/single_file_utils.py:162-166, 850-851, 4151-4221``). The base is therefore loaded from a
diffusers-format folder ``<store>/ltx-2.3/`` (``model_index.json`` + component folders, as ``Lightricks/LTX-2``);
its cards pin the folder's metadata files; the weight shards are the ones its ``*.index.json`` files name, checked
for presence before loading (:func:`missing_shards`). No revision of the 2.3 repositories was found in public
code: they are pinned to ``main`` (NOT reproducible until commit hashes replace it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from idlora_bench.checkpoints.weights import WeightsFile

LTX_LICENCE = "LTX-2 Community License"

LTX2_REPO = "Lightricks/LTX-2"
LTX2_REVISION = "47da56e2ad66ce4125a9922b4a8826bf407f9d0a"
LTX2_MODEL = "ltx-2"
LTX23_REPO = "Lightricks/LTX-2.3"
LTX23_REVISION = "main"
LTX23_MODEL = "ltx-2.3"

# Component metadata of a diffusers-format LTX-2 folder (the same layout for 2.0 and 2.3).
DIFFUSERS_METADATA: tuple[str, ...] = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "transformer/config.json",
    "transformer/diffusion_pytorch_model.safetensors.index.json",
    "connectors/config.json",
    "vae/config.json",
    "audio_vae/config.json",
    "vocoder/config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors.index.json",
    "tokenizer/tokenizer.json",
    "tokenizer/tokenizer.model",
    "tokenizer/tokenizer_config.json",
)

# The diffusers-format files of Lightricks/LTX-2 (text encoder: Gemma-3-12B, F32, 11 shards).
LTX2_FILES: tuple[str, ...] = (
    *DIFFUSERS_METADATA,
    *(f"transformer/diffusion_pytorch_model-{i:05d}-of-00008.safetensors" for i in range(1, 9)),
    "connectors/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "audio_vae/diffusion_pytorch_model.safetensors",
    "vocoder/diffusion_pytorch_model.safetensors",
    *(f"text_encoder/model-{i:05d}-of-00011.safetensors" for i in range(1, 12)),
)


def _hub_cards(model: str, repo: str, revision: str, files: tuple[str, ...]) -> tuple[WeightsFile, ...]:
    return tuple(WeightsFile(model=model, file=name, source=f"hf:{repo}@{revision}:{name}", sha256=None,
                             licence=LTX_LICENCE) for name in files)


def _single_file(model: str, repo: str, revision: str, file: str) -> WeightsFile:
    return WeightsFile(model=model, file=file, source=f"hf:{repo}@{revision}:{file}", sha256=None, licence=LTX_LICENCE)


def _id_loras(prefix: str, repo_pattern: str) -> dict[str, WeightsFile]:
    """The released ID-LoRA adapters (no pinned revision found in public code: ``main``)."""
    return {name: WeightsFile(model=f"{prefix}-{name}", file="lora_weights.safetensors",
                              source=f"hf:{repo_pattern.format(repo)}@main:lora_weights.safetensors", sha256=None,
                              licence=LTX_LICENCE)
            for name, repo in (("celebvhq", "CelebVHQ"), ("talkvid", "TalkVid"))}


@dataclass(frozen=True)
class LTXBase:
    """One LTX base model: its store folder, cards, two-stage files, released ID-LoRAs and architecture version.

    ``base`` cards are everything ``from_pretrained`` reads when the list is complete (LTX-2); for LTX-2.3 they are
    the folder metadata and the shards come from the index files (:func:`missing_shards`).
    """

    model: str
    version: str  # "2.0" or "2.3": the transformer architecture (reference_impl.idlora.tiny.LTX23_TRANSFORMER_FLAGS)
    source: str  # hf:<repo>@<revision>, recorded in configs
    base: tuple[WeightsFile, ...]
    upsampler: WeightsFile
    distilled_lora: WeightsFile
    id_loras: dict[str, WeightsFile] = field(default_factory=dict)
    shards_listed: bool = True  # False: the shard names are read from the folder's index files

    @property
    def two_stage(self) -> tuple[WeightsFile, ...]:
        return (self.upsampler, self.distilled_lora)

    def folder(self) -> Path:
        return self.base[0].path().parent


LTX_BASES: dict[str, LTXBase] = {
    LTX2_MODEL: LTXBase(
        model=LTX2_MODEL, version="2.0", source=f"hf:{LTX2_REPO}@{LTX2_REVISION}",
        base=_hub_cards(LTX2_MODEL, LTX2_REPO, LTX2_REVISION, LTX2_FILES),
        upsampler=_single_file("ltx-2-spatial-upscaler-x2", LTX2_REPO, LTX2_REVISION,
                               "ltx-2-spatial-upscaler-x2-1.0.safetensors"),
        distilled_lora=_single_file("ltx-2-distilled-lora", LTX2_REPO, LTX2_REVISION,
                                    "ltx-2-19b-distilled-lora-384.safetensors"),
        id_loras=_id_loras("id-lora", "AviadDahan/ID-LoRA-{}"),
    ),
    LTX23_MODEL: LTXBase(
        model=LTX23_MODEL, version="2.3", source=f"hf:{LTX23_REPO}@{LTX23_REVISION}",
        base=_hub_cards(LTX23_MODEL, LTX23_REPO, LTX23_REVISION, DIFFUSERS_METADATA),
        upsampler=_single_file("ltx-2.3-spatial-upscaler-x2", LTX23_REPO, LTX23_REVISION,
                               "ltx-2.3-spatial-upscaler-x2-1.1.safetensors"),
        distilled_lora=_single_file("ltx-2.3-distilled-lora", LTX23_REPO, LTX23_REVISION,
                                    "ltx-2.3-22b-distilled-lora-384.safetensors"),
        id_loras=_id_loras("id-lora-2.3", "AviadDahan/LTX-2.3-ID-LoRA-{}-3K"),
        shards_listed=False,
    ),
}

# The single-file ltx-core 2.3 checkpoint the authors' scripts load (recorded for provenance and for a future
# diffusers with 2.3 single-file support; this package does not load it).
LTX23_SINGLE_FILE_CHECKPOINT = _single_file("ltx-2.3-single-file", LTX23_REPO, LTX23_REVISION,
                                            "ltx-2.3-22b-dev.safetensors")


def missing_shards(folder: Path) -> list[str]:
    """Weight files named by the ``*.safetensors.index.json`` files under ``folder`` (and the single
    ``diffusion_pytorch_model.safetensors`` of unsharded components) that are not there, as relative paths."""
    missing: list[str] = []
    for index in sorted(folder.glob("*/*.safetensors.index.json")):
        weight_map = json.loads(index.read_text()).get("weight_map")
        if not isinstance(weight_map, dict):
            missing.append(f"{index.parent.name}/{index.name} (no weight_map: not a safetensors index)")
            continue
        shards = set(weight_map.values())
        missing += [f"{index.parent.name}/{s}" for s in sorted(shards) if not (index.parent / s).is_file()]
    for component in ("connectors", "vae", "audio_vae", "vocoder"):
        weights = folder / component / "diffusion_pytorch_model.safetensors"
        if (folder / component).is_dir() and not weights.is_file():
            missing.append(f"{component}/diffusion_pytorch_model.safetensors")
    return missing


def architecture_version(folder: Path) -> str:
    """``"2.3"`` when the folder's transformer config has the 2.3 switches (``cross_attn_mod``), else ``"2.0"``."""
    config = json.loads((folder / "transformer" / "config.json").read_text())
    return "2.3" if config.get("cross_attn_mod") else "2.0"
