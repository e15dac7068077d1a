"""The runner: generate what is missing -> decode each file once -> score through the cache -> results.

Work units are independent and idempotent, so any executor (a loop here, a cluster later) can run them in
any order, any number of times:

- :func:`generate_one` (pair): writes ``videos/<pair_id>.mp4`` atomically, then its record
  ``videos/<pair_id>.json``; an output whose record matches the method config and seed is reused.
- :func:`score_pair` (pair): decodes the generated and target files at most once each, and reads or
  computes every metric's features through the content-addressed :class:`FeatureCache`.

A run folder (``runs/<split>/<method>-seed<seed>/`` by default) holds ``videos/``, and per metric profile
``results-<profile>.jsonl`` / ``.csv`` (one row per pair x metric, with status and reason),
``summary-<profile>.csv`` and ``manifest-<profile>.json`` (provenance).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from idlora_bench.core import provenance
from idlora_bench.core.errors import (
    BenchError,
    MediaError,
    SampleFailure,
    ValidationError,
    WeightsError,
)
from idlora_bench.core.io import file_sha256
from idlora_bench.core.types import Pair, RunManifest, SampleResult
from idlora_bench.data.media import DecodedMedia, MediaInfo, decode, probe
from idlora_bench.data.splits import ResolvedPair, Split, load_split
from idlora_bench.methods import Method, build_method
from idlora_bench.metrics import Metric, build_profile
from idlora_bench.metrics.base import Features
from idlora_bench.report.stats import summarise
from idlora_bench.store.cache import FeatureCache, default_cache_path
from idlora_bench.store.run_files import (
    GenerationRecord,
    RunFiles,
    read_generation_record,
    results_frame,
    write_generation_record,
    write_run_files,
)

log = logging.getLogger("idlora_bench")

MIN_OUTPUT_DURATION_RATIO = 0.5
"""An output shorter than this share of its target's duration fails every metric with ``too_short``."""

ProgressFactory = Callable[[Iterable[Any], str, int], Iterable[Any]]


def no_progress(items: Iterable[Any], label: str, total: int) -> Iterable[Any]:
    return items


@dataclass
class RunOutcome:
    run_dir: Path
    results: pd.DataFrame
    summary: pd.DataFrame
    manifest: RunManifest
    counts: dict[str, int] = field(default_factory=dict)


def default_run_dir(split: str, method: str, seed: int, root: Path = Path("runs")) -> Path:
    return root / split / f"{method}-seed{seed}"


# ----------------------------------------------------------------------------------------------- generation
def generate_one(method: Method, item: ResolvedPair, videos_dir: Path, seed: int) -> tuple[GenerationRecord, bool]:
    """Make sure ``videos/<pair_id>.mp4`` exists for this method config and seed.

    Returns ``(record, reused)``; a new output's sha256 is in the record (hashed once, here). A generation error
    is recorded (status failed, with its reason), never raised, so the other pairs go on.
    """
    out_path = videos_dir / f"{item.pair_id}.mp4"
    record_path = videos_dir / f"{item.pair_id}.json"
    config_sha = method.config_sha256()
    record = read_generation_record(record_path)
    if record is not None:
        if record.config_sha256 != config_sha or record.seed != seed or record.method != method.name:
            raise ValidationError(
                f"{record_path}: this output was made by another method config or seed "
                f"({record.method}, seed {record.seed}); use another --out folder"
            )
        if record.status == "ok" and out_path.is_file():
            return record, True
    started = time.perf_counter()
    fields = {"pair_id": item.pair_id, "method": method.name, "config_sha256": config_sha, "seed": seed}
    try:
        details = method.generate(item, out_path, seed) or {}
        if not out_path.is_file():
            raise RuntimeError(f"method {method.name!r} wrote no file at {out_path}")
        record = GenerationRecord(**fields, status="ok", sha256=file_sha256(out_path),
                                  seconds=time.perf_counter() - started, details=details)
    except (BenchError, OSError, RuntimeError, ValueError) as exc:
        log.warning("generation failed for %s: %s", item.pair_id, exc)
        record = GenerationRecord(**fields, status="failed", reason=f"generation_error: {type(exc).__name__}: {exc}",
                                  seconds=time.perf_counter() - started,
                                  details=getattr(exc, "details", None) or {})
    write_generation_record(record_path, record)
    return record, False


