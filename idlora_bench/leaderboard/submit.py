"""``bench submit RUN... -o BUNDLE``: pack run folders (one metric profile) into a submission bundle.

The bundle carries each run's results and manifest as the run wrote them, the selftest report of the profile
(``--selftest PATH``; or ``--no-selftest``, which the bundle records), the splits' pairs sha256 and, by default, the
generated videos, each checked against the sha256 its results rows were scored from. The staged bundle is then
validated exactly as the leaderboard will validate it (:func:`idlora_bench.leaderboard.validate.validate_folder`);
any problem stops the submission with every problem listed, and nothing is written at ``-o``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from idlora_bench.core import provenance
from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import file_sha256
from idlora_bench.data.splits import load_split
from idlora_bench.leaderboard.bundle import (
    SELFTEST_FORMAT,
    SUBMISSION_FORMAT,
    BundleManifest,
    BundleRun,
    BundleSelftest,
    BundleSplit,
    is_archive,
    list_files,
    safe_name,
    write_archive,
    write_manifest,
)
from idlora_bench.store.run_files import StoredRun, load_run


@dataclass
class SubmitOutcome:
    """What ``submit`` wrote: the bundle path, its id (sha256 of bundle.json), its manifest and warnings."""

    path: Path
    bundle_id: str
    manifest: BundleManifest
    warnings: list[str] = field(default_factory=list)


def _video_folders(run: StoredRun) -> list[Path]:
    """Where a run's generated videos may be: ``videos/`` (bench run), the run folder itself and the scored outputs
    folder named in the manifest (bench score)."""
    folders = [run.files.run_dir / "videos", run.files.run_dir]
    outputs = run.manifest.method_config.get("outputs_dir")
    if isinstance(outputs, str):
        folders.append(Path(outputs))
    return list(dict.fromkeys(folders))


def _copy_videos(run: StoredRun, destination: Path, problems: list[str]) -> None:
    """Copy each scored video (and its generation record, if any) whose sha256 equals the rows' generated_sha256."""
    results = run.results
    hashes = results.dropna(subset=["generated_sha256"]).groupby("pair_id", sort=False)["generated_sha256"].unique()
    folders = _video_folders(run)
    destination.mkdir(parents=True, exist_ok=True)
    for pair_id, shas in hashes.items():
        if len(shas) > 1:
            problems.append(f"{run.files.results_jsonl}: pair {pair_id}: rows name {len(shas)} different generated files")
            continue
        found = None
        mismatched = []
        for folder in folders:
            candidate = folder / f"{pair_id}.mp4"
            if candidate.is_file():
                if file_sha256(candidate) == shas[0]:
                    found = candidate
                    break
                mismatched.append(str(candidate))
        if found is None:
            where = ", ".join(str(f) for f in folders)
            detail = f"; {', '.join(mismatched)} differ(s) from it (changed after scoring?)" if mismatched else ""
            problems.append(f"{run.files.results_jsonl}: pair {pair_id}: no video with the scored sha256 {shas[0]} "
                            f"in {where}{detail}")
            continue
        shutil.copyfile(found, destination / f"{pair_id}.mp4")
        record = found.with_suffix(".json")
        if record.is_file():
            shutil.copyfile(record, destination / f"{pair_id}.json")


def _selftest(path: Path | None, no_selftest: bool, profile: str, staging: Path) -> BundleSelftest:
    """Copy the selftest report into the bundle (checked: format, profile, passed) or record its absence."""
    if path is not None and no_selftest:
        raise ValidationError("--selftest and --no-selftest exclude each other")
    if path is None:
        if not no_selftest:
            raise ValidationError(f"a bundle carries the selftest report of its metric profile: run `bench selftest "
                                  f"--profile {profile} --out DIR` and pass --selftest DIR/selftest-{profile}.json, "
                                  "or pass --no-selftest (recorded in the bundle and shown on the leaderboard)")
        return BundleSelftest(included=False, note="submitted with --no-selftest: the metric weights of this "
                              "profile were not checked by bench selftest on the submitter's machine")
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"{path}: file does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path}: not a JSON selftest report ({exc})") from None
    if not isinstance(report, dict) or report.get("format") != SELFTEST_FORMAT:
        raise ValidationError(f"{path}: field 'format' is not {SELFTEST_FORMAT!r} (not a bench selftest report)")
    if report.get("profile") != profile:
        raise ValidationError(f"{path}: a selftest of profile {report.get('profile')!r}; the runs use {profile!r}")
    if report.get("passed") is not True:
        failed = report.get("counts", {}).get("failed", "?")
        raise ValidationError(f"{path}: the selftest did not pass ({failed} failed check(s)); fix the weights first")
    name = f"selftest-{profile}.json"
    shutil.copyfile(path, staging / name)
    return BundleSelftest(included=True, path=name, passed=True)


