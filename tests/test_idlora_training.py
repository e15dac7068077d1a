"""ID-LoRA adapters, checkpoint conversion and the audio_ref_only_ic training recipe (CPU, tiny random LTX-2)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from reference_impl.idlora import convert
from reference_impl.idlora import training as T
from reference_impl.idlora.dataset import (
    LatentCacheDataset,
    collate_latents,
    write_synthetic_latent_cache,
)
from reference_impl.idlora.lora import (
    AUDIO_PATH_MODULE_KINDS,
    VIDEO_MODULE_KINDS,
    add_idlora_adapter,
    load_lora_state_dict,
    lora_module_names,
    lora_parameters,
    lora_state_dict,
    module_kind,
)
from reference_impl.idlora.tiny import TINY_TRANSFORMER_CONFIG, tiny_transformer

REPO = Path(__file__).resolve().parents[1]
NUM_LAYERS = TINY_TRANSFORMER_CONFIG["num_layers"]
RANK = 4


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is ~6x faster than two on a busy 2-core machine (and deterministic)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _batch(seed: int = 0, batch_size: int = 2, ref_frames: int = 6, target_frames: int = 10) -> T.LatentBatch:
    """Tiny latents: video (B, 8, 3, 2, 2) -> 12 tokens (first frame = 4); audio (B, 2, L, 2) -> width 4."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch_size, 5, dtype=torch.int64)
    mask[-1, 3:] = 0  # padded text in the last sample
    return T.LatentBatch(
        video_latents=torch.randn(batch_size, 8, 3, 2, 2, generator=g),
        audio_latents=torch.randn(batch_size, 2, target_frames, 2, generator=g),
        ref_audio_latents=torch.randn(batch_size, 2, ref_frames, 2, generator=g),
        video_prompt_embeds=torch.randn(batch_size, 5, 12, generator=g),
        audio_prompt_embeds=torch.randn(batch_size, 5, 12, generator=g),
        prompt_attention_mask=mask,
        fps=25.0,
    )


def _adapted(seed: int = 0, rank: int = RANK) -> torch.nn.Module:
    model = tiny_transformer(seed)
    add_idlora_adapter(model, rank=rank, alpha=rank)
    return model


