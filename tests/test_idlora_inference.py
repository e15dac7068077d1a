"""ID-LoRA inference (reference_impl/idlora): positions, five-pass guidance, sampler, pipeline and methods.

Everything runs on CPU with tiny random LTX-2 components (``IDLoRAPipeline.tiny_random``); tests use one
torch thread (restored afterwards) so timings stay small and results deterministic.
"""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from idlora_bench.core.errors import ValidationError, WeightsError
from idlora_bench.data.media import decode
from idlora_bench.data.splits import load_split
from reference_impl.idlora import positions as pos
from reference_impl.idlora.audio_features import (
    reference_log_mel,
    slaney_mel_filterbank,
)
from reference_impl.idlora.first_frame import auto_resolution
from reference_impl.idlora.guidance import (
    GuidanceConfig,
    GuidancePass,
    Perturbation,
    combine_guidance,
    perturbed,
)
from reference_impl.idlora.pipeline import IDLoRAPipeline
from reference_impl.idlora.sampling import (
    SIGMAS_30_NOTES,
    DenoiserInputs,
    LatentState,
    TransformerDenoiser,
    euler_step,
    guided_x0,
    ltx2_sigmas,
)
from reference_impl.idlora.tiny import tiny_transformer

PROMPT = "[VISUAL]: a face. [SPEECH]: hello there [SOUNDS]: calm voice, quiet room"
TINY_GUIDANCE = GuidanceConfig(stg_blocks=(1,))  # released scales; the tiny transformer has 2 blocks


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def pipe() -> IDLoRAPipeline:
    return IDLoRAPipeline.tiny_random(0)


