"""LTX-2.3 as a base of the ID-LoRA reference: the 2.3 STG (value pass-through), the cross-modality sigma of the A/V
cross-attention modulation, the tiny 2.3 pipeline (one- and two-stage) and the 2.3 weights cards.

Tiny random 2.3 components (``reference_impl.idlora.tiny.LTX23_TRANSFORMER_FLAGS``) on CPU.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from idlora_bench.core.errors import WeightsError
from reference_impl.idlora import positions as pos
from reference_impl.idlora.guidance import GuidanceConfig, GuidancePass, Perturbation, perturbed
from reference_impl.idlora.pipeline import IDLoRAPipeline
from reference_impl.idlora.sampling import DenoiserInputs, LatentState, TransformerDenoiser
from reference_impl.idlora.tiny import LTX23_TRANSFORMER_FLAGS, TINY_TRANSFORMER_CONFIG, tiny_transformer

GUIDANCE = GuidanceConfig(stg_blocks=(1,))
N_REF, N_TARGET = 5, 7


def _inputs(generator: torch.Generator) -> tuple[DenoiserInputs, LatentState, LatentState]:
    """Denoiser inputs for a 2x2x3 video grid and 5 reference + 7 target audio tokens; the 2.3 transformer takes
    text already projected to its widths (16 video, 8 audio: per-modality projections live in the connectors)."""
    transformer_width = TINY_TRANSFORMER_CONFIG["cross_attention_dim"]
    audio_width = TINY_TRANSFORMER_CONFIG["audio_cross_attention_dim"]
    video_text = torch.randn(1, 8, transformer_width, generator=generator)
    audio_text = torch.randn(1, 8, audio_width, generator=generator)
    mask = torch.ones(1, 8)
    coords = tiny_transformer(0).rope.prepare_video_coords(1, 2, 2, 3, "cpu", fps=25.0)
    inputs = DenoiserInputs(video_text, audio_text, mask, video_text.flip(1), audio_text.flip(1), mask, coords,
                            pos.audio_coords(N_REF, N_TARGET), N_REF, 2, 2, 3, 25.0)
    video_mask = torch.ones(1, 12)
    video_mask[:, :6] = 0.0
    video = LatentState(torch.randn(1, 12, 8, generator=generator), torch.randn(1, 12, 8, generator=generator),
                        video_mask)
    audio_mask = torch.cat([torch.zeros(1, N_REF), torch.ones(1, N_TARGET)], dim=1)
    audio = LatentState(torch.randn(1, N_REF + N_TARGET, 4, generator=generator),
                        torch.randn(1, N_REF + N_TARGET, 4, generator=generator), audio_mask)
    return inputs, video, audio


def _value_only(attention: torch.nn.Module) -> None:
    """Make ``attention`` return what the authors' 2.3 STG computes (ltx-core 2.3 ``attention.py:215-219, 237-247``):
    the value projection, gated per head, through the output projection; no attention at all."""

    def forward(hidden_states: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        value = attention.to_v(hidden_states)
        gates = 2.0 * torch.sigmoid(attention.to_gate_logits(hidden_states))  # (B, S, heads)
        value = (value.unflatten(2, (attention.heads, -1)) * gates.unsqueeze(-1)).flatten(2, 3)
        return attention.to_out[1](attention.to_out[0](value))

    attention.forward = forward  # type: ignore[method-assign]


@torch.no_grad()
def test_ltx23_stg_passes_the_values_through_instead_of_dropping_the_residual() -> None:
    transformer = tiny_transformer(3, **LTX23_TRANSFORMER_FLAGS)
    inputs, video, audio = _inputs(torch.Generator().manual_seed(0))
    passes = (GuidancePass.POSITIVE, GuidancePass.STG)
    batched = TransformerDenoiser(transformer, inputs, GUIDANCE, batched=True).predict(video, audio, 0.6, passes)
    single = TransformerDenoiser(transformer, inputs, GUIDANCE, batched=False).predict(video, audio, 0.6, passes)
    # Independent reference: block 1's video and audio self-attention replaced by the value path, positive pass.
    patched = copy.deepcopy(transformer)
    for name in ("attn1", "audio_attn1"):
        _value_only(getattr(patched.transformer_blocks[1], name))
    reference = TransformerDenoiser(patched, inputs, GUIDANCE).predict(video, audio, 0.6, (GuidancePass.POSITIVE,))
    for got in (batched, single):
        for modality in (0, 1):
            torch.testing.assert_close(got[GuidancePass.STG][modality],
                                       reference[GuidancePass.POSITIVE][modality], rtol=1e-5, atol=1e-5)
    # ... which is not the 2.0 semantics (residual dropped by the hooks), nor the unperturbed pass.
    with perturbed(transformer, [Perturbation(skip_self_attention_blocks=frozenset({1}))]):
        dropped = TransformerDenoiser(transformer, inputs, GUIDANCE).predict(video, audio, 0.6,
                                                                             (GuidancePass.POSITIVE,))
    stg_video = batched[GuidancePass.STG][0][:, 6:]
    assert (stg_video - dropped[GuidancePass.POSITIVE][0][:, 6:]).abs().max() > 1e-4
    assert (stg_video - batched[GuidancePass.POSITIVE][0][:, 6:]).abs().max() > 1e-4


@torch.no_grad()
def test_ltx23_models_use_the_other_modalitys_sigma_for_the_av_modulation() -> None:
    transformer = tiny_transformer(3, **LTX23_TRANSFORMER_FLAGS)
    inputs, video, audio = _inputs(torch.Generator().manual_seed(1))
    auto = TransformerDenoiser(transformer, inputs, GUIDANCE)
    forced_off = TransformerDenoiser(transformer, inputs, GUIDANCE, use_cross_timestep=False)
    assert auto.use_cross_timestep is True
    assert TransformerDenoiser(tiny_transformer(0), inputs, GUIDANCE).use_cross_timestep is False  # LTX-2.0
    on = auto.predict(video, audio, 0.6, (GuidancePass.POSITIVE,))[GuidancePass.POSITIVE]
    off = forced_off.predict(video, audio, 0.6, (GuidancePass.POSITIVE,))[GuidancePass.POSITIVE]
    # The reference tokens sit at t = 0 and the target at 0.6: with the cross sigma their A/V modulation differs.
    assert (on[1][:, N_REF:] - off[1][:, N_REF:]).abs().max() > 1e-5


def test_tiny_ltx23_pipeline_runs_one_and_two_stage() -> None:
    from reference_impl.idlora.tiny import tiny_distilled_lora_state_dict

    pipeline = IDLoRAPipeline.tiny_random(0, "2.3")
    assert pipeline.transformer.config.cross_attn_mod and pipeline.connectors.config.per_modality_projections
    pipeline.load_distilled_lora(tiny_distilled_lora_state_dict(pipeline.transformer, 0))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    reference = (0.3 * np.sin(2 * np.pi * 220 * np.arange(16_000) / 16_000)).astype(np.float32)
    prompt = "[VISUAL]: a face. [SPEECH]: hello [SOUNDS]: calm voice"
    options = {"long_side": 64, "num_frames": 9, "num_inference_steps": 2, "guidance": GUIDANCE, "seed": 0}
    one = pipeline(prompt, image, reference, 16_000, **options)
    two = pipeline(prompt, image, reference, 16_000, two_stage=True, **options)
    assert one.frames.shape == (9, 64, 64, 3) and two.frames.shape == (9, 128, 128, 3)
    assert one.info["forward_calls"] == 4 and two.info["two_stage"]["forward_calls"] == 3
    assert one.audio.shape[0] == 2 and np.isfinite(one.audio).all() and one.audio.std() > 0


def test_idlora_method_ltx23_options_cards_and_missing_weights(synth_split: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from idlora_bench.data.media import decode
    from idlora_bench.data.splits import load_split
    from reference_impl.idlora.methods import IDLoRAMethod
    from reference_impl.idlora.weights_cards import LTX_BASES, missing_shards

    base = LTX_BASES["ltx-2.3"]
    assert base.id_loras["celebvhq"].source == ("hf:AviadDahan/LTX-2.3-ID-LoRA-CelebVHQ-3K@main:"
                                                "lora_weights.safetensors")
    assert base.upsampler.file == "ltx-2.3-spatial-upscaler-x2-1.1.safetensors"
    assert base.distilled_lora.source == "hf:Lightricks/LTX-2.3@main:ltx-2.3-22b-distilled-lora-384.safetensors"
    assert set(IDLoRAMethod.weights) >= {*base.base, *base.two_stage, *base.id_loras.values()}

    split = load_split("synth")
    method = IDLoRAMethod(model="tiny-random-2.3", steps=2, frames=9)
    assert method.smoke and method.config()["architecture"] == "2.3"
    out = tmp_path / "out.mp4"
    method.generate(split.resolve(split.pairs[0]), out, seed=0)
    media = decode(out)
    assert media.require_video().shape == (9, 64, 64, 3) and media.require_audio().shape[0] == 2

    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(tmp_path / "store"))
    with pytest.raises(WeightsError, match="bench models pull id-lora-2.3-talkvid ltx-2.3"):
        IDLoRAMethod(model="ltx-2.3", checkpoint="talkvid").prepare(split)
    # A folder with every card but a shard named by its index, or with a 2.0 transformer, is refused by name.
    from idlora_bench.checkpoints.weights import record_checksum
    from idlora_bench.core.io import file_sha256

    folder = tmp_path / "store" / "ltx-2.3"
    for card in base.base + base.two_stage + (base.id_loras["talkvid"],):
        card.path().parent.mkdir(parents=True, exist_ok=True)
        card.path().write_text("{}")
    for component in ("transformer", "text_encoder"):
        index = next((folder / component).glob("*.index.json"))
        index.write_text(json.dumps({"weight_map": {"w": f"{component}-00001-of-00001.safetensors"}}))
    (folder / "transformer" / "config.json").write_text(json.dumps({"cross_attn_mod": True}))
    for component in ("connectors", "vae", "audio_vae", "vocoder", "text_encoder"):
        name = "text_encoder-00001-of-00001.safetensors" if component == "text_encoder" else \
            "diffusion_pytorch_model.safetensors"
        (folder / component / name).write_bytes(b"")
    for card in base.base + base.two_stage + (base.id_loras["talkvid"],):
        record_checksum(card.model, card.file, file_sha256(card.path()))
    assert missing_shards(folder) == ["transformer/transformer-00001-of-00001.safetensors"]
    with pytest.raises(WeightsError, match="transformer-00001-of-00001.safetensors is missing"):
        IDLoRAMethod(model="ltx-2.3", checkpoint="talkvid").prepare(split)
    (folder / "transformer" / "transformer-00001-of-00001.safetensors").write_bytes(b"")
    (folder / "transformer" / "config.json").write_text(json.dumps({"cross_attn_mod": False}))
    record_checksum("ltx-2.3", "transformer/config.json", file_sha256(folder / "transformer" / "config.json"))
    assert missing_shards(folder) == []
    with pytest.raises(WeightsError, match="is an LTX-2.0 transformer, not LTX-2.3"):
        IDLoRAMethod(model="ltx-2.3", checkpoint="talkvid").prepare(split)