# ----------------------------------------------------------------------------------------------- scoring
class _DecodedLRU:
    """Keeps the last few decoded files so a target shared by several pairs is decoded once per run."""

    def __init__(self, size: int = 4) -> None:
        self._items: OrderedDict[str, DecodedMedia] = OrderedDict()
        self._size = size
        self.decoded = 0

    def get(self, path: Path, sha256: str) -> DecodedMedia:
        if sha256 in self._items:
            self._items.move_to_end(sha256)
            return self._items[sha256]
        media = decode(path, sha256=sha256)
        self.decoded += 1
        self._items[sha256] = media
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return media


@dataclass
class ScoringContext:
    """What scoring a pair needs; built once per run."""

    split: Split
    metrics: list[Metric]
    cache: FeatureCache
    run_id: str
    method: str
    profile: str
    decoded: _DecodedLRU = field(default_factory=_DecodedLRU)
    target_sha256: dict[str, str] = field(default_factory=dict)
    target_info: dict[str, MediaInfo] = field(default_factory=dict)
    computed: int = 0

    def target_probe(self, path: Path) -> MediaInfo:
        """Stream durations of a target file (read once per run)."""
        if str(path) not in self.target_info:
            self.target_info[str(path)] = probe(path)
        return self.target_info[str(path)]

    def target_hash(self, pair: Pair) -> str:
        """sha256 of the target file as it is on disk now (not as the pairs file claims)."""
        path = self.split.media_path(pair.target)
        key = str(path)
        if key not in self.target_sha256:
            self.target_sha256[key] = file_sha256(path)
        return self.target_sha256[key]


def _features(ctx: ScoringContext, metric: Metric, path: Path, sha256: str) -> tuple[Features | None, str | None]:
    """Features of one file for one metric: from the cache, or decode (once) + extract + store.

    Returns ``(features, None)`` or ``(None, reason)``.
    """
    key = metric.cache_key(sha256)
    cached = ctx.cache.get(key)
    if cached is not None:
        return (cached.features, None) if cached.status == "ok" else (None, cached.reason)
    try:
        media = ctx.decoded.get(path, sha256)
    except MediaError as exc:
        return None, f"decode_error: {exc}"
    metric.load()
    try:
        features = metric.extract(media)
    except (SampleFailure, MediaError) as exc:  # deterministic for this file: cached with its reason
        reason = str(exc) if isinstance(exc, SampleFailure) else f"{exc.code}: {exc}"
        ctx.cache.put_failure(key, metric.name, metric.version, sha256, reason)
        return None, reason
    except Exception as exc:  # a bug or a transient error: recorded, not cached, traceback logged
        log.error("metric %s failed on %s:\n%s", metric.name, path, traceback.format_exc())
        return None, f"metric_error: {type(exc).__name__}: {exc}"
    ctx.cache.put_ok(key, metric.name, metric.version, sha256, features)
    ctx.computed += 1
    return features, None


def _row(ctx: ScoringContext, pair: Pair, metric: Metric, *, value: float | None = None, reason: str | None = None,
         generated_sha256: str | None = None, target_sha256: str | None = None,
         details: dict[str, Any] | None = None) -> SampleResult:
    return SampleResult(
        run_id=ctx.run_id, method=ctx.method, split=ctx.split.name, pair_id=pair.pair_id,
        speaker_id=pair.speaker_id, kind=pair.kind, profile=ctx.profile, metric=metric.family,
        metric_impl=metric.name, metric_version=metric.version, direction=metric.direction,
        status="ok" if reason is None else "failed", value=value if reason is None else None, reason=reason,
        generated_sha256=generated_sha256, target_sha256=target_sha256, details=details or {},
    )


def score_pair(ctx: ScoringContext, pair: Pair, generated_path: Path | None,
               generation_failure: str | None = None, generated_sha256: str | None = None) -> list[SampleResult]:
    """All metric rows of one pair. Never raises for a bad sample: it becomes failure rows.

    ``generated_sha256``: the output's hash when the caller has just computed it (a fresh generation); otherwise
    the file is hashed here, once.
    """
    if generation_failure is not None:
        return [_row(ctx, pair, metric, reason=generation_failure) for metric in ctx.metrics]
    assert generated_path is not None
    if not generated_path.is_file():
        reason = f"missing_output: {generated_path} does not exist"
        return [_row(ctx, pair, metric, reason=reason) for metric in ctx.metrics]
    generated_sha = generated_sha256 or file_sha256(generated_path)
    target_path = ctx.split.media_path(pair.target)
    target_sha = ctx.target_hash(pair) if target_path.is_file() else None
    hashes = {"generated_sha256": generated_sha, "target_sha256": target_sha}
    durations, length_failure = _durations(ctx, generated_path, target_path)
    if length_failure is not None:
        return [_row(ctx, pair, metric, reason=length_failure, details=durations, **hashes) for metric in ctx.metrics]
    rows = []
    for metric in ctx.metrics:
        generated, reason = _features(ctx, metric, generated_path, generated_sha)
        if reason is not None:
            rows.append(_row(ctx, pair, metric, reason=reason, details=durations, **hashes))
            continue
        target: Features | None = None
        if metric.uses_target:
            if target_sha is None:
                target_reason: str | None = f"target missing: {target_path} does not exist"
            else:
                target, target_reason = _features(ctx, metric, target_path, target_sha)
            if target_reason is not None and metric.requires_target:
                rows.append(_row(ctx, pair, metric, reason=f"target_{target_reason}", details=durations, **hashes))
                continue
        assert generated is not None
        try:
            score = metric.compare(generated, target, pair)
        except SampleFailure as exc:
            rows.append(_row(ctx, pair, metric, reason=str(exc), details=durations, **hashes))
            continue
        rows.append(_row(ctx, pair, metric, value=score.value, details={**durations, **score.details}, **hashes))
    return rows


