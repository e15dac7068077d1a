"""WavLM-Large + ECAPA-TDNN speaker verifier of UniSpeech, loaded strictly from ``wavlm_large_finetune.pth``.

What the checkpoint is
----------------------
UniSpeech's ``downstreams/speaker_verification`` trains ``ECAPA_TDNN_SMALL(feat_dim=1024, emb_dim=256,
feat_type="wavlm_large")``: its ``feature_extract`` is ``torch.hub.load("s3prl/s3prl", "wavlm_large")``, an s3prl
``UpstreamExpert`` whose ``.model`` is the original (unilm / s3prl) ``WavLM`` class, fine-tuned together with
the head ("Fix pre-train: No" in the UniSpeech README). The file is ``{"model": state_dict, "best_valid_eer": x}``;
its state dict holds 711 tensors:

- ``feature_weight`` (25,): one learned logit per WavLM hidden state;
- 488 backbone tensors ``feature_extract.model.*`` in the original s3prl/unilm names
  (``feature_extractor.conv_layers.{i}.0.weight``, ``encoder.layers.{i}.self_attn.grep_a``, ...);
- the ECAPA head, under the names of UniSpeech's ``ecapa_tdnn.py`` (``layer1.conv.weight``,
  ``layer2.Res2Conv1dReluBn.convs.0.weight``, ``pooling.linear1.weight``, ``bn.running_var``, ``linear.weight``,
  ...), 221 tensors including BatchNorm running statistics;
- ``loss_calculator.projection.weight`` (5994, 256): the AAM-softmax classifier over the 5994 VoxCeleb2 training
  speakers. Training only; the embedding never uses it. It is the one checkpoint key that is read and then
  deliberately not loaded (:data:`TRAINING_ONLY_KEYS`, named exactly, never by prefix).

Strict loading (:func:`load_wavlm_ecapa`): every other key must map to exactly one tensor of the model and every
tensor of the model must be given, with equal shapes; otherwise :class:`CheckpointLayoutError` names the keys
(in the checkpoint's own names) and nothing is loaded. No weights are ever left at their random initialisation.
This is unlike UniSpeech's ``verification.py`` (``load_state_dict(..., strict=False)``) and unlike the ID-LoRA
authors' code, which never uses the fine-tuned ``feature_extract.*`` tensors (its backbone is the pre-trained hub
WavLM-Large: :mod:`idlora_bench.models.wavlm_ecapa_authors`) and falls back to a random head only when the file
is missing.

The backbone
------------
transformers' :class:`~transformers.WavLMModel` with WavLM-Large's configuration (:data:`WAVLM_LARGE_CONFIG`), the
s3prl names mapped one-to-one onto transformers' (:func:`s3prl_to_transformers`). The mapping is complete: the two
implementations hold the same tensors (the positional convolution's weight norm ``weight_g``/``weight_v`` is
torch's parametrisation ``original0``/``original1``; ``mask_emb`` is ``masked_spec_embed``, unused at inference).

Hidden states, exactly as the s3prl upstream's hooks build them (``hidden_states``, 25 for WavLM-Large): the input
of each of the 24 transformer layers (the first is the projected CNN features plus the convolutional positional
embedding; no layer norm there since WavLM-Large normalises first), then the encoder output after its final layer
norm. transformers 5.x's ``output_hidden_states`` ends with the *un-normalised* output of the last layer instead,
so :meth:`WavLMEcapa.hidden_states` takes the first 24 entries and appends ``last_hidden_state``.

Pre-processing, as the s3prl WavLM expert: a 16 kHz mono waveform, layer-normalised over its whole length
(``F.layer_norm(wav, wav.shape)``: zero mean, unit variance, eps 1e-5) because WavLM-Large's pre-training config
has ``normalize=True`` (s3prl ``wavlm_large.pt`` cfg; also stated by the WavLM authors, microsoft/unilm#708).

The head (:class:`EcapaTdnnHead`): softmax(``feature_weight``)-weighted sum of the 25 hidden states -> (B, 1024, T)
(+1e-6) -> InstanceNorm1d (no affine) -> Conv1dReluBn(k=5) -> 3 SE-Res2Blocks (k=3, dilation 2/3/4, scale 8, SE
bottleneck 128) -> concat of the 3 block outputs (1536 ch) -> 1x1 conv (1536) + ReLU -> attentive statistics
pooling (attention 128 ch; weighted mean and std) -> BatchNorm1d(3072) -> Linear -> 256-d embedding.

Shapes: waveforms ``(B, N)`` float32 at 16 kHz; hidden states ``(B, T, 1024)`` with T ~ N / 320 (20 ms frames);
embedding ``(B, 256)``.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from idlora_bench.core.errors import WeightsError

SAMPLE_RATE_HZ = 16_000
BACKBONE_PREFIX = "feature_extract.model."
"""Prefix of the fine-tuned WavLM tensors (``ECAPA_TDNN.feature_extract`` -> ``UpstreamExpert.model``)."""

TRAINING_ONLY_KEYS = frozenset({"loss_calculator.projection.weight"})
"""Checkpoint keys read but not loaded: the AAM-softmax speaker classifier used only by the training loss."""

# WavLM-Large, as transformers.WavLMConfig arguments. Values from microsoft/wavlm-large config.json
# (max_bucket_distance 800 since its commit 38b04af), which equal the cfg stored in s3prl's wavlm_large.pt
# (encoder_layers 24, encoder_embed_dim 1024, encoder_ffn_embed_dim 4096, encoder_attention_heads 16,
# extractor_mode "layer_norm", layer_norm_first True, conv_bias False, conv_pos 128, conv_pos_groups 16,
# relative_position_embedding True, num_buckets 320, max_distance 800, gru_rel_pos True).
# The checkpoint holds weights only, no config, so it is written out here. Dropouts and layer drop are 0
# (the model is only evaluated); mask_time_prob > 0 only makes transformers create `masked_spec_embed`,
# the home of the checkpoint's `mask_emb` (never applied at inference).
WAVLM_LARGE_CONFIG: dict[str, Any] = {
    "hidden_size": 1024,  # encoder_embed_dim
    "num_hidden_layers": 24,  # encoder_layers
    "num_attention_heads": 16,  # encoder_attention_heads
    "intermediate_size": 4096,  # encoder_ffn_embed_dim
    "hidden_act": "gelu",  # activation_fn
    "conv_dim": [512] * 7,  # conv_feature_layers "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": False,  # conv_bias
    "feat_extract_norm": "layer",  # extractor_mode "layer_norm"
    "feat_extract_activation": "gelu",
    "do_stable_layer_norm": True,  # layer_norm_first
    "num_conv_pos_embeddings": 128,  # conv_pos
    "num_conv_pos_embedding_groups": 16,  # conv_pos_groups
    "num_buckets": 320,  # num_buckets
    "max_bucket_distance": 800,  # max_distance
    "layer_norm_eps": 1e-5,  # torch LayerNorm default, as in s3prl
    "mask_time_prob": 0.075,
    "hidden_dropout": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "feat_proj_dropout": 0.0,
    "final_dropout": 0.0,
    "layerdrop": 0.0,
}


@dataclass(frozen=True)
class EcapaHeadConfig:
    """Sizes of UniSpeech's ``ECAPA_TDNN_SMALL`` head (defaults: the real ``feat_dim=1024`` / ``wavlm_large`` one)."""

    feat_dim: int = 1024  # hidden size of the backbone (verification.py: ECAPA_TDNN_SMALL(feat_dim=1024, ...))
    num_hidden_states: int = 25  # len(feature_weight): 24 layer inputs + the final normalised output
    channels: int = 512  # ECAPA_TDNN_SMALL: channels=512
    pooled_channels: int = 1536  # ecapa_tdnn.py: self.channels = [channels] * 4 + [1536]
    emb_dim: int = 256  # ECAPA_TDNN_SMALL default emb_dim
    res2_scale: int = 8  # SE_Res2Block(..., scale=8)
    se_bottleneck_dim: int = 128  # SE_Res2Block(..., se_bottleneck_dim=128)
    attention_channels: int = 128  # AttentiveStatsPool(..., attention_channels=128)


