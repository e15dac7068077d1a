"""``bench leaderboard rescore BUNDLE``: recompute every metric from the submitted videos and compare with the
claimed per-sample values.

The bundle is validated first (:mod:`idlora_bench.leaderboard.validate`); an invalid bundle or one without videos is
refused before any metric runs. Each run's videos are then scored by the normal runner
(:func:`idlora_bench.runner.score_outputs`) with the run's metrics (the manifest's metric names), on the registered
split, with a fresh feature cache unless one is given: nothing the submitter computed is reused.

Tolerance (per metric, stated in the report): a claimed value passes when
``|claimed - recomputed| <= abs_tol + rel_tol * |recomputed|`` with ``abs_tol = 10^-(digits + 1)`` (a tenth of
the last decimal the metric shows, its ``digits`` from the run manifest: 1e-4 for a 3-digit metric, 1e-3 for a
2-digit one) and ``rel_tol = 1e-4``; both can be overridden. Re-scoring the same file with the same metric code
differs only by floating-point reductions across machines (CPU vs GPU, BLAS), orders of magnitude below that;
a change that would move a shown digit by more than one unit in the last place is flagged.

Statuses must agree too: a claimed ``ok`` that re-scores as a failure, or a claimed failure that re-scores to a
value (hiding hard pairs from a complete-case mean), is flagged; two failures agree when their reason codes agree,
and a claimed failure without a generated file agrees with ``missing_output``. A bundle with any flagged row is
rejected, its pairs listed.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import atomic_write_text
from idlora_bench.core.types import RunManifest
from idlora_bench.leaderboard.archive import Limits
from idlora_bench.leaderboard.validate import BundleRunData, opened_bundle

RESCORE_FORMAT = "idlora-bench-rescore/1"
DEFAULT_REL_TOL = 1e-4


@dataclass(frozen=True)
class Tolerance:
    """``abs_tol`` None: per metric, ``10^-(digits + 1)`` from the metric's displayed digits; ``rel_tol`` relative."""

    abs_tol: float | None = None
    rel_tol: float = DEFAULT_REL_TOL

    def for_digits(self, digits: int) -> tuple[float, float]:
        """``(abs, rel)`` tolerance of a metric shown with ``digits`` decimals."""
        return (self.abs_tol if self.abs_tol is not None else 10.0 ** -(digits + 1)), self.rel_tol

    def describe(self) -> str:
        """The rule in words, as the report states it."""
        absolute = (f"abs_tol = {self.abs_tol:g}" if self.abs_tol is not None
                    else "abs_tol = 10^-(digits+1) of the metric (a tenth of its last displayed decimal)")
        return (f"|claimed - recomputed| <= abs_tol + rel_tol * |recomputed|, {absolute}, rel_tol = {self.rel_tol:g}; "
                "statuses and failure codes must agree")


@dataclass
class Flag:
    """One (run, pair, metric) whose claimed row disagrees with the re-scored one."""

    run: str
    method: str
    pair_id: str
    metric: str
    claimed: str
    recomputed: str
    difference: float | None
    allowed: float | None
    why: str


@dataclass
class RunCheck:
    """Per run: rows compared and rows that agree, and the tolerance used per metric (abs, rel)."""

    run: str
    method: str
    seed: int
    split: str
    rows: int
    agreeing: int
    tolerances: dict[str, tuple[float, float]]


@dataclass
class RescoreReport:
    """The outcome: ``accepted`` when every claimed row agrees with its re-scored row."""

    source: str
    bundle_id: str
    profile: str
    runs: list[RunCheck] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    tolerance_rule: str = field(default_factory=lambda: Tolerance().describe())

    @property
    def accepted(self) -> bool:
        return not self.flags

    @property
    def flagged_pairs(self) -> list[str]:
        return sorted({flag.pair_id for flag in self.flags})

    def to_json(self) -> dict[str, Any]:
        return {"format": RESCORE_FORMAT, "accepted": self.accepted, "flagged_pairs": self.flagged_pairs,
                **asdict(self)}

    def write(self, path: Path) -> Path:
        """The report as JSON at ``path`` (atomic)."""
        return atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")

    def to_markdown(self) -> str:
        """Verdict, per-run agreement and every flagged row."""
        verdict = "ACCEPTED" if self.accepted else f"REJECTED: {len(self.flags)} row(s) differ, pairs " + \
            ", ".join(self.flagged_pairs)
        lines = [f"**re-scoring of {self.source}** (bundle {self.bundle_id[:12]}, profile {self.profile}): {verdict}",
                 "", "| run | method | seed | split | rows | agree |", "|---|---|---|---|---|---|"]
        lines += [f"| {r.run} | {r.method} | {r.seed} | {r.split} | {r.rows} | {r.agreeing} |" for r in self.runs]
        if self.flags:
            lines += ["", "| run | pair | metric | claimed | recomputed | difference | allowed | why |",
                      "|---|---|---|---|---|---|---|---|"]
            lines += [f"| {f.run} | {f.pair_id} | {f.metric} | {f.claimed} | {f.recomputed} | "
                      f"{'' if f.difference is None else f'{f.difference:.3g}'} | "
                      f"{'' if f.allowed is None else f'{f.allowed:.3g}'} | {f.why} |" for f in self.flags]
        lines += ["", f"Tolerance: {self.tolerance_rule}."]
        return "\n".join(lines) + "\n"


