"""Paper-profile speaker similarity (WavLM-Large + UniSpeech ECAPA-TDNN): equivalence and strict-loading tests.

No real weights can be downloaded here, so every test writes TINY RANDOM checkpoints in the real UniSpeech format
(``{"model": state_dict, "best_valid_eer": x}``, backbone under ``feature_extract.model.*`` in s3prl's WavLM names,
head under UniSpeech's names, plus the training-only ``loss_calculator.projection.weight``) and loads them through
the real code (``load_wavlm_ecapa`` and ``SpeakerSimilarityWavLM.load()``); the builders live in ``tiny_weights.py``.

References: s3prl 0.4.18's own ``WavLM`` and its ``UpstreamExpert`` (the module UniSpeech wraps:
``torch.hub.load("s3prl/s3prl", "wavlm_large")`` -> ``UpstreamExpert``, whose ``hidden_states`` come from forward
hooks on the encoder layers), and a functional re-derivation of UniSpeech's ``ECAPA_TDNN`` forward written from
``downstreams/speaker_verification/models/ecapa_tdnn.py`` that reads the checkpoint's raw tensors by name.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_cache_round_trip, constructed_media, make_pair
from tiny_weights import LAYERS, TINY, install_tiny_wavlm, s3prl_wavlm, write_tiny_unispeech

from idlora_bench.core.errors import SampleFailure, WeightsError
from idlora_bench.metrics.speaker_similarity_wavlm_ecapa import (
    SpeakerSimilarityWavLM,
)
from idlora_bench.models.wavlm_ecapa import (
    BACKBONE_PREFIX,
    TRAINING_ONLY_KEYS,
    WAVLM_ECAPA_LARGE,
    WAVLM_LARGE_CONFIG,
    CheckpointLayoutError,
    EcapaTdnnHead,
    WavLMEcapa,
    checkpoint_key_to_module_key,
    load_wavlm_ecapa,
    module_key_to_checkpoint_key,
    s3prl_to_transformers,
)

# s3prl's WavLM uses the deprecated torch weight_norm and mixes mask dtypes in attention (reference code only)
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask and attn_mask:UserWarning"),
]

RATE = 16_000


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny UniSpeech-format checkpoint plus the pieces it was made of (see tiny_weights.write_tiny_unispeech)."""
    return write_tiny_unispeech(tmp_path_factory.mktemp("wavlm_ecapa"))


@pytest.fixture(scope="module")
def loaded(tiny: dict) -> WavLMEcapa:
    model, report = load_wavlm_ecapa(tiny["path"], TINY)
    assert report.ignored == ("loss_calculator.projection.weight",)
    assert report.metadata == ("best_valid_eer",)
    assert report.loaded == len(tiny["state"]) - 1 == len(model.state_dict())
    return model


def _waveform(seed: int, seconds: float = 1.0, scale: float = 0.3) -> torch.Tensor:
    return scale * torch.randn(int(seconds * RATE), generator=torch.Generator().manual_seed(seed))