def _durations(ctx: ScoringContext, generated_path: Path, target_path: Path) -> tuple[dict[str, float], str | None]:
    """Output and target durations (seconds, from the containers) for every row's details, and the ``too_short`` /
    ``decode_error`` reason that fails every metric of the pair when the output cannot stand for its target: an
    output under ``MIN_OUTPUT_DURATION_RATIO`` of the target's duration is not scored (a WER of 1.0 beside
    ``no_face`` rows would describe the clip's length, not its quality)."""
    try:
        generated = probe(generated_path).duration_s
    except MediaError as exc:
        return {}, f"decode_error: {exc}"
    durations = {"generated_duration_s": round(generated, 4)}
    if not target_path.is_file():
        return durations, None
    target = ctx.target_probe(target_path).duration_s
    durations["target_duration_s"] = round(target, 4)
    if target > 0 and generated < MIN_OUTPUT_DURATION_RATIO * target:
        return durations, (f"too_short: {generated:.2f} s vs target {target:.2f} s (under "
                           f"{MIN_OUTPUT_DURATION_RATIO:.0%} of the target's duration)")
    return durations, None


# ----------------------------------------------------------------------------------------------- runs
def _manifest(run_id: str, method_name: str, method_config: dict[str, Any], smoke: bool, seed: int, split: Split,
              profile: str, device: str, metrics: list[Metric]) -> RunManifest:
    commit, dirty = provenance.git_state()
    return RunManifest(
        run_id=run_id, created_utc=provenance.now_utc(), package_version=provenance.package_version(),
        git_hash=commit, git_dirty=dirty, python=provenance.python_version(), platform=provenance.platform_string(),
        libraries=provenance.library_versions([r for m in metrics for r in m.requires.values()]), method=method_name, method_config=method_config, smoke=smoke,
        seed=seed, split=split.name, split_version=split.card.version, split_pairs_sha256=split.pairs_sha256,
        profile=profile, device=device, metrics=[metric.provenance() for metric in metrics],
    )