def _inputs(seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    t = np.arange(int(16_000 * seconds)) / 16_000
    reference = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return image, reference


def _run(pipe: IDLoRAPipeline, **kwargs):
    image, reference = _inputs()
    options = {"long_side": 64, "num_frames": 9, "num_inference_steps": 3, "guidance": TINY_GUIDANCE, "seed": 0}
    options.update(kwargs)
    return pipe(PROMPT, image, reference, 16_000, **options)


# ------------------------------------------------------------------------------------------------ positions


def test_audio_token_intervals_follow_the_causal_formula_and_diffusers() -> None:
    intervals = pos.audio_token_intervals(6, dtype=torch.float64)
    expected = torch.tensor([[max(0, 4 * i - 3) * 0.01, (4 * i + 1) * 0.01] for i in range(6)], dtype=torch.float64)
    torch.testing.assert_close(intervals, expected, rtol=0, atol=1e-12)
    assert intervals[:3].flatten().tolist() == pytest.approx([0.0, 0.01, 0.01, 0.05, 0.05, 0.09])
    rope = tiny_transformer(0).audio_rope
    torch.testing.assert_close(intervals.float(), rope.prepare_audio_coords(1, 6, "cpu")[0, 0], rtol=0, atol=1e-6)


def test_reference_positions_are_negative_end_40ms_before_zero_and_keep_spacing() -> None:
    n_ref, n_target = 126, 121  # a 5 s reference, 121 frames at 25 fps
    coords = pos.audio_coords(n_ref, n_target, positions_dtype="float32", dtype=torch.float64)  # the exact shift
    assert coords.shape == (1, 1, n_ref + n_target, 2)
    reference, target = coords[0, 0, :n_ref], coords[0, 0, n_ref:]
    end_bound = (4 * n_ref - 3) * 0.01  # D = 5.01 s
    assert pos.intervals_end_bound(n_ref) == pytest.approx(end_bound)
    assert bool((reference < 0).all())
    assert reference[-1, 1].item() == pytest.approx(-0.04, abs=1e-12)  # ends one latent step before 0
    assert reference[0, 0].item() == pytest.approx(-(end_bound + 0.04), abs=1e-12)  # -5.05 s
    standard = pos.audio_token_intervals(n_ref, dtype=torch.float64)
    torch.testing.assert_close(reference - standard, torch.full_like(standard, -(end_bound + 0.04)))
    torch.testing.assert_close(torch.diff(pos.rope_positions(reference[None, None]), dim=-1),
                               torch.diff(pos.rope_positions(standard[None, None]), dim=-1))
    # Target positions do not depend on the reference (or on the reference position mode).
    for mode in ("negative", "standard", "after"):
        with_ref = pos.audio_coords(n_ref, n_target, mode=mode, dtype=torch.float64)[0, 0, n_ref:]  # bf16 ref rows
        assert torch.equal(with_ref, target)
    assert torch.equal(target, pos.audio_coords(0, n_target, dtype=torch.float64)[0, 0])
    # Ablations: "standard" overlaps the target from 0; "after" starts 40 ms after the target's end.
    assert torch.equal(pos.reference_token_intervals(n_ref, mode="standard", positions_dtype="float32",
                                                     dtype=torch.float64), standard)
    after = pos.reference_token_intervals(n_ref, mode="after", num_target_tokens=n_target, positions_dtype="float32",
                                          dtype=torch.float64)
    assert after[0, 0].item() == pytest.approx(target[-1, 1].item() + 0.04)


def test_reference_positions_round_to_bfloat16_exactly_as_the_authors_code() -> None:
    # The authors' recipe (scripts/inference_two_stage.py:621-635, 677-695; audio_ref_only_ic.py:248-267):
    # ((bf16(grid_f32) - D_bf16) -> bf16) - 0.04 -> bf16, for a 5 s reference of 126 tokens. D = 5.01 -> 5.0.
    reference = pos.reference_token_intervals(126)  # positions_dtype="bfloat16" is the default
    expected = {0: (-5.03125, -5.03125), 1: (-5.03125, -4.96875), 2: (-4.96875, -4.9375), 3: (-4.9375, -4.90625),
                4: (-4.90625, -4.875), 121: (-0.2275390625, -0.1962890625), 122: (-0.1962890625, -0.1650390625),
                123: (-0.1650390625, -0.1025390625), 124: (-0.1025390625, -0.0712890625),
                125: (-0.0712890625, -0.0400390625)}
    for index, bounds in expected.items():
        assert tuple(reference[index].tolist()) == bounds, index
    assert reference.dtype == torch.float32 and bool((reference.to(torch.bfloat16).float() == reference).all())
    exact = pos.reference_token_intervals(126, positions_dtype="float32", dtype=torch.float64)
    midpoint_error = (pos.rope_positions(reference.double()[None, None]) - pos.rope_positions(exact[None, None])).abs()
    assert 0.029 < float(midpoint_error.max()) < 0.03  # up to 0.029 s: 73% of a 40 ms latent step
    coords = pos.audio_coords(126, 121)  # inference: float32 target rows (equal to diffusers'), bf16 reference rows
    assert torch.equal(coords[0, 0, 126:], pos.audio_token_intervals(121))
    training = pos.audio_coords(126, 121, training_target_dtype=True)  # training: target rows in bf16 too
    assert torch.equal(training[0, 0, 126:], pos.audio_token_intervals(121).to(torch.bfloat16).float())


def test_target_rope_is_unchanged_by_the_reference_and_the_reference_rope_differs() -> None:
    rope = tiny_transformer(0).audio_rope
    n_ref, n_target = 26, 9
    cos_ref, sin_ref = rope(pos.audio_coords(n_ref, n_target))
    cos_alone, sin_alone = rope(pos.audio_coords(0, n_target))
    assert torch.equal(cos_ref[:, n_ref:], cos_alone) and torch.equal(sin_ref[:, n_ref:], sin_alone)
    cos_std, _ = rope(pos.audio_coords(n_ref, n_target, mode="standard", positions_dtype="float32"))
    assert torch.equal(cos_std[:, :n_target], cos_std[:, n_ref:n_ref + n_target])  # standard: ref collides
    assert not torch.allclose(cos_ref[:, :n_target], cos_ref[:, n_ref:])  # negative: it does not


# ------------------------------------------------------------------------------------------------- guidance


def test_identity_scale_conventions_and_skipped_passes() -> None:
    assert GuidanceConfig.create(identity_scale_paper=4.0) == GuidanceConfig.create(identity_scale_code=3.0)
    default = GuidanceConfig.create()
    assert (default.video_scale, default.audio_scale, default.identity_scale_code, default.stg_scale,
            default.stg_blocks, default.modality_scale) == (3.0, 7.0, 3.0, 1.0, (29,), 3.0)
    assert default.identity_scale_paper == 4.0
    with pytest.raises(ValueError, match="one convention"):
        GuidanceConfig.create(identity_scale_paper=4.0, identity_scale_code=3.0)
    every = tuple(GuidancePass)
    assert default.passes(has_reference=True) == every
    assert GuidancePass.NO_REFERENCE not in default.passes(has_reference=False)
    assert GuidanceConfig(video_scale=1.0, audio_scale=1.0).passes(True) == tuple(
        p for p in every if p is not GuidancePass.NEGATIVE)
    assert GuidancePass.NO_REFERENCE not in GuidanceConfig(identity_scale_code=0.0).passes(True)
    assert GuidancePass.STG not in GuidanceConfig(stg_scale=0.0).passes(True)
    assert GuidancePass.ISOLATED not in GuidanceConfig(modality_scale=1.0).passes(True)
    assert GuidanceConfig(1.0, 1.0, 0.0, 0.0, (), 1.0).passes(True) == (GuidancePass.POSITIVE,)


class StubDenoiser:
    """Returns fixed random x0 tensors per pass and records what it was asked for."""

    def __init__(self, n_video: int = 6, n_ref: int = 4, n_target: int = 5, channels: int = 3) -> None:
        generator = torch.Generator().manual_seed(1)
        self.num_reference_tokens = n_ref
        self.table = {
            p: (torch.randn(1, n_video, channels, generator=generator),
                torch.randn(1, n_target if p is GuidancePass.NO_REFERENCE else n_ref + n_target, channels,
                            generator=generator))
            for p in GuidancePass
        }
        self.requested: list[tuple[GuidancePass, ...]] = []

    def predict(self, video, audio, sigma, passes):
        self.requested.append(tuple(passes))
        return {p: self.table[p] for p in passes}


def _state(n: int, channels: int = 3) -> LatentState:
    return LatentState(torch.zeros(1, n, channels), torch.zeros(1, n, channels), torch.ones(1, n))


def test_combined_prediction_equals_the_formulas() -> None:
    stub = StubDenoiser()
    w_v, w_a, s_id, s_stg, w_av = 2.5, 6.0, 1.5, 0.7, 2.2
    config = GuidanceConfig(w_v, w_a, s_id, s_stg, (0,), w_av)
    video, audio = guided_x0(stub, config, _state(6), _state(9), 0.5)
    assert stub.requested == [tuple(GuidancePass)]
    (vp, ap), (vn, an) = stub.table[GuidancePass.POSITIVE], stub.table[GuidancePass.NEGATIVE]
    (_, anr), (vs, as_) = stub.table[GuidancePass.NO_REFERENCE], stub.table[GuidancePass.STG]
    vi, ai = stub.table[GuidancePass.ISOLATED]
    expected_video = vp + (w_v - 1) * (vp - vn) + s_stg * (vp - vs) + (w_av - 1) * (vp - vi)
    expected_audio = ap + (w_a - 1) * (ap - an) + s_stg * (ap - as_) + (w_av - 1) * (ap - ai)
    expected_audio[:, 4:] += s_id * (ap[:, 4:] - anr)
    torch.testing.assert_close(video, expected_video, rtol=1e-6, atol=1e-5)  # float32 rounding only
    torch.testing.assert_close(audio, expected_audio, rtol=1e-6, atol=1e-5)
    # The paper convention gives the same result for s = s_id + 1.
    paper = GuidanceConfig.create(video_scale=w_v, audio_scale=w_a, identity_scale_paper=s_id + 1, stg_scale=s_stg,
                                  stg_blocks=(0,), modality_scale=w_av)
    torch.testing.assert_close(guided_x0(stub, paper, _state(6), _state(9), 0.5)[1], expected_audio)


def test_identity_guidance_changes_audio_target_tokens_only() -> None:
    stub = StubDenoiser()
    base = {"video_scale": 3.0, "audio_scale": 7.0, "stg_scale": 1.0, "stg_blocks": (0,), "modality_scale": 3.0}
    video_off, audio_off = combine_guidance(GuidanceConfig.create(identity_scale_code=0.0, **base),
                                            {p: stub.table[p] for p in GuidancePass}, 4)
    video_on, audio_on = combine_guidance(GuidanceConfig.create(identity_scale_code=3.0, **base),
                                          {p: stub.table[p] for p in GuidancePass}, 4)
    assert torch.equal(video_off, video_on)
    assert torch.equal(audio_off[:, :4], audio_on[:, :4])  # reference rows untouched
    ap, anr = stub.table[GuidancePass.POSITIVE][1], stub.table[GuidancePass.NO_REFERENCE][1]
    torch.testing.assert_close(audio_on[:, 4:] - audio_off[:, 4:], 3.0 * (ap[:, 4:] - anr), rtol=0, atol=1e-5)
    assert (audio_on[:, 4:] - audio_off[:, 4:]).abs().min() > 0


def _denoiser_inputs(transformer, generator, n_ref: int = 5, n_target: int = 7):
    video_coords = transformer.rope.prepare_video_coords(1, 2, 2, 3, "cpu", fps=25.0)
    text = torch.randn(1, 8, 12, generator=generator)
    negative = torch.randn(1, 8, 12, generator=generator)
    mask = torch.ones(1, 8)
    inputs = DenoiserInputs(text, text, mask, negative, negative, mask, video_coords,
                            pos.audio_coords(n_ref, n_target), n_ref, 2, 2, 3, 25.0)
    video_mask = torch.ones(1, 12)
    video_mask[:, :6] = 0.0
    video = LatentState(torch.randn(1, 12, 8, generator=generator), torch.randn(1, 12, 8, generator=generator),
                        video_mask)
    audio_mask = torch.cat([torch.zeros(1, n_ref), torch.ones(1, n_target)], dim=1)
    audio = LatentState(torch.randn(1, n_ref + n_target, 4, generator=generator),
                        torch.randn(1, n_ref + n_target, 4, generator=generator), audio_mask)
    return inputs, video, audio


def test_batched_passes_equal_sequential_passes_on_the_tiny_transformer() -> None:
    transformer = tiny_transformer(0)
    inputs, video, audio = _denoiser_inputs(transformer, torch.Generator().manual_seed(0))
    passes = tuple(GuidancePass)
    sequential = TransformerDenoiser(transformer, inputs, TINY_GUIDANCE, batched=False)
    batched = TransformerDenoiser(transformer, inputs, TINY_GUIDANCE, batched=True)
    one_by_one = sequential.predict(video, audio, 0.6, passes)
    together = batched.predict(video, audio, 0.6, passes)
    assert (sequential.forward_calls, batched.forward_calls) == (5, 2)
    for p in passes:
        torch.testing.assert_close(together[p][0], one_by_one[p][0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(together[p][1], one_by_one[p][1], rtol=1e-5, atol=1e-5)
    positive_video, positive_audio = one_by_one[GuidancePass.POSITIVE]
    for p in (GuidancePass.NEGATIVE, GuidancePass.STG, GuidancePass.ISOLATED):  # each pass really differs
        assert (one_by_one[p][0] - positive_video)[:, 6:].abs().max() > 1e-4
    assert one_by_one[GuidancePass.NO_REFERENCE][1].shape == (1, 7, 4)
    assert (one_by_one[GuidancePass.NO_REFERENCE][1] - positive_audio[:, 5:]).abs().max() > 1e-4
    # Clean tokens predict themselves (x0 = x at timestep 0).
    assert torch.equal(positive_audio[:, :5], audio.latents[:, :5]) and torch.equal(positive_video[:, :6],
                                                                                    video.latents[:, :6])
    guided_b = batched(video, audio, 0.6, 0)
    guided_s = sequential(video, audio, 0.6, 0)
    torch.testing.assert_close(guided_b[1], guided_s[1], rtol=1e-5, atol=1e-4)


def _raw_forward(transformer, inputs, video, audio, **kwargs):
    batch = 1
    t_video = 600.0 * video.denoise_mask
    t_audio = 600.0 * audio.denoise_mask
    return transformer(hidden_states=video.latents, audio_hidden_states=audio.latents,
                       encoder_hidden_states=inputs.prompt_embeds, audio_encoder_hidden_states=inputs.prompt_embeds,
                       timestep=t_video, audio_timestep=t_audio, sigma=torch.full((batch,), 600.0),
                       encoder_attention_mask=inputs.prompt_mask, audio_encoder_attention_mask=inputs.prompt_mask,
                       num_frames=2, height=2, width=3, fps=25.0, audio_num_frames=audio.latents.shape[1],
                       video_coords=inputs.video_coords, audio_coords=inputs.audio_coords, return_dict=False,
                       **kwargs)


def test_perturbation_hooks_drop_exactly_the_skipped_sublayers() -> None:
    transformer = tiny_transformer(0)
    inputs, video, audio = _denoiser_inputs(transformer, torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = _raw_forward(transformer, inputs, video, audio)
        # Isolation == diffusers' own isolate_modalities (which skips a2v and v2a in every block).
        with perturbed(transformer, [Perturbation(skip_cross_modal_attention=True)]):
            isolated = _raw_forward(transformer, inputs, video, audio)
        reference_isolated = _raw_forward(transformer, inputs, video, audio, isolate_modalities=True)
        # STG on block 1 == zeroing the output projections of that block's video and audio self-attention.
        with perturbed(transformer, [Perturbation(skip_self_attention_blocks=frozenset({1}))]):
            stg = _raw_forward(transformer, inputs, video, audio)
        zeroed = copy.deepcopy(transformer)
        for name in ("attn1", "audio_attn1"):
            projection = getattr(zeroed.transformer_blocks[1], name).to_out[0]
            projection.weight.zero_()
            projection.bias.zero_()
        reference_stg = _raw_forward(zeroed, inputs, video, audio)
        after = _raw_forward(transformer, inputs, video, audio)  # hooks are gone again
        with pytest.raises(ValueError, match="do not exist"), perturbed(
                transformer, [Perturbation(skip_self_attention_blocks=frozenset({29}))]):
            pass
    for got, want in ((isolated, reference_isolated), (stg, reference_stg), (after, plain)):
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(got[1], want[1], rtol=0, atol=1e-6)
    assert (isolated[1] - plain[1]).abs().max() > 1e-4 and (stg[0] - plain[0]).abs().max() > 1e-4


# -------------------------------------------------------------------------------------------------- sampler


def test_sigma_schedule_matches_the_released_30_steps() -> None:
    sigmas = ltx2_sigmas(30)
    assert len(sigmas) == 31 == len(SIGMAS_30_NOTES)
    assert max(abs(a - b) for a, b in zip(sigmas, SIGMAS_30_NOTES, strict=True)) < 5e-5
    assert sigmas[0] == 1.0 and sigmas[-1] == 0.0 and sigmas[-2] == pytest.approx(0.1, abs=1e-7)
    assert all(a > b for a, b in itertools.pairwise(sigmas))


def test_euler_step_moves_along_the_flow_matching_path() -> None:
    generator = torch.Generator().manual_seed(3)
    x0, noise = torch.randn(2, 5, 4, generator=generator), torch.randn(2, 5, 4, generator=generator)
    sigma, sigma_next = 0.8, 0.55
    x = (1 - sigma) * x0 + sigma * noise
    torch.testing.assert_close(euler_step(x, x0, sigma, sigma_next), (1 - sigma_next) * x0 + sigma_next * noise)
    torch.testing.assert_close(euler_step(x, x0, sigma, 0.0), x0)


def test_sampler_reclamps_conditioned_tokens_whatever_the_denoiser_predicts() -> None:
    from reference_impl.idlora.sampling import sample

    generator = torch.Generator().manual_seed(5)
    n_ref = 3
    audio_mask = torch.cat([torch.zeros(1, n_ref), torch.ones(1, 4)], dim=1)
    clean_audio = torch.randn(1, 7, 2, generator=generator)
    audio = LatentState(torch.randn(1, 7, 2, generator=generator), clean_audio, audio_mask)
    video_mask = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    clean_video = torch.randn(1, 4, 2, generator=generator)
    video = LatentState(torch.randn(1, 4, 2, generator=generator), clean_video, video_mask)
    seen = []

    def garbage(video_state: LatentState, audio_state: LatentState, sigma: float, step: int):
        return (torch.randn(1, 4, 2, generator=generator) * 10, torch.randn(1, 7, 2, generator=generator) * 10)

    _, final_audio = sample(garbage, video, audio, ltx2_sigmas(5),
                                      lambda step, v, a: seen.append((v.latents.clone(), a.latents.clone())))
    assert len(seen) == 5
    for video_latents, audio_latents in seen:
        assert torch.equal(audio_latents[:, :n_ref], clean_audio[:, :n_ref])
        assert torch.equal(video_latents[:, :2], clean_video[:, :2])
    assert not torch.equal(final_audio.latents[:, n_ref:], audio.latents[:, n_ref:])


def test_reference_tokens_stay_bit_identical_to_the_clean_latents(pipe: IDLoRAPipeline) -> None:
    seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def callback(step: int, video: LatentState, audio: LatentState) -> None:
        seen.append((audio.latents.clone(), audio.clean.clone(), video.latents.clone()))

    out = _run(pipe, num_inference_steps=4, callback=callback)
    n_ref = out.info["reference_tokens"]
    assert n_ref == 26 and len(seen) == 4  # 1 s at 16 kHz: 101 mel frames -> 26 latents
    first_frame_tokens = out.info["latent_grid"][1] * out.info["latent_grid"][2]
    for audio_latents, clean, video_latents in seen:
        assert torch.equal(audio_latents[:, :n_ref], out.reference_latents)
        assert torch.equal(clean[:, :n_ref], out.reference_latents)
        assert torch.equal(video_latents[:, :first_frame_tokens], seen[0][2][:, :first_frame_tokens])
    assert not torch.equal(seen[0][0][:, n_ref:], seen[-1][0][:, n_ref:])  # the target did move
    assert torch.equal(seen[-1][0][:, n_ref:], out.audio_latents)


# ------------------------------------------------------------------------------------------------- pipeline


def test_auto_resolution_keeps_aspect_with_long_side_512_in_multiples_of_32() -> None:
    assert auto_resolution(512, 512) == (512, 512)
    assert auto_resolution(720, 1280) == (288, 512)
    assert auto_resolution(1920, 1080) == (512, 288)
    assert auto_resolution(100, 150) == (352, 512)
    assert auto_resolution(64, 80, long_side=64) == (64, 64)


def test_reference_log_mel_matches_the_audio_vae_front_end() -> None:
    sr = 16_000
    t = np.arange(sr) / sr
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    mel = reference_log_mel(tone, sr)
    assert mel.shape == (1, 2, 101, 64)  # centred frames every 10 ms, stereo, 64 mel bins
    assert torch.equal(mel[0, 0], mel[0, 1])  # mono duplicated to both channels
    filters = slaney_mel_filterbank(513, 64, sr, 0.0, 8000.0)
    peak_bins = filters.argmax(dim=0)  # FFT bin of each filter's peak
    expected_bin = int(torch.argmin((peak_bins.float() * sr / 1024 - 1000).abs()))
    assert int(mel[0, 0, 50].argmax()) == expected_bin
    resampled = reference_log_mel(np.stack([np.repeat(tone, 3)[::1]] * 2) * 0, 48_000)  # silence at 48 kHz
    assert torch.allclose(resampled, torch.full_like(resampled, math.log(1e-5)))
    tone48 = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(3 * sr) / (3 * sr))).astype(np.float32)
    mel48 = reference_log_mel(tone48, 48_000)
    assert mel48.shape == mel.shape
    assert (mel48[0, 0, 10:90, expected_bin] - mel[0, 0, 10:90, expected_bin]).abs().max() < 0.05
    # Slaney scale: 1 kHz is mel 15, 8 kHz is mel 15 + 27 ln(8) / ln(6.4); area-normalised triangles.
    assert filters.shape == (513, 64) and float(filters.min()) == 0.0
    with pytest.raises(ValueError, match="too short"):
        reference_log_mel(np.zeros(400, np.float32), sr)


def test_tiny_pipeline_end_to_end_produces_frames_and_audio(pipe: IDLoRAPipeline) -> None:
    out = _run(pipe)
    assert out.frames.shape == (9, 64, 64, 3) and out.frames.dtype == np.uint8
    assert out.audio.ndim == 2 and out.audio.shape[0] == 2 and out.audio.dtype == np.float32
    assert out.sample_rate == 16_000 and np.isfinite(out.audio).all()
    assert abs(out.audio.shape[1] / out.sample_rate - 9 / 25) < 0.05  # 9 target tokens = (4*9-3)*10 ms
    assert out.info["target_audio_tokens"] == 9 and out.info["video_tokens"] == 8
    assert out.info["passes"] == [p.value for p in GuidancePass] and out.info["forward_calls"] == 3 * 2
    again = _run(pipe)
    assert np.array_equal(out.frames, again.frames) and np.array_equal(out.audio, again.audio)
    other = _run(pipe, seed=1)
    assert not np.array_equal(out.frames, other.frames)
    sequential = _run(pipe, batched_guidance=False)
    assert sequential.info["forward_calls"] == 3 * 5
    torch.testing.assert_close(sequential.audio_latents, out.audio_latents, rtol=1e-4, atol=1e-4)
    no_reference = pipe(PROMPT, _inputs()[0], None, long_side=64, num_frames=9, num_inference_steps=2,
                        guidance=TINY_GUIDANCE)
    assert no_reference.reference_latents is None and "no_reference" not in no_reference.info["passes"]
    with pytest.raises(ValueError, match=r"\[VISUAL\]"):
        pipe("a free-text prompt", _inputs()[0], None, long_side=64, num_frames=9, guidance=TINY_GUIDANCE)
    with pytest.raises(ValueError, match="STG block"):
        _run(pipe, guidance=GuidanceConfig())  # block 29 does not exist in the 2-block tiny transformer
    with pytest.raises(ValueError, match="8k"):
        _run(pipe, num_frames=10)


def test_id_lora_adapter_in_ltx_core_naming_loads_into_the_audio_path(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from reference_impl.idlora.convert import LoraKeyError
    from reference_impl.idlora.lora import AUDIO_PATH_MODULE_KINDS

    pipeline = IDLoRAPipeline.tiny_random(0)
    transformer = pipeline.transformer
    generator = torch.Generator().manual_seed(4)
    state = {}
    for block in range(2):
        for kind in AUDIO_PATH_MODULE_KINDS:  # the 18 audio-path kinds, in ltx-core naming
            layer = transformer.get_submodule(f"transformer_blocks.{block}.{kind}")
            key = f"diffusion_model.transformer_blocks.{block}.{kind}"
            state[f"{key}.lora_A.weight"] = torch.randn(2, layer.in_features, generator=generator)
            state[f"{key}.lora_B.weight"] = torch.randn(layer.out_features, 2, generator=generator)
    save_file(state, str(tmp_path / "lora_weights.safetensors"))
    video_key = "diffusion_model.transformer_blocks.0.attn1.to_q"
    save_file({**state, f"{video_key}.lora_A.weight": torch.zeros(2, 16), f"{video_key}.lora_B.weight": torch.zeros(16, 2)},
              str(tmp_path / "with_video.safetensors"))
    with pytest.raises(LoraKeyError):
        IDLoRAPipeline.tiny_random(0).load_id_lora(str(tmp_path / "with_video.safetensors"))
    before = _run(pipeline, num_inference_steps=2, output="latent")
    assert pipeline.load_id_lora(str(tmp_path / "lora_weights.safetensors")) == {"rank": 2, "keys": 72}
    after = _run(pipeline, num_inference_steps=2, output="latent")
    assert type(transformer.transformer_blocks[0].audio_attn1.to_q).__module__.startswith("peft")
    assert type(transformer.transformer_blocks[0].attn1.to_q).__module__.startswith("torch")  # video untouched
    assert (after.audio_latents - before.audio_latents).abs().max() > 1e-3


# -------------------------------------------------------------------------------------------------- methods


def test_idlora_method_tiny_random_writes_a_valid_mp4_with_audio(synth_split: Path, tmp_path: Path) -> None:
    from reference_impl.idlora.methods import IDLoRAMethod, LTXZeroShotMethod

    split = load_split("synth")
    pair = split.pairs[1]
    method = IDLoRAMethod(model="tiny-random", frames="9", steps=2)
    assert method.smoke is True and IDLoRAMethod.smoke is False  # per instance
    method.prepare(split)
    method.generate(split.resolve(pair), tmp_path / "idlora.mp4", seed=0)
    out = decode(tmp_path / "idlora.mp4")
    assert out.frames is not None and out.frames.shape == (9, 64, 64, 3) and out.fps == 25.0
    assert out.audio is not None and out.sample_rate and abs(out.audio_duration_s - 9 / 25) < 0.1
    config = method.config()
    assert config["model"] == "tiny-random" and config["steps"] == 2 and config["frames"] == 9
    assert config["guidance"]["identity_scale_code"] == 3.0 and config["guidance"]["stg_blocks"] == [1]
    assert config["reference_positions"] == "negative" and config["uses_reference"] is True

    zeroshot = LTXZeroShotMethod(model="tiny-random", frames=9, steps=2)
    assert zeroshot.smoke is True
    zeroshot.generate(split.resolve(pair), tmp_path / "zeroshot.mp4", seed=0)
    assert decode(tmp_path / "zeroshot.mp4").num_frames == 9
    assert zeroshot.config()["guidance"]["identity_scale_code"] == 0.0
    assert zeroshot.config_sha256() != method.config_sha256()
    assert IDLoRAMethod(model="tiny-random", identity_scale_paper=2.0).config()["guidance"]["identity_scale_code"] == 1.0
    assert IDLoRAMethod(model="tiny-random", identity_scale_code=2.0).config_sha256() != method.config_sha256()
    with pytest.raises(ValidationError, match="one convention"):
        IDLoRAMethod(model="tiny-random", identity_scale_paper=4, identity_scale_code=3)
    with pytest.raises(ValidationError, match="checkpoint"):
        IDLoRAMethod(model="tiny-random", checkpoint="no-such-lora")
    with pytest.raises(ValidationError, match="'guidance_scale': Extra inputs are not permitted"):
        IDLoRAMethod(model="tiny-random", guidance_scale=3)
    with pytest.raises(ValidationError, match="'steps': Input should be a valid integer"):
        IDLoRAMethod(model="tiny-random", steps="many")


def test_real_model_without_weights_names_the_pull_command(synth_split: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from reference_impl.idlora.methods import (
        IDLORA_LORAS,
        LTX2_WEIGHTS,
        IDLoRAMethod,
        LTXZeroShotMethod,
    )

    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(tmp_path / "empty-store"))
    split = load_split("synth")
    method = IDLoRAMethod(model="ltx-2", checkpoint="talkvid")
    assert method.smoke is False
    with pytest.raises(WeightsError, match="bench models pull id-lora-talkvid ltx-2"):
        method.prepare(split)
    with pytest.raises(WeightsError, match="bench models pull ltx-2"):
        LTXZeroShotMethod(model="ltx-2").prepare(split)
    sources = {w.source.split(":")[1] for w in LTX2_WEIGHTS}
    assert sources == {"Lightricks/LTX-2@47da56e2ad66ce4125a9922b4a8826bf407f9d0a"}
    assert IDLORA_LORAS["celebvhq"].source == "hf:AviadDahan/ID-LoRA-CelebVHQ@main:lora_weights.safetensors"
    assert set(IDLoRAMethod.weights) >= set(LTX2_WEIGHTS) | set(IDLORA_LORAS.values())
