"""``bench leaderboard validate BUNDLE``: every check that costs no metric computation, each problem listed precisely.

Checks, in order (a problem names the bundle file, and the line, pair, metric or field at fault):

1. the archive or folder is safe (:mod:`idlora_bench.leaderboard.archive`: no absolute paths, ``..``, links,
   devices or oversize members; extraction only after every member passed, never outside the target folder);
2. ``bundle.json`` is valid (:class:`~idlora_bench.leaderboard.bundle.BundleManifest`, format tag);
3. files: every listed file exists with its sha256 and size, and no file is unlisted;
4. splits: registered here, same version and pairs-file sha256 as this checkout's split;
5. runs: manifest and results valid (every line), consistent with ``bundle.json`` (method, seed, split, run id), one
   profile for the whole bundle, not a smoke run, no method and seed twice on a split;
6. pairs: for every metric of a run, exactly one row per pair of the split (ok, or failed with its reason), no
   row for an unknown pair, speaker and kind as the split says, metric implementation / version / direction as the
   run manifest says;
7. versions: the run manifests' metrics are the profile's metrics as registered here, with the same version,
   parameters, direction and weights checksums (so that re-scoring recomputes the same definitions);
8. selftest: the report of the same profile, passed, covering every metric with the same version and weights (or
   its absence recorded, a warning);
9. videos: one file per scored pair whose sha256 equals the rows' ``generated_sha256``; generation records valid;
   no stray files.

Nothing is ever unpickled: every file is read as JSON text (or hashed).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from idlora_bench.core import provenance
from idlora_bench.core.errors import BenchError, ValidationError
from idlora_bench.core.io import file_sha256
from idlora_bench.core.types import MetricProvenance, RunManifest, SampleResult, parse_record
from idlora_bench.data.splits import Split, load_split, split_registry
from idlora_bench.leaderboard.archive import Limits, extract_archive, folder_problems, name_problem
from idlora_bench.leaderboard.bundle import (
    BUNDLE_MANIFEST,
    SELFTEST_FORMAT,
    SUBMISSION_FORMAT,
    BundleManifest,
    BundleRun,
    is_archive,
)
from idlora_bench.store.run_files import GenerationRecord, results_frame


@dataclass
class BundleRunData:
    """One validated run of a bundle: its entry, manifest, results rows and videos folder (None: not included)."""

    entry: BundleRun
    manifest: RunManifest
    results: pd.DataFrame
    videos_dir: Path | None


@dataclass
class BundleReport:
    """The outcome of validating a bundle: ``problems`` (any one rejects it), ``warnings`` (shown, not fatal)."""

    source: Path
    root: Path | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    manifest: BundleManifest | None = None
    bundle_id: str | None = None
    runs: list[BundleRunData] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# ------------------------------------------------------------------------------------------ entry points
@contextmanager
def opened_bundle(source: Path, *, data_root: Path | None = None, limits: Limits = Limits(),
                  work_dir: Path | None = None) -> Iterator[BundleReport]:
    """Validate ``source`` (a ``.tar.gz``/``.tgz`` archive or a folder) and yield the report; an archive is
    extracted (after its checks) into ``work_dir/bundle`` or a temporary folder removed on exit."""
    source = Path(source)
    temporary = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="idlora-bundle-")) if work_dir is None else Path(work_dir)
    try:
        yield validate_bundle(source, work / "bundle", data_root=data_root, limits=limits)
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)


def validate_bundle(source: Path, extract_to: Path, *, data_root: Path | None = None,
                    limits: Limits = Limits()) -> BundleReport:
    """Validate a bundle archive (extracted into ``extract_to`` when its members are safe) or folder."""
    source = Path(source)
    if source.is_dir():
        return validate_folder(source, data_root=data_root, limits=limits, source=source)
    if not source.is_file():
        return BundleReport(source, None, [f"{source}: no such bundle (a .tar.gz/.tgz archive or a folder)"])
    if not is_archive(source):
        return BundleReport(source, None, [f"{source}: a bundle file must be a .tar.gz or .tgz archive"])
    if source.stat().st_size > limits.total_bytes:
        return BundleReport(source, None, [f"{source}: {source.stat().st_size} bytes, over the limit of "
                                           f"{limits.total_bytes} bytes"])
    problems = extract_archive(source, extract_to, limits)
    if problems:
        return BundleReport(source, None, problems)
    return validate_folder(extract_to, data_root=data_root, limits=limits, source=source)


def validate_folder(root: Path, *, data_root: Path | None = None, limits: Limits = Limits(),
                    source: Path | None = None) -> BundleReport:
    """Validate a bundle folder (see the module docstring); every problem is collected, none raised."""
    root = Path(root)
    report = BundleReport(source or root, root)
    report.problems += folder_problems(root, limits)
    if report.problems:
        return report  # links or special files: nothing in the folder is read
    manifest = _read_manifest(root, report)
    if manifest is None:
        return report
    report.manifest = manifest
    report.bundle_id = file_sha256(root / BUNDLE_MANIFEST)
    _check_files(root, manifest, report)
    splits = _check_splits(manifest, report, data_root)
    seen: dict[tuple[str, str, int], str] = {}
    for entry in manifest.runs:
        data = _check_run(root, entry, manifest, splits, report)
        if data is None:
            continue
        key = (data.manifest.split, data.manifest.method, data.manifest.seed)
        if key in seen:
            report.problems.append(f"{entry.manifest}: method {key[1]!r} seed {key[2]} on split {key[0]!r} is also "
                                   f"run {seen[key]!r} of this bundle")
        seen[key] = entry.name
        report.runs.append(data)
    _check_metric_definitions(manifest.profile, report)
    _check_selftest(root, manifest, report)
    if manifest.package_version != provenance.package_version():
        report.warnings.append(f"{BUNDLE_MANIFEST}: made with idlora-bench {manifest.package_version}, validated with "
                               f"{provenance.package_version()} (metric versions are checked one by one)")
    if not manifest.videos_included:
        report.warnings.append(f"{BUNDLE_MANIFEST}: no videos: the numbers cannot be re-scored (bench leaderboard "
                               "rescore refuses such a bundle)")
    return report


# ------------------------------------------------------------------------------------------ manifest and files
def _read_json(path: Path, label: str, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{label}: missing")
    except UnicodeDecodeError as exc:
        problems.append(f"{label}: not UTF-8 text ({exc})")
    except json.JSONDecodeError as exc:
        problems.append(f"{label}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")
    return None


def _read_manifest(root: Path, report: BundleReport) -> BundleManifest | None:
    data = _read_json(root / BUNDLE_MANIFEST, BUNDLE_MANIFEST, report.problems)
    if data is None:
        return None
    if isinstance(data, dict) and data.get("format") != SUBMISSION_FORMAT:
        report.problems.append(f"{BUNDLE_MANIFEST}: field 'format' is {data.get('format')!r}, expected "
                               f"{SUBMISSION_FORMAT!r}")
        return None
    try:
        return parse_record(BundleManifest, data, BUNDLE_MANIFEST)
    except ValidationError as exc:
        report.problems.append(str(exc))
        return None


def _check_files(root: Path, manifest: BundleManifest, report: BundleReport) -> None:
    """Listed files: safe names, present, sha256 and size as listed; present files: all listed."""
    for name, listed in manifest.files.items():
        if problem := name_problem(name):
            report.problems.append(f"{BUNDLE_MANIFEST}: listed file {name!r}: {problem}")
            continue
        path = root / name
        if not path.is_file():
            report.problems.append(f"{name}: listed in {BUNDLE_MANIFEST} but missing")
            continue
        size = path.stat().st_size
        if size != listed.bytes:
            report.problems.append(f"{name}: {size} bytes, {BUNDLE_MANIFEST} says {listed.bytes}")
        actual = file_sha256(path)
        if actual != listed.sha256:
            report.problems.append(f"{name}: sha256 {actual} does not match {listed.sha256} in {BUNDLE_MANIFEST}")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    for name in sorted(present - set(manifest.files) - {BUNDLE_MANIFEST}):
        report.problems.append(f"{name}: not listed in {BUNDLE_MANIFEST} (every file needs its sha256 there)")


def _check_splits(manifest: BundleManifest, report: BundleReport, data_root: Path | None) -> dict[str, Split]:
    """The bundle's splits as registered here, when version and pairs sha256 agree."""
    registered = set(split_registry().names())
    splits: dict[str, Split] = {}
    names = [record.name for record in manifest.splits]
    for name in sorted({n for n in names if names.count(n) > 1}):
        report.problems.append(f"{BUNDLE_MANIFEST}: split {name!r} listed more than once")
    for record in manifest.splits:
        where = f"{BUNDLE_MANIFEST}: split {record.name!r}"
        if record.name not in registered:
            report.problems.append(f"{where}: not a registered split (known: {', '.join(sorted(registered))})")
            continue
        try:
            split = load_split(record.name, data_root)
        except BenchError as exc:
            report.problems.append(f"{where}: cannot be loaded here: {exc}")
            continue
        if record.version != split.card.version:
            report.problems.append(f"{where}: version {record.version!r}, the registered split is "
                                   f"{split.card.version!r}")
        if record.pairs_sha256 != split.pairs_sha256:
            report.problems.append(f"{where}: pairs sha256 {record.pairs_sha256} does not match the registered "
                                   f"pairs file {split.pairs_path} ({split.pairs_sha256}): a different pair list")
            continue
        splits[record.name] = split
    return splits


