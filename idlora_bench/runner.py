"""The runner: generate what is missing -> decode each file once -> score through the cache -> results.

Work units are independent and idempotent, so any executor can run them in any order, any number of times
(:mod:`idlora_bench.executors`):

- :func:`generate_one` (pair): writes ``videos/<pair_id>.mp4`` atomically, then its record
  ``videos/<pair_id>.json``; an output whose record matches the method config and seed is reused.
- :func:`score_pair` (pair): decodes the generated and target files at most once each, and reads or
  computes every metric's features through the content-addressed :class:`FeatureCache`.

Executors (``run(executor=...)``): ``local`` (default) runs both loops in this process, every metric loaded up
front. ``one_metric_at_a_time=True`` scores metric-major: the features still missing from the cache are listed
(:class:`~idlora_bench.executors.plan.FeaturePlan`), then one metric at a time is loaded, computes its features for
every file, builds its rows and is released. ``ray`` runs the same units on Ray actors
(:mod:`idlora_bench.executors.ray_cluster`); only this process writes files and the cache. With either, the rows
come from the unchanged :func:`score_pair`, which then only reads the cache: results are the local loop's.

A run folder (``runs/<split>/<method>-seed<seed>/`` by default) holds ``videos/``, and per metric profile
``results-<profile>.jsonl`` / ``.csv`` (one row per pair x metric, with status and reason),
``summary-<profile>.csv`` and ``manifest-<profile>.json`` (provenance).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import pandas as pd

from idlora_bench.core import provenance
from idlora_bench.core.errors import (
    MediaError,
    SampleFailure,
    ValidationError,
    WeightsError,
)
from idlora_bench.core.io import file_sha256
from idlora_bench.core.types import Pair, RunManifest, SampleResult
from idlora_bench.data.media import DecodedMedia, MediaInfo, decode, probe
from idlora_bench.data.splits import ResolvedPair, Split, load_split
from idlora_bench.executors.local import LocalFeatures
from idlora_bench.executors.plan import FeaturePlan, ScoreItem
from idlora_bench.executors.ray_cluster import RayOptions, RaySession
from idlora_bench.executors.units import (
    GENERATION_ERRORS,
    FeatureSink,
    ProgressFactory,
    extract_features,
    generation_failure,
    generation_record,
    gpu_peak_bytes,
    release_metric,
    reset_gpu_peak,
    reusable_record,
    store_outcome,
)
from idlora_bench.methods import Method, build_method
from idlora_bench.metrics import Metric, build_profile
from idlora_bench.metrics.base import Features
from idlora_bench.report.stats import summarise
from idlora_bench.store.cache import FeatureCache, default_cache_path
from idlora_bench.store.run_files import (
    GenerationRecord,
    RunFiles,
    results_frame,
    write_generation_record,
    write_run_files,
)

log = logging.getLogger("idlora_bench")

MIN_OUTPUT_DURATION_RATIO = 0.5
"""An output shorter than this share of its target's duration fails every metric with ``too_short``."""

EXECUTORS = ("local", "ray")
"""``run(executor=...)``: ``local`` (this process) or ``ray`` (a Ray cluster; needs the ``ray`` package)."""


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
    is recorded (status failed, with its reason), never raised, so the other pairs go on. The reuse check and the
    record are shared with the Ray executor (:mod:`idlora_bench.executors.units`).
    """
    record = reusable_record(method, item.pair_id, videos_dir, seed)
    if record is not None:
        return record, True
    out_path = videos_dir / f"{item.pair_id}.mp4"
    started = time.perf_counter()
    try:
        details = method.generate(item, out_path, seed) or {}
        if not out_path.is_file():
            raise RuntimeError(f"method {method.name!r} wrote no file at {out_path}")
        record = generation_record(method, item.pair_id, seed, sha256=file_sha256(out_path),
                                   seconds=time.perf_counter() - started, details=details)
    except GENERATION_ERRORS as exc:
        log.warning("generation failed for %s: %s", item.pair_id, exc)
        record = generation_record(method, item.pair_id, seed, reason=generation_failure(exc),
                                   seconds=time.perf_counter() - started, details=getattr(exc, "details", None) or {})
    write_generation_record(videos_dir / f"{item.pair_id}.json", record)
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
    known_reasons: dict[str, str] = field(default_factory=dict)
    """Cache key -> reason of features an executor could not compute (decode or metric error: not cached); the
    rows report it instead of computing again."""

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
    if key in ctx.known_reasons:
        return None, ctx.known_reasons[key]
    outcome = extract_features(metric, lambda: ctx.decoded.get(path, sha256))
    if outcome.traceback:  # a bug or a transient error: recorded, not cached, traceback logged
        log.error("metric %s failed on %s:\n%s", metric.name, path, outcome.traceback)
    store_outcome(ctx.cache, metric, key, sha256, outcome)  # ok, or deterministic for this file: cached
    if outcome.status == "ok":
        ctx.computed += 1
        return outcome.features, None
    return None, outcome.reason


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


def _prepare_metrics(profile: str, device: str, only: list[str] | None, load: bool = True) -> list[Metric]:
    """Build the profile's metrics and check every weights file up front, so missing weights fail before
    any generation or scoring, with one message listing all of them and the command that fixes it. ``load``:
    load every model now (the local loop); otherwise they load where and when their features are computed."""
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
    if load:
        for metric in metrics:
            metric.load()
    return metrics


# ----------------------------------------------------------------------------------------------- executors
class FeatureExecutor(Protocol):
    """Computes a plan's missing features (:class:`LocalFeatures`, or the Ray session)."""

    def compute(self, plan: FeaturePlan, indices: list[int], metrics: list[Metric], sink: FeatureSink,
                progress: ProgressFactory) -> dict[str, int]: ...