def _code(reason: object) -> str:
    return str(reason).split(":", 1)[0].strip() if isinstance(reason, str) else ""


def _describe(status: str, value: object, reason: object) -> str:
    return f"{float(value):.6g}" if status == "ok" else f"failed ({_code(reason)})"


def compare_rows(claimed: pd.DataFrame, recomputed: pd.DataFrame, manifest: RunManifest, run: str,
                 tolerance: Tolerance) -> tuple[RunCheck, list[Flag]]:
    """Claimed vs re-scored rows of one run, matched on (pair, metric)."""
    digits = {metric.family: metric.digits for metric in manifest.metrics}
    merged = claimed.merge(recomputed, on=["pair_id", "metric"], how="outer", suffixes=("_c", "_r"), indicator="side")
    flags: list[Flag] = []
    for row in merged.itertuples():
        flag = Flag(run, manifest.method, row.pair_id, row.metric, "", "", None, None, "")
        if row.side != "both":
            side = "claimed" if row.side == "left_only" else "re-scored"
            flag.why = f"only in the {side} rows"
            flags.append(flag)
            continue
        flag.claimed = _describe(row.status_c, row.value_c, row.reason_c)
        flag.recomputed = _describe(row.status_r, row.value_r, row.reason_r)
        if row.status_c == "ok" and row.status_r == "ok":
            absolute, relative = tolerance.for_digits(digits.get(row.metric, 3))
            flag.difference = abs(float(row.value_c) - float(row.value_r))
            flag.allowed = absolute + relative * abs(float(row.value_r))
            if flag.difference > flag.allowed or not math.isfinite(flag.difference):
                flag.why = "value differs beyond the tolerance"
                flags.append(flag)
        elif row.status_c != row.status_r:
            flag.why = ("claimed a value, re-scoring fails" if row.status_c == "ok"
                        else "claimed a failure, re-scoring gives a value")
            flags.append(flag)
        else:
            no_file = not isinstance(row.generated_sha256_c, str)
            codes_agree = _code(row.reason_c) == _code(row.reason_r) or (no_file and _code(row.reason_r) == "missing_output")
            if not codes_agree:
                flag.why = "failure reasons differ"
                flags.append(flag)
    tolerances = {family: tolerance.for_digits(d) for family, d in digits.items()}
    check = RunCheck(run, manifest.method, manifest.seed, manifest.split, len(merged), len(merged) - len(flags),
                     tolerances)
    return check, flags


def _rescore_run(run: BundleRunData, out: Path, cache_path: Path, data_root: Path | None, device: str,
                 progress: Any) -> pd.DataFrame:
    from idlora_bench import runner

    assert run.videos_dir is not None
    outcome = runner.score_outputs(run.videos_dir, run.manifest.split, name=run.manifest.method,
                                   profile=run.manifest.profile, data_root=data_root, cache_path=cache_path,
                                   device=device, metrics=[metric.name for metric in run.manifest.metrics],
                                   out_dir=out, progress=progress)
    return outcome.results


def rescore_bundle(source: Path, *, out_dir: Path | None = None, data_root: Path | None = None, device: str = "cpu",
                   cache_path: Path | None = None, tolerance: Tolerance = Tolerance(), limits: Limits = Limits(),
                   progress: Any = None) -> RescoreReport:
    """Validate, re-score every run of the bundle from its videos and compare (see the module docstring).

    ``out_dir``: where the extracted bundle, the re-scored results (``rescored/<run>/``) and ``rescore-report.json``
    go (default: a temporary folder, removed). ``cache_path``: a feature cache to use (default: a new, empty one).
    Raises ValidationError when the bundle is invalid or has no videos.
    """
    from idlora_bench.runner import no_progress

    if out_dir is not None and Path(out_dir).exists() and (not Path(out_dir).is_dir() or any(Path(out_dir).iterdir())):
        raise ValidationError(f"{out_dir}: the re-scoring folder must be new or empty")
    work = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="idlora-rescore-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        with opened_bundle(source, data_root=data_root, limits=limits, work_dir=work) as bundle:
            if not bundle.ok:
                raise ValidationError(f"{source}: invalid bundle, not re-scored ({len(bundle.problems)} problem(s)):\n"
                                      "  - " + "\n  - ".join(bundle.problems))
            assert bundle.manifest is not None and bundle.bundle_id is not None
            if not bundle.manifest.videos_included:
                raise ValidationError(f"{source}: submitted without videos; nothing can be re-scored (submit again "
                                      "without --no-videos)")
            report = RescoreReport(str(source), bundle.bundle_id, bundle.manifest.profile,
                                   tolerance_rule=tolerance.describe())
            cache = cache_path or work / "rescore-cache.sqlite"
            for run in bundle.runs:
                recomputed = _rescore_run(run, work / "rescored" / run.entry.name, cache, data_root, device,
                                          progress or no_progress)
                check, flags = compare_rows(run.results, recomputed, run.manifest, run.entry.name, tolerance)
                report.runs.append(check)
                report.flags += flags
        if out_dir is not None:
            report.write(work / "rescore-report.json")
        return report
    finally:
        if out_dir is None:
            shutil.rmtree(work, ignore_errors=True)
