"""Tiny RANDOM weights in the real checkpoint formats of the standard profile's speaker, face and SyncNet models.

Shared by the metric tests (``test_paper_speaker_similarity.py``, ``test_paper_face.py``,
``test_paper_syncnet.py``) and the selftest tests (``test_selftest.py``). Every builder writes files in the
format the real loader reads, so they go through the real loading path (weights card -> ``metric.load()`` ->
strict loading); the ``install_*`` / ``use_*`` helpers put them in a model store and point the metric classes'
weights cards (monkeypatched) at their sha256.

- Speaker (WavLM-Large + ECAPA-TDNN, UniSpeech format): :func:`write_tiny_unispeech`, :data:`TINY` (the
  architecture to monkeypatch into ``SpeakerSimilarityWavLM.architecture``), :func:`install_tiny_wavlm`.
- Face (insightface buffalo_l ONNX): :func:`tiny_scrfd`, :func:`tiny_arcface`, :func:`tiny_landmark`,
  :func:`install_tiny_buffalo`. The tiny detector finds only uniform squares of set red values (see
  :func:`tiny_scrfd`), never a real face.
- CLAP (laion/clap-htsat-unfused, transformers format): :func:`write_tiny_clap`.
- SyncNet v2 + S3FD (released torch pickles): :func:`random_syncnet_state`, :func:`random_s3fd_state`,
  :func:`save_like_release`, :func:`write_random_syncnet_store`, :func:`use_random_syncnet_cards`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from idlora_bench.checkpoints.weights import MODELS_ENV, WeightsFile
from idlora_bench.core.io import file_sha256
from idlora_bench.metrics import clap_htsat_unfused
from idlora_bench.metrics.face_similarity_arcface import FaceSimilarityArcFace
from idlora_bench.metrics.lip_motion_insightface import LipMotionInsightFace
from idlora_bench.metrics.lse_d_syncnet import LipSyncSyncNet
from idlora_bench.metrics.speaker_similarity_wavlm_ecapa import CHECKPOINT, SpeakerSimilarityWavLM
from idlora_bench.models import syncnet as sn
from idlora_bench.models.insightface_onnx import DET_10G, LANDMARK_1K3D68, W600K_R50
from idlora_bench.models.wavlm_ecapa import (
    BACKBONE_PREFIX,
    WAVLM_LARGE_CONFIG,
    EcapaHeadConfig,
    EcapaTdnnHead,
    WavLMEcapaConfig,
)

# ============================================================================ speaker: WavLM + ECAPA (UniSpeech)
LAYERS = 2
TRAINING_CLASSES = 7  # the real file has 5994 (VoxCeleb2 speakers); the size is irrelevant, the key is not

# Tiny WavLM with every non-size setting of WavLM-Large: layer-norm CNN extractor without conv bias, pre-LN
# transformer, gated relative position bias (320/800 scaled down to 32/64 so the log buckets and the clamp at
# max_distance are both reached by ~400 frames), even conv_pos (SamePad drops one step), normalize=True.
S3PRL_TINY_CFG = {
    "extractor_mode": "layer_norm",
    "encoder_layers": LAYERS,
    "encoder_embed_dim": 32,
    "encoder_ffn_embed_dim": 64,
    "encoder_attention_heads": 2,
    "activation_fn": "gelu",
    "layer_norm_first": True,
    "conv_feature_layers": "[(16,10,5)] + [(16,3,2)] * 2 + [(16,2,2)]",
    "conv_bias": False,
    "conv_pos": 8,
    "conv_pos_groups": 2,
    "relative_position_embedding": True,
    "num_buckets": 32,
    "max_distance": 64,
    "gru_rel_pos": True,
    "normalize": True,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "encoder_layerdrop": 0.0,
}
TINY = WavLMEcapaConfig(
    wavlm={
        **WAVLM_LARGE_CONFIG,  # everything not overridden is WavLM-Large's
        "hidden_size": 32,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "conv_dim": [16] * 4,
        "conv_kernel": [10, 3, 3, 2],
        "conv_stride": [5, 2, 2, 2],
        "num_conv_pos_embeddings": 8,
        "num_conv_pos_embedding_groups": 2,
        "num_buckets": 32,
        "max_bucket_distance": 64,
    },
    normalize_waveform=True,
    head=EcapaHeadConfig(feat_dim=32, num_hidden_states=LAYERS + 1, channels=16, pooled_channels=24, emb_dim=8,
                         res2_scale=8, se_bottleneck_dim=4, attention_channels=4),
)


def randomised(state: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Every float tensor perturbed (layer norms, biases, grep_a, BN statistics are no longer 0/1 constants), so a
    swapped or skipped tensor changes the output. BN running variances stay positive."""
    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value.clone()
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(value.shape, generator=generator)
        else:
            out[key] = value + 0.2 * torch.randn(value.shape, generator=generator)
    return out