# ------------------------------------------------------------------------------------------ runs
def _read_results(path: Path, label: str, problems: list[str]) -> list[SampleResult] | None:
    """Every line of a results file validated; each bad line is a problem (all listed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(f"{label}: missing")
        return None
    except UnicodeDecodeError as exc:
        problems.append(f"{label}: not UTF-8 text ({exc})")
        return None
    rows, bad = [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(parse_record(SampleResult, json.loads(line), f"{label} line {number}"))
        except json.JSONDecodeError as exc:
            problems.append(f"{label} line {number}: invalid JSON ({exc.msg} at column {exc.colno})")
            bad += 1
        except ValidationError as exc:
            problems.append(str(exc))
            bad += 1
    return None if bad else rows


def _check_run(root: Path, entry: BundleRun, bundle: BundleManifest, splits: dict[str, Split],
               report: BundleReport) -> BundleRunData | None:
    """Manifest, results, pairs and videos of one run; None when it cannot be read."""
    problems = report.problems
    for label, path in (("manifest", entry.manifest), ("results", entry.results), ("videos", entry.videos)):
        if path is None:
            continue
        if (problem := name_problem(path)) or not PurePosixPath(path).is_relative_to(f"runs/{entry.name}"):
            problems.append(f"{BUNDLE_MANIFEST}: run {entry.name!r}: its {label} {path!r} is not under "
                            f"runs/{entry.name}/{f' ({problem})' if problem else ''}")
            return None
        if label != "videos" and path not in bundle.files:
            problems.append(f"{BUNDLE_MANIFEST}: run {entry.name!r}: its {label} {path!r} is not listed in files")
            return None
    data = _read_json(root / entry.manifest, entry.manifest, problems)
    if data is None:
        return None
    try:
        manifest = parse_record(RunManifest, data, entry.manifest)
    except ValidationError as exc:
        problems.append(str(exc))
        return None
    for key in ("method", "seed", "split", "run_id"):
        if getattr(manifest, key) != getattr(entry, key):
            problems.append(f"{entry.manifest}: field '{key}' is {getattr(manifest, key)!r}, {BUNDLE_MANIFEST} says "
                            f"{getattr(entry, key)!r}")
    if manifest.profile != bundle.profile:
        problems.append(f"{entry.manifest}: profile {manifest.profile!r}; the bundle's profile is {bundle.profile!r} "
                        "(one profile per bundle)")
    if manifest.smoke:
        problems.append(f"{entry.manifest}: made with a smoke configuration; the leaderboard takes no smoke runs")
    if (bundle.videos_included) != (entry.videos is not None):
        problems.append(f"{BUNDLE_MANIFEST}: run {entry.name!r}: videos_included is {bundle.videos_included} but its "
                        f"videos folder is {entry.videos!r}")
    rows = _read_results(root / entry.results, entry.results, problems)
    if rows is None:
        return None
    results = results_frame(rows)
    split = splits.get(manifest.split)
    if split is None:
        if manifest.split not in {record.name for record in bundle.splits}:
            problems.append(f"{entry.manifest}: split {manifest.split!r} is not among the bundle's splits")
    else:
        if manifest.split_pairs_sha256 != split.pairs_sha256 or manifest.split_version != split.card.version:
            problems.append(f"{entry.manifest}: split {manifest.split!r} version {manifest.split_version!r} pairs sha256 "
                            f"{manifest.split_pairs_sha256}; the registered split is version {split.card.version!r} "
                            f"with pairs sha256 {split.pairs_sha256}")
        _check_rows(entry, manifest, results, split, bundle.profile, problems)
    videos = root / entry.videos if entry.videos is not None else None
    if videos is not None:
        _check_videos(entry, results, split, videos, bundle, problems)
    return BundleRunData(entry, manifest, results, videos)


def _pairs_text(pairs: list[str] | set[str]) -> str:
    ordered = sorted(pairs)
    return f"{len(ordered)} pair(s): {', '.join(ordered)}"


def _check_rows(entry: BundleRun, manifest: RunManifest, results: pd.DataFrame, split: Split, profile: str,
                problems: list[str]) -> None:
    """Rows agree with the manifest and cover every pair of the split exactly once per metric."""
    where = entry.results
    for column, expected in (("run_id", manifest.run_id), ("method", manifest.method), ("split", manifest.split),
                             ("profile", profile)):
        wrong = results[results[column] != expected]
        if len(wrong):
            problems.append(f"{where}: {len(wrong)} row(s) with {column} other than {expected!r} (e.g. "
                            f"{wrong[column].iloc[0]!r} for pair {wrong['pair_id'].iloc[0]})")
    metrics = {metric.family: metric for metric in manifest.metrics}
    for family in sorted(set(results["metric"]) - set(metrics)):
        problems.append(f"{where}: rows of metric {family!r}, which the run manifest does not list")
    expected_pairs = {pair.pair_id: pair for pair in split.pairs}
    for family, metric in metrics.items():
        rows = results[results["metric"] == family]
        for column, expected in (("metric_impl", metric.name), ("metric_version", metric.version),
                                 ("direction", metric.direction)):
            wrong = rows[rows[column] != expected]
            if len(wrong):
                problems.append(f"{where}: metric {family!r}: {column} is not {expected!r} (as the manifest says) for "
                                f"{_pairs_text(set(wrong['pair_id']))}")
        counts = rows["pair_id"].value_counts()
        missing = set(expected_pairs) - set(counts.index)
        if missing:
            problems.append(f"{where}: metric {family!r}: no row (ok or failed) for {_pairs_text(missing)} of split "
                            f"{split.name!r}")
        unknown = set(counts.index) - set(expected_pairs)
        if unknown:
            problems.append(f"{where}: metric {family!r}: rows for pairs that split {split.name!r} does not have: "
                            f"{_pairs_text(unknown)}")
        repeated = set(counts[counts > 1].index)
        if repeated:
            problems.append(f"{where}: metric {family!r}: more than one row for {_pairs_text(repeated)}")
    for row in results.drop_duplicates(["pair_id", "speaker_id", "kind"]).itertuples():
        pair = expected_pairs.get(row.pair_id)
        if pair is not None and (row.speaker_id, row.kind) != (pair.speaker_id, pair.kind):
            problems.append(f"{where}: pair {row.pair_id}: speaker {row.speaker_id!r} / kind {row.kind!r}, the split "
                            f"says {pair.speaker_id!r} / {pair.kind!r}")


def _check_videos(entry: BundleRun, results: pd.DataFrame, split: Split | None, videos: Path, bundle: BundleManifest,
                  problems: list[str]) -> None:
    """One video per scored pair, with the sha256 the rows were scored from (the listed sha256, itself checked
    against the file); records valid; nothing else."""
    claimed: dict[str, str] = {}
    for pair_id, shas in results.dropna(subset=["generated_sha256"]).groupby("pair_id")["generated_sha256"]:
        distinct = sorted(set(shas))
        if len(distinct) > 1:
            problems.append(f"{entry.results}: pair {pair_id}: rows name {len(distinct)} different generated files")
        claimed[str(pair_id)] = distinct[0]
    for pair_id, sha in sorted(claimed.items()):
        label = f"{entry.videos}/{pair_id}.mp4"
        listed = bundle.files.get(label)
        if listed is None:  # listed but absent files are reported by the files check
            problems.append(f"{label}: missing from {BUNDLE_MANIFEST} (the results were scored from a file with "
                            f"sha256 {sha})")
        elif listed.sha256 != sha:
            problems.append(f"{label}: sha256 differs from the {sha} its results rows were scored from")
    known = {pair.pair_id for pair in split.pairs} if split is not None else set(claimed)
    for path in sorted(videos.glob("*")) if videos.is_dir() else []:
        label = f"{entry.videos}/{path.name}"
        if path.suffix == ".mp4" and path.stem in claimed:
            continue
        if path.suffix == ".json" and path.stem in known:
            try:
                record = GenerationRecord.model_validate_json(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                problems.append(f"{label}: not a valid generation record ({exc})")
                continue
            if record.status == "ok" and record.sha256 != claimed.get(path.stem):
                problems.append(f"{label}: records sha256 {record.sha256}, the results were scored from "
                                f"{claimed.get(path.stem)}")
            continue
        problems.append(f"{label}: not a video or generation record of a scored pair of this run")


# ------------------------------------------------------------------------------------------ definitions
def _same_json(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def current_metric(name: str) -> MetricProvenance:
    """The provenance of metric ``name`` as registered here (its class is imported, nothing is loaded)."""
    from idlora_bench.metrics import METRICS

    return METRICS.get(name)(device="cpu").provenance()


def _check_metric_definitions(profile: str, report: BundleReport) -> None:
    """Each run's metrics: in the profile here, same version, params, direction and weights."""
    from idlora_bench.metrics import PROFILES

    try:
        names = list(PROFILES.get(profile))
    except BenchError as exc:
        report.problems.append(f"{BUNDLE_MANIFEST}: profile {profile!r}: {exc}")
        return
    checked: dict[str, MetricProvenance | str] = {}
    for run in report.runs:
        for metric in run.manifest.metrics:
            where = f"{run.entry.manifest}: metric {metric.name!r}"
            if metric.name not in names:
                report.problems.append(f"{where}: not in profile {profile!r} here ({', '.join(names)})")
                continue
            if metric.name not in checked:
                try:
                    checked[metric.name] = current_metric(metric.name)
                except BenchError as exc:
                    checked[metric.name] = f"cannot be checked here: {exc}"
            here = checked[metric.name]
            if isinstance(here, str):
                report.problems.append(f"{where}: {here}")
                continue
            for key in ("family", "version", "direction", "params"):
                if not _same_json(getattr(metric, key), getattr(here, key)):
                    report.problems.append(f"{where}: {key} {getattr(metric, key)!r}, the metric here has "
                                           f"{getattr(here, key)!r} (re-score with this version)")
            for weights, sha in metric.weights.items():
                local = here.weights.get(weights)
                if sha is not None and local is not None and sha != local:
                    report.problems.append(f"{where}: weights {weights} sha256 {sha}, the card here says {local}")