def _stage(runs: list[StoredRun], staging: Path, include_videos: bool) -> tuple[list[BundleRun], list[str]]:
    """Copy results, manifests (and videos) of every run into ``staging/runs/<name>/``."""
    problems: list[str] = []
    entries: list[BundleRun] = []
    used: set[str] = set()
    for run in runs:
        base = safe_name(f"{run.manifest.method}-{run.manifest.split}-seed{run.manifest.seed}")
        name, number = base, 2
        while name in used:
            name, number = f"{base}-{number}", number + 1
        used.add(name)
        folder = staging / "runs" / name
        folder.mkdir(parents=True)
        shutil.copyfile(run.files.manifest_json, folder / run.files.manifest_json.name)
        shutil.copyfile(run.files.results_jsonl, folder / run.files.results_jsonl.name)
        if include_videos:
            _copy_videos(run, folder / "videos", problems)
        prefix = f"runs/{name}/"
        entries.append(BundleRun(name=name, method=run.manifest.method, seed=run.manifest.seed,
                                 split=run.manifest.split, run_id=run.manifest.run_id,
                                 manifest=prefix + run.files.manifest_json.name,
                                 results=prefix + run.files.results_jsonl.name,
                                 videos=prefix + "videos" if include_videos else None))
    return entries, problems


def _splits(runs: list[StoredRun], data_root: Path | None) -> list[BundleSplit]:
    """The registered splits of the runs (version and pairs sha256 as this checkout has them)."""
    records = {}
    for run in runs:
        if run.manifest.split not in records:
            split = load_split(run.manifest.split, data_root)
            records[split.name] = BundleSplit(name=split.name, version=split.card.version,
                                              pairs_sha256=split.pairs_sha256)
    return list(records.values())


def submit(run_paths: list[Path], out: Path, *, profile: str | None = None, selftest: Path | None = None,
           no_selftest: bool = False, include_videos: bool = True, title: str | None = None, submitter: str = "",
           data_root: Path | None = None) -> SubmitOutcome:
    """Pack ``run_paths`` (run folders of one profile) into a bundle at ``out`` (``.tar.gz``/``.tgz``: an archive;
    otherwise a new folder), validated before it is written. Raises ValidationError listing every problem."""
    from idlora_bench.leaderboard.validate import validate_folder

    out = Path(out)
    if out.exists():
        raise ValidationError(f"{out}: already exists; choose a new bundle path")
    runs = [load_run(Path(path), profile) for path in run_paths]
    profiles = sorted({run.manifest.profile for run in runs})
    if len(profiles) != 1:
        raise ValidationError(f"a bundle holds one metric profile; these runs use {profiles} (choose with --profile)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
    try:
        record = _selftest(selftest, no_selftest, profiles[0], staging)
        entries, problems = _stage(runs, staging, include_videos)
        if problems:
            raise ValidationError(f"cannot submit ({len(problems)} problem(s)):\n  - " + "\n  - ".join(problems))
        commit, dirty = provenance.git_state()
        manifest = BundleManifest(
            format=SUBMISSION_FORMAT, title=title or ", ".join(dict.fromkeys(r.manifest.method for r in runs)),
            submitter=submitter, created_utc=provenance.now_utc(), package_version=provenance.package_version(),
            git_hash=commit, git_dirty=dirty, profile=profiles[0], splits=_splits(runs, data_root), runs=entries,
            selftest=record, videos_included=include_videos, files=list_files(staging))
        identity = write_manifest(staging, manifest)
        report = validate_folder(staging, data_root=data_root)
        if not report.ok:
            raise ValidationError(f"the bundle would not pass validation ({len(report.problems)} problem(s)):\n  - "
                                  + "\n  - ".join(report.problems))
        if is_archive(out):
            write_archive(staging, out)
        else:
            staging.rename(out)
        return SubmitOutcome(out, identity, manifest, report.warnings)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