def s3prl_wavlm(state: dict[str, torch.Tensor] | None = None):
    """s3prl's own tiny WavLM (``S3PRL_TINY_CFG``), optionally loaded strictly from ``state``."""
    from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

    model = WavLM(WavLMConfig(S3PRL_TINY_CFG))
    if state is not None:
        model.load_state_dict(state, strict=True)
    return model.eval()


def write_tiny_unispeech(directory: Path) -> dict:
    """A tiny UniSpeech-format checkpoint ``{"model": state, "best_valid_eer": x}`` in ``directory``.

    Returns ``path`` (the ``wavlm_large_finetune.pth``), ``state`` (all its tensors), ``wavlm_state`` (s3prl
    names), ``head_state`` and ``upstream`` (the same WavLM in s3prl's upstream ``{"cfg", "model"}`` format).
    """
    generator = torch.Generator().manual_seed(1234)
    torch.manual_seed(1234)
    wavlm_state = randomised(s3prl_wavlm().state_dict(), generator)
    head_state = randomised(EcapaTdnnHead(TINY.head).state_dict(), generator)
    head_state["feature_weight"] = torch.tensor([0.3, -0.5, 0.9])  # a non-uniform layer weighting
    state = {BACKBONE_PREFIX + key: value for key, value in wavlm_state.items()}
    state.update(head_state)
    state["loss_calculator.projection.weight"] = torch.randn(TRAINING_CLASSES, TINY.head.emb_dim, generator=generator)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "wavlm_large_finetune.pth"
    torch.save({"model": state, "best_valid_eer": 0.0123}, path)
    # the s3prl upstream format (what torch.hub's wavlm_large downloads: {"cfg", "model"}) for UpstreamExpert
    upstream = directory / "wavlm_tiny_upstream.pt"
    torch.save({"cfg": dict(S3PRL_TINY_CFG), "model": wavlm_state}, upstream)
    return {"path": path, "state": state, "wavlm_state": wavlm_state, "head_state": head_state, "upstream": upstream}


def unispeech_card(path: Path, sha256: str | None = None) -> WeightsFile:
    """The real UniSpeech card with the sha256 of ``path`` (or the given one)."""
    digest = sha256 or hashlib.sha256(path.read_bytes()).hexdigest()
    return WeightsFile(CHECKPOINT.model, CHECKPOINT.file, CHECKPOINT.source, digest, CHECKPOINT.licence)


def install_tiny_wavlm(checkpoint: Path, store: Path, monkeypatch: pytest.MonkeyPatch,
                       sha256: str | None = None) -> None:
    """Copy the tiny checkpoint into ``store`` and point ``SpeakerSimilarityWavLM`` (architecture + card) at it."""
    (store / CHECKPOINT.model).mkdir(parents=True, exist_ok=True)
    (store / CHECKPOINT.model / CHECKPOINT.file).write_bytes(checkpoint.read_bytes())
    monkeypatch.setenv(MODELS_ENV, str(store))
    monkeypatch.setattr(SpeakerSimilarityWavLM, "architecture", TINY)
    monkeypatch.setattr(SpeakerSimilarityWavLM, "weights", (unispeech_card(checkpoint, sha256),))


# ============================================================================ face: insightface buffalo_l (ONNX)
ARCFACE_DST = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]])
RED_FOR_STRIDE = {8: 64, 16: 160, 32: 255}
LANDMARK_BIAS = np.random.default_rng(7).uniform(-0.8, 0.8, (68, 3))


# onnx is imported inside the builders: the speaker and SyncNet helpers work without it.
def _f32(name: str, value: object) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _i64(name: str, value: list[int]) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, np.int64), name)