def _randomise_lora(model: torch.nn.Module, seed: int = 1, scale: float = 0.2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in lora_parameters(model):
            param.copy_(torch.randn(param.shape, generator=g) * scale)


# ---------------------------------------------------------------------------------------------------------------
# LoRA placement and gradients
# ---------------------------------------------------------------------------------------------------------------


def test_exactly_the_18_audio_path_module_kinds_get_adapters() -> None:
    model = _adapted()
    names = lora_module_names(model)
    kinds = {module_kind(name) for name in names}
    assert len(AUDIO_PATH_MODULE_KINDS) == 18
    assert kinds == set(AUDIO_PATH_MODULE_KINDS)
    assert len(names) == 18 * NUM_LAYERS == 36
    # no video module (self-attn, text cross-attn, FFN) and nothing outside the blocks
    assert not kinds & set(VIDEO_MODULE_KINDS)
    assert all(name.startswith("transformer_blocks.") for name in names)
    linear_kinds = {
        module_kind(n) for n, m in tiny_transformer(0).named_modules()
        if isinstance(m, torch.nn.Linear) and n.startswith("transformer_blocks.")
    }
    assert set(VIDEO_MODULE_KINDS) <= linear_kinds  # the video kinds exist and were left alone
    # peft names in the state dict: 2 tensors per adapted module
    assert len(lora_state_dict(model)) == 2 * 36


def test_after_backward_only_lora_parameters_have_gradients() -> None:
    model = _adapted()
    model.train()
    state = T.install_training_masks(model)
    inputs = T.prepare_training_inputs(_batch(), T.RecipeConfig(), torch.Generator().manual_seed(0))
    T.training_loss(model, inputs, state).total.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    lora_names = {n for n, p in model.named_parameters() if ".lora_A." in n or ".lora_B." in n}
    assert with_grad == lora_names and len(lora_names) == 72
    assert all(not p.requires_grad for n, p in model.named_parameters() if n not in lora_names)
    # lora_B starts at zero, so its gradient is the informative one: nonzero for every adapted module
    b_grads = [p.grad.abs().sum().item() for n, p in model.named_parameters() if ".lora_B." in n]
    assert len(b_grads) == 36 and min(b_grads) > 0


# ---------------------------------------------------------------------------------------------------------------
# Converter
# ---------------------------------------------------------------------------------------------------------------


def _released_state_dict(num_layers: int, rank: int = 2, dtype: torch.dtype = torch.bfloat16) -> dict[str, torch.Tensor]:
    """A state dict in the released ltx-core format: diffusion_model.transformer_blocks.<i>.<kind>.lora_{A,B}.weight."""
    g = torch.Generator().manual_seed(123)
    out = {}
    for i in range(num_layers):
        for j, kind in enumerate(AUDIO_PATH_MODULE_KINDS):
            in_f, out_f = 6 + j % 3, 5 + j % 4
            out[f"diffusion_model.transformer_blocks.{i}.{kind}.lora_A.weight"] = torch.randn(rank, in_f, generator=g).to(dtype)
            out[f"diffusion_model.transformer_blocks.{i}.{kind}.lora_B.weight"] = torch.randn(out_f, rank, generator=g).to(dtype)
    return out


def test_converter_round_trip_is_bit_identical_and_matches_diffusers() -> None:
    original = _released_state_dict(NUM_LAYERS)
    peft = convert.ltx_core_to_peft(original)
    assert set(peft) == {k.removeprefix("diffusion_model.") for k in original}
    back = convert.peft_to_ltx_core(peft)
    assert list(back) == list(original)
    for key, value in original.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key].view(torch.int16), value.view(torch.int16))
    via_diffusers = convert.diffusers_to_ltx_core(convert.ltx_core_to_diffusers(original))
    assert all(torch.equal(via_diffusers[k].view(torch.int16), v.view(torch.int16)) for k, v in original.items())
    # diffusers' own loader conversion gives the same names for these 18 kinds
    from diffusers.loaders.lora_conversion_utils import (
        _convert_non_diffusers_ltx2_lora_to_diffusers,
    )

    theirs = _convert_non_diffusers_ltx2_lora_to_diffusers(dict(original))
    assert set(theirs) == set(convert.ltx_core_to_diffusers(original))
    # a model's own adapter round-trips through the ltx-core format too
    model = _adapted()
    _randomise_lora(model)
    sd = lora_state_dict(model)
    again = convert.ltx_core_to_peft(convert.peft_to_ltx_core(sd))
    assert sd.keys() == again.keys() and all(torch.equal(sd[k], again[k]) for k in sd)


def test_released_format_with_all_18_kinds_x_48_layers_maps_completely() -> None:
    released = _released_state_dict(48)
    assert len(released) == 48 * 18 * 2 == 1728
    peft = convert.ltx_core_to_peft(released, num_layers=48)
    ranks = convert.check_peft_state_dict(peft, num_layers=48)
    assert len(ranks) == 48 * 18 and set(ranks.values()) == {2}
    assert convert.detect_format(released) == "ltx-core"

    missing = dict(released)
    del missing["diffusion_model.transformer_blocks.47.audio_ff.net.2.lora_B.weight"]
    with pytest.raises(convert.LoraKeyError, match=r"transformer_blocks\.47\.audio_ff\.net\.2\.lora_B\.weight"):
        convert.ltx_core_to_peft(missing, num_layers=48)
    whole_module_missing = {k: v for k, v in released.items() if ".7.video_to_audio_attn.to_k." not in k}
    with pytest.raises(convert.LoraKeyError, match=r"missing keys .*transformer_blocks\.7\.video_to_audio_attn\.to_k\.lora_A"):
        convert.ltx_core_to_peft(whole_module_missing, num_layers=48)
    for extra_key in (
        "diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight",  # a video module
        "diffusion_model.transformer_blocks.3.audio_attn1.to_q.alpha",  # kohya-style alpha
        "diffusion_model.transformer_blocks.48.audio_attn1.to_q.lora_A.weight",  # block beyond the model
    ):
        extra = dict(released)
        extra[extra_key] = torch.zeros(2, 6)
        with pytest.raises(convert.LoraKeyError, match=extra_key.removeprefix("diffusion_model.").replace(".", r"\.")):
            convert.ltx_core_to_peft(extra, num_layers=48)
    with pytest.raises(convert.LoraKeyError, match="prefix"):
        convert.ltx_core_to_peft({"transformer.x.lora_A.weight": torch.zeros(1, 1)})