def _upstream_hidden_states(upstream: Path, wav: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """s3prl's UpstreamExpert (hooks on encoder.layers[i] inputs + the encoder output), as UniSpeech calls it."""
    from s3prl.upstream.wavlm.expert import UpstreamExpert

    expert = UpstreamExpert(str(upstream)).eval()
    with torch.no_grad():
        return tuple(expert([wav])["hidden_states"])


# ----------------------------------------------------------------------------------------------- 1. backbone
def test_mapped_backbone_equals_s3prl_wavlm_on_every_hidden_state(tiny: dict, loaded: WavLMEcapa) -> None:
    wav = _waveform(0)
    reference = _upstream_hidden_states(tiny["upstream"], wav)
    with torch.no_grad():
        ours = loaded.hidden_states(wav[None])
    assert len(reference) == len(ours) == LAYERS + 1
    diffs = [float((a - b).abs().max()) for a, b in zip(ours, reference)]
    assert all(a.shape == b.shape for a, b in zip(ours, reference))
    assert ours[0].shape[1] > 64  # enough frames to reach the clamped relative-position buckets
    # measured: max abs difference 2.1e-6 (0.0 for the first state; hidden-state magnitudes up to ~8)
    assert max(diffs) <= 1e-5, diffs

    # the last state is the encoder output after its final layer norm, as extract_features returns it
    s3prl = s3prl_wavlm(tiny["wavlm_state"])
    with torch.no_grad():
        final, _ = s3prl.extract_features(F.layer_norm(wav, wav.shape)[None], padding_mask=None, mask=False)
    assert float((ours[-1] - final).abs().max()) <= 1e-5
    # and waveform normalisation matters: without it the first hidden state differs
    with torch.no_grad():
        raw = loaded.backbone(wav[None] * 5.0, output_hidden_states=True).hidden_states[0]
    assert float((raw - ours[0]).abs().max()) > 1e-2


def test_hidden_states_are_scale_invariant_through_waveform_layer_norm(loaded: WavLMEcapa) -> None:
    wav = _waveform(1)
    with torch.no_grad():
        a, b = loaded(wav[None]), loaded(7.0 * wav[None])
    assert float((a - b).abs().max()) <= 1e-5  # measured: 9.5e-7


# ----------------------------------------------------------------------------------------------- 2. end to end
def _reference_ecapa(sd: dict[str, torch.Tensor], hidden_states: tuple[torch.Tensor, ...], scale: int = 8
                     ) -> torch.Tensor:
    """UniSpeech ECAPA_TDNN.forward, functionally, from the checkpoint's raw tensors (eval mode)."""

    def bn(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.batch_norm(x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"],
                            sd[f"{name}.bias"], training=False, eps=1e-5)

    def conv(x: torch.Tensor, name: str, padding: int = 0, dilation: int = 1) -> torch.Tensor:
        return F.conv1d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=padding, dilation=dilation)

    def conv_relu_bn(x: torch.Tensor, name: str, padding: int = 0) -> torch.Tensor:
        return bn(F.relu(conv(x, f"{name}.conv", padding)), f"{name}.bn")

    def se_res2_block(x: torch.Tensor, name: str, dilation: int) -> torch.Tensor:
        y = conv_relu_bn(x, f"{name}.Conv1dReluBn1")
        chunks = torch.split(y, y.shape[1] // scale, dim=1)
        outs, sp = [], None
        for i in range(scale - 1):
            sp = chunks[i] if i == 0 else sp + chunks[i]
            sp = conv(sp, f"{name}.Res2Conv1dReluBn.convs.{i}", padding=dilation, dilation=dilation)
            sp = bn(F.relu(sp), f"{name}.Res2Conv1dReluBn.bns.{i}")
            outs.append(sp)
        y = conv_relu_bn(torch.cat(outs + [chunks[scale - 1]], dim=1), f"{name}.Conv1dReluBn2")
        se = f"{name}.SE_Connect"
        gate = F.relu(F.linear(y.mean(dim=2), sd[f"{se}.linear1.weight"], sd[f"{se}.linear1.bias"]))
        gate = torch.sigmoid(F.linear(gate, sd[f"{se}.linear2.weight"], sd[f"{se}.linear2.bias"]))
        return y * gate[:, :, None] + x

    weights = torch.softmax(sd["feature_weight"], dim=-1)
    x = sum(w * h for w, h in zip(weights, hidden_states))
    x = F.instance_norm(x.transpose(1, 2) + 1e-6)
    out1 = conv_relu_bn(x, "layer1", padding=2)
    out2 = se_res2_block(out1, "layer2", 2)
    out3 = se_res2_block(out2, "layer3", 3)
    out4 = se_res2_block(out3, "layer4", 4)
    out = F.relu(conv(torch.cat([out2, out3, out4], dim=1), "conv"))
    alpha = torch.softmax(conv(torch.tanh(conv(out, "pooling.linear1")), "pooling.linear2"), dim=2)
    mean = (alpha * out).sum(dim=2)
    std = ((alpha * out * out).sum(dim=2) - mean * mean).clamp(min=1e-9).sqrt()
    return F.linear(bn(torch.cat([mean, std], dim=1), "bn"), sd["linear.weight"], sd["linear.bias"])


def test_embedding_from_the_checkpoint_equals_the_upstream_pieces(tiny: dict, loaded: WavLMEcapa) -> None:
    wav = _waveform(2, seconds=1.3)
    with torch.no_grad():
        reference = _reference_ecapa(tiny["head_state"], _upstream_hidden_states(tiny["upstream"], wav))[0]
    ours = loaded.embed(wav)
    assert ours.shape == (TINY.head.emb_dim,)
    # measured: max abs difference 9.5e-7 on embedding entries of magnitude up to ~4.4
    assert float((ours - reference).abs().max()) <= 1e-5, float((ours - reference).abs().max())
    assert float(F.cosine_similarity(ours.double(), reference.double(), dim=0)) > 1 - 1e-9

    # the head class alone, given the same upstream hidden states, matches the functional re-derivation
    # (measured: 0.0, bit-identical)
    head = EcapaTdnnHead(TINY.head)
    head.load_state_dict(tiny["head_state"], strict=True)
    states = _upstream_hidden_states(tiny["upstream"], wav)
    with torch.no_grad():
        assert float((head.eval()(states)[0] - reference).abs().max()) <= 1e-5


# ----------------------------------------------------------------------------------------------- 3. strictness
def _write(path: Path, state: dict[str, torch.Tensor], **extra) -> Path:
    torch.save({"model": state, **extra}, path)
    return path


@pytest.mark.parametrize("removed", [
    "feature_extract.model.encoder.layers.1.fc1.weight",
    "feature_extract.model.encoder.pos_conv.0.weight_g",
    "feature_extract.model.mask_emb",
    "layer3.Res2Conv1dReluBn.bns.6.running_var",
    "feature_weight",
])
def test_a_missing_key_is_refused_by_name(tiny: dict, tmp_path: Path, removed: str) -> None:
    state = {k: v for k, v in tiny["state"].items() if k != removed}
    with pytest.raises(CheckpointLayoutError, match="missing keys") as info:
        load_wavlm_ecapa(_write(tmp_path / "m.pth", state), TINY)
    assert removed in str(info.value) and "unexpected" not in str(info.value)


@pytest.mark.parametrize(("added", "kind"), [
    ("feature_extract.model.encoder.layers.2.fc1.weight", "unexpected keys"),  # a third layer: maps, not in model
    ("feature_extract.model.final_proj.weight", "unmapped backbone keys"),  # no s3prl->transformers rule
    ("feature_extract.model.encoder.layers.1.self_attn.relative_attention_bias.weight", "unexpected keys"),
    ("layer2.shortcut.weight", "unexpected keys"),
    ("loss_calculator.weight", "unexpected keys"),  # only the exact training-only key is tolerated
])
def test_an_extra_key_is_refused_by_name(tiny: dict, tmp_path: Path, added: str, kind: str) -> None:
    state = {**tiny["state"], added: torch.zeros(3)}
    with pytest.raises(CheckpointLayoutError, match=kind) as info:
        load_wavlm_ecapa(_write(tmp_path / "x.pth", state), TINY)
    assert added in str(info.value) and "missing" not in str(info.value)


def test_a_wrong_shape_or_a_wrong_container_is_refused(tiny: dict, tmp_path: Path) -> None:
    state = {**tiny["state"], "feature_weight": torch.zeros(LAYERS + 2)}
    with pytest.raises(CheckpointLayoutError, match=r"shape mismatches feature_weight \(4,\) \(model \(3,\)\)"):
        load_wavlm_ecapa(_write(tmp_path / "s.pth", state), TINY)
    torch.save(tiny["state"], tmp_path / "bare.pth")  # a bare state dict, not UniSpeech's {"model": ...}
    with pytest.raises(CheckpointLayoutError, match="expected a dict with a 'model' state dict"):
        load_wavlm_ecapa(tmp_path / "bare.pth", TINY)


def test_pickled_objects_are_refused_by_weights_only_loading(tiny: dict, tmp_path: Path) -> None:
    # fairseq-style checkpoints pickle an argparse.Namespace; anything but tensors and plain containers needs
    # weights_only=False (arbitrary code on load) and is refused instead
    torch.save({"model": tiny["state"], "args": argparse.Namespace(lr=0.1)}, tmp_path / "p.pth")
    with pytest.raises(CheckpointLayoutError, match="weights_only=True"):
        load_wavlm_ecapa(tmp_path / "p.pth", TINY)


# ----------------------------------------------------------------------------------------------- 4. the metric
@pytest.fixture
def tiny_metric(
    tiny: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str | None], SpeakerSimilarityWavLM]:
    """The metric class pointed at the tiny checkpoint in a temporary model store."""
    def make(sha256: str | None = None) -> SpeakerSimilarityWavLM:
        install_tiny_wavlm(tiny["path"], tmp_path / "models", monkeypatch, sha256)
        return SpeakerSimilarityWavLM()

    return make


def test_metric_loads_the_card_strictly_and_scores_cosines(tiny_metric, loaded: WavLMEcapa) -> None:
    metric = tiny_metric()
    metric.load()
    assert metric.load_report.ignored == ("loss_calculator.projection.weight",)
    t = np.arange(RATE) / RATE
    voice_a = (0.4 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    noise_b = _waveform(9).numpy()
    same = metric.score(constructed_media(None, voice_a), constructed_media(None, voice_a), make_pair())
    other = metric.score(constructed_media(None, voice_a), constructed_media(None, noise_b), make_pair())
    assert same.value == pytest.approx(1.0, abs=1e-12)
    # measured: 0.9901. A tiny random network maps everything to similar vectors (random noise pairs: 0.998-0.999),
    # so the bound only proves that different audio is not scored as identical; the value is the plain cosine:
    assert -1.0 <= other.value < 0.995
    a, b = loaded.embed(torch.from_numpy(voice_a)).double(), loaded.embed(torch.from_numpy(noise_b)).double()
    assert other.value == pytest.approx(float(a @ b / (a.norm() * b.norm())), abs=1e-6)
    assert same.details == {"generated_duration_s": 1.0, "target_duration_s": 1.0}
    # the metric's embedding is the model's embedding of the 16 kHz mono waveform (stereo is averaged; 48 kHz
    # input is resampled to 16 kHz first)
    stereo = np.stack([voice_a, voice_a])
    features = metric.extract(constructed_media(None, stereo))
    assert_cache_round_trip(features)
    assert features["embedding"].shape == (TINY.head.emb_dim,)
    assert np.abs(features["embedding"] - loaded.embed(torch.from_numpy(voice_a)).numpy()).max() <= 1e-6
    upsampled = metric.extract(constructed_media(None, np.repeat(voice_a, 3), rate=48_000))
    assert upsampled["duration_s"] == pytest.approx(1.0)


def test_metric_silence_and_short_audio_are_no_speech(tiny_metric) -> None:
    metric = tiny_metric()
    metric.load()
    with pytest.raises(SampleFailure) as silent:
        metric.extract(constructed_media(None, np.full(RATE, 1e-4)))
    assert silent.value.code == "no_speech" and "silent" in silent.value.message
    with pytest.raises(SampleFailure) as short:
        metric.extract(constructed_media(None, _waveform(3, seconds=0.4).numpy()))
    assert short.value.code == "no_speech" and "0.400 s" in short.value.message
    with pytest.raises(SampleFailure, match="no_speech"):
        metric.extract(constructed_media(None, np.zeros(RATE)))
    assert isinstance(metric.extract(constructed_media(None, _waveform(4).numpy())), dict)


def test_metric_with_a_wrong_sha256_never_loads(tiny_metric) -> None:
    metric = tiny_metric("e" * 64)
    with pytest.raises(WeightsError, match="sha256 .* expected e{64}.*bench models pull wavlm-ecapa-unispeech"):
        metric.load()
    assert not metric._loaded and not hasattr(metric, "_model")


def test_metric_card_is_the_pinned_unispeech_file() -> None:
    (card,) = SpeakerSimilarityWavLM.weights
    assert card.name == "wavlm-ecapa-unispeech/wavlm_large_finetune.pth"
    assert card.hub().repo_id == "bezzam/wavlm_large_finetune_seed_tts_eval"
    assert card.hub().revision == "f127f699a44abb1c6e05f03522bd1b8c48be3184"
    assert card.sha256 == "51f07e3b94d9e0262a6a675ef5a087be3dd09e8c62e9d886827f44f82fe7f94b"
    assert card.size_bytes == 1_301_926_579
    assert SpeakerSimilarityWavLM.architecture is WAVLM_ECAPA_LARGE
    assert SpeakerSimilarityWavLM.name == "speaker_similarity.wavlm_ecapa"
    assert (SpeakerSimilarityWavLM.family, SpeakerSimilarityWavLM.direction) == ("speaker_similarity", "higher")


# ----------------------------------------------------------------------------------------------- 5. layer weights
def test_layer_weighting_is_a_softmax_over_all_hidden_states(loaded: WavLMEcapa) -> None:
    head = EcapaTdnnHead(TINY.head).eval()
    with torch.no_grad():
        states = loaded.hidden_states(_waveform(5)[None])
        assert len(states) == TINY.head.num_hidden_states == LAYERS + 1  # embeddings output + one per layer
        for selected in range(len(states)):
            head.feature_weight.copy_(torch.full((len(states),), -20.0))
            head.feature_weight[selected] = 20.0  # softmax weight 1 - 2e-17: this layer alone
            expected = F.instance_norm(states[selected].transpose(1, 2) + 1e-6)
            assert float((head.weighted_features(states) - expected).abs().max()) <= 1e-5
            others = [s for i, s in enumerate(states) if i != selected]
            assert all(float((head.weighted_features(states) - F.instance_norm(o.transpose(1, 2))).abs().max()) > 1e-2
                       for o in others)
        head.feature_weight.zero_()  # UniSpeech's initial value: the plain mean of the hidden states
        assert torch.allclose(head.layer_weights(), torch.full((len(states),), 1 / len(states)))
        mean = F.instance_norm(torch.stack(states).mean(dim=0).transpose(1, 2) + 1e-6)
        assert float((head.weighted_features(states) - mean).abs().max()) <= 1e-5


# ----------------------------------------------------------------------------------------------- the real layout
def test_real_architecture_has_the_published_checkpoint_layout() -> None:
    """WavLM-Large + ECAPA_TDNN_SMALL hold exactly the 710 tensors public audits of wavlm_large_finetune.pth report
    (711 with the training-only classifier): 488 backbone tensors and 222 head tensors, with the known shapes."""
    with torch.device("meta"):
        model = WavLMEcapa(WAVLM_ECAPA_LARGE)
    keys = model.state_dict()
    names = {module_key_to_checkpoint_key(k): tuple(v.shape) for k, v in keys.items()}
    assert len(names) == 710 and not any(n.startswith("<") for n in names)
    assert sum(n.startswith(BACKBONE_PREFIX) for n in names) == 488
    assert all(checkpoint_key_to_module_key(n, set(keys)) in keys for n in names)  # the mapping round-trips
    assert names["feature_weight"] == (25,)
    p = BACKBONE_PREFIX
    assert names[p + "mask_emb"] == (1024,)
    assert names[p + "feature_extractor.conv_layers.0.0.weight"] == (512, 1, 10)
    assert names[p + "feature_extractor.conv_layers.6.2.1.bias"] == (512,)
    assert names[p + "post_extract_proj.weight"] == (1024, 512)
    assert names[p + "encoder.pos_conv.0.weight_g"] == (1, 1, 128)
    assert names[p + "encoder.pos_conv.0.weight_v"] == (1024, 64, 128)
    assert names[p + "encoder.layers.0.self_attn.relative_attention_bias.weight"] == (320, 16)
    assert p + "encoder.layers.1.self_attn.relative_attention_bias.weight" not in names
    assert names[p + "encoder.layers.23.self_attn.grep_a"] == (1, 16, 1, 1)
    assert names[p + "encoder.layers.23.self_attn.grep_linear.weight"] == (8, 64)
    assert names[p + "encoder.layers.23.fc1.weight"] == (4096, 1024)
    assert names["layer1.conv.weight"] == (512, 1024, 5)
    assert names["layer4.Res2Conv1dReluBn.convs.6.weight"] == (64, 64, 3)
    assert names["conv.weight"] == (1536, 1536, 1)
    assert names["bn.num_batches_tracked"] == ()
    assert names["linear.weight"] == (256, 3072)
    assert TRAINING_ONLY_KEYS == {"loss_calculator.projection.weight"}
    assert s3prl_to_transformers("encoder.layers.5.self_attn.grep_a") == "encoder.layers.5.attention.gru_rel_pos_const"


def test_large_config_pins_the_wavlm_large_settings_that_no_tensor_shape_reveals() -> None:
    """Shape-neutral settings that the strict loader cannot check (values: microsoft/wavlm-large config.json and the
    cfg of s3prl's wavlm_large.pt): a wrong value here would silently change every score."""
    cfg = WAVLM_LARGE_CONFIG
    assert (cfg["num_buckets"], cfg["max_bucket_distance"]) == (320, 800)
    assert (cfg["feat_extract_norm"], cfg["do_stable_layer_norm"], cfg["conv_bias"]) == ("layer", True, False)
    assert (cfg["conv_kernel"], cfg["conv_stride"]) == ([10, 3, 3, 3, 3, 2, 2], [5, 2, 2, 2, 2, 2, 2])
    assert (cfg["hidden_act"], cfg["feat_extract_activation"], cfg["layer_norm_eps"]) == ("gelu", "gelu", 1e-5)
    assert WAVLM_ECAPA_LARGE.normalize_waveform is True  # WavLM-Large cfg.normalize
    head = WAVLM_ECAPA_LARGE.head
    assert (head.res2_scale, head.se_bottleneck_dim, head.attention_channels, head.emb_dim) == (8, 128, 128, 256)