def _write_outputs(run_dir: Path, profile: str, rows: list[SampleResult], manifest: RunManifest,
                   counts: dict[str, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    summary = summarise(results_frame(rows))
    frame = write_run_files(RunFiles(run_dir, profile), rows, manifest, summary, counts)
    return frame, summary


def _prepare_metrics(profile: str, device: str, only: list[str] | None) -> list[Metric]:
    """Build the profile's metrics and check every weights file up front, so missing weights fail before
    any generation or scoring, with one message listing all of them and the command that fixes it."""
    metrics = build_profile(profile, device=device, only=only)
    problems: dict[str, str] = {}
    for metric in metrics:
        for weights in metric.weights:
            if weights.name not in problems and weights.status() != "ok":
                problems[weights.name] = f"{weights.name} ({weights.status()}; {weights.source})"
    if problems:
        missing = [w for m in metrics for w in m.weights if w.name in problems]
        pullable = sorted({w.model for w in missing if w.kind != "pypi"})
        fixes = [f"bench models pull {' '.join(pullable)}"] if pullable else []
        fixes += sorted({w.fix for w in missing if w.kind == "pypi"})
        raise WeightsError(
            f"profile {profile!r} cannot run: {len(problems)} weights file(s) missing or not matching their "
            f"card: {'; '.join(problems.values())}. Fix: {' ; '.join(fixes)} "
            "(without internet: bench models import DIR). Nothing was generated or scored."
        )
    for metric in metrics:
        metric.load()
    return metrics


def run(
    method_name: str,
    split_name: str,
    *,
    profile: str = "offline",
    seed: int = 0,
    out_dir: Path | None = None,
    data_root: Path | None = None,
    cache_path: Path | None = None,
    device: str = "cpu",
    metrics: list[str] | None = None,
    method_options: dict[str, Any] | None = None,
    progress: ProgressFactory = no_progress,
) -> RunOutcome:
    """Generate (resumable) and score one method on one split; write results, summary and manifest."""
    split = load_split(split_name, data_root)
    try:
        method = build_method(method_name, **(method_options or {}))
    except (TypeError, ValueError) as exc:  # bad options: a clear message, not a traceback
        raise ValidationError(f"method {method_name!r}: {exc}") from exc
    metric_objects = _prepare_metrics(profile, device, metrics)
    run_dir = out_dir or default_run_dir(split.name, method.name, seed)
    videos_dir = run_dir / "videos"
    videos_dir.mkdir(parents=True, exist_ok=True)
    method.attach_run(run_dir)
    method.prepare(split)

    records: dict[str, GenerationRecord] = {}
    fresh: set[str] = set()
    for pair in progress(split.pairs, f"generate {method.name}", len(split.pairs)):
        records[pair.pair_id], was_reused = generate_one(method, split.resolve(pair), videos_dir, seed)
        if not was_reused:
            fresh.add(pair.pair_id)

    run_id = f"{method.name}@{split.name}:seed{seed}:{profile}"
    with FeatureCache(cache_path or default_cache_path()) as cache:
        ctx = ScoringContext(split, metric_objects, cache, run_id, method.name, profile)
        rows: list[SampleResult] = []
        for pair in progress(split.pairs, f"score {method.name}", len(split.pairs)):
            record = records[pair.pair_id]
            failure = record.reason if record.status == "failed" else None
            known_sha = record.sha256 if pair.pair_id in fresh else None  # reused files are hashed when scored
            rows += score_pair(ctx, pair, videos_dir / f"{pair.pair_id}.mp4", failure, known_sha)
        counts = {"generated": len(fresh), "reused": len(split.pairs) - len(fresh),
                  "features_computed": ctx.computed, "cache_hits": cache.hits, "files_decoded": ctx.decoded.decoded}
    manifest = _manifest(run_id, method.name, method.config(), method.smoke, seed, split, profile, device, metric_objects)
    frame, summary = _write_outputs(run_dir, profile, rows, manifest, counts)
    return RunOutcome(run_dir, frame, summary, manifest, counts)


def score_outputs(
    outputs_dir: Path,
    split_name: str,
    *,
    name: str | None = None,
    profile: str = "offline",
    data_root: Path | None = None,
    cache_path: Path | None = None,
    device: str = "cpu",
    metrics: list[str] | None = None,
    out_dir: Path | None = None,
    progress: ProgressFactory = no_progress,
) -> RunOutcome:
    """Score videos made elsewhere: ``<outputs_dir>/<pair_id>.mp4`` for each pair of the split.

    A missing or undecodable file gives failure rows with the reason; the other pairs are unaffected.
    """
    outputs_dir = Path(outputs_dir)
    if not outputs_dir.is_dir():
        raise ValidationError(f"{outputs_dir}: not a folder (expected <pair_id>.mp4 files)")
    split = load_split(split_name, data_root)
    metric_objects = _prepare_metrics(profile, device, metrics)
    method_name = name or f"external:{outputs_dir.resolve().name}"
    known = {f"{pair.pair_id}.mp4" for pair in split.pairs}
    strays = sorted(p.name for p in outputs_dir.glob("*.mp4") if p.name not in known)
    if strays:
        log.warning("%s: %d file(s) match no pair of %s and are ignored: %s", outputs_dir, len(strays),
                    split.name, ", ".join(strays[:5]))
    run_id = f"{method_name}@{split.name}:{profile}"
    with FeatureCache(cache_path or default_cache_path()) as cache:
        ctx = ScoringContext(split, metric_objects, cache, run_id, method_name, profile)
        rows: list[SampleResult] = []
        for pair in progress(split.pairs, f"score {method_name}", len(split.pairs)):
            rows += score_pair(ctx, pair, outputs_dir / f"{pair.pair_id}.mp4")
        counts = {"features_computed": ctx.computed, "cache_hits": cache.hits, "files_decoded": ctx.decoded.decoded}
    manifest = _manifest(run_id, method_name, {"outputs_dir": str(outputs_dir.resolve())}, False, 0, split,
                         profile, device, metric_objects)
    run_dir = out_dir or outputs_dir
    frame, summary = _write_outputs(run_dir, profile, rows, manifest, counts)
    return RunOutcome(run_dir, frame, summary, manifest, counts)