def _save(nodes: list, inputs: list, outputs: list, inits: list, name: str) -> bytes:
    import onnx
    from onnx import helper

    model = helper.make_model(helper.make_graph(nodes, name, inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tiny_scrfd(with_kps: bool = True, spatial: tuple[object, object] = ("?", "?"), k: float = 4.0) -> bytes:
    """det_10g format: input [1,3,?,?]; 9 outputs (scores/boxes/keypoints for strides 8, 16, 32, 2 anchors).

    Score per cell = relu(1 - k |avg_pool_s(red) - c_s|), c_s the normalised red of a stride-s face; box
    distances (0, 0, 1, 1) and keypoint distances (ArcFace template / 112) in stride units.
    """
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Slice", ["input.1", "c0", "c1", "c1"], ["red"], name="slice_red")]
    inits = [_f32("one", 1.0), _f32("zero", 0.0), _f32("k", k), _i64("c0", [0]), _i64("c1", [1]), _i64("col", [-1, 1])]
    scores, boxes, points = [], [], []
    for s in (8, 16, 32):
        inits += [_f32(f"c{s}", (RED_FOR_STRIDE[s] - 127.5) / 128.0), _f32(f"box{s}", [[0, 0, 1, 1]]),
                  _f32(f"kps{s}", [(ARCFACE_DST / 112.0).ravel()])]
        nodes += [
            helper.make_node("AveragePool", ["red"], [f"p{s}"], kernel_shape=[s, s], strides=[s, s], name=f"pool{s}"),
            helper.make_node("Sub", [f"p{s}", f"c{s}"], [f"d{s}"], name=f"diff{s}"),
            helper.make_node("Abs", [f"d{s}"], [f"a{s}"], name=f"abs{s}"),
            helper.make_node("Mul", [f"a{s}", "k"], [f"m{s}"], name=f"sharpen{s}"),
            helper.make_node("Sub", ["one", f"m{s}"], [f"q{s}"], name=f"flip{s}"),
            helper.make_node("Relu", [f"q{s}"], [f"r{s}"], name=f"relu{s}"),
            helper.make_node("Reshape", [f"r{s}", "col"], [f"f{s}"], name=f"cells{s}"),
            helper.make_node("Concat", [f"f{s}", f"f{s}"], [f"pair{s}"], axis=1, name=f"anchors{s}"),
            helper.make_node("Reshape", [f"pair{s}", "col"], [f"score{s}"], name=f"scores{s}"),
            helper.make_node("Mul", [f"score{s}", "zero"], [f"z{s}"], name=f"zeros{s}"),
            helper.make_node("Add", [f"z{s}", f"box{s}"], [f"bbox{s}"], name=f"boxes{s}"),
            helper.make_node("Add", [f"z{s}", f"kps{s}"], [f"kpsout{s}"], name=f"keypoints{s}"),
        ]
        scores.append(helper.make_tensor_value_info(f"score{s}", TensorProto.FLOAT, [f"n{s}", 1]))
        boxes.append(helper.make_tensor_value_info(f"bbox{s}", TensorProto.FLOAT, [f"n{s}", 4]))
        points.append(helper.make_tensor_value_info(f"kpsout{s}", TensorProto.FLOAT, [f"n{s}", 10]))
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, *spatial])
    return _save(nodes, [image], scores + boxes + (points if with_kps else []), inits, "tiny_scrfd")


def tiny_arcface(dim: int = 512, extra_input: bool = False, size: int = 112) -> bytes:
    """w600k_r50 format: [N,3,112,112] -> [N,512]. Dims 0-2 = per-channel means of the network input (R, G, B
    after insightface's swap; (x - 127.5) / 127.5), the rest a fixed random projection of a pooled crop."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    cells = (size // 16) ** 2 * 3
    nodes = [
        helper.make_node("ReduceMean", ["input.1"], ["means"], axes=[2, 3], keepdims=0, name="channel_means"),
        helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[16, 16], strides=[16, 16], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "proj"], ["projected"], name="projection"),
        helper.make_node("Concat", ["means", "projected"], ["683"], axis=1, name="embedding"),
    ]
    inits = [_f32("proj", rng.normal(0, 0.1, (cells, dim - 3)))]
    inputs = [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, size, size])]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["None", 1]))
    output = helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", dim])
    return _save(nodes, inputs, [output], inits, "tiny_arcface")


def tiny_landmark(points: int = 3309, mxnet_normalisation: bool = True) -> bytes:
    """1k3d68 format: raw-pixel [N,3,192,192] -> [N,3309]. Like the real (mxnet-exported) file it normalises
    inside the graph (nodes ``_minus0``/``_mul0``, so insightface feeds raw pixels). The last 68 x 3 outputs
    are the constant ``LANDMARK_BIAS``; the others a random projection of the input."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(1)
    weights = rng.normal(0, 0.01, (108, points))
    bias = rng.normal(0, 0.1, points)
    if points == 3309:
        weights[:, -204:] = 0.0
        bias[-204:] = LANDMARK_BIAS.ravel()
    first = "_minus0" if mxnet_normalisation else "centre"
    second = "_mul0" if mxnet_normalisation else "scale"
    nodes = [
        helper.make_node("Sub", ["data", "mean"], ["centred"], name=first),
        helper.make_node("Mul", ["centred", "inv_std"], ["normed"], name=second),
        helper.make_node("AveragePool", ["normed"], ["pooled"], kernel_shape=[32, 32], strides=[32, 32], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w"], ["projected"], name="fc"),
        helper.make_node("Add", ["projected", "b"], ["fc1"], name="fc_bias"),
    ]
    inits = [_f32("mean", 127.5), _f32("inv_std", 1 / 128), _f32("w", weights), _f32("b", bias)]
    image = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["None", 3, 192, 192])
    output = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["None", points])
    return _save(nodes, [image], [output], inits, "tiny_1k3d68")


