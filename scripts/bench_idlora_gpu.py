#!/usr/bin/env python
"""Seconds per ID-LoRA denoising step (five guidance passes), sequential vs batched, and peak GPU memory.

One step = the guided x0 prediction (D+, D-, Dnr, Dstg, Diso; see reference_impl/idlora/guidance.py) plus
the Euler update. "sequential" runs the five passes as five batch-1 forwards; "batched" runs D+, D-, Dstg
and Diso as one batch-4 forward and Dnr (shorter audio sequence) as a batch-1 forward.

Default shape: 512x512, 121 frames at 25 fps -> 16 x 16 x 16 = 4096 video tokens, 121 target audio tokens,
a 5 s reference -> 126 reference tokens, 1024 text tokens; bfloat16.

Weights: the LTX-2 transformer from the model store when ``bench models pull ltx-2`` has fetched it
(``--weights real`` forces it, failing clearly otherwise), else a RANDOM full-size transformer built from
diffusers' LTX-2 defaults (48 blocks, 4096/2048 widths, ~19B parameters; timings do not depend on the
weight values). Needs a CUDA GPU with about 45 GB free; on a machine without one it refuses unless
``--tiny`` (the tiny random transformer on CPU, a smoke check of this script only).

With ``--end-to-end`` it instead runs the whole ``IDLoRAPipeline`` (model store weights: ``bench models pull
ltx-2 ltx-2-spatial-upscaler-x2 ltx-2-distilled-lora``; ``--tiny``: tiny random components on CPU) for
one-stage 512 and two-stage 512 -> 1024, under each offload mode (``none``: everything resident; ``model``:
diffusers' model CPU offload), and prints per configuration: seconds per stage-1 and stage-2 step, prompt
encoding, decode and whole-sample seconds, and peak GPU memory. The prompt is encoded inside the timed call (a
fresh text each run), as for the first pair of a split; later pairs of a split reuse the cache.

    python scripts/bench_idlora_gpu.py                 # GPU, full size
    python scripts/bench_idlora_gpu.py --tiny          # CPU smoke check
    python scripts/bench_idlora_gpu.py --json out.json # also write the figures as JSON
    python scripts/bench_idlora_gpu.py --end-to-end --offload none model --json e2e.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from reference_impl.idlora import positions as pos
from reference_impl.idlora.guidance import GuidanceConfig
from reference_impl.idlora.sampling import (
    DenoiserInputs,
    LatentState,
    TransformerDenoiser,
    euler_step,
    ltx2_sigmas,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny random transformer (CPU smoke check)")
    parser.add_argument("--weights", choices=("auto", "real", "random"), default="auto",
                        help="real: the model store's LTX-2 transformer; random: full-size random; auto: real if present")
    parser.add_argument("--height", type=int, default=None, help="pixels (default 512; 64 with --tiny)")
    parser.add_argument("--width", type=int, default=None, help="pixels (default 512; 64 with --tiny)")
    parser.add_argument("--frames", type=int, default=None, help="video frames, 8k+1 (default 121; 9 with --tiny)")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--reference-seconds", type=float, default=5.0, help="reference clip length (s)")
    parser.add_argument("--text-tokens", type=int, default=None, help="text sequence length (default 1024; 16 tiny)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per mode")
    parser.add_argument("--dtype", default=None, help="bfloat16 (GPU default) or float32 (tiny default)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--end-to-end", action="store_true",
                        help="time the whole pipeline (one-stage 512, two-stage 1024) per offload mode")
    parser.add_argument("--offload", nargs="+", choices=("none", "model"), default=["none", "model"],
                        help="offload modes for --end-to-end")
    parser.add_argument("--samples", type=int, default=2, help="timed samples per configuration (--end-to-end)")
    return parser.parse_args(argv)


def build_transformer(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> tuple[Any, str]:
    from diffusers import LTX2VideoTransformer3DModel

    if args.tiny:
        from reference_impl.idlora.tiny import tiny_transformer

        model = tiny_transformer(0).to(device)
        return (model if dtype == torch.float32 else model.to(dtype)), "tiny-random"
    from idlora_bench.checkpoints.weights import models_dir
    from idlora_bench.core.errors import WeightsError
    from reference_impl.idlora.methods import LTX2_WEIGHTS

    transformer_cards = [w for w in LTX2_WEIGHTS if w.file.startswith("transformer/")]
    present = all(w.status() == "ok" for w in transformer_cards)
    if args.weights == "real" and not present:
        raise WeightsError("the LTX-2 transformer is not in the model store. Fix: bench models pull ltx-2")
    if args.weights != "random" and present:
        model = LTX2VideoTransformer3DModel.from_pretrained(str(models_dir() / "ltx-2"), subfolder="transformer",
                                                            torch_dtype=dtype)
        return model.to(device).eval(), "real (Lightricks/LTX-2)"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            # diffusers' defaults are the LTX-2 (19B) sizes; LTX-2 uses split RoPE in float64.
            model = LTX2VideoTransformer3DModel(rope_type="split", rope_double_precision=True)
    finally:
        torch.set_default_dtype(previous)
    return model.eval(), "random full-size (diffusers LTX-2 defaults)"


def make_inputs(transformer: Any, args: argparse.Namespace, device: torch.device, dtype: torch.dtype,
                generator: torch.Generator) -> tuple[DenoiserInputs, LatentState, LatentState]:
    config = transformer.config
    latent_frames = (args.frames - 1) // 8 + 1
    latent_h, latent_w = args.height // 32, args.width // 32
    n_video = latent_frames * latent_h * latent_w
    n_target = round(args.frames / args.fps * 25)
    n_ref = round(args.reference_seconds * 100) // 4 + 1
    text_width = config.caption_channels

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(device)

    text = randn(1, args.text_tokens, text_width).to(dtype)
    negative = randn(1, args.text_tokens, text_width).to(dtype)
    mask = torch.ones((1, args.text_tokens), device=device)
    video_coords = transformer.rope.prepare_video_coords(1, latent_frames, latent_h, latent_w, device, fps=args.fps)
    audio_coords = pos.audio_coords(n_ref, n_target, device=device)
    inputs = DenoiserInputs(text, text, mask, negative, negative, mask, video_coords, audio_coords, n_ref,
                            latent_frames, latent_h, latent_w, args.fps)
    video_mask = torch.ones((1, n_video), device=device)
    video_mask[:, : latent_h * latent_w] = 0.0  # clean first latent frame
    video = LatentState(randn(1, n_video, config.in_channels), randn(1, n_video, config.in_channels), video_mask)
    audio_mask = torch.cat([torch.zeros((1, n_ref)), torch.ones((1, n_target))], dim=1).to(device)
    n_audio = n_ref + n_target
    audio = LatentState(randn(1, n_audio, config.audio_in_channels), randn(1, n_audio, config.audio_in_channels),
                        audio_mask)
    return inputs, video, audio


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_mode(transformer: Any, inputs: DenoiserInputs, video: LatentState, audio: LatentState,
              guidance: GuidanceConfig, batched: bool, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    denoiser = TransformerDenoiser(transformer, inputs, guidance, batched=batched)
    sigmas = ltx2_sigmas(30)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times: list[float] = []
    first_x0: tuple[torch.Tensor, torch.Tensor] | None = None
    for step in range(args.warmup + args.steps):
        sigma, sigma_next = sigmas[step % 29], sigmas[step % 29 + 1]
        synchronize(device)
        start = time.perf_counter()
        video_x0, audio_x0 = denoiser(video, audio, sigma, step)
        euler_step(video.latents, video_x0, sigma, sigma_next)
        euler_step(audio.latents, audio_x0, sigma, sigma_next)
        synchronize(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
        if first_x0 is None:
            first_x0 = (video_x0.float().cpu(), audio_x0.float().cpu())
    calls = denoiser.forward_calls / (args.warmup + args.steps)
    result: dict[str, Any] = {
        "mode": "batched" if batched else "sequential",
        "seconds_per_step_mean": sum(times) / len(times),
        "seconds_per_step_min": min(times),
        "forwards_per_step": calls,
        "first_step_x0": first_x0,
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def load_pipeline(args: argparse.Namespace, offload: str, device: torch.device, dtype: torch.dtype) -> Any:
    """The full pipeline with the two-stage parts attached, placed for ``offload``."""
    from reference_impl.idlora.pipeline import IDLoRAPipeline

    if args.tiny:
        from reference_impl.idlora.tiny import tiny_distilled_lora_state_dict

        pipeline = IDLoRAPipeline.tiny_random(0)
        pipeline.load_distilled_lora(tiny_distilled_lora_state_dict(pipeline.transformer, 0))
        return pipeline.to(device)
    from reference_impl.idlora.methods import LTX2_BASE
    from reference_impl.idlora.stage2 import load_latent_upsampler

    for card in LTX2_BASE.base + LTX2_BASE.two_stage:
        card.verify()  # a missing file names `bench models pull ...`
    pipeline = IDLoRAPipeline.from_pretrained(str(LTX2_BASE.folder()), torch_dtype=dtype)
    pipeline.set_latent_upsampler(load_latent_upsampler(LTX2_BASE.upsampler.verify(), dtype=dtype))
    pipeline.load_distilled_lora(LTX2_BASE.distilled_lora.verify())
    if offload == "model":
        pipeline.enable_model_cpu_offload(device=device)
        return pipeline
    return pipeline.to(device)


def time_sample(pipeline: Any, args: argparse.Namespace, two_stage: bool, index: int, device: torch.device,
                stage1_steps: int) -> dict[str, float | None]:
    """One timed sample: prompt encoding, stage-1 and stage-2 step times, decode and total seconds."""
    import numpy as np

    timers: dict[str, float] = {"encode_s": 0.0, "decode_s": 0.0}
    originals = {name: getattr(pipeline, name) for name in ("encode_text", "decode_video", "decode_audio")}

    def timed(name: str, key: str) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            synchronize(device)
            start = time.perf_counter()
            out = originals[name](*a, **k)
            synchronize(device)
            timers[key] += time.perf_counter() - start
            return out
        return wrapper

    pipeline.encode_text = timed("encode_text", "encode_s")
    pipeline.decode_video = timed("decode_video", "decode_s")
    pipeline.decode_audio = timed("decode_audio", "decode_s")
    stamps: list[float] = []

    def on_step(step: int, video: Any, audio: Any) -> None:
        synchronize(device)
        stamps.append(time.perf_counter())

    rng = np.random.default_rng(index)
    image = rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    reference = (0.1 * rng.standard_normal(int(16_000 * args.reference_seconds))).astype(np.float32)
    prompt = f"[VISUAL]: a person talks, take {index}. [SPEECH]: hello there [SOUNDS]: calm voice"
    blocks = len(pipeline.transformer.transformer_blocks)
    guidance = GuidanceConfig(stg_blocks=(29 if blocks > 29 else blocks - 1,))
    try:
        synchronize(device)
        start = time.perf_counter()
        pipeline(prompt, image, reference, 16_000, height=args.height, width=args.width, num_frames=args.frames,
                 frame_rate=args.fps, num_inference_steps=stage1_steps, guidance=guidance, seed=index,
                 two_stage=two_stage, callback=on_step)
        synchronize(device)
        total = time.perf_counter() - start
    finally:
        for name in originals:
            delattr(pipeline, name)
    steps = np.diff(stamps)
    stage1 = steps[: stage1_steps - 1]  # the first step's stamp has no predecessor inside the loop
    stage2 = steps[stage1_steps:] if two_stage else np.zeros(0)
    return {"total_s": total, **timers, "stage1_step_s": float(stage1.mean()) if stage1.size else None,
            "stage2_step_s": float(stage2.mean()) if stage2.size else None}


def end_to_end(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> list[dict[str, Any]]:
    """Per offload mode, one-stage and two-stage samples (the first one untimed as warm-up)."""
    rows: list[dict[str, Any]] = []
    stage1_steps = 4 if args.tiny else 30
    for offload in args.offload:
        if device.type != "cuda" and offload == "model":
            continue  # model offload needs an accelerator
        if device.type == "cuda":
            torch.cuda.empty_cache()
        pipeline = load_pipeline(args, offload, device, dtype)
        for two_stage in (False, True):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            samples = [time_sample(pipeline, args, two_stage, i, device, stage1_steps)
                       for i in range(1 + args.samples)][1:]
            row: dict[str, Any] = {
                "offload": offload, "two_stage": two_stage,
                "output": f"{args.width * (2 if two_stage else 1)}x{args.height * (2 if two_stage else 1)}"
                          f"x{args.frames}",
                **{key: (None if samples[0][key] is None else sum(s[key] for s in samples) / len(samples))  # type: ignore[misc]
                   for key in samples[0]},
            }
            if device.type == "cuda":
                row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            rows.append(row)
            stage2 = "-" if row["stage2_step_s"] is None else f"{row['stage2_step_s']:.3f}"
            print(f"  offload={offload:<5} {'two-stage' if two_stage else 'one-stage':>9} {row['output']:>15}: "
                  f"{row['total_s']:.2f} s/sample (prompt {row['encode_s']:.2f} s, stage-1 "
                  f"{row['stage1_step_s']:.3f} s/step, stage-2 {stage2} s/step, decode "
                  f"{row['decode_s']:.2f} s)" + (f", peak {row['peak_memory_gib']:.1f} GiB"
                                                 if "peak_memory_gib" in row else ""))
        del pipeline
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    has_cuda = torch.cuda.is_available()
    if not args.tiny and not has_cuda:
        print("bench_idlora_gpu: no CUDA GPU here. The full-size LTX-2 benchmark needs one (about 45 GB of GPU "
              "memory); run with --tiny for a CPU smoke check of the script.", file=sys.stderr)
        return 2
    device = torch.device("cuda" if has_cuda and not args.tiny else "cpu")
    dtype = getattr(torch, args.dtype or ("float32" if args.tiny else "bfloat16"))
    args.height = args.height or (64 if args.tiny else 512)
    args.width = args.width or (64 if args.tiny else 512)
    args.frames = args.frames or (9 if args.tiny else 121)
    args.text_tokens = args.text_tokens or (16 if args.tiny else 1024)
    if args.tiny:
        args.reference_seconds = min(args.reference_seconds, 1.0)
    torch.manual_seed(0)
    if args.end_to_end:
        device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(f"ID-LoRA end to end, {device_name}, {'tiny random' if args.tiny else 'LTX-2 (model store)'}, "
              f"{str(dtype).removeprefix('torch.')}, stage 1 {args.width}x{args.height}x{args.frames}")
        rows = end_to_end(args, device, dtype)
        if args.json:
            args.json.write_text(json.dumps({"device": device_name, "rows": rows, "torch": torch.__version__},
                                            indent=2))
        return 0
    build_start = time.perf_counter()
    with torch.no_grad():
        transformer, weights = build_transformer(args, device, dtype)
    build_s = time.perf_counter() - build_start
    blocks = len(transformer.transformer_blocks)
    guidance = GuidanceConfig(stg_blocks=(29 if blocks > 29 else blocks - 1,))
    generator = torch.Generator("cpu").manual_seed(0)
    inputs, video, audio = make_inputs(transformer, args, device, dtype, generator)
    results = [time_mode(transformer, inputs, video, audio, guidance, batched, args, device)
               for batched in (False, True)]
    sequential, batched = results
    video_diff = (sequential["first_step_x0"][0] - batched["first_step_x0"][0]).abs().max().item()
    audio_diff = (sequential["first_step_x0"][1] - batched["first_step_x0"][1]).abs().max().item()
    parameters = sum(p.numel() for p in transformer.parameters())
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "weights": weights,
        "parameters": parameters,
        "dtype": str(dtype).removeprefix("torch."),
        "shape": {"height": args.height, "width": args.width, "frames": args.frames, "fps": args.fps,
                  "video_tokens": int(video.latents.shape[1]), "reference_tokens": inputs.num_reference_tokens,
                  "target_audio_tokens": int(audio.latents.shape[1]) - inputs.num_reference_tokens,
                  "text_tokens": args.text_tokens},
        "guidance": guidance.as_dict(),
        "passes": [p.value for p in guidance.passes(True)],
        "build_seconds": build_s,
        "timed_steps": args.steps,
        "results": [{k: v for k, v in r.items() if k != "first_step_x0"} for r in results],
        "speedup_batched": sequential["seconds_per_step_mean"] / batched["seconds_per_step_mean"],
        "batched_vs_sequential_max_abs_diff": {"video_x0": video_diff, "audio_x0": audio_diff},
        "torch": torch.__version__,
    }
    print(f"ID-LoRA denoising step, {report['device']}, {weights}, {parameters / 1e9:.2f}B parameters, "
          f"{report['dtype']}")
    shape = report["shape"]
    print(f"shape {shape['width']}x{shape['height']}x{shape['frames']} @ {args.fps:g} fps: {shape['video_tokens']} "
          f"video tokens, {shape['reference_tokens']} + {shape['target_audio_tokens']} audio tokens, "
          f"{shape['text_tokens']} text tokens; passes {', '.join(report['passes'])}")
    for r in report["results"]:
        memory = f", peak {r['peak_memory_gib']:.2f} GiB" if "peak_memory_gib" in r else ""
        print(f"  {r['mode']:>10}: {r['seconds_per_step_mean']:.4f} s/step (min {r['seconds_per_step_min']:.4f}), "
              f"{r['forwards_per_step']:.0f} forwards/step{memory}")
    print(f"  batched speed-up x{report['speedup_batched']:.2f}; max |batched - sequential| x0: "
          f"video {video_diff:.3g}, audio {audio_diff:.3g}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
