"""The paper profile's speaker, face and lip-sync variants against the ID-LoRA authors' code paths.

- speaker: the authors' model is the pre-trained hub WavLM + the UniSpeech head (their ``wavlm_ecapa.py:173-223``),
  no waveform layer norm (:228), torchaudio's default sinc resampler (``evaluation_metrics.py:284-286``);
- face: frames ``np.linspace(0, T-1, 5, dtype=int)`` (``evaluation_metrics.py:485``);
- lip sync: joonson's ``run_pipeline.py`` re-encodes to AVI, whose MP3 audio arrives 1105 samples late.
Tiny random checkpoints in the real formats; the reference computations are written out here.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import assert_cache_round_trip, constructed_media  # noqa: E402
from idlora_bench.checkpoints.weights import WeightsFile  # noqa: E402
from idlora_bench.core.errors import WeightsError  # noqa: E402
from idlora_bench.metrics import PROFILES  # noqa: E402
from idlora_bench.metrics.face_similarity_arcface import FaceSimilarityArcFace  # noqa: E402
from idlora_bench.metrics.face_similarity_arcface_authors import FaceSimilarityArcFaceAuthors  # noqa: E402
from idlora_bench.metrics.lse_c_syncnet_run_pipeline import LipSyncConfidenceSyncNetRunPipeline  # noqa: E402
from idlora_bench.metrics.lse_d_syncnet import LipSyncSyncNet  # noqa: E402
from idlora_bench.metrics.lse_d_syncnet_run_pipeline import LipSyncSyncNetRunPipeline  # noqa: E402
from idlora_bench.metrics.speaker_similarity_wavlm_ecapa import SpeakerSimilarityWavLM  # noqa: E402
from idlora_bench.metrics.speaker_similarity_wavlm_ecapa_authors import (  # noqa: E402
    CHECKPOINT,
    WAVLM_LARGE_CONFIG,
    WAVLM_LARGE_WEIGHTS,
    SpeakerSimilarityWavLMAuthors,
)
from idlora_bench.models.avi_mp3 import mp3_in_avi_round_trip  # noqa: E402
from idlora_bench.models.sinc_resample import resample, sinc_hann_kernel  # noqa: E402
from idlora_bench.models.wavlm_ecapa import (  # noqa: E402
    WAVLM_LARGE_CONFIG as LARGE,
)
from idlora_bench.models.wavlm_ecapa import (  # noqa: E402
    CheckpointLayoutError,
    EcapaHeadConfig,
    EcapaTdnnHead,
    WavLMEcapaConfig,
)

LAYERS = 2
TINY = WavLMEcapaConfig(
    wavlm={**LARGE, "hidden_size": 32, "num_hidden_layers": LAYERS, "num_attention_heads": 2, "intermediate_size": 64,
           "conv_dim": [16] * 4, "conv_kernel": [10, 3, 3, 2], "conv_stride": [5, 2, 2, 2],
           "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2, "num_buckets": 32,
           "max_bucket_distance": 64},
    head=EcapaHeadConfig(feat_dim=32, num_hidden_states=LAYERS + 1, channels=16, pooled_channels=24, emb_dim=8,
                         res2_scale=8, se_bottleneck_dim=4, attention_channels=4),
)
FINE_TUNED_KEYS = 5  # stand-ins for the 488 feature_extract.model.* tensors the authors never use


def _card(real: WeightsFile, path: Path) -> WeightsFile:
    return WeightsFile(real.model, real.file, real.source, hashlib.sha256(path.read_bytes()).hexdigest(), real.licence)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny hub-format WavLM folder (config.json + pytorch_model.bin) and a tiny UniSpeech file."""
    from transformers import WavLMConfig, WavLMModel

    store = tmp_path_factory.mktemp("models")
    torch.manual_seed(7)
    hub = WavLMModel(WavLMConfig(**TINY.wavlm)).eval()
    hub_dir = store / WAVLM_LARGE_WEIGHTS.model
    hub.save_pretrained(hub_dir)  # transformers 5 writes safetensors; the pinned hub revision holds a .bin
    from safetensors.torch import load_file

    torch.save(load_file(hub_dir / "model.safetensors"), hub_dir / WAVLM_LARGE_WEIGHTS.file)
    (hub_dir / "model.safetensors").unlink()
    head = EcapaTdnnHead(TINY.head)
    generator = torch.Generator().manual_seed(3)
    head_state = {k: (torch.randn(v.shape, generator=generator) * 0.2 if v.is_floating_point() else v)
                  for k, v in head.state_dict().items()}
    head_state["feature_weight"] = torch.tensor([0.4, -0.2, 0.7])
    state = dict(head_state)
    state.update({f"feature_extract.model.encoder.fake{i}": torch.zeros(3) for i in range(FINE_TUNED_KEYS)})
    state["loss_calculator.projection.weight"] = torch.randn(5, TINY.head.emb_dim, generator=generator)
    (store / CHECKPOINT.model).mkdir()
    torch.save({"model": state, "best_valid_eer": 0.01}, store / CHECKPOINT.model / CHECKPOINT.file)
    return {"store": store, "hub": hub, "head_state": head_state, "state": state}