@dataclass(frozen=True)
class WavLMEcapaConfig:
    """The whole verifier: backbone config (transformers.WavLMConfig arguments), waveform normalisation, head sizes."""

    wavlm: Mapping[str, Any] = field(default_factory=lambda: dict(WAVLM_LARGE_CONFIG))
    normalize_waveform: bool = True  # s3prl WavLM-Large cfg.normalize
    head: EcapaHeadConfig = field(default_factory=EcapaHeadConfig)

    def __post_init__(self) -> None:
        problems = []
        if self.wavlm.get("feat_extract_norm") != "layer":
            problems.append("feat_extract_norm must be 'layer' (s3prl extractor_mode 'layer_norm')")
        if self.wavlm.get("do_stable_layer_norm") is not True:
            problems.append("do_stable_layer_norm must be True (s3prl layer_norm_first)")
        if self.head.feat_dim != self.wavlm.get("hidden_size"):
            problems.append(f"head feat_dim {self.head.feat_dim} != hidden_size {self.wavlm.get('hidden_size')}")
        if self.head.num_hidden_states != self.wavlm.get("num_hidden_layers", -2) + 1:
            problems.append("head num_hidden_states must be num_hidden_layers + 1")
        if problems:
            raise ValueError("invalid WavLM-ECAPA config: " + "; ".join(problems))


