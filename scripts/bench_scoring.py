"""Time scoring.

Default mode: the runner (decode once, models loaded once, content-addressed cache) against a naive loop
that, for every pair and every metric, loads the metric's model and decodes both files again.
Prints seconds and files per second per metric and overall, and the naive/runner ratio, for a cold cache
and for a warm one (everything already cached). Outputs scored: the targets of the split (the ``gt``
method) plus ``--synthetic N`` extra outputs made by re-encoding targets with a small brightness change
(distinct content, same faces and speech).

    .venv/bin/python scripts/bench_scoring.py --split demo --profile offline [--synthetic 8] [--device cpu]

``--resolution WxH`` mode: real-size throughput, old implementation against new. Builds synthetic copies of the
demo split's target clips at W wide x H high (each frame scaled to the width, edge rows repeated above and below),
30 fps, 121 frames, 44.1 kHz stereo audio (:func:`make_resolution_copy`), then per file: decodes once (timed) and
extracts every metric of the profile as the runner does (the new implementation: one shared face pass per file),
then again with the old implementation of each face metric whose code changed (:data:`LEGACY`: the version-1
per-frame loops, kept here and in ``tests/test_face_speed.py`` only, for this comparison). Prints seconds per file
per metric, old, new and old/new, the profile total per file (with and without decoding), the old and new values of
the changed metrics, and the metrics it skipped with the reason (missing weights or packages).

    .venv/bin/python scripts/bench_scoring.py --resolution 1080x1920 --profile offline [--limit 2]

The old lip motion costs about 1 s per 1080x1920 frame (2 minutes per file) on 2 CPU cores: ``--limit N`` scores
the first N copies (default 2; 0 for all 16).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from idlora_bench.core.errors import SampleFailure
from idlora_bench.data.media import DecodedMedia, decode, resample_audio, write_mp4
from idlora_bench.data.splits import load_split
from idlora_bench.metrics import METRICS, PROFILES, build_profile
from idlora_bench.metrics.base import Features, Metric
from idlora_bench.metrics.mouth import lip_motion_features
from idlora_bench.metrics.similarity import mean_then_normalise
from idlora_bench.models.face_track import clear_face_passes


def make_outputs(split_name: str, folder: Path, synthetic: int) -> list[tuple[str, Path]]:
    """``(pair_id, output path)``: one gt copy per pair, plus ``synthetic`` re-encoded variants."""
    from idlora_bench.methods import build_method

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
    from idlora_bench import runner  # imported here: tests import this script's old implementations without it

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


# ------------------------------------------------------------------------------ old implementations (version 1)
def legacy_lip_motion_dlib(metric: Metric, media: DecodedMedia) -> Features:
    """``lip_motion.dlib`` version 1: every frame, the largest HOG face at full resolution (upsample 1), landmarks on
    the whole frame upscaled 2x (bicubic). ``metric``: a loaded :class:`LipMotionDlib` (its models are reused)."""
    frames = media.require_video()
    tracks, missing = [], []
    for index, frame in enumerate(frames):
        box = metric._faces.largest_face(frame)
        if box is None:
            missing.append(index)
            continue
        tracks.append(metric._faces.landmarks(frame, box, upscale=2))
    return lip_motion_features(tracks, missing, len(frames), metric.params["min_face_fraction"], media.path.name)


def legacy_face_similarity_dlib(metric: Metric, media: DecodedMedia) -> Features:
    """``face_similarity.dlib`` version 1: on frames ``round(linspace(0, T-1, 5))``, the largest HOG face at full
    resolution and the descriptor of the whole frame (landmarks predicted on it unscaled)."""
    indices, frames = media.sample_frames(metric.params["num_frames"])
    descriptors, missing = [], []
    for index, frame in zip(indices.tolist(), frames):
        box = metric._faces.largest_face(frame)
        if box is None:
            missing.append(index)
            continue
        descriptors.append(metric._faces.descriptor(frame, box))
    if not descriptors:
        raise SampleFailure("no_face", f"no face in any of frames {indices.tolist()} of {media.path.name}")
    return {"embedding": mean_then_normalise(np.stack(descriptors)), "frames": indices.astype(np.int64),
            "frames_without_face": np.asarray(missing, np.int64)}


def legacy_lip_motion_insightface(metric: Metric, media: DecodedMedia) -> Features:
    """``lip_motion.insightface`` version 1: SCRFD on every frame, 1k3d68 one face per call."""
    frames = media.require_video()
    tracks, missing = [], []
    for index, frame in enumerate(frames):
        face = metric._models.largest_face(frame)
        if face is None:
            missing.append(index)
            continue
        tracks.append(metric._models.landmarks68(frame, face))
    return lip_motion_features(tracks, missing, len(frames), metric.params["min_face_fraction"], media.path.name)


def legacy_face_similarity_arcface(metric: Metric, media: DecodedMedia) -> Features:
    """``face_similarity.arcface`` (and ``_authors``) before the shared face pass: SCRFD on each sampled frame
    (same numbers as now; only the detections are no longer shared)."""
    frames = media.require_video()
    indices = metric.frame_indices(len(frames))
    embeddings, missing = [], []
    for index in indices.tolist():
        face = metric._models.largest_face(frames[index])
        if face is None:
            missing.append(index)
            continue
        embeddings.append(metric._models.embedding(frames[index], face))
    if not embeddings:
        raise SampleFailure("no_face", f"no face in any of frames {indices.tolist()} of {media.path.name}")
    return {"embedding": mean_then_normalise(np.stack(embeddings)), "frames": indices.astype(np.int64),
            "frames_without_face": np.asarray(missing, np.int64)}


LEGACY: dict[str, Callable[[Metric, DecodedMedia], Features]] = {
    "lip_motion.dlib": legacy_lip_motion_dlib,
    "face_similarity.dlib": legacy_face_similarity_dlib,
    "lip_motion.insightface": legacy_lip_motion_insightface,
    "face_similarity.arcface": legacy_face_similarity_arcface,
    "face_similarity.arcface_authors": legacy_face_similarity_arcface,
}
"""Metric name -> its implementation before the face pass (the other metrics' code did not change)."""


# ------------------------------------------------------------------------------ real-size copies
def make_resolution_copy(source: Path, out: Path, width: int = 1080, height: int = 1920, fps: float = 30.0,
                         frames: int = 121, sample_rate: int = 44_100) -> Path:
    """A ``width`` x ``height`` copy of a clip: each frame scaled (bicubic) to ``width`` wide, the edge rows repeated
    above and below (or the middle rows kept) to ``height``; re-timed to ``fps`` (nearest source frame), cut to
    ``frames`` frames; audio resampled to ``sample_rate`` Hz, stereo, cut to the video's duration."""
    import cv2

    media = decode(source)
    source_frames = media.require_video()
    assert media.fps and media.audio is not None and media.sample_rate
    picks = np.minimum(np.round(np.arange(frames) * media.fps / fps).astype(int), len(source_frames) - 1)
    scaled_height = max(2, round(source_frames.shape[1] * width / source_frames.shape[2]))
    video = np.empty((frames, height, width, 3), np.uint8)
    for n, index in enumerate(picks):
        big = cv2.resize(source_frames[index], (width, scaled_height), interpolation=cv2.INTER_CUBIC)
        if scaled_height >= height:
            top = (scaled_height - height) // 2
            video[n] = big[top:top + height]
        else:
            top = (height - scaled_height) // 2
            video[n] = cv2.copyMakeBorder(big, top, height - scaled_height - top, 0, 0, cv2.BORDER_REPLICATE)
    audio = resample_audio(media.audio, media.sample_rate, sample_rate)[:, :int(round(frames / fps * sample_rate))]
    stereo = np.repeat(audio[:1], 2, axis=0) if audio.shape[0] == 1 else audio[:2]
    return write_mp4(out, video, fps, stereo, sample_rate)


def usable_metrics(profile: str, device: str) -> tuple[list[Metric], dict[str, str]]:
    """The profile's metrics that can run here (loaded), and ``name -> reason`` for those skipped."""
    usable, skipped = [], {}
    for name in PROFILES.get(profile):
        cls = METRICS.get(name)
        missing = cls.missing_packages()
        bad = [w for w in cls.weights if w.status() != "ok"]
        if missing:
            skipped[name] = "packages not installed: " + ", ".join(missing.values())
        elif bad:
            skipped[name] = (f"weights {', '.join(f'{w.file} ({w.status()})' for w in bad)}; fix: "
                             + "; ".join(sorted({w.fix for w in bad})))
        else:
            metric = cls(device=device)
            metric.load()
            usable.append(metric)
    return usable, skipped


def _timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    try:
        result = function()
    except SampleFailure as failure:
        result = failure
    return time.perf_counter() - started, result


def time_file(path: Path, metrics: list[Metric]) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """Seconds for one file: ``(new, old, values)``; ``new``/``old``: name -> seconds (``decode`` included),
    ``values``: name -> (old features, new features) of the metrics in :data:`LEGACY`."""
    clear_face_passes()
    decode_s, media = _timed(lambda: decode(path))
    new, old, values = {"decode": decode_s}, {"decode": decode_s}, {}
    for metric in metrics:  # profile order, as the runner: the first face metric pays for the shared detections
        new[metric.name], features = _timed(lambda metric=metric: metric.extract(media))
        values[metric.name] = [None, features]
    for metric in metrics:
        if metric.name in LEGACY:
            old[metric.name], values[metric.name][0] = _timed(lambda metric=metric: LEGACY[metric.name](metric, media))
        else:
            old[metric.name] = new[metric.name]
            del values[metric.name]
    return new, old, values


def _value(features: Any) -> str:
    if isinstance(features, SampleFailure):
        return f"failed ({features.code})"
    if "lip_motion_x100" in features:
        return f"{features['lip_motion_x100']:.3f}"
    return f"|emb|={np.linalg.norm(features['embedding']):.3f}"


def _values_line(old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict) and "embedding" in old and "embedding" in new:
        cosine = float(np.dot(old["embedding"], new["embedding"]))
        return f"cos(old, new embedding) {cosine:.4f}"
    return f"old {_value(old)} -> new {_value(new)}"


def resolution_mode(resolution: str, profile: str, device: str, limit: int) -> None:
    """``--resolution WxH``: build the copies, time old and new per file and metric, print the table."""
    width, height = (int(part) for part in resolution.lower().split("x"))
    split = load_split("demo")
    targets = list(dict.fromkeys(split.media_path(pair.target) for pair in split.pairs))
    targets = targets[:limit] if limit > 0 else targets
    metrics, skipped = usable_metrics(profile, device)
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    if not metrics:
        print(f"no metric of profile {profile!r} can run here: nothing timed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for metric in metrics:  # warm-up (first-call costs: torch, model caches) on a small demo clip, untimed
            _timed(lambda metric=metric: metric.extract(decode(targets[0])))
        copies = []
        for source in targets:
            started = time.perf_counter()
            out = Path(tmp) / f"{source.stem}-{width}x{height}.mp4"
            copies.append(make_resolution_copy(source, out, width, height))
            print(f"built {copies[-1].name} in {time.perf_counter() - started:.1f} s", flush=True)
        per_file = [time_file(path, metrics) for path in copies]
    n = len(per_file)
    print(f"\nresolution {width}x{height}, 30 fps, 121 frames, 44.1 kHz stereo; profile {profile}; device {device}; "
          f"{n} file(s): {', '.join(path.stem for path in targets)}")
    print(f"{'seconds per file':40s} {'old':>9s} {'new':>9s} {'old/new':>9s}")
    for name in ["decode"] + [metric.name for metric in metrics]:
        old = sum(f[1][name] for f in per_file) / n
        new = sum(f[0][name] for f in per_file) / n
        note = "  (shared, once per file)" if name == "decode" else "" if name in LEGACY else "  (code unchanged)"
        print(f"{name:40s} {old:9.3f} {new:9.3f} {old / new:9.1f}{note}")
    for label, keys in (("profile total (metrics)", [m.name for m in metrics]),
                        ("profile total incl. decode", ["decode"] + [m.name for m in metrics])):
        old = sum(f[1][k] for f in per_file for k in keys) / n
        new = sum(f[0][k] for f in per_file for k in keys) / n
        print(f"{label:40s} {old:9.3f} {new:9.3f} {old / new:9.1f}")
    print("\nvalues, old -> new (per file):")
    for (_, _, values), path in zip(per_file, targets):
        for name, (old_features, new_features) in values.items():
            print(f"  {path.stem:18s} {name:32s} {_values_line(old_features, new_features)}")
    for name in skipped:
        print(f"skipped {name} (reason above)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="demo")
    parser.add_argument("--profile", default="offline")
    parser.add_argument("--synthetic", type=int, default=0, help="extra re-encoded outputs to score")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--resolution", help="WxH: time old vs new face code on real-size copies of the demo clips")
    parser.add_argument("--limit", type=int, default=2, help="--resolution: number of copies (0: all)")
    args = parser.parse_args()
    if args.resolution:
        resolution_mode(args.resolution, args.profile, args.device, args.limit)
        return

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