def _check_selftest(root: Path, manifest: BundleManifest, report: BundleReport) -> None:
    """The selftest report: same profile, passed, every run metric checked with the same version and weights."""
    record = manifest.selftest
    if not record.included:
        if record.path is not None:
            report.problems.append(f"{BUNDLE_MANIFEST}: selftest not included but a path {record.path!r} is given")
        report.warnings.append(f"{BUNDLE_MANIFEST}: no selftest report ({record.note or 'no reason given'})")
        return
    if record.path is None or record.path not in manifest.files or name_problem(record.path):
        report.problems.append(f"{BUNDLE_MANIFEST}: selftest included but its file {record.path!r} is not a listed "
                               "file of the bundle")
        return
    data = _read_json(root / record.path, record.path, report.problems)
    if not isinstance(data, dict):
        if data is not None:
            report.problems.append(f"{record.path}: not a JSON object")
        return
    if data.get("format") != SELFTEST_FORMAT:
        report.problems.append(f"{record.path}: field 'format' is {data.get('format')!r}, expected {SELFTEST_FORMAT!r}")
        return
    if data.get("profile") != manifest.profile:
        report.problems.append(f"{record.path}: profile {data.get('profile')!r}, the bundle's is {manifest.profile!r}")
    if data.get("passed") is not True or record.passed is not True:
        report.problems.append(f"{record.path}: the selftest did not pass (field 'passed' is {data.get('passed')!r})")
    checked = {m.get("name"): m for m in data.get("metrics", []) if isinstance(m, dict)}
    for metric in {m.name: m for run in report.runs for m in run.manifest.metrics}.values():
        found = checked.get(metric.name)
        if found is None:
            report.problems.append(f"{record.path}: metric {metric.name!r} used by the runs was not self-tested")
            continue
        if found.get("version") != metric.version:
            report.problems.append(f"{record.path}: metric {metric.name!r} version {found.get('version')!r}, the runs "
                                   f"used {metric.version!r}")
        for weights, sha in metric.weights.items():
            tested = (found.get("weights") or {}).get(weights)
            if sha is not None and tested is not None and tested != sha:
                report.problems.append(f"{record.path}: metric {metric.name!r} weights {weights} sha256 {tested}, the "
                                       f"runs used {sha}")