@pytest.fixture
def authors_metric(tiny_files: dict, monkeypatch: pytest.MonkeyPatch) -> SpeakerSimilarityWavLMAuthors:
    store = tiny_files["store"]
    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(store))
    cards = tuple(_card(card, store / card.model / card.file) for card in (WAVLM_LARGE_CONFIG, WAVLM_LARGE_WEIGHTS,
                                                                             CHECKPOINT))
    monkeypatch.setattr(SpeakerSimilarityWavLMAuthors, "weights", cards)
    monkeypatch.setattr(SpeakerSimilarityWavLMAuthors, "architecture", TINY)
    metric = SpeakerSimilarityWavLMAuthors()
    metric.load()
    return metric


def _voice(seed: int, seconds: float = 1.5, rate: int = 24_000, scale: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    return (scale * (np.sin(2 * np.pi * (120 + 40 * seed) * t) + 0.3 * rng.standard_normal(t.size))).astype(np.float32)


# ----------------------------------------------------------------------------------------------- speaker
def test_the_authors_model_is_the_hub_backbone_plus_the_head_and_the_report_accounts_for_every_key(
        authors_metric: SpeakerSimilarityWavLMAuthors, tiny_files: dict) -> None:
    report = authors_metric.load_report
    assert report.head_loaded == len(tiny_files["head_state"])  # every head tensor and feature_weight
    assert report.unused_backbone == FINE_TUNED_KEYS  # unused, as in the authors' code
    assert report.ignored == ("loss_calculator.projection.weight",)
    model = authors_metric._model
    assert model.config.normalize_waveform is False
    for key, value in tiny_files["hub"].state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    for key, value in tiny_files["head_state"].items():
        assert torch.equal(model.head.state_dict()[key], value), key


def test_the_embedding_equals_the_authors_forward_written_out(authors_metric: SpeakerSimilarityWavLMAuthors,
                                                               tiny_files: dict) -> None:
    wav = _voice(1)
    features = authors_metric.extract(constructed_media(None, np.stack([wav, 0.5 * wav]), 24_000))
    assert_cache_round_trip(features)
    # authors: mean of channels, torchaudio Resample(24000, 16000), raw waveform into WavLMModel, the 24 layer
    # inputs + the final normed output weighted by softmax(feature_weight), then the ECAPA head
    mono = torch.from_numpy(0.75 * wav)
    wav16 = resample(mono, 24_000, 16_000)[None]
    out = tiny_files["hub"](wav16, output_hidden_states=True)
    states = tuple(out.hidden_states)[:LAYERS] + (out.last_hidden_state,)
    head = EcapaTdnnHead(TINY.head)
    head.load_state_dict(tiny_files["head_state"])
    expected = head.eval()(states)[0]
    np.testing.assert_allclose(features["embedding"], expected.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_without_waveform_layer_norm_the_authors_embedding_depends_on_loudness(
        authors_metric: SpeakerSimilarityWavLMAuthors) -> None:
    quiet, loud = (authors_metric.extract(constructed_media(None, scale * _voice(2), 24_000))["embedding"]
                   for scale in (0.2, 1.0))
    assert not np.allclose(quiet, loud, atol=1e-4)  # the standard metric layer-normalises: invariant to scale
    assert SpeakerSimilarityWavLM.params["waveform_layer_norm"] is True
    assert SpeakerSimilarityWavLMAuthors.params["waveform_layer_norm"] is False


def test_a_missing_head_key_or_another_backbone_config_is_refused(tiny_files: dict, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from idlora_bench.models.wavlm_ecapa_authors import load_wavlm_ecapa_authors

    hub_dir = tiny_files["store"] / WAVLM_LARGE_WEIGHTS.model
    state = dict(tiny_files["state"])
    del state["linear.weight"]
    torch.save({"model": state}, tmp_path / "cut.pth")
    with pytest.raises(CheckpointLayoutError, match="missing head keys linear.weight"):
        load_wavlm_ecapa_authors(hub_dir, tmp_path / "cut.pth", TINY)
    other = WavLMEcapaConfig(wavlm={**TINY.wavlm, "num_buckets": 33}, head=TINY.head)
    with pytest.raises(CheckpointLayoutError, match=r"num_buckets 32 \(expected 33\)"):
        load_wavlm_ecapa_authors(hub_dir, tiny_files["store"] / CHECKPOINT.model / CHECKPOINT.file, other)
    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(tmp_path / "empty"))
    with pytest.raises(WeightsError, match="bench models pull"):
        SpeakerSimilarityWavLMAuthors().load()  # never a random head


def test_the_backbone_card_is_pinned_by_revision_and_sha256() -> None:
    assert WAVLM_LARGE_WEIGHTS.source == ("hf:microsoft/wavlm-large@c1423ed94bb01d80a3f5ce5bc39f6026a0f4828c:"
                                          "pytorch_model.bin")
    assert WAVLM_LARGE_WEIGHTS.sha256 == "fdee460e529396ddb2f8c8e8ce0ad74cfb747b726bc6f612e666c7c1e1963c9d"
    assert WAVLM_LARGE_CONFIG.source.startswith("hf:microsoft/wavlm-large@c1423ed94bb01d80a3f5ce5bc39f6026a0f4828c:")


def test_sinc_resampler_kernel_and_length_follow_the_windowed_sinc_definition() -> None:
    # 3 -> 2 (reduced ratio): written out from the definition, in numpy
    kernel, width = sinc_hann_kernel(3, 2)
    base = 2 * 0.99
    assert width == math.ceil(6 * 3 / base)
    expected = np.zeros((2, 1, 2 * width + 3))
    for phase in range(2):
        for tap in range(2 * width + 3):
            t = np.clip(((tap - width) / 3 - phase / 2) * base, -6, 6)
            window = np.cos(t * np.pi / 12) ** 2
            sinc = 1.0 if t == 0 else np.sin(np.pi * t) / (np.pi * t)
            expected[phase, 0, tap] = sinc * window * base / 3
    np.testing.assert_allclose(kernel.numpy(), expected, atol=1e-6)
    x = torch.randn(2, 48_001)
    assert resample(x, 48_000, 16_000).shape == (2, math.ceil(48_001 / 3))


@pytest.mark.parametrize("rate", [24_000, 44_100, 48_000])
def test_sinc_resampler_keeps_the_passband_and_removes_aliases(rate: int) -> None:
    t = np.arange(rate) / rate
    for freq, gain in ((1000.0, 1.0), (4000.0, 1.0), (11_000.0, 0.0)):  # 11 kHz would alias to 5 kHz at 16 kHz
        out = resample(torch.from_numpy(np.sin(2 * np.pi * freq * t).astype(np.float32)), rate, 16_000).numpy()
        rms = float(np.sqrt(np.mean(out[2000:-2000] ** 2)) * np.sqrt(2))
        assert rms == pytest.approx(gain, abs=0.02), (freq, rms)


# ----------------------------------------------------------------------------------------------- face
@pytest.mark.parametrize(("frames", "authors", "standard"), [
    (121, [0, 30, 60, 90, 120], [0, 30, 60, 90, 120]),
    (120, [0, 29, 59, 89, 119], [0, 30, 60, 89, 119]),
    (126, [0, 31, 62, 93, 125], [0, 31, 62, 94, 125]),
    (150, [0, 37, 74, 111, 149], [0, 37, 74, 112, 149]),
])
def test_face_frames_are_rounded_down_like_the_authors(frames: int, authors: list[int], standard: list[int]) -> None:
    assert FaceSimilarityArcFaceAuthors().frame_indices(frames).tolist() == authors
    assert np.linspace(0, frames - 1, 5, dtype=int).tolist() == authors  # the authors' expression
    assert FaceSimilarityArcFace().frame_indices(frames).tolist() == standard


# ----------------------------------------------------------------------------------------------- lip sync
def _burst_track(rate: int, at: int) -> np.ndarray:
    t = np.arange(2000) / rate
    burst = 0.5 * np.sin(2 * np.pi * (300 + 2000 * t / t[-1]) * t) * np.hanning(2000)
    audio = np.zeros((2, rate), np.float32)
    audio[:, at:at + 2000] = burst
    return audio


def _lag(signal: np.ndarray, reference: np.ndarray) -> int:
    correlation = np.correlate(signal, reference, "full")
    return int(np.argmax(correlation)) - (len(reference) - 1)


@pytest.mark.parametrize(("rate", "delay_ms"), [(48_000, 23.02), (24_000, 46.04)])
def test_the_avi_mp3_round_trip_delays_the_audio_by_lames_priming(rate: int, delay_ms: float) -> None:
    audio = _burst_track(rate, 5000)
    coded = mp3_in_avi_round_trip(audio, rate)
    assert _lag(coded[0], audio[0]) == 1105 and 1000 * 1105 / rate == pytest.approx(delay_ms, abs=0.01)


def test_the_run_pipeline_variant_hears_the_audio_late_and_keeps_its_own_cache_entry() -> None:
    media = constructed_media(np.zeros((4, 16, 16, 3), np.uint8), _burst_track(48_000, 8000), 48_000)
    late = LipSyncSyncNetRunPipeline().audio_16k(media)
    on_time = LipSyncSyncNet().audio_16k(media)
    assert _lag(late, on_time) == round(1105 / 3)  # 23 ms at 16 kHz
    d, c = LipSyncSyncNetRunPipeline(), LipSyncConfidenceSyncNetRunPipeline()
    assert d.cache_key("a" * 64) == c.cache_key("a" * 64) != LipSyncSyncNet().cache_key("a" * 64)


def test_the_paper_profile_holds_the_authors_variants() -> None:
    paper = PROFILES.get("paper")
    for name in ("speaker_similarity.wavlm_ecapa_authors", "face_similarity.arcface_authors",
                 "lse_d.syncnet_run_pipeline", "lse_c.syncnet_run_pipeline", "lip_motion.insightface"):
        assert name in paper
    assert not set(paper) & {"speaker_similarity.wavlm_ecapa", "face_similarity.arcface", "lse_d.syncnet"}
