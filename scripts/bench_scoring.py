"""Time scoring: the runner (decode once, models loaded once, content-addressed cache) against a naive loop
that, for every pair and every metric, loads the metric's model and decodes both files again.

Prints seconds and files per second per metric and overall, and the naive/runner ratio, for a cold cache
and for a warm one (everything already cached). Outputs scored: the targets of the split (the ``gt``
method) plus ``--synthetic N`` extra outputs made by re-encoding targets with a small brightness change
(distinct content, same faces and speech).

    .venv/bin/python scripts/bench_scoring.py --split demo --profile offline [--synthetic 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from idlora_bench import runner
from idlora_bench.data.media import decode, write_mp4
from idlora_bench.data.splits import load_split
from idlora_bench.methods import build_method
from idlora_bench.metrics import build_profile


def make_outputs(split_name: str, folder: Path, synthetic: int) -> list[tuple[str, Path]]:
    """``(pair_id, output path)``: one gt copy per pair, plus ``synthetic`` re-encoded variants."""
    split = load_split(split_name)
    folder.mkdir(parents=True, exist_ok=True)
    outputs = []
    for pair in split.pairs:
        path = folder / f"{pair.pair_id}.mp4"
        build_method("gt").generate(split.resolve(pair), path, seed=0)
        outputs.append((pair.pair_id, path))
    for index in range(synthetic):
        pair = split.pairs[index % len(split.pairs)]
        media = decode(split.media_path(pair.target))
        frames = np.clip(media.frames.astype(np.int16) + 1 + index, 0, 255).astype(np.uint8)
        path = folder / "synthetic" / f"{pair.pair_id}-{index}.mp4"
        write_mp4(path, frames, media.fps, media.audio, media.sample_rate)
        outputs.append((pair.pair_id, path))
    return outputs


def timed_runner(split_name: str, outputs: list[tuple[str, Path]], profile: str, device: str,
                 cache: Path) -> tuple[float, dict[str, float]]:
    """Score every output through the runner's work units; per-metric extract seconds included."""
    split = load_split(split_name)
    per_metric: dict[str, float] = defaultdict(float)
    started = time.perf_counter()
    metrics = runner._prepare_metrics(profile, device, None)
    for metric in metrics:
        original = metric.extract

        def timed(media, _original=original, _name=metric.name):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return _original(media)
            finally:
                per_metric[_name] += time.perf_counter() - t0

        metric.extract = timed  # type: ignore[method-assign]
    with runner.FeatureCache(cache) as feature_cache:
        ctx = runner.ScoringContext(split, metrics, feature_cache, "bench", "bench", profile)
        for pair_id, path in outputs:
            rows = runner.score_pair(ctx, split.pair(pair_id), path)
            assert all(row.status == "ok" for row in rows), [row.reason for row in rows if row.reason]
    return time.perf_counter() - started, dict(per_metric)


def timed_naive(split_name: str, outputs: list[tuple[str, Path]], profile: str, device: str) -> dict[str, float]:
    """For each output and metric: build + load the metric, decode generated and target, score."""
    split = load_split(split_name)
    per_metric: dict[str, float] = defaultdict(float)
    for pair_id, path in outputs:
        pair = split.pair(pair_id)
        for metric in build_profile(profile, device=device):
            t0 = time.perf_counter()
            fresh = type(metric)(device=device)
            fresh.load()
            generated = decode(path)
            target = decode(split.media_path(pair.target)) if fresh.uses_target else None
            fresh.score(generated, target, pair)
            per_metric[metric.name] += time.perf_counter() - t0
    return dict(per_metric)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="demo")
    parser.add_argument("--profile", default="offline")
    parser.add_argument("--synthetic", type=int, default=0, help="extra re-encoded outputs to score")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        outputs = make_outputs(args.split, Path(tmp) / "outputs", args.synthetic)
        n = len(outputs)
        cache = Path(tmp) / "cache.sqlite"
        cold_total, cold = timed_runner(args.split, outputs, args.profile, args.device, cache)
        warm_total, _ = timed_runner(args.split, outputs, args.profile, args.device, cache)
        naive = {} if args.skip_naive else timed_naive(args.split, outputs, args.profile, args.device)

    print(f"split {args.split}, profile {args.profile}, device {args.device}: {n} outputs "
          f"({args.synthetic} synthetic), each scored against its target")
    print(f"{'metric':34s} {'runner extract s':>16s} {'outputs/s':>10s} {'naive s':>9s} {'naive/runner':>13s}")
    for name, seconds in cold.items():
        naive_s = naive.get(name, float("nan"))
        print(f"{name:34s} {seconds:16.2f} {n / seconds:10.2f} {naive_s:9.2f} {naive_s / seconds:13.2f}")
    naive_total = sum(naive.values()) if naive else float("nan")
    print(f"{'overall, cold cache (incl. loading)':34s} {cold_total:16.2f} {n / cold_total:10.2f} "
          f"{naive_total:9.2f} {naive_total / cold_total:13.2f}")
    print(f"{'overall, warm cache':34s} {warm_total:16.2f} {n / warm_total:10.2f} "
          f"{naive_total:9.2f} {naive_total / warm_total:13.2f}")


if __name__ == "__main__":
    main()