WAVLM_ECAPA_LARGE = WavLMEcapaConfig()
"""The architecture of ``wavlm_large_finetune.pth``."""


# ----------------------------------------------------------------------------------------------- ECAPA head
class Conv1dReluBn(nn.Module):
    """Conv1d -> ReLU -> BatchNorm1d (in that order, as UniSpeech)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, padding: int = 0,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation)
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(F.relu(self.conv(x)))


class Res2Conv1dReluBn(nn.Module):
    """Res2Net block: ``scale`` channel groups; group i (i < scale-1) gets conv-ReLU-BN of (group i + previous output);
    the last group passes through unchanged."""

    def __init__(self, channels: int, kernel_size: int, padding: int, dilation: int, scale: int) -> None:
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels {channels} not divisible by scale {scale}")
        self.width = channels // scale
        self.branches = scale - 1 if scale > 1 else 1
        self.passthrough = scale > 1
        self.convs = nn.ModuleList(
            nn.Conv1d(self.width, self.width, kernel_size, padding=padding, dilation=dilation)
            for _ in range(self.branches)
        )
        self.bns = nn.ModuleList(nn.BatchNorm1d(self.width) for _ in range(self.branches))

    def forward(self, x: Tensor) -> Tensor:
        groups = torch.split(x, self.width, dim=1)
        outputs: list[Tensor] = []
        running: Tensor | None = None
        for index, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            running = groups[index] if running is None else running + groups[index]
            running = bn(F.relu(conv(running)))
            outputs.append(running)
        if self.passthrough:
            outputs.append(groups[self.branches])
        return torch.cat(outputs, dim=1)


class SEConnect(nn.Module):
    """Squeeze-excitation over channels: time mean -> Linear-ReLU -> Linear-sigmoid -> channel gains."""

    def __init__(self, channels: int, bottleneck: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x: Tensor) -> Tensor:
        gains = torch.sigmoid(self.linear2(F.relu(self.linear1(x.mean(dim=2)))))
        return x * gains.unsqueeze(2)


class SERes2Block(nn.Module):
    """1x1 Conv1dReluBn -> Res2Conv1dReluBn -> 1x1 Conv1dReluBn -> SE, plus a residual (1x1 conv if sizes differ).

    Attribute names follow the checkpoint (``Conv1dReluBn1``, ``Res2Conv1dReluBn``, ``Conv1dReluBn2``, ``SE_Connect``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int, dilation: int,
                 scale: int, se_bottleneck_dim: int) -> None:
        super().__init__()
        self.Conv1dReluBn1 = Conv1dReluBn(in_channels, out_channels)
        self.Res2Conv1dReluBn = Res2Conv1dReluBn(out_channels, kernel_size, padding, dilation, scale)
        self.Conv1dReluBn2 = Conv1dReluBn(out_channels, out_channels)
        self.SE_Connect = SEConnect(out_channels, se_bottleneck_dim)
        self.shortcut = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        y = self.SE_Connect(self.Conv1dReluBn2(self.Res2Conv1dReluBn(self.Conv1dReluBn1(x))))
        return y + residual


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling: per-channel softmax attention over time -> weighted mean and std (B, 2C)."""

    def __init__(self, channels: int, attention_channels: int) -> None:
        super().__init__()
        self.linear1 = nn.Conv1d(channels, attention_channels, kernel_size=1)
        self.linear2 = nn.Conv1d(attention_channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        alpha = torch.softmax(self.linear2(torch.tanh(self.linear1(x))), dim=2)
        mean = (alpha * x).sum(dim=2)
        variance = (alpha * x.square()).sum(dim=2) - mean.square()
        return torch.cat([mean, variance.clamp(min=1e-9).sqrt()], dim=1)


class EcapaTdnnHead(nn.Module):
    """UniSpeech's ECAPA-TDNN on WavLM hidden states; its state-dict keys are the checkpoint's head keys verbatim."""

    def __init__(self, config: EcapaHeadConfig = EcapaHeadConfig()) -> None:
        super().__init__()
        self.config = config
        channels = config.channels
        self.feature_weight = nn.Parameter(torch.zeros(config.num_hidden_states))
        self.instance_norm = nn.InstanceNorm1d(config.feat_dim)  # no affine, no running stats: no tensors
        self.layer1 = Conv1dReluBn(config.feat_dim, channels, kernel_size=5, padding=2)
        self.layer2, self.layer3, self.layer4 = (
            SERes2Block(channels, channels, 3, padding=d, dilation=d, scale=config.res2_scale,
                        se_bottleneck_dim=config.se_bottleneck_dim)
            for d in (2, 3, 4)
        )
        self.conv = nn.Conv1d(channels * 3, config.pooled_channels, kernel_size=1)
        self.pooling = AttentiveStatsPool(config.pooled_channels, config.attention_channels)
        self.bn = nn.BatchNorm1d(config.pooled_channels * 2)
        self.linear = nn.Linear(config.pooled_channels * 2, config.emb_dim)

    def layer_weights(self) -> Tensor:
        """Softmax of ``feature_weight``: the weight of each hidden state, summing to 1."""
        return torch.softmax(self.feature_weight, dim=-1)

    def weighted_features(self, hidden_states: Sequence[Tensor]) -> Tensor:
        """Layer-weighted sum of ``num_hidden_states`` tensors (B, T, D) -> instance-normalised (B, D, T)."""
        if len(hidden_states) != self.config.num_hidden_states:
            raise ValueError(f"expected {self.config.num_hidden_states} hidden states, got {len(hidden_states)}")
        stacked = torch.stack(list(hidden_states), dim=0)  # (L, B, T, D)
        mixed = (self.layer_weights().view(-1, 1, 1, 1) * stacked).sum(dim=0)
        return self.instance_norm(mixed.transpose(1, 2) + 1e-6)

    def forward(self, hidden_states: Sequence[Tensor]) -> Tensor:
        """Hidden states (each (B, T, D)) -> speaker embeddings (B, emb_dim), not normalised."""
        x = self.weighted_features(hidden_states)
        out2 = self.layer2(self.layer1(x))
        out3 = self.layer3(out2)
        out4 = self.layer4(out3)
        pooled = self.pooling(F.relu(self.conv(torch.cat([out2, out3, out4], dim=1))))
        return self.linear(self.bn(pooled))


# ----------------------------------------------------------------------------------------------- full model
class WavLMEcapa(nn.Module):
    """WavLM backbone (transformers) + :class:`EcapaTdnnHead`; ``forward(waveforms (B, N)) -> (B, emb_dim)``."""

    def __init__(self, config: WavLMEcapaConfig = WAVLM_ECAPA_LARGE) -> None:
        super().__init__()
        from transformers import WavLMConfig, WavLMModel

        self.config = config
        self.backbone = WavLMModel(WavLMConfig(**dict(config.wavlm)))
        self.head = EcapaTdnnHead(config.head)
        self.eval()

    def normalise(self, waveforms: Tensor) -> Tensor:
        """s3prl's WavLM expert: per-waveform layer norm over all its samples when cfg.normalize."""
        if not self.config.normalize_waveform:
            return waveforms
        return F.layer_norm(waveforms, waveforms.shape[-1:])

    def hidden_states(self, waveforms: Tensor) -> tuple[Tensor, ...]:
        """The s3prl upstream's ``hidden_states`` of (B, N) 16 kHz waveforms: L layer inputs + final normed output."""
        output = self.backbone(self.normalise(waveforms), output_hidden_states=True)
        num_layers = self.config.wavlm["num_hidden_layers"]
        states = tuple(output.hidden_states)
        if len(states) != num_layers + 1:  # layer drop (training mode) or a changed transformers convention
            raise RuntimeError(f"WavLM returned {len(states)} hidden states, expected {num_layers + 1}")
        return states[:num_layers] + (output.last_hidden_state,)

    def forward(self, waveforms: Tensor) -> Tensor:
        return self.head(self.hidden_states(waveforms))

    @torch.inference_mode()
    def embed(self, waveform: Tensor) -> Tensor:
        """Embedding of one 1-d waveform (N,) -> (emb_dim,), on the model's device, float32."""
        device = next(self.parameters()).device
        return self(waveform.to(device=device, dtype=torch.float32).reshape(1, -1))[0]