def broken_landmark() -> bytes:
    """A 1k3d68-shaped file with the right signature whose graph onnxruntime cannot build (unknown op)."""
    import onnx

    model = onnx.load_from_string(tiny_landmark())
    next(node for node in model.graph.node if node.name == "fc").op_type = "NoSuchOp"
    return model.SerializeToString()


GOOD = {DET_10G.file: tiny_scrfd, W600K_R50.file: tiny_arcface, LANDMARK_1K3D68.file: tiny_landmark}


def install_tiny_buffalo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         replace: dict[str, bytes] | None = None) -> Path:
    """Write the tiny files (optionally some replaced) into a fresh store ``tmp_path/models`` and point the
    ArcFace and 1k3d68 metrics' cards at them. Returns the model's folder in the store."""
    store = tmp_path / "models"
    folder = store / DET_10G.model
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv(MODELS_ENV, str(store))
    cards = {}
    for card in (DET_10G, W600K_R50, LANDMARK_1K3D68):
        path = folder / card.file
        path.write_bytes((replace or {}).get(card.file) or GOOD[card.file]())
        cards[card.file] = dataclasses.replace(card, sha256=file_sha256(path))
    monkeypatch.setattr(FaceSimilarityArcFace, "weights", (cards[DET_10G.file], cards[W600K_R50.file]))
    monkeypatch.setattr(LipMotionInsightFace, "weights", (cards[DET_10G.file], cards[LANDMARK_1K3D68.file]))
    return folder


