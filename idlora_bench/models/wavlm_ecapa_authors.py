"""The ID-LoRA authors' speaker verifier: the PRE-TRAINED hub WavLM-Large + the UniSpeech ECAPA head.

What the authors' code builds (``packages/ltx-trainer/src/ltx_trainer/metrics/unispeech_sv/wavlm_ecapa.py``,
commit 399bf3e): ``WavLMModel.from_pretrained("microsoft/wavlm-large")`` as the backbone (:173), and from
``wavlm_large_finetune.pth`` only the keys that do NOT start with ``feature_extract.`` (:201): the ECAPA head (221
tensors, BatchNorm statistics included) and ``feature_weight`` (:208-210), loaded with ``strict=False`` (:217).
The checkpoint's fine-tuned WavLM (488 ``feature_extract.model.*`` tensors) is read and never used, so the head,
trained on fine-tuned WavLM features, is fed pre-trained ones. The waveform goes in raw: no layer norm (:228).

Here the same model is built, but strictly: every head tensor and ``feature_weight`` must be in the file with its
shape, the backbone loads from the pinned hub files with no missing, unexpected or mis-shaped key, and the hub
config must equal the architecture's; the unused keys are counted in the :class:`AuthorsLoadReport` ("unused, as in
the authors' code"). The authors fall back to a random head when the file is missing (``evaluation_metrics.py:
247-252``); here a missing file is a :class:`~idlora_bench.core.errors.WeightsError`.

Hidden states: transformers 4.57.3 (the authors' lock) returns the 24 layer inputs plus the final normalised
output; :meth:`WavLMEcapa.hidden_states` builds exactly that under transformers 5.x.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from idlora_bench.models.wavlm_ecapa import (
    BACKBONE_PREFIX,
    TRAINING_ONLY_KEYS,
    CheckpointLayoutError,
    WavLMEcapa,
    WavLMEcapaConfig,
    _listing,
    read_unispeech_checkpoint,
)

# The backbone config fields that must equal the architecture (anything else, dropouts say, may differ).
ARCHITECTURE_FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_dim", "conv_kernel",
    "conv_stride", "conv_bias", "feat_extract_norm", "do_stable_layer_norm", "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups", "num_buckets", "max_bucket_distance",
)


@dataclass(frozen=True)
class AuthorsLoadReport:
    """What loading did: every key of the UniSpeech file is loaded into the head, unused, or training-only."""

    backbone_dir: Path
    checkpoint: Path
    head_loaded: int  # head tensors + feature_weight copied from the file
    unused_backbone: int  # feature_extract.* tensors: unused, as in the authors' code
    ignored: tuple[str, ...]  # training-only keys (the AAM-softmax projection)
    backbone_loaded: int  # hub WavLM tensors


def _check_backbone_config(backbone_dir: Path, architecture: WavLMEcapaConfig) -> None:
    config_path = backbone_dir / "config.json"
    try:
        hub = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointLayoutError(f"{config_path}: not a readable WavLM config.json ({exc})") from None
    wrong = {key: (hub.get(key), architecture.wavlm.get(key)) for key in ARCHITECTURE_FIELDS
             if key in architecture.wavlm and hub.get(key) != architecture.wavlm.get(key)}
    if wrong:
        raise CheckpointLayoutError(
            f"{config_path} describes another WavLM than the architecture: "
            + ", ".join(f"{key} {found!r} (expected {expected!r})" for key, (found, expected) in wrong.items()))


def _load_backbone(backbone_dir: Path) -> tuple[torch.nn.Module, int]:
    """The hub WavLM from ``backbone_dir`` (config.json + weights), refusing any key problem."""
    from transformers import WavLMModel

    model, info = WavLMModel.from_pretrained(str(backbone_dir), output_loading_info=True, dtype=torch.float32)
    problems = {kind: sorted(str(k) for k in info.get(kind) or []) for kind in
                ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
    problems = {kind: keys for kind, keys in problems.items() if keys}
    if problems:
        raise CheckpointLayoutError(f"{backbone_dir}: the WavLM weights do not fit its config (nothing used): "
                                    + "; ".join(f"{kind} {_listing(keys)}" for kind, keys in problems.items()))
    return model.eval(), len(model.state_dict())


def _head_state(state: dict[str, torch.Tensor], model: WavLMEcapa, source: str) -> tuple[dict[str, torch.Tensor], int]:
    """The head's tensors from a UniSpeech state dict (strict over the head), and the count of backbone keys left."""
    expected = {key: value for key, value in model.state_dict().items() if key.startswith("head.")}
    mapped, unexpected, mis_shaped, unused = {}, [], [], 0
    for key, value in state.items():
        if key.startswith(BACKBONE_PREFIX):
            unused += 1
            continue
        if key in TRAINING_ONLY_KEYS:
            continue
        target = "head." + key
        if target not in expected:
            unexpected.append(key)
        elif tuple(value.shape) != tuple(expected[target].shape):
            mis_shaped.append(f"{key} {tuple(value.shape)} (model {tuple(expected[target].shape)})")
        else:
            mapped[target] = value
    missing = sorted(key.removeprefix("head.") for key in set(expected) - set(mapped))
    problems = [f"{kind} {_listing(keys)}" for kind, keys in
                (("missing head keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mis_shaped))
                if keys]
    if problems:
        raise CheckpointLayoutError(f"{source}: the ECAPA head does not match (strict, nothing loaded): "
                                    + "; ".join(problems))
    return mapped, unused


def load_wavlm_ecapa_authors(backbone_dir: str | Path, checkpoint: str | Path, architecture: WavLMEcapaConfig,
                             device: str | torch.device = "cpu") -> tuple[WavLMEcapa, AuthorsLoadReport]:
    """The authors' verifier: hub WavLM from ``backbone_dir`` + head and layer weights from ``checkpoint``; no
    waveform layer norm; eval mode on ``device``. Raises :class:`CheckpointLayoutError` on any mismatch."""
    backbone_dir, checkpoint = Path(backbone_dir), Path(checkpoint)
    _check_backbone_config(backbone_dir, architecture)
    model = WavLMEcapa(replace(architecture, normalize_waveform=False))
    state, _ = read_unispeech_checkpoint(checkpoint)
    head, unused = _head_state(state, model, str(checkpoint))
    model.backbone, backbone_loaded = _load_backbone(backbone_dir)
    model.head.load_state_dict({key.removeprefix("head."): value for key, value in head.items()}, strict=True)
    ignored = tuple(sorted(key for key in state if key in TRAINING_ONLY_KEYS))
    model.to(device).eval()
    return model, AuthorsLoadReport(backbone_dir, checkpoint, len(head), unused, ignored, backbone_loaded)