# ----------------------------------------------------------------------------------------------- key mapping
# (s3prl name under feature_extract.model., transformers WavLMModel name); {i}: an index, {p}: weight|bias.
_BACKBONE_RULES: tuple[tuple[str, str], ...] = (
    ("mask_emb", "masked_spec_embed"),
    ("feature_extractor.conv_layers.{i}.0.{p}", "feature_extractor.conv_layers.{i}.conv.{p}"),
    ("feature_extractor.conv_layers.{i}.2.1.{p}", "feature_extractor.conv_layers.{i}.layer_norm.{p}"),
    ("layer_norm.{p}", "feature_projection.layer_norm.{p}"),
    ("post_extract_proj.{p}", "feature_projection.projection.{p}"),
    ("encoder.pos_conv.0.weight_g", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    ("encoder.pos_conv.0.weight_v", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    ("encoder.pos_conv.0.bias", "encoder.pos_conv_embed.conv.bias"),
    ("encoder.layer_norm.{p}", "encoder.layer_norm.{p}"),
    ("encoder.layers.{i}.self_attn.q_proj.{p}", "encoder.layers.{i}.attention.q_proj.{p}"),
    ("encoder.layers.{i}.self_attn.k_proj.{p}", "encoder.layers.{i}.attention.k_proj.{p}"),
    ("encoder.layers.{i}.self_attn.v_proj.{p}", "encoder.layers.{i}.attention.v_proj.{p}"),
    ("encoder.layers.{i}.self_attn.out_proj.{p}", "encoder.layers.{i}.attention.out_proj.{p}"),
    ("encoder.layers.{i}.self_attn.grep_linear.{p}", "encoder.layers.{i}.attention.gru_rel_pos_linear.{p}"),
    ("encoder.layers.{i}.self_attn.grep_a", "encoder.layers.{i}.attention.gru_rel_pos_const"),
    ("encoder.layers.{i}.self_attn.relative_attention_bias.weight",
     "encoder.layers.{i}.attention.rel_attn_embed.weight"),
    ("encoder.layers.{i}.self_attn_layer_norm.{p}", "encoder.layers.{i}.layer_norm.{p}"),
    ("encoder.layers.{i}.fc1.{p}", "encoder.layers.{i}.feed_forward.intermediate_dense.{p}"),
    ("encoder.layers.{i}.fc2.{p}", "encoder.layers.{i}.feed_forward.output_dense.{p}"),
    ("encoder.layers.{i}.final_layer_norm.{p}", "encoder.layers.{i}.final_layer_norm.{p}"),
)
# transformers falls back to the legacy weight norm (weight_g / weight_v) when torch lacks parametrizations.
_LEGACY_WEIGHT_NORM = {
    "encoder.pos_conv_embed.conv.parametrizations.weight.original0": "encoder.pos_conv_embed.conv.weight_g",
    "encoder.pos_conv_embed.conv.parametrizations.weight.original1": "encoder.pos_conv_embed.conv.weight_v",
}


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
    return re.compile(pattern)


_FORWARD = tuple((_template_regex(s3prl), hf) for s3prl, hf in _BACKBONE_RULES)
_BACKWARD = tuple((_template_regex(hf), s3prl) for s3prl, hf in _BACKBONE_RULES)


def _apply(rules: tuple[tuple[re.Pattern[str], str], ...], name: str) -> str | None:
    for regex, template in rules:
        match = regex.fullmatch(name)
        if match:
            groups = match.groupdict()
            return template.replace("{i}", groups.get("i") or "").replace("{p}", groups.get("p") or "")
    return None


def s3prl_to_transformers(name: str) -> str | None:
    """s3prl/unilm WavLM tensor name -> transformers ``WavLMModel`` name (None if no rule matches)."""
    return _apply(_FORWARD, name)


def transformers_to_s3prl(name: str) -> str | None:
    """Inverse of :func:`s3prl_to_transformers` (legacy weight-norm names included)."""
    for parametrised, legacy in _LEGACY_WEIGHT_NORM.items():
        if name == legacy:
            name = parametrised
    return _apply(_BACKWARD, name)


def checkpoint_key_to_module_key(key: str, module_keys: frozenset[str] | set[str] = frozenset()) -> str | None:
    """Checkpoint key -> :class:`WavLMEcapa` state-dict key (None for a backbone key that no rule maps)."""
    if not key.startswith(BACKBONE_PREFIX):
        return "head." + key
    mapped = s3prl_to_transformers(key[len(BACKBONE_PREFIX):])
    if mapped is None:
        return None
    legacy = _LEGACY_WEIGHT_NORM.get(mapped)
    if legacy is not None and "backbone." + mapped not in module_keys and "backbone." + legacy in module_keys:
        mapped = legacy
    return "backbone." + mapped


def module_key_to_checkpoint_key(key: str) -> str:
    """:class:`WavLMEcapa` state-dict key -> the checkpoint name it is loaded from (for error messages)."""
    if key.startswith("head."):
        return key[len("head."):]
    inner = key.removeprefix("backbone.")
    original = transformers_to_s3prl(inner)
    return BACKBONE_PREFIX + original if original is not None else f"<no checkpoint name for {key}>"


# ----------------------------------------------------------------------------------------------- loading
class CheckpointLayoutError(WeightsError):
    """A checkpoint's keys or shapes do not match the architecture; nothing was loaded."""


@dataclass(frozen=True)
class LoadReport:
    """What strict loading did: every checkpoint key is in exactly one of ``loaded`` and ``ignored``."""

    path: Path
    loaded: int  # tensors copied into the model (= every tensor of the model)
    ignored: tuple[str, ...]  # TRAINING_ONLY_KEYS present in the file
    metadata: tuple[str, ...]  # top-level entries besides "model" (e.g. best_valid_eer)


def read_unispeech_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """The ``model`` state dict of a UniSpeech ``.pth`` (``torch.load(weights_only=True)``) and its other top keys."""
    path = Path(path)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointLayoutError(
            f"{path}: not readable as a UniSpeech checkpoint with torch.load(weights_only=True): {exc}"
        ) from exc
    if not isinstance(content, Mapping) or not isinstance(content.get("model"), Mapping):
        found = sorted(content) if isinstance(content, Mapping) else type(content).__name__
        raise CheckpointLayoutError(f"{path}: expected a dict with a 'model' state dict, found {found}")
    state = content["model"]
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor))
    if not_tensors:
        raise CheckpointLayoutError(f"{path}: 'model' entries that are not named tensors: {not_tensors}")
    metadata = tuple(sorted(str(k) for k in content if k != "model"))
    return dict(state), metadata