def _executor(executor: str, ray_address: str | None, ray: RayOptions) -> contextlib.AbstractContextManager[Any]:
    """The Ray session for ``executor="ray"`` (connects on enter: an unreachable address or a missing ``ray``
    package fails here, naming the fix, before anything is generated), or None for ``local``."""
    if executor not in EXECUTORS:
        raise ValidationError(f"executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if executor == "local":
        if ray_address is not None:
            raise ValidationError(f"ray address {ray_address!r} given with executor 'local': add --executor ray")
        return contextlib.nullcontext(None)
    return RaySession(dataclasses.replace(ray, address=ray_address))


ScoreJob = tuple[Pair, Path | None, str | None, str | None]
"""What :func:`score_pair` takes after the context: pair, output file, generation failure, output sha256 if known."""


def _score_items(ctx: ScoringContext, jobs: list[ScoreJob]) -> tuple[list[ScoreJob], list[ScoreItem]]:
    """Hash every output once (the jobs come back with their sha256) and list the outputs whose features the rows
    will read: those that exist and pass the duration check, with their target's file and hash."""
    hashed: list[ScoreJob] = []
    items: list[ScoreItem] = []
    for pair, path, failure, sha256 in jobs:
        if failure is None and path is not None and path.is_file():
            sha256 = sha256 or file_sha256(path)
            target_path = ctx.split.media_path(pair.target)
            target_sha = ctx.target_hash(pair) if target_path.is_file() else None
            if _durations(ctx, path, target_path)[1] is None:
                items.append(ScoreItem(path, sha256, target_path, target_sha))
        hashed.append((pair, path, failure, sha256))
    return hashed, items


def _score_with(ctx: ScoringContext, jobs: list[ScoreJob], features: FeatureExecutor, one_metric_at_a_time: bool,
                progress: ProgressFactory) -> tuple[list[SampleResult], dict[str, int]]:
    """Score through an executor: list the features missing from the cache, compute them (every metric at once, or
    one metric at a time, each released before the next), then build the rows with :func:`score_pair`, which now
    only reads the cache (and the executor's uncached error reasons). Returns rows and counts."""
    jobs, items = _score_items(ctx, jobs)

    def cached(key: str) -> str | None:
        entry = ctx.cache.get(key)
        return None if entry is None else entry.status

    plan = FeaturePlan(ctx.metrics, items, cached)
    sink = FeatureSink(ctx.cache, ctx.known_reasons)
    extra: dict[str, int] = {}
    if one_metric_at_a_time:
        by_metric = [_one_metric(ctx, index, jobs, plan, sink, features, progress, extra)
                     for index in range(len(ctx.metrics))]
        rows = [metric_rows[position] for position in range(len(jobs)) for metric_rows in by_metric]
    else:
        extra.update(features.compute(plan, list(range(len(ctx.metrics))), ctx.metrics, sink, progress))
        rows = [row for job in progress(jobs, f"score {ctx.method}", len(jobs)) for row in score_pair(ctx, *job)]
    if ctx.computed:
        log.warning("%d feature(s) were computed while building rows, not by the executor", ctx.computed)
    counts = {"features_computed": sink.computed + ctx.computed, "cache_hits": plan.cache_hits,
              "files_decoded": ctx.decoded.decoded + sink.decoded}
    return rows, {**counts, **extra}


def _one_metric(ctx: ScoringContext, index: int, jobs: list[ScoreJob], plan: FeaturePlan, sink: FeatureSink,
                features: FeatureExecutor, progress: ProgressFactory, counts: dict[str, int]) -> list[SampleResult]:
    """Metric-major step: compute metric ``index``'s missing features for every file, build its row of every job,
    then release its model. Peak GPU memory of this process during the step (bytes) goes into ``counts``."""
    name, device = ctx.metrics[index].name, ctx.metrics[index].device
    reset_gpu_peak(device)
    for key, value in features.compute(plan, [index], ctx.metrics, sink, progress).items():
        counts[key] = max(counts.get(key, 0), value)
    single = dataclasses.replace(ctx, metrics=[ctx.metrics[index]])
    rows = [score_pair(single, *job)[0] for job in progress(jobs, f"score {ctx.method}: {name}", len(jobs))]
    ctx.computed += single.computed
    del single
    peak = gpu_peak_bytes(device)
    if peak is not None:
        counts[f"gpu_peak_bytes.{name}"] = max(counts.get(f"gpu_peak_bytes.{name}", 0), peak)
        log.info("metric %s: peak GPU memory %.0f MiB", name, peak / 2**20)
    release_metric(ctx.metrics, index)
    return rows


# ----------------------------------------------------------------------------------------------- runs
def _generate(session: RaySession | None, method_name: str, method: Method, method_options: dict[str, Any],
              split: Split, videos_dir: Path, seed: int, progress: ProgressFactory,
              ) -> tuple[dict[str, GenerationRecord], set[str]]:
    """Every pair's record, generating what is missing (here, or on the Ray session's actors); returns the
    records and the ids of the pairs generated now."""
    records: dict[str, GenerationRecord] = {}
    fresh: set[str] = set()
    if session is None:
        method.prepare(split)
        for pair in progress(split.pairs, f"generate {method.name}", len(split.pairs)):
            records[pair.pair_id], was_reused = generate_one(method, split.resolve(pair), videos_dir, seed)
            if not was_reused:
                fresh.add(pair.pair_id)
        return records, fresh
    todo = []
    for pair in split.pairs:
        record = reusable_record(method, pair.pair_id, videos_dir, seed)
        if record is None:
            todo.append(split.resolve(pair))
        else:
            records[pair.pair_id] = record
    results = session.generate(method_name, method, method_options, split, todo, videos_dir, seed)
    for record in progress(results, f"generate {method.name} (ray)", len(todo)):
        records[record.pair_id] = record
        fresh.add(record.pair_id)
    return records, fresh


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
    executor: Literal["local", "ray"] = "local",
    ray_address: str | None = None,
    ray_num_gpus_per_generator: float = 0.0,
    ray_num_gpus_per_metric: float = 0.0,
    ray_num_cpus_per_actor: float = 1.0,
    ray_generators: int = 1,
    one_metric_at_a_time: bool = False,
) -> RunOutcome:
    """Generate (resumable) and score one method on one split; write results, summary and manifest.

    ``executor``: ``local`` (this process) or ``ray`` (Ray actors: ``ray_address`` None starts a local instance,
    ``auto`` joins the cluster ``ray start`` made on this machine, ``HOST:PORT`` a head node; GPUs and CPUs reserved
    per generation / metric actor, ``ray_generators`` generation actors; see :class:`RayOptions`).
    ``one_metric_at_a_time``: score metric-major, one metric's model in memory at a time (GPU memory discipline);
    the peak GPU memory per metric (bytes, CUDA devices only) goes into the counts as ``gpu_peak_bytes.<metric>``.
    Results are identical whatever the executor and order.
    """
    split = load_split(split_name, data_root)
    try:
        method = build_method(method_name, **(method_options or {}))
    except (TypeError, ValueError) as exc:  # bad options: a clear message, not a traceback
        raise ValidationError(f"method {method_name!r}: {exc}") from exc
    ray = RayOptions(num_gpus_per_generator=ray_num_gpus_per_generator, num_gpus_per_metric=ray_num_gpus_per_metric,
                     num_cpus_per_actor=ray_num_cpus_per_actor, generators=ray_generators)
    session_context = _executor(executor, ray_address, ray)
    metric_objects = _prepare_metrics(profile, device, metrics, load=executor == "local" and not one_metric_at_a_time)
    with session_context as session:
        run_dir = out_dir or default_run_dir(split.name, method.name, seed)
        videos_dir = run_dir / "videos"
        videos_dir.mkdir(parents=True, exist_ok=True)
        method.attach_run(run_dir)
        records, fresh = _generate(session, method_name, method, method_options or {}, split, videos_dir, seed,
                                   progress)
        run_id = f"{method.name}@{split.name}:seed{seed}:{profile}"
        with FeatureCache(cache_path or default_cache_path()) as cache:
            ctx = ScoringContext(split, metric_objects, cache, run_id, method.name, profile)
            jobs: list[ScoreJob] = []
            for pair in split.pairs:
                record = records[pair.pair_id]
                failure = record.reason if record.status == "failed" else None
                known_sha = record.sha256 if pair.pair_id in fresh else None  # reused files are hashed when scored
                jobs.append((pair, videos_dir / f"{pair.pair_id}.mp4", failure, known_sha))
            if session is None and not one_metric_at_a_time:
                rows = [row for job in progress(jobs, f"score {method.name}", len(jobs)) for row in score_pair(ctx, *job)]
                scoring = {"features_computed": ctx.computed, "cache_hits": cache.hits,
                           "files_decoded": ctx.decoded.decoded}
            else:
                features = session if session is not None else LocalFeatures(ctx.decoded.get)
                rows, scoring = _score_with(ctx, jobs, features, one_metric_at_a_time, progress)
    counts = {"generated": len(fresh), "reused": len(split.pairs) - len(fresh), **scoring}
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
    executor: Literal["local", "ray"] = "local",
    ray_address: str | None = None,
    ray_num_gpus_per_metric: float = 0.0,
    ray_num_cpus_per_actor: float = 1.0,
    one_metric_at_a_time: bool = False,
) -> RunOutcome:
    """Score videos made elsewhere: ``<outputs_dir>/<pair_id>.mp4`` for each pair of the split.

    A missing or undecodable file gives failure rows with the reason; the other pairs are unaffected.
    ``executor``, ``ray_*`` and ``one_metric_at_a_time`` as in :func:`run`.
    """
    outputs_dir = Path(outputs_dir)
    if not outputs_dir.is_dir():
        raise ValidationError(f"{outputs_dir}: not a folder (expected <pair_id>.mp4 files)")
    split = load_split(split_name, data_root)
    ray = RayOptions(num_gpus_per_metric=ray_num_gpus_per_metric, num_cpus_per_actor=ray_num_cpus_per_actor)
    session_context = _executor(executor, ray_address, ray)
    metric_objects = _prepare_metrics(profile, device, metrics, load=executor == "local" and not one_metric_at_a_time)
    method_name = name or f"external:{outputs_dir.resolve().name}"
    known = {f"{pair.pair_id}.mp4" for pair in split.pairs}
    strays = sorted(p.name for p in outputs_dir.glob("*.mp4") if p.name not in known)
    if strays:
        log.warning("%s: %d file(s) match no pair of %s and are ignored: %s", outputs_dir, len(strays),
                    split.name, ", ".join(strays[:5]))
    run_id = f"{method_name}@{split.name}:{profile}"
    with session_context as session, FeatureCache(cache_path or default_cache_path()) as cache:
        ctx = ScoringContext(split, metric_objects, cache, run_id, method_name, profile)
        jobs: list[ScoreJob] = [(pair, outputs_dir / f"{pair.pair_id}.mp4", None, None) for pair in split.pairs]
        if session is None and not one_metric_at_a_time:
            rows = [row for job in progress(jobs, f"score {method_name}", len(jobs)) for row in score_pair(ctx, *job)]
            counts = {"features_computed": ctx.computed, "cache_hits": cache.hits, "files_decoded": ctx.decoded.decoded}
        else:
            features = session if session is not None else LocalFeatures(ctx.decoded.get)
            rows, counts = _score_with(ctx, jobs, features, one_metric_at_a_time, progress)
    manifest = _manifest(run_id, method_name, {"outputs_dir": str(outputs_dir.resolve())}, False, 0, split,
                         profile, device, metric_objects)
    run_dir = out_dir or outputs_dir
    frame, summary = _write_outputs(run_dir, profile, rows, manifest, counts)
    return RunOutcome(run_dir, frame, summary, manifest, counts)
