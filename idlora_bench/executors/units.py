"""The work units every executor shares, and the driver-side writes of their results.

Units are idempotent and independent: any executor may run them in any order, any number of times.

- Features: :func:`extract_features` (decode a file, load the metric, extract) gives a :class:`FeatureOutcome`;
  the driver's :class:`FeatureSink` caches ``ok`` features and deterministic ``failed`` reasons as they arrive, and
  keeps ``error`` reasons (a decode error, a crash, a transient failure) for the rows without caching them.
- Generation: :func:`reusable_record` says whether a pair's output can be reused; :func:`generate_bytes` runs a
  method into a scratch folder and returns the mp4's bytes; :func:`write_generated` (driver) writes
  ``videos/<pair_id>.mp4`` atomically, then its record.
- Memory: :func:`release_metric` replaces a loaded metric by a fresh unloaded instance and frees what it held.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from idlora_bench.core.errors import BenchError, MediaError, SampleFailure, ValidationError
from idlora_bench.core.io import atomic_write_bytes
from idlora_bench.data.media import DecodedMedia
from idlora_bench.data.splits import ResolvedPair
from idlora_bench.methods import Method
from idlora_bench.metrics.base import Features, Metric
from idlora_bench.store.cache import FeatureCache
from idlora_bench.store.run_files import GenerationRecord, read_generation_record, write_generation_record

log = logging.getLogger("idlora_bench")

ProgressFactory = Callable[[Iterable[Any], str, int], Iterable[Any]]
"""``progress(items, label, total)`` yields ``items`` while showing a bar (the CLI's ``console.progress``)."""

GENERATION_ERRORS: tuple[type[BaseException], ...] = (BenchError, OSError, RuntimeError, ValueError)
"""Exceptions of ``Method.generate`` that fail one pair (recorded) instead of the run."""


# ----------------------------------------------------------------------------------------------- features
@dataclass(frozen=True)
class FeatureOutcome:
    """What extracting one metric's features from one file gave.

    ``status``: ``ok`` (``features`` set), ``failed`` (a deterministic failure of this file for this metric, e.g.
    ``no_face: ...``: cached with its ``reason``), or ``error`` (``decode_error: ...`` or ``metric_error: ...``:
    written into the rows, never cached, recomputed by the next run). ``traceback``: the crash's traceback text
    (``metric_error`` only), logged by the driver. ``decoded``: files decoded for it by a remote worker (0 or 1).
    """

    status: Literal["ok", "failed", "error"]
    features: Features | None = None
    reason: str | None = None
    traceback: str | None = None
    decoded: int = 0


def extract_features(metric: Metric, load_media: Callable[[], DecodedMedia]) -> FeatureOutcome:
    """Decode (``load_media``), load the metric (once), extract: the local loop's unit, run by every executor."""
    try:
        media = load_media()
    except MediaError as exc:
        return FeatureOutcome("error", reason=f"decode_error: {exc}")
    metric.load()
    try:
        features = metric.extract(media)
    except (SampleFailure, MediaError) as exc:  # deterministic for this file: cached with its reason
        reason = str(exc) if isinstance(exc, SampleFailure) else f"{exc.code}: {exc}"
        return FeatureOutcome("failed", reason=reason)
    except Exception as exc:  # a bug or a transient error: recorded, not cached, traceback logged
        return FeatureOutcome("error", reason=f"metric_error: {type(exc).__name__}: {exc}",
                              traceback=traceback.format_exc())
    return FeatureOutcome("ok", features=features)


def store_outcome(cache: FeatureCache, metric: Metric, key: str, sha256: str, outcome: FeatureOutcome) -> None:
    """Commit an ``ok`` or ``failed`` outcome to the cache (one transaction); ``error`` outcomes are not cached."""
    if outcome.status == "ok":
        assert outcome.features is not None
        cache.put_ok(key, metric.name, metric.version, sha256, outcome.features)
    elif outcome.status == "failed":
        assert outcome.reason is not None
        cache.put_failure(key, metric.name, metric.version, sha256, outcome.reason)


@dataclass
class FeatureSink:
    """The driver's end of feature computation: every outcome is written as it arrives.

    ``reasons``: cache key -> reason of ``error`` outcomes (the scoring context's ``known_reasons``: the rows
    report them and the driver does not compute them again). ``computed``: ok features written; ``decoded``:
    files decoded by remote workers.
    """

    cache: FeatureCache
    reasons: dict[str, str]
    computed: int = 0
    decoded: int = 0

    def store(self, metric: Metric, key: str, path: Path, sha256: str, outcome: FeatureOutcome) -> None:
        if outcome.traceback:
            log.error("metric %s failed on %s:\n%s", metric.name, path, outcome.traceback)
        store_outcome(self.cache, metric, key, sha256, outcome)
        if outcome.status == "ok":
            self.computed += 1
        elif outcome.status == "error":
            assert outcome.reason is not None
            self.reasons[key] = outcome.reason
        self.decoded += outcome.decoded


# ----------------------------------------------------------------------------------------------- generation
def reusable_record(method: Method, pair_id: str, videos_dir: Path, seed: int) -> GenerationRecord | None:
    """The record of ``videos/<pair_id>.mp4`` when that output can be reused as it is, else None (no record yet,
    a failed one, or its file is gone: generate again).

    Raises:
        ValidationError: the folder holds an output of another method config or seed.
    """
    record_path = videos_dir / f"{pair_id}.json"
    record = read_generation_record(record_path)
    if record is None:
        return None
    if record.config_sha256 != method.config_sha256() or record.seed != seed or record.method != method.name:
        raise ValidationError(
            f"{record_path}: this output was made by another method config or seed "
            f"({record.method}, seed {record.seed}); use another --out folder"
        )
    if record.status == "ok" and (videos_dir / f"{pair_id}.mp4").is_file():
        return record
    return None


def generation_record(method: Method, pair_id: str, seed: int, *, seconds: float, sha256: str | None = None,
                      reason: str | None = None, details: dict[str, Any] | None = None) -> GenerationRecord:
    """The record of one generation (``reason`` given: failed). ``seconds``: wall time of ``generate``."""
    return GenerationRecord(pair_id=pair_id, method=method.name, config_sha256=method.config_sha256(), seed=seed,
                            status="ok" if reason is None else "failed", reason=reason, sha256=sha256,
                            seconds=seconds, details=details or {})


def generation_failure(exc: BaseException) -> str:
    """The record's reason for a failed generation."""
    return f"generation_error: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class GeneratedBytes:
    """One generation run away from the run folder: the mp4's bytes, or the failure reason.

    ``seconds``: wall time of ``generate``; ``details``: what the method returned (or the exception carried).
    """

    pair_id: str
    data: bytes | None
    seconds: float
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def generate_bytes(method: Method, item: ResolvedPair, seed: int, scratch_dir: Path, final_path: Path) -> GeneratedBytes:
    """Run ``method.generate`` into ``scratch_dir`` and return the file's bytes (the file is removed).

    ``final_path``: where the driver will write the output; messages name it instead of the scratch file, so a
    failure reads the same as in the local loop.
    """
    scratch_dir.mkdir(parents=True, exist_ok=True)
    out_path = scratch_dir / final_path.name
    started = time.perf_counter()
    try:
        details = method.generate(item, out_path, seed) or {}
        if not out_path.is_file():
            raise RuntimeError(f"method {method.name!r} wrote no file at {final_path}")
        data = out_path.read_bytes()
    except GENERATION_ERRORS as exc:
        reason = generation_failure(exc).replace(str(out_path), str(final_path))
        return GeneratedBytes(item.pair_id, None, time.perf_counter() - started, reason,
                              getattr(exc, "details", None) or {})
    finally:
        out_path.unlink(missing_ok=True)
    return GeneratedBytes(item.pair_id, data, time.perf_counter() - started, None, details)


def write_generated(method: Method, videos_dir: Path, seed: int, result: GeneratedBytes) -> GenerationRecord:
    """Driver side: write ``videos/<pair_id>.mp4`` atomically (when generated), then its record (atomically)."""
    sha256 = None
    if result.data is not None:
        atomic_write_bytes(videos_dir / f"{result.pair_id}.mp4", result.data)
        sha256 = hashlib.sha256(result.data).hexdigest()
    else:
        log.warning("generation failed for %s: %s", result.pair_id, result.reason)
    record = generation_record(method, result.pair_id, seed, seconds=result.seconds, sha256=sha256,
                               reason=result.reason, details=result.details)
    write_generation_record(videos_dir / f"{result.pair_id}.json", record)
    return record


# ----------------------------------------------------------------------------------------------- memory
def _cuda(device: str) -> Any | None:
    """The torch module when ``device`` is a CUDA device and torch is already imported with CUDA, else None."""
    torch = sys.modules.get("torch")
    if not device.startswith("cuda") or torch is None or not torch.cuda.is_available():
        return None
    return torch


def reset_gpu_peak(device: str) -> None:
    """Start a new peak-memory window on ``device`` (no-op without CUDA)."""
    if (torch := _cuda(device)) is not None:
        torch.cuda.reset_peak_memory_stats(device)


def gpu_peak_bytes(device: str) -> int | None:
    """``torch.cuda.max_memory_allocated`` (bytes) on ``device`` since the last reset; None without CUDA."""
    if (torch := _cuda(device)) is None:
        return None
    return int(torch.cuda.max_memory_allocated(device))


def release_metric(metrics: list[Metric], index: int) -> None:
    """Replace ``metrics[index]`` by a fresh, unloaded instance of its class (same device), then free the old
    one's memory (``gc.collect()``, and ``torch.cuda.empty_cache()`` when torch is imported with CUDA).

    Works for every metric without touching its code: a metric holds its models in instance attributes, so once
    the last reference goes, they go. Callers must not keep other references to the old instance.
    """
    device = metrics[index].device
    metrics[index] = type(metrics[index])(device=device)
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
