"""Two-stage ID-LoRA inference (x2 latent upsampler + 3 distilled-LoRA Euler steps, audio frozen) on tiny random
LTX-2 components, CPU, one torch thread.

Stage 1 here: 64x64, 9 frames (2 latent frames), 3 steps, released guidance; stage 2: 128x128.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from idlora_bench.core.errors import WeightsError
from idlora_bench.data.media import decode
from idlora_bench.data.splits import load_split
from reference_impl.idlora import pipeline as pipeline_module
from reference_impl.idlora import positions as pos
from reference_impl.idlora import stage2 as stage2_module
from reference_impl.idlora.first_frame import fit_frame
from reference_impl.idlora.guidance import GuidanceConfig
from reference_impl.idlora.lora import add_idlora_adapter
from reference_impl.idlora.pipeline import IDLoRAPipeline
from reference_impl.idlora.stage2 import (
    STAGE2_SIGMAS,
    active_adapter_scales,
    distilled_adapter_active,
    load_latent_upsampler,
)
from reference_impl.idlora.tiny import (
    tiny_distilled_lora_state_dict,
    tiny_latent_upsampler,
)

PROMPT = "[VISUAL]: a face. [SPEECH]: hello there [SOUNDS]: calm voice, quiet room"
TINY_GUIDANCE = GuidanceConfig(stg_blocks=(1,))
STEPS = 3

@pytest.fixture(scope="module", autouse=True)
def _one_thread():  # module scope: the module-scoped pipelines below must run with one thread too
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def pipe() -> IDLoRAPipeline:
    """tiny_random(0) + a random rank-4 distilled stand-in LoRA (inactive outside stage 2)."""
    pipeline = IDLoRAPipeline.tiny_random(0)
    pipeline.load_distilled_lora(tiny_distilled_lora_state_dict(pipeline.transformer, seed=0))
    return pipeline


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    t = np.arange(16_000) / 16_000
    reference = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return image, reference


def _run(pipe: IDLoRAPipeline, **kwargs):
    image, reference = _inputs()
    options = {"long_side": 64, "num_frames": 9, "num_inference_steps": STEPS, "guidance": TINY_GUIDANCE, "seed": 0}
    options.update(kwargs)
    return pipe(PROMPT, image, reference, 16_000, **options)


OUTPUT_FIELDS = ("frames", "audio", "video_latents", "audio_latents")


def _array(value) -> np.ndarray:
    return value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


@pytest.fixture(scope="module")
def one_stage(pipe: IDLoRAPipeline):
    return _run(pipe)


@pytest.fixture(scope="module")
def two_stage(pipe: IDLoRAPipeline):
    return _run(pipe, two_stage=True)


def test_two_stage_off_equals_a_pipeline_that_never_had_a_distilled_adapter(one_stage) -> None:
    # `pipe` carries the distilled adapter, inactive outside stage 2: its one-stage output must equal, bit for bit,
    # that of a fresh pipeline with no distilled adapter at all. Both run here, in this process and with the same
    # thread count, so the comparison holds on any CPU (no pinned hashes of float results).
    assert "two_stage" not in one_stage.info
    fresh = _run(IDLoRAPipeline.tiny_random(0), two_stage=False)
    for key in OUTPUT_FIELDS:
        np.testing.assert_array_equal(_array(getattr(one_stage, key)), _array(getattr(fresh, key)), err_msg=key)


def test_two_stage_doubles_height_and_width(one_stage, two_stage) -> None:
    assert one_stage.frames.shape == (9, 64, 64, 3)
    assert two_stage.frames.shape == (9, 128, 128, 3)  # 2x height and width, same frame count
    assert tuple(two_stage.video_latents.shape) == (1, 8, 2, 4, 4)  # latent grid 2x2 -> 4x4 (32 px per latent)
    assert two_stage.info["height"] == 128 and two_stage.info["width"] == 128
    assert two_stage.info["two_stage"]["stage1_height"] == 64 and two_stage.info["video_tokens"] == 32
    assert two_stage.info["two_stage"]["forward_calls"] == 3  # 3 steps x one positive pass (no guidance)
    assert two_stage.info["two_stage"]["passes"] == ["positive"]


def test_two_stage_audio_is_frozen_identical_to_single_stage(one_stage, two_stage) -> None:
    assert torch.equal(two_stage.audio_latents, one_stage.audio_latents)
    assert two_stage.audio.shape == one_stage.audio.shape and np.array_equal(two_stage.audio, one_stage.audio)


def test_stage2_starts_at_the_renoise_level_from_the_upsampled_latents(pipe: IDLoRAPipeline, one_stage,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[float], object, object]] = []
    real_sample = pipeline_module.sample

    def spy(denoise, video, audio, sigmas, callback=None):
        calls.append(([float(s) for s in sigmas], video, audio))
        return real_sample(denoise, video, audio, sigmas, callback)

    monkeypatch.setattr(pipeline_module, "sample", spy)  # stage 1
    monkeypatch.setattr(stage2_module, "sample", spy)  # stage 2
    out = _run(pipe, two_stage=True)
    assert len(calls) == 2
    assert len(calls[0][0]) == STEPS + 1 and calls[0][0][0] == 1.0  # stage 1 unchanged
    assert calls[1][0] == [0.909375, 0.725, 0.421875, 0.0] == list(STAGE2_SIGMAS)
    assert out.info["two_stage"]["renoise_sigma"] == 0.909375

    # Re-noise: x = (1 - 0.909375) * up + 0.909375 * eps, eps the next draw of the seeded generator.
    generator = torch.Generator("cpu").manual_seed(0)
    torch.randn((1, 8, 2, 2, 2), generator=generator)  # stage-1 video noise
    torch.randn(tuple(one_stage.audio_latents.shape), generator=generator)  # stage-1 target audio noise
    up = pipe.upsample_video_latents(one_stage.video_latents)
    eps = torch.randn(tuple(up.shape), generator=generator)
    expected = pipe._pack_latents((1 - 0.909375) * up + 0.909375 * eps, 1, 1)
    video_state = calls[1][1]
    n_first = 4 * 4  # first latent frame: clean, the image re-encoded at 128x128
    assert torch.allclose(video_state.latents[:, n_first:], expected[:, n_first:], atol=1e-6)
    first = pipe._pack_latents(pipe.encode_first_frame(_inputs()[0], 128, 128), 1, 1)
    assert torch.allclose(video_state.latents[:, :n_first], first, atol=1e-6)
    # Audio in stage 2: every token clean (mask 0 -> timestep 0) and equal to the stage-1 result.
    audio_state = calls[1][2]
    assert float(audio_state.denoise_mask.abs().sum()) == 0.0
    assert torch.equal(audio_state.latents[:, -one_stage.audio_latents.shape[1]:], one_stage.audio_latents)


def test_distilled_lora_is_active_only_in_stage2_at_strength_08(pipe: IDLoRAPipeline, two_stage) -> None:
    seen: list[list[float]] = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda module, args: seen.append(distilled_adapter_active((pipe.transformer,))))
    try:
        out = _run(pipe, two_stage=True)
    finally:
        hook.remove()
    stage1_forwards = out.info["forward_calls"]
    assert len(seen) == stage1_forwards + 3
    n_layers = len(seen[0])
    assert n_layers == 2 * 28  # 2 blocks x (24 attention projections + 4 FFN linears)
    assert all(scales == [0.0] * n_layers for scales in seen[:stage1_forwards])
    assert all(np.allclose(scales, 0.8) for scales in seen[stage1_forwards:])
    assert distilled_adapter_active((pipe.transformer,)) == [0.0] * n_layers  # off again afterwards
    assert torch.equal(out.video_latents, two_stage.video_latents)  # deterministic

    # The adapter matters in stage 2: strength 0 (base weights) gives a different video, same audio.
    base = _run(pipe, two_stage=True, distilled_lora_strength=0.0)
    assert (base.video_latents - two_stage.video_latents).abs().max() > 1e-3
    assert np.array_equal(base.audio, two_stage.audio)


def _adapted_pipeline() -> IDLoRAPipeline:
    pipeline = IDLoRAPipeline.tiny_random(0)
    add_idlora_adapter(pipeline.transformer, rank=2, alpha=2.0)  # the ID-LoRA "default" adapter first
    pipeline.load_distilled_lora(tiny_distilled_lora_state_dict(pipeline.transformer, seed=1))
    return pipeline


def test_stage2_runs_the_base_model_with_the_distilled_lora_only_and_no_reference_tokens(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The authors' stage 2 (scripts/inference_two_stage.py:198-216, 273-288, 463-469, 539-544): base + distilled
    # LoRA (no ID-LoRA), audio = the stage-1 target tokens only, at standard positions, frozen.
    pipeline = _adapted_pipeline()
    layer = pipeline.transformer.transformer_blocks[0].audio_attn1.to_q
    video_layer = pipeline.transformer.transformer_blocks[0].attn1.to_q
    assert layer.active_adapters == ["default"] and video_layer.active_adapters == []
    states: list[tuple[list[str], list[str], list[float]]] = []
    hook = pipeline.transformer.register_forward_pre_hook(
        lambda module, args: states.append((list(layer.active_adapters), list(video_layer.active_adapters),
                                            active_adapter_scales((pipeline.transformer,), "default"))))
    sequences: list[tuple[int, torch.Tensor]] = []
    real_forward = type(pipeline.transformer).forward

    def spy(module, *args, **kwargs):  # type: ignore[no-untyped-def]
        sequences.append((int(kwargs["audio_hidden_states"].shape[1]), kwargs["audio_coords"].detach().clone()))
        return real_forward(module, *args, **kwargs)

    monkeypatch.setattr(type(pipeline.transformer), "forward", spy)
    try:
        out = _run(pipeline, two_stage=True, num_inference_steps=1)
    finally:
        hook.remove()
    n_ref, n_target = out.info["reference_tokens"], out.info["target_audio_tokens"]
    stage1, stage2 = states[: out.info["forward_calls"]], states[out.info["forward_calls"]:]
    assert stage1[0][:2] == (["default"], []) and all(scale > 0 for scale in stage1[0][2])
    assert len(stage2) == 3 and all(s[:2] == (["distilled"], ["distilled"]) for s in stage2)
    assert all(scale == 0.0 for s in stage2 for scale in s[2])  # the ID-LoRA's effective scale is 0 in stage 2
    for length, coords in sequences[-3:]:
        assert length == n_target and n_ref > 0  # no reference token in the stage-2 sequence
        assert torch.equal(coords[0, 0], pos.audio_token_intervals(n_target))  # standard positions
    assert layer.active_adapters == ["default"]  # restored
    assert out.info["two_stage"]["identity_lora"] == "off" and out.info["two_stage"]["audio_tokens"] == n_target
    with pytest.raises(ValueError, match="already loaded"):
        pipeline.load_distilled_lora(tiny_distilled_lora_state_dict(pipeline.transformer, seed=1))


def test_stage2_keep_identity_is_the_explicit_ablation() -> None:
    pipeline = _adapted_pipeline()
    layer = pipeline.transformer.transformer_blocks[0].audio_attn1.to_q
    states: list[list[str]] = []
    hook = pipeline.transformer.register_forward_pre_hook(lambda module, args: states.append(list(layer.active_adapters)))
    try:
        kept = _run(pipeline, two_stage=True, num_inference_steps=1, stage2_keep_identity=True)
        off = _run(pipeline, two_stage=True, num_inference_steps=1)
    finally:
        hook.remove()
    assert states[kept.info["forward_calls"]] == ["default", "distilled"]
    assert kept.info["two_stage"]["audio_tokens"] == kept.info["reference_tokens"] + kept.info["target_audio_tokens"]
    assert (kept.video_latents - off.video_latents).abs().max() > 1e-4  # the choice matters
    assert np.array_equal(kept.audio, off.audio)  # the audio is stage 1's either way


def test_two_stage_fits_the_first_frame_by_centre_crop_in_both_stages() -> None:
    wide = np.zeros((64, 128, 3), np.uint8)
    wide[:, 32:96] = 200  # the centre 64 columns bright, the sides dark
    pixels = torch.from_numpy(wide).permute(2, 0, 1)[None].float() / 255
    cropped = fit_frame(pixels, 64, 64, "crop")
    assert torch.allclose(cropped, torch.full_like(cropped, 200 / 255))  # only the centre survives
    squashed = fit_frame(pixels, 64, 64, "resize")
    assert float(squashed[..., :8].mean()) < 0.1  # a plain resize keeps the dark sides
    pipeline = IDLoRAPipeline.tiny_random(0)
    pipeline.load_distilled_lora(tiny_distilled_lora_state_dict(pipeline.transformer, seed=0))
    out = pipeline(PROMPT, wide, _inputs()[1], 16_000, height=64, width=64, num_frames=9, num_inference_steps=1,
                   guidance=TINY_GUIDANCE, two_stage=True, output="latent")
    assert out.info["first_frame_fit"] == "crop"
    cropped_2x = pipeline.encode_first_frame(wide, 128, 128, "crop")  # stage 2 re-fits the ORIGINAL image
    torch.testing.assert_close(out.video_latents[:, :, :1], cropped_2x, atol=1e-5, rtol=0)
    squashed_2x = pipeline.encode_first_frame(wide, 128, 128, "resize")
    assert (out.video_latents[:, :, :1] - squashed_2x).abs().max() > 1e-3


def test_two_stage_refuses_missing_components_with_the_fix() -> None:
    pipeline = IDLoRAPipeline.tiny_random(0)
    with pytest.raises(ValueError, match="load_distilled_lora"):
        _run(pipeline, two_stage=True)
    pipeline.set_latent_upsampler(None)
    with pytest.raises(ValueError, match="set_latent_upsampler"):
        _run(pipeline, two_stage=True, distilled_lora_strength=0.0)
    with pytest.raises(ValueError, match="descending"):
        _run(IDLoRAPipeline.tiny_random(0), two_stage=True, distilled_lora_strength=0.0,
             stage2_sigmas=(0.5, 0.7, 0.0))


def test_single_file_upsampler_loads_strictly_into_the_diffusers_class(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = tiny_latent_upsampler(seed=3)
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    path = tmp_path / "upsampler.safetensors"
    save_file(state, str(path))
    loaded = load_latent_upsampler(path)
    assert loaded.config.mid_channels == 32 and loaded.config.num_blocks_per_stage == 1
    assert loaded.config.in_channels == 8 and loaded.config.use_rational_resampler is True
    x = torch.randn((1, 8, 2, 3, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = loaded(x)
        assert y.shape == (1, 8, 2, 6, 10) and torch.equal(y, model(x))
    state["res_blocks.0.extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_latent_upsampler(tmp_path / "bad.safetensors")


def test_method_two_stage_option_config_and_weights(synth_split: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from reference_impl.idlora.methods import (
        LTX2_DISTILLED_LORA,
        LTX2_UPSAMPLER,
        IDLoRAMethod,
        LTXZeroShotMethod,
    )

    assert LTX2_UPSAMPLER.source == ("hf:Lightricks/LTX-2@47da56e2ad66ce4125a9922b4a8826bf407f9d0a:"
                                     "ltx-2-spatial-upscaler-x2-1.0.safetensors") and LTX2_UPSAMPLER.sha256 is None
    assert LTX2_DISTILLED_LORA.source.endswith("@47da56e2ad66ce4125a9922b4a8826bf407f9d0a:"
                                               "ltx-2-19b-distilled-lora-384.safetensors")
    assert {LTX2_UPSAMPLER, LTX2_DISTILLED_LORA} <= set(IDLoRAMethod.weights)
    one = IDLoRAMethod(model="tiny-random")
    two = IDLoRAMethod(model="tiny-random", two_stage="true")
    assert one.config()["two_stage"] is False and "stage2" not in one.config()
    assert two.config()["two_stage"] is True and two.config()["stage2"]["sigmas"] == list(STAGE2_SIGMAS)
    assert two.config()["stage2"]["distilled_lora_strength"] == 0.8
    assert one.config_sha256() != two.config_sha256()

    split = load_split("synth")
    pair = split.pairs[1]
    zeroshot = LTXZeroShotMethod(model="tiny-random", frames=9, steps=2, two_stage=True)
    zeroshot.generate(split.resolve(pair), tmp_path / "two.mp4", seed=0)
    out = decode(tmp_path / "two.mp4")
    assert out.frames is not None and out.frames.shape == (9, 128, 128, 3)

    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(tmp_path / "empty-store"))
    with pytest.raises(WeightsError, match="ltx-2-distilled-lora ltx-2-spatial-upscaler-x2"):
        LTXZeroShotMethod(model="ltx-2", two_stage=True).prepare(split)


def test_tiled_decode_tiles_in_space_and_time_and_restores_the_vae(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiles shrunk so the tiny VAE is cut into 2x2 spatial and 2 temporal tiles (the real setting only tiles
    outputs above 512 px / 64 frames). A random VAE blends seams visibly, so only the path is checked here; the
    values of diffusers' blending are diffusers' own."""
    from reference_impl.idlora import codecs

    monkeypatch.setitem(codecs.VAE_TILING, "tile_sample_min_height", 96)
    monkeypatch.setitem(codecs.VAE_TILING, "tile_sample_min_width", 96)
    monkeypatch.setitem(codecs.VAE_TILING, "tile_sample_min_num_frames", 24)
    monkeypatch.setitem(codecs.VAE_TILING, "tile_sample_stride_height", 64)
    monkeypatch.setitem(codecs.VAE_TILING, "tile_sample_stride_width", 64)
    monkeypatch.setitem(codecs.VAE_TILING, "tile_sample_stride_num_frames", 16)
    pipeline = IDLoRAPipeline.tiny_random(0)
    calls: list[tuple[str, tuple[int, ...]]] = []
    for name in ("tiled_decode", "_temporal_tiled_decode"):
        original = getattr(pipeline.vae, name)

        def spy(z, *args, _original=original, _name=name, **kwargs):
            calls.append((_name, tuple(z.shape)))
            return _original(z, *args, **kwargs)

        monkeypatch.setattr(pipeline.vae, name, spy)
    latents = torch.randn(1, 8, 5, 4, 4, generator=torch.Generator().manual_seed(0))
    whole = pipeline.decode_video(latents, tiled=False)
    assert calls == []
    tiled = pipeline.decode_video(latents, tiled=True)
    assert tiled.shape == whole.shape == (33, 128, 128, 3) and not np.array_equal(tiled, whole)
    assert calls[0] == ("_temporal_tiled_decode", (1, 8, 5, 4, 4))
    tiles = calls[1:]  # each temporal tile is decoded spatially tiled, and none holds every latent frame
    assert len(tiles) >= 2 and {name for name, _ in tiles} == {"tiled_decode"}
    assert all(shape[2] < 5 for _, shape in tiles)
    assert pipeline.vae.use_tiling is False and pipeline.vae.use_framewise_decoding is False
    assert np.array_equal(pipeline.decode_video(latents, tiled=False), whole)  # untiled again afterwards


def test_gpu_benchmark_script_end_to_end_mode_reports_each_configuration(tmp_path: Path) -> None:
    """The CPU smoke run of ``scripts/bench_idlora_gpu.py --end-to-end`` (the figures themselves need a GPU)."""
    import importlib.util
    import json

    script = Path(__file__).resolve().parent.parent / "scripts" / "bench_idlora_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_idlora_gpu", script)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    out = tmp_path / "e2e.json"
    assert module.main(["--tiny", "--end-to-end", "--samples", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["offload"], r["two_stage"], r["output"]) for r in rows] == [("none", False, "64x64x9"),
                                                                          ("none", True, "128x128x9")]
    for row in rows:
        assert 0 < row["encode_s"] < row["total_s"] and 0 < row["decode_s"] < row["total_s"]
        assert 0 < row["stage1_step_s"] < row["total_s"]
    assert rows[1]["stage2_step_s"] > 0
