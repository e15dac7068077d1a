"""``bench selftest --profile P``: load every weight of a metric profile strictly and check properties that real
weights have and random or wrong weights lack.

The checks (one set per metric family, :data:`~idlora_bench.selftest.checks.FAMILY_CHECKS`; thresholds and the
reasons for them in :mod:`idlora_bench.selftest.checks`) run on the demo split's clips and two real CMU ARCTIC
recordings shipped in ``idlora_bench/selftest/data`` (:mod:`idlora_bench.selftest.sources`). The run never stops on
a bad model: a load error, a :class:`~idlora_bench.core.errors.SampleFailure` or any other exception inside a check
is a FAILED check with its reason. A family without a check is listed with status ``no check``.

Public API::

    report = run_selftest("offline", device="cpu", out_dir=Path("."))   # writes ./selftest-offline.json
    print(report.table()); report.passed; report.checks; report.to_json(); report.write(path)

The JSON (``SELFTEST_FORMAT``) carries the package and library versions, each metric's version, params and weights
checksums, and every check's numbers, thresholds, status and reason, so a leaderboard submission can carry it.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from idlora_bench.core.errors import SampleFailure
from idlora_bench.core.io import atomic_write_text
from idlora_bench.core.provenance import (
    git_state,
    library_versions,
    now_utc,
    package_version,
    platform_string,
    python_version,
)
from idlora_bench.metrics import build_profile
from idlora_bench.metrics.base import Metric
from idlora_bench.selftest.checks import FAMILY_CHECKS, CheckContext, CheckFn, Evidence
from idlora_bench.selftest.sources import SelftestSources

SELFTEST_FORMAT = "idlora-bench-selftest/1"
CheckStatus = Literal["passed", "failed", "no check"]


@dataclass
class CheckResult:
    """One check of one metric: ``status`` ``passed`` / ``failed`` / ``no check``, the ``reason`` in words, what was
    measured (``numbers``) against what (``thresholds``), its wall time in seconds and, for a crash, the traceback."""

    metric: str
    family: str
    check: str
    status: CheckStatus
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class MetricRecord:
    """What the selftest records of a metric: identity, version, params, weights name -> sha256, load outcome."""

    name: str
    family: str
    version: str
    params: dict[str, Any]
    weights: dict[str, str | None]
    loaded: bool
    load_error: str | None
    load_s: float


@dataclass
class SelftestReport:
    """The outcome of a selftest run; :attr:`passed` when every metric loaded and no check failed."""

    profile: str
    device: str
    created_utc: str
    package_version: str
    git_hash: str | None
    git_dirty: bool | None
    python: str
    platform: str
    libraries: dict[str, str]
    metrics: list[MetricRecord]
    checks: list[CheckResult]
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(m.loaded for m in self.metrics) and not any(
            c.status == "failed" for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [check for check in self.checks if check.status == "failed"]

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (numpy values converted, non-finite floats written as strings)."""
        counts = {status: sum(c.status == status for c in self.checks) for status in ("passed", "failed", "no check")}
        data = {"format": SELFTEST_FORMAT, "passed": self.passed, "counts": counts, **asdict(self)}
        return jsonable(data)

    def write(self, path: Path) -> Path:
        """Write :meth:`to_json` to ``path`` (atomic) and return it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")
        return path

    def table(self) -> str:
        """The pass/fail table as plain text: metric, check, status, reason (numbers vs thresholds)."""
        rows = [(c.metric, c.check, c.status.upper(), f"{c.seconds:.1f}s", c.reason) for c in self.checks]
        header = ("metric", "check", "status", "time", "reason")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4]
                 for row in [header, *rows]]
        verdict = "PASSED" if self.passed else f"FAILED ({len(self.failed)} failed check(s))"
        lines.append(f"selftest {self.profile}: {verdict} in {self.seconds:.1f} s on {self.device}")
        return "\n".join(lines)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays as Python numbers/lists, Paths as strings, non-finite floats as
    ``"nan"`` / ``"inf"`` / ``"-inf"`` strings (strict JSON has no NaN), tuples as lists."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


# ----------------------------------------------------------------------------------------- running
def load_metric(metric: Metric) -> tuple[MetricRecord, CheckResult]:
    """``metric.load()`` (strict: checksums, then the model's own strict loading) as the ``load`` check."""
    start = time.perf_counter()
    error: str | None = None
    trace: str | None = None
    try:
        metric.load()
    except Exception as exc:  # noqa: BLE001 - a bad checkpoint is a failed check, never a crash
        error, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
    seconds = time.perf_counter() - start
    try:
        weights = metric.weights_checksums()
    except Exception as exc:  # noqa: BLE001 - e.g. an unreadable checksum record: reported, not raised
        weights = {card.name: f"unreadable ({type(exc).__name__}: {exc})" for card in metric.weights}
    record = MetricRecord(metric.name, metric.family, metric.version, dict(metric.params), weights,
                          error is None, error, seconds)
    reason = (f"{len(metric.weights)} weights file(s) verified and loaded strictly" if error is None
              else error)
    result = CheckResult(metric.name, metric.family, "load", "passed" if error is None else "failed", reason,
                         {"weights": weights}, {}, seconds, trace)
    return record, result


def run_check(metric: Metric, name: str, check: CheckFn, context: CheckContext) -> CheckResult:
    """Run one check; an exception (SampleFailure or any other) makes it a failed check with the reason."""
    evidence = Evidence()
    start = time.perf_counter()
    trace: str | None = None
    try:
        passed, reason = check(metric, context, evidence)
        status: CheckStatus = "passed" if passed else "failed"
    except SampleFailure as failure:
        status, reason = "failed", f"SampleFailure {failure.code}: {failure.message}"
        trace = traceback.format_exc()
    except Exception as exc:  # noqa: BLE001 - a crash inside a check is a failed check, never a crashed selftest
        status, reason = "failed", f"{type(exc).__name__}: {exc}"
        trace = traceback.format_exc()
    return CheckResult(metric.name, metric.family, name, status, reason, evidence.numbers, evidence.thresholds,
                       time.perf_counter() - start, trace)


def metric_checks(metric: Metric, context: CheckContext, loaded: bool) -> list[CheckResult]:
    """The family checks of one loaded metric (failed ``not run`` results when it did not load)."""
    checks = FAMILY_CHECKS.get(metric.family)
    if checks is None:
        return [CheckResult(metric.name, metric.family, "-", "no check",
                            f"no selftest check for family {metric.family!r}")]
    if not loaded:
        return [CheckResult(metric.name, metric.family, name, "failed", "not run: the weights did not load (see load)")
                for name, _ in checks]
    return [run_check(metric, name, check, context) for name, check in checks]


def run_selftest(
    profile: str,
    device: str = "cpu",
    out_dir: Path | None = None,
    metrics: list[Metric] | None = None,
    *,
    sources: SelftestSources | None = None,
    progress: Callable[[CheckResult], None] | None = None,
) -> SelftestReport:
    """Load every metric of ``profile`` strictly and run its family's checks.

    Args:
        profile: the metric profile (``offline``, ``standard``, ``paper``, ...).
        device: torch / onnxruntime device for :func:`~idlora_bench.metrics.build_profile` (ignored when ``metrics``
            is given: those carry their own).
        out_dir: when given, the report is written to ``out_dir / f"selftest-{profile}.json"``.
        metrics: metric objects to check instead of the profile's (tests pass tiny-weight metrics here).
        sources: the media to check on (default: the demo split and the shipped ARCTIC recordings).
        progress: called with each result as it is made (the CLI prints a line per check).

    Raises:
        BenchError: from ``build_profile`` when a package the profile needs is not installed (nothing can be
            checked then). Never for a bad model.
    """
    start = time.perf_counter()
    chosen = metrics if metrics is not None else build_profile(profile, device)
    context = CheckContext(sources or SelftestSources())
    records: list[MetricRecord] = []
    results: list[CheckResult] = []
    for metric in chosen:
        record, load_result = load_metric(metric)
        records.append(record)
        for result in [load_result, *metric_checks(metric, context, record.loaded)]:
            results.append(result)
            if progress is not None:
                progress(result)
    requirements = [requirement for metric in chosen for requirement in metric.requires.values()]
    commit, dirty = git_state()
    report = SelftestReport(
        profile=profile, device=device, created_utc=now_utc(), package_version=package_version(),
        git_hash=commit, git_dirty=dirty, python=python_version(), platform=platform_string(),
        libraries=library_versions(requirements), metrics=records, checks=results,
        seconds=time.perf_counter() - start,
    )
    if out_dir is not None:
        report.write(Path(out_dir) / f"selftest-{profile}.json")
    return report


__all__ = ["CheckResult", "MetricRecord", "SELFTEST_FORMAT", "SelftestReport", "SelftestSources", "jsonable",
           "run_selftest"]