# ============================================================================ lip sync: SyncNet v2 + S3FD
def random_syncnet_state(seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """Seeded random SyncNet v2 weights with non-trivial BatchNorm statistics, without num_batches_tracked."""
    torch.manual_seed(seed)
    net = sn.SyncNetV2()
    generator = torch.Generator().manual_seed(seed + 1)
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            size = module.num_features
            module.running_mean.copy_(0.1 * torch.randn(size, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(size, generator=generator))
            module.weight.data.copy_(0.8 + 0.4 * torch.rand(size, generator=generator))
            module.bias.data.copy_(0.1 * torch.randn(size, generator=generator))
    return OrderedDict((k, v.clone()) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked"))


def random_s3fd_state(seed: int = 0, blind: bool = False) -> OrderedDict[str, torch.Tensor]:
    """Seeded random S3FD weights; ``blind``: the face classifier rejects everything (fast, no detections)."""
    torch.manual_seed(seed)
    net = sn.new_s3fd("cpu")
    if blind:
        with torch.no_grad():
            for conv in net.conf:
                conv.weight.zero_()
                conv.bias.fill_(30.0)  # background logits
                conv.bias[-1] = -30.0  # face logit (conf[0]: 3 max-out background channels, then face)
    return OrderedDict((k, v.clone()) for k, v in net.state_dict().items())


def save_like_release(state: dict[str, torch.Tensor], path: Path) -> Path:
    """The released files' format: torch's legacy (non-zip) pickle of a plain state dict."""
    torch.save(OrderedDict(state), path, _use_new_zipfile_serialization=False)
    return path


def syncnet_card(real: WeightsFile, path: Path, sha256: str | None = None) -> WeightsFile:
    """``real``'s card with the sha256 of ``path`` (or the given one)."""
    digest = sha256 or hashlib.sha256(path.read_bytes()).hexdigest()
    return WeightsFile(real.model, real.file, real.source, digest, real.licence)


def write_random_syncnet_store(root: Path, syncnet_state: dict[str, torch.Tensor], blind: bool = True) -> Path:
    """A model store ``root`` holding random SyncNet v2 + S3FD weights in the released format (``blind``: S3FD
    detects nothing)."""
    (root / sn.SYNCNET_MODEL).mkdir(parents=True, exist_ok=True)
    save_like_release(syncnet_state, root / sn.SYNCNET_MODEL / sn.SYNCNET_V2.file)
    save_like_release(random_s3fd_state(0, blind=blind), root / sn.SYNCNET_MODEL / sn.S3FD_FACE.file)
    return root


def use_random_syncnet_cards(store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``$IDLORA_BENCH_MODELS`` at ``store`` and the SyncNet metrics' cards (LSE-C inherits them) at its files."""
    monkeypatch.setenv(MODELS_ENV, str(store))
    folder = store / sn.SYNCNET_MODEL
    cards = (syncnet_card(sn.SYNCNET_V2, folder / sn.SYNCNET_V2.file),
             syncnet_card(sn.S3FD_FACE, folder / sn.S3FD_FACE.file))
    monkeypatch.setattr(LipSyncSyncNet, "weights", cards)
    return store


# ------------------------------------------------------------------------------------------------ CLAP
TOKENIZER_MERGES = [("Ġ", "a"), ("t", "h")]


def _tiny_tokenizer() -> tuple[Any, dict[str, int]]:
    """A byte-level RoBERTa tokenizer with two merges (so ~1 token per character)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import RobertaTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for token in [*sorted(ByteLevel.alphabet()), "Ġa", "th", "<mask>"]:
        vocab[token] = len(vocab)
    return RobertaTokenizer(vocab=vocab, merges=list(TOKENIZER_MERGES)), vocab


def write_tiny_clap(folder: Path, state_edit: Any = None, text_positions: int = 90) -> None:
    """A seeded tiny ClapModel in the laion/clap-htsat-unfused file layout (pytorch_model.bin, 2023 tokenizer files).

    ``text_positions``: RoBERTa positions of the tiny text tower (``text_positions - 2`` tokens fit; the real model
    has 514 -> 512); ``state_edit`` edits the state dict in place before it is saved (to break the checkpoint).
    """
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    folder.mkdir(parents=True, exist_ok=True)
    config = ClapConfig(
        text_config=dict(vocab_size=300, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=text_positions, projection_dim=8),
        audio_config=dict(spec_size=256, patch_size=4, patch_stride=(4, 4), patch_embeds_hidden_size=8,
                          hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2], window_size=4,
                          num_mel_bins=64, projection_dim=8, enable_fusion=False),
        projection_dim=8)
    torch.manual_seed(0)
    model = ClapModel(config).eval()
    config.save_pretrained(folder)
    state = dict(model.state_dict())
    if state_edit is not None:
        state_edit(state)
    torch.save(state, folder / "pytorch_model.bin")
    # the hub repo's preprocessor config: unfused -> rand_trunc, 50 Hz - 14 kHz, 48 kHz, 10 s
    ClapFeatureExtractor(feature_size=64, sampling_rate=48_000, hop_length=480, max_length_s=10,
                         fft_window_size=1024, frequency_min=50, frequency_max=14_000,
                         truncation="rand_trunc", padding="repeatpad").save_pretrained(folder)
    tokenizer, vocab = _tiny_tokenizer()
    scratch = folder / "_tok"
    tokenizer.save_pretrained(scratch)
    shutil.move(scratch / "tokenizer.json", folder / "tokenizer.json")
    shutil.rmtree(scratch)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in TOKENIZER_MERGES))
    specials = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": "<mask>",
                "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        **specials, "add_prefix_space": False, "errors": "replace", "model_max_length": 512,
        "processor_class": "ClapProcessor", "tokenizer_class": "RobertaTokenizer", "trim_offsets": True}))
    assert sorted(p.name for p in folder.iterdir()) == sorted(clap_htsat_unfused.HUB_FILES)


# ------------------------------------------------------------------------------------------------ shared helpers
def cards_for(store: Path, model: str, files: list[str]) -> tuple[WeightsFile, ...]:
    """Weights cards for tiny files already in ``<store>/<model>/``, with their real sha256."""
    return tuple(WeightsFile(model=model, file=file, source=f"url:https://example.invalid/{file}",
                             sha256=file_sha256(store / model / file), licence="test") for file in files)


class CallRecorder:
    """Wraps a callable (e.g. a metric's feature extractor): records the inputs, keyword arguments and output of
    each call in :attr:`calls` and forwards every other attribute to the wrapped object."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []

    def __call__(self, raw: Any, **kwargs: Any) -> Any:
        out = self.inner(raw, **kwargs)
        self.calls.append({"raw": [np.asarray(w) for w in raw], "kwargs": kwargs, "out": out})
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