def _natural(name: str) -> list[Any]:
    """Sort key putting ``layers.2`` before ``layers.10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _listing(names: Sequence[str], limit: int = 40) -> str:
    names = sorted(names, key=_natural)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def map_checkpoint_state(state: Mapping[str, Tensor], model: WavLMEcapa, source: str = "checkpoint"
                         ) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """Rename a checkpoint's tensors to ``model``'s keys, strictly.

    Returns the renamed state dict (exactly the model's keys) and the training-only keys left out.
    Raises :class:`CheckpointLayoutError` naming every unmapped, unexpected, duplicated, missing or mis-shaped key.
    """
    expected = model.state_dict()
    expected_keys = set(expected)
    mapped: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    ignored, unmapped, unexpected, duplicated, mis_shaped = [], [], [], [], []
    for key in sorted(state):
        if key in TRAINING_ONLY_KEYS:
            ignored.append(key)
            continue
        target = checkpoint_key_to_module_key(key, expected_keys)
        if target is None:
            unmapped.append(key)
        elif target not in expected_keys:
            unexpected.append(key)
        elif target in mapped:
            duplicated.append(f"{origin[target]} and {key} -> {target}")
        else:
            mapped[target], origin[target] = state[key], key
            if tuple(state[key].shape) != tuple(expected[target].shape):
                mis_shaped.append(f"{key} {tuple(state[key].shape)} (model {tuple(expected[target].shape)})")
    missing = sorted(module_key_to_checkpoint_key(k) for k in expected_keys - set(mapped))
    problems = [
        (f"unmapped backbone keys (no s3prl->transformers rule) {_listing(unmapped)}" if unmapped else ""),
        (f"unexpected keys {_listing(unexpected)}" if unexpected else ""),
        (f"keys mapping to the same tensor {_listing(duplicated)}" if duplicated else ""),
        (f"missing keys {_listing(missing)}" if missing else ""),
        (f"shape mismatches {_listing(mis_shaped)}" if mis_shaped else ""),
    ]
    problems = [p for p in problems if p]
    if problems:
        raise CheckpointLayoutError(
            f"{source} does not match the WavLM-ECAPA architecture (strict loading, nothing loaded): "
            + "; ".join(problems)
        )
    return mapped, tuple(ignored)


def load_wavlm_ecapa(
    path: str | Path, config: WavLMEcapaConfig = WAVLM_ECAPA_LARGE, device: str | torch.device = "cpu"
) -> tuple[WavLMEcapa, LoadReport]:
    """Build :class:`WavLMEcapa` for ``config`` and load a UniSpeech ``.pth`` into it strictly; eval mode on ``device``.

    Every model tensor comes from the file (the random initialisation is entirely overwritten); the only file
    keys not loaded are :data:`TRAINING_ONLY_KEYS`. Raises :class:`CheckpointLayoutError` otherwise.
    """
    path = Path(path)
    state, metadata = read_unispeech_checkpoint(path)
    model = WavLMEcapa(config)
    mapped, ignored = map_checkpoint_state(state, model, source=str(path))
    model.load_state_dict(mapped, strict=True)
    del state
    model.to(device).eval()
    return model, LoadReport(path=path, loaded=len(mapped), ignored=ignored, metadata=metadata)