def test_loaded_ltx_core_lora_applies_unscaled_B_at_A_like_ltx_core() -> None:
    """ltx-core fuses W + B @ A; loading the converted weights into peft (alpha == rank) must do the same."""
    model = _adapted()
    released = _released_state_dict(NUM_LAYERS, rank=RANK, dtype=torch.float32)
    # give each tensor the tiny model's shapes
    shapes = {k: v.shape for k, v in lora_state_dict(model).items()}
    g = torch.Generator().manual_seed(5)
    released = {k: torch.randn(shapes[k.removeprefix("diffusion_model.")], generator=g) for k in released}
    peft = convert.ltx_core_to_peft(released, num_layers=NUM_LAYERS)
    convert.check_fits_transformer(peft, model)
    load_lora_state_dict(model, peft)
    layer = model.transformer_blocks[1].audio_to_video_attn.to_out[0]
    x = torch.randn(3, layer.in_features, generator=g)
    a = released["diffusion_model.transformer_blocks.1.audio_to_video_attn.to_out.0.lora_A.weight"]
    b = released["diffusion_model.transformer_blocks.1.audio_to_video_attn.to_out.0.lora_B.weight"]
    expected = torch.nn.functional.linear(x, layer.base_layer.weight + b @ a, layer.base_layer.bias)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    # wrong shapes are refused by name
    bad = dict(peft)
    bad["transformer_blocks.0.audio_attn1.to_q.lora_A.weight"] = torch.zeros(RANK, 99)
    with pytest.raises(convert.LoraKeyError, match=r"audio_attn1\.to_q\.lora_A\.weight in_features 99"):
        convert.check_fits_transformer(bad, model)


# ---------------------------------------------------------------------------------------------------------------
# Training masks, loss, sigma
# ---------------------------------------------------------------------------------------------------------------


def test_training_masks_zero_the_masked_softmax_entries() -> None:
    model = _adapted()
    _randomise_lora(model)
    state = T.install_training_masks(model)
    batch = _batch()
    inputs = T.prepare_training_inputs(batch, T.RecipeConfig(), torch.Generator().manual_seed(0))
    n_ref, n_audio, n_video = inputs.num_ref_tokens, inputs.audio_tokens.shape[1], inputs.video_tokens.shape[1]
    assert (n_ref, n_audio, n_video) == (6, 16, 12)
    state.capture = True
    with torch.no_grad():
        state.set(inputs.a2v_allowed, inputs.audio_text_allowed)
        captured_out = T.model_forward(model, inputs)
    assert len(state.captured) == 2 * NUM_LAYERS
    for i in range(NUM_LAYERS):
        a2v = state.captured[f"transformer_blocks.{i}.audio_to_video_attn"]  # (B, heads, N_video, N_audio)
        assert a2v.shape == (2, 2, n_video, n_audio)
        assert torch.all(a2v[..., :n_ref] == 0)  # video queries never see reference-audio keys
        torch.testing.assert_close(a2v.sum(-1), torch.ones(2, 2, n_video), rtol=0, atol=1e-6)
        text = state.captured[f"transformer_blocks.{i}.audio_attn2"]  # (B, heads, N_audio, T)
        assert text.shape == (2, 2, n_audio, 5)
        assert torch.all(text[:, :, :n_ref] == 0)  # reference rows blocked from text
        torch.testing.assert_close(text[:, :, n_ref:].sum(-1), torch.ones(2, 2, n_audio - n_ref), rtol=0, atol=1e-6)
        assert torch.all(text[1, :, :, 3:] == 0)  # text padding stays masked (diffusers' own mask)
    # the fast SDPA path computes the same thing as the captured (explicit softmax) path
    state.capture = False
    with torch.no_grad():
        fast_out = T.model_forward(model, inputs)
    for fast, slow in zip(fast_out, captured_out):
        torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)
    # and the masks matter: without them the output differs
    state.clear()
    with torch.no_grad():
        unmasked = T.model_forward(model, inputs)
    assert (unmasked[0] - fast_out[0]).abs().max() > 1e-4
    assert (unmasked[1][:, n_ref:] - fast_out[1][:, n_ref:]).abs().max() > 1e-4


def test_mask_processor_without_masks_equals_diffusers_and_uniform_mode_matches_authors() -> None:
    plain, hooked = _adapted(), _adapted()
    _randomise_lora(plain)
    _randomise_lora(hooked)
    state = T.install_training_masks(hooked, blocked_rows="uniform")
    inputs = T.prepare_training_inputs(_batch(), T.RecipeConfig(), torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = T.model_forward(plain, inputs)
        same = T.model_forward(hooked, inputs)
    assert all(torch.equal(a, b) for a, b in zip(reference, same))
    # "uniform": the authors' additive finfo.min on a whole row equalises its scores -> uniform over all text keys
    state.capture = True
    with torch.no_grad():
        state.set(inputs.a2v_allowed, inputs.audio_text_allowed)
        T.model_forward(hooked, inputs)
    text = state.captured["transformer_blocks.0.audio_attn2"]
    torch.testing.assert_close(text[:, :, : inputs.num_ref_tokens], torch.full_like(text[:, :, :6], 0.2), rtol=0, atol=1e-6)


def test_reference_and_first_frame_tokens_are_clean_and_excluded_from_the_loss() -> None:
    batch = _batch()
    recipe = T.RecipeConfig(first_frame_conditioning_p=1.0)
    inputs = T.prepare_training_inputs(batch, recipe, torch.Generator().manual_seed(3))
    n_ref = inputs.num_ref_tokens
    # reference tokens: clean latents, timestep 0, negative positions ending 40 ms before 0 s
    assert torch.equal(inputs.audio_tokens[:, :n_ref], T.pack_audio_latents(batch.ref_audio_latents))
    assert torch.all(inputs.audio_timestep[:, :n_ref] == 0)
    torch.testing.assert_close(inputs.audio_timestep[:, n_ref:], inputs.sigma[:, None].expand(2, 10) * 1000)
    assert inputs.audio_coords[0, 0, n_ref - 1, 1].item() == pytest.approx(-0.04, abs=1e-4)  # bf16 as the authors
    rope = tiny_transformer(0).audio_rope  # diffusers' own target positions
    # target rows: diffusers' standard positions, rounded to bfloat16 as the authors' training rounds them
    torch.testing.assert_close(inputs.audio_coords[:, :, n_ref:],
                               rope.prepare_audio_coords(2, 10, "cpu").to(torch.bfloat16).float())
    # first latent frame (H*W = 4 tokens): clean, timestep 0, out of the loss
    assert inputs.first_frame_conditioned
    assert torch.equal(inputs.video_tokens[:, :4], T.pack_video_latents(batch.video_latents)[:, :4])
    assert torch.all(inputs.video_timestep[:, :4] == 0) and torch.all(inputs.video_timestep[:, 4:] > 0)
    # noisy tokens follow x_t = (1 - s) x0 + s eps with target eps - x0
    x0 = T.pack_video_latents(batch.video_latents)
    s = inputs.sigma.view(-1, 1, 1)
    eps = inputs.video_targets + x0
    torch.testing.assert_close(inputs.video_tokens[:, 4:], ((1 - s) * x0 + s * eps)[:, 4:])

    g = torch.Generator().manual_seed(9)
    video_pred = torch.randn(inputs.video_targets.shape, generator=g)
    audio_pred = torch.randn(inputs.audio_tokens.shape, generator=g)
    base = T.compute_loss(video_pred, audio_pred, inputs)
    changed_ref = audio_pred.clone()
    changed_ref[:, :n_ref] = 1e3 * torch.randn(2, n_ref, 4, generator=g)
    changed_first = video_pred.clone()
    changed_first[:, :4] = 1e3
    assert torch.equal(T.compute_loss(video_pred, changed_ref, inputs).total, base.total)
    assert torch.equal(T.compute_loss(changed_first, audio_pred, inputs).total, base.total)
    changed_target = audio_pred.clone()
    changed_target[:, n_ref] += 1.0
    assert T.compute_loss(video_pred, changed_target, inputs).audio > base.audio
    # unweighted sum of two plain MSEs
    expected_video = (video_pred[:, 4:] - inputs.video_targets[:, 4:]).pow(2).mean()
    expected_audio = (audio_pred[:, n_ref:] - inputs.audio_targets).pow(2).mean()
    torch.testing.assert_close(base.video, expected_video)
    torch.testing.assert_close(base.total, expected_video + expected_audio)


def test_first_frame_conditioning_probability_is_0_9_per_batch() -> None:
    g = torch.Generator().manual_seed(0)
    batch = _batch()
    draws = [T.prepare_training_inputs(batch, T.RecipeConfig(), g).first_frame_conditioned for _ in range(2000)]
    frequency = sum(draws) / len(draws)
    assert abs(frequency - 0.9) < 0.02  # binomial sd 0.0067


def test_sigma_sampling_is_the_shifted_logit_normal() -> None:
    assert T.shifted_logit_normal_shift(4096) == pytest.approx(2.05)
    assert T.shifted_logit_normal_shift(1024) == pytest.approx(0.95)
    assert T.shifted_logit_normal_shift(2048) == pytest.approx(0.95 + 1024 * 1.1 / 3072)
    g = torch.Generator().manual_seed(42)
    for tokens, shift in ((4096, 2.05), (1024, 0.95), (16, 0.95 - 1008 * 1.1 / 3072)):
        s = T.sample_sigmas(200_000, tokens, g).double()
        assert torch.all((s > 0) & (s < 1))
        logit = torch.log(s) - torch.log1p(-s)
        assert logit.mean().item() == pytest.approx(shift, abs=0.01)  # standard error 0.0022
        assert logit.std().item() == pytest.approx(1.0, abs=0.01)
        median = torch.sigmoid(torch.tensor(shift)).item()
        assert (s < median).double().mean().item() == pytest.approx(0.5, abs=0.005)


def test_fifty_steps_on_one_fixed_batch_overfit() -> None:
    """Same batch, noise and sigma every step: the loss must fall markedly (observed 5.358 -> 1.793)."""
    torch.manual_seed(0)
    model = _adapted(rank=16)
    model.train()
    state = T.install_training_masks(model)
    params = lora_parameters(model)
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    batch = _batch(seed=1)
    losses = []
    for _ in range(50):
        inputs = T.prepare_training_inputs(batch, T.RecipeConfig(), torch.Generator().manual_seed(7))
        loss = T.training_loss(model, inputs, state)
        optimizer.zero_grad()
        loss.total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append((loss.total.item(), loss.video.item(), loss.audio.item()))
    first, last = losses[0], losses[-1]
    print(f"overfit: loss {first[0]:.4f} -> {last[0]:.4f} (video {first[1]:.4f} -> {last[1]:.4f}, "
          f"audio {first[2]:.4f} -> {last[2]:.4f})")
    assert last[0] < 0.4 * first[0]
    assert last[1] < 0.6 * first[1] and last[2] < 0.6 * first[2]  # both modalities are fitted


# ---------------------------------------------------------------------------------------------------------------
# Config, dataset and the entry point
# ---------------------------------------------------------------------------------------------------------------


def test_released_recipe_config_defaults() -> None:
    from reference_impl.idlora.train import DEFAULT_CONFIG, load_config, lr_factor

    cfg = load_config(DEFAULT_CONFIG)
    assert (cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout) == (128, 128.0, 0.0)
    assert cfg.lora.target_modules == list(AUDIO_PATH_MODULE_KINDS)
    o = cfg.optimization
    assert (o.learning_rate, o.end_factor, o.max_grad_norm, o.steps, o.batch_size) == (2e-4, 0.1, 1.0, 6000, 4)
    assert o.optimizer == "adamw8bit" and o.gradient_checkpointing and cfg.seed == 42
    recipe = cfg.recipe()
    assert recipe.first_frame_conditioning_p == 0.9 and recipe.use_negative_ref_positions
    assert recipe.mask_cross_attention_to_reference and recipe.mask_reference_from_text_attention
    assert [lr_factor(k, o) for k in (0, 3000, 6000, 9000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    with pytest.raises(ValueError, match=r"optimization\.stepz"):
        load_config(DEFAULT_CONFIG, ["optimization.stepz=3"])


def test_latent_cache_round_trip_and_batching(tmp_path: Path) -> None:
    write_synthetic_latent_cache(tmp_path / "cache", 3)
    dataset = LatentCacheDataset(tmp_path / "cache")
    batch = collate_latents([dataset[0], dataset[1]])
    assert batch.video_latents.shape == (2, 8, 3, 2, 2) and batch.ref_audio_latents.shape == (2, 2, 6, 2)
    assert batch.sample_ids == ["synthetic-000", "synthetic-001"] and batch.fps == 25.0
    item = dataset[2]
    item["audio_latents"] = item["audio_latents"][:, :7]
    with pytest.raises(ValueError, match="synthetic-000.*synthetic-002"):
        collate_latents([dataset[0], item])
    with pytest.raises(FileNotFoundError, match="not a latent cache"):
        LatentCacheDataset(tmp_path)


def test_entry_point_runs_two_steps_from_yaml_and_writes_a_convertible_checkpoint(tmp_path: Path) -> None:
    import yaml
    from safetensors import safe_open
    from safetensors.torch import load_file

    write_synthetic_latent_cache(tmp_path / "cache", 4)
    config = yaml.safe_load((REPO / "reference_impl/configs/train_audio_ref_only_ic.yaml").read_text())
    config["output_dir"] = str(tmp_path / "run")
    config["model"].update(source="tiny")
    config["lora"].update(rank=4, alpha=4)
    config["data"].update(latents_dir=str(tmp_path / "cache"), num_workers=0)
    config["optimization"].update(optimizer="adamw", steps=2, batch_size=2)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "reference_impl.idlora.train", "--config", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "after 2 steps" in result.stdout
    checkpoint = tmp_path / "run" / "lora_weights.safetensors"
    state = load_file(str(checkpoint))
    assert len(state) == 2 * 18 * NUM_LAYERS and all(k.startswith("diffusion_model.transformer_blocks.") for k in state)
    assert {v.dtype for v in state.values()} == {torch.bfloat16}
    with safe_open(str(checkpoint), framework="pt") as handle:
        assert handle.metadata()["idlora.key_format"] == "ltx-core"
    log = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 2
    # the converter maps it completely, and the weights moved away from the zero-initialised B
    peft = convert.ltx_core_to_peft(state, num_layers=NUM_LAYERS)
    assert any(v.abs().sum() > 0 for k, v in peft.items() if k.endswith("lora_B.weight"))
    assert set(convert.peft_to_ltx_core(peft)) == set(state)
    out = convert.convert_file(checkpoint, tmp_path / "diffusers.safetensors", "diffusers", num_layers=NUM_LAYERS)
    assert out == {"keys": 72, "blocks": NUM_LAYERS, "rank": 4}
    model = tiny_transformer(0)
    add_idlora_adapter(model, rank=4, alpha=4)
    load_lora_state_dict(model, {k: v.float() for k, v in peft.items()})
    assert math.isfinite(sum(v.float().sum().item() for v in lora_state_dict(model).values()))


def test_gradient_checkpointing_recomputes_with_the_same_masks() -> None:
    """Masks live in the processors' shared state, so the checkpointed recomputation in backward sees them."""
    grads = []
    for checkpointing in (False, True):
        model = _adapted()
        _randomise_lora(model)
        model.train()
        state = T.install_training_masks(model)
        if checkpointing:
            model.enable_gradient_checkpointing()
        inputs = T.prepare_training_inputs(_batch(), T.RecipeConfig(), torch.Generator().manual_seed(0))
        T.training_loss(model, inputs, state).total.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == 72
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6)


def test_pairs_jsonl_encodes_into_a_latent_cache_that_trains(tmp_path: Path) -> None:
    """The demo split's pairs.jsonl through tiny random VAEs (+ a stub text encoder) into a cache, then a step."""
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video

    from reference_impl.idlora.dataset import (
        DiffusersLTX2Encoder,
        encode_pairs_to_cache,
        load_pairs,
    )

    torch.manual_seed(0)
    vae = AutoencoderKLLTX2Video(
        block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1), latent_channels=8,
    ).eval()
    # 1 latent channel x 16 latent mel bins = 16-wide audio tokens (its latents_mean/std have base_channels = 16)
    audio_vae = AutoencoderKLLTX2Audio(base_channels=16, ch_mult=(1, 2, 4), num_res_blocks=1, latent_channels=1).eval()

    def prompt_encoder(prompt: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(len(prompt))
        return torch.randn(5, 12, generator=g), torch.randn(5, 12, generator=g), torch.ones(5, dtype=torch.int64)

    encoder = DiffusersLTX2Encoder(vae, audio_vae, prompt_encoder, height=64, width=64)
    pairs = load_pairs(REPO / "splits/demo/pairs.jsonl")[:2]
    cache = encode_pairs_to_cache(pairs, REPO / "splits/demo", encoder, tmp_path / "cache", num_frames=9)
    dataset = LatentCacheDataset(cache)
    assert [e.pair_id for e in dataset.entries] == [p.pair_id for p in pairs]
    item = dataset[0]
    assert item["video_latents"].shape == (8, 2, 2, 2)  # 9 frames -> 2 latent frames; 64 px -> 2 latent px
    # target audio = the 9 video frames' span (0.36 s = 36 mel frames of 10 ms -> 9-10 latents of 40 ms)
    assert item["audio_latents"].shape[0] == 1 and item["audio_latents"].shape[2] == 16
    assert 9 <= item["audio_latents"].shape[1] <= 10
    assert 120 <= item["ref_audio_latents"].shape[1] <= 130  # the whole ~5 s reference (~126 latents)
    batch = collate_latents([dataset[0], dataset[1]])
    model = tiny_transformer(0, audio_in_channels=16, audio_out_channels=16)
    add_idlora_adapter(model, rank=2, alpha=2)
    state = T.install_training_masks(model)
    inputs = T.prepare_training_inputs(batch, T.RecipeConfig(), torch.Generator().manual_seed(0))
    loss = T.training_loss(model, inputs, state)
    assert math.isfinite(loss.total.item()) and loss.total.item() > 0
    with pytest.raises(ValueError, match="has 121 frames, needs 129"):
        encode_pairs_to_cache(pairs, REPO / "splits/demo", encoder, tmp_path / "c2", num_frames=129)


def test_log_mel_front_end_matches_the_ltx2_audio_processor() -> None:
    """16 kHz, n_fft 1024, hop 160 (centred: N/160 + 1 frames), 64 Slaney mels 0-8 kHz, log clamp 1e-5, stereo."""
    from reference_impl.idlora.dataset import log_mel_spectrogram, slaney_mel_filterbank

    librosa = pytest.importorskip("librosa")
    ours = slaney_mel_filterbank(16000, 1024, 64, 0.0, 8000.0)
    theirs = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=0.0, fmax=8000.0, norm="slaney", htk=False)
    assert abs(ours - theirs).max() < 1e-7
    t = torch.arange(32000) / 32000.0  # 1 s at 32 kHz, mono: resampled to 16 kHz and duplicated
    tone = (0.5 * torch.sin(2 * math.pi * 1000.0 * t)).numpy()[None]
    mel = log_mel_spectrogram(tone, 32000)
    assert mel.shape == (2, 16000 // 160 + 1, 64) and torch.equal(mel[0], mel[1])
    centre = torch.from_numpy(ours).argmax(dim=1)  # FFT bin of each filter's peak
    peak_hz = centre[mel[0, 50].argmax()].item() * 16000 / 1024
    assert abs(peak_hz - 1000.0) < 100.0
    assert mel.min().item() >= math.log(1e-5) - 1e-6


def test_token_packing_matches_the_diffusers_pipeline() -> None:
    from diffusers import LTX2Pipeline

    g = torch.Generator().manual_seed(0)
    video = torch.randn(2, 8, 3, 2, 5, generator=g)
    audio = torch.randn(2, 8, 7, 16, generator=g)
    assert torch.equal(T.pack_video_latents(video), LTX2Pipeline._pack_latents(video))
    assert torch.equal(T.pack_audio_latents(audio), LTX2Pipeline._pack_audio_latents(audio))
    # frame-major order: the first H*W tokens are the first latent frame (the first-frame condition)
    assert torch.equal(T.pack_video_latents(video)[:, :10], video[:, :, 0].flatten(2).transpose(1, 2))
