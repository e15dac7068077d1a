"""``bench leaderboard build``: the static leaderboard site from validated bundles.

Every bundle is validated (:mod:`idlora_bench.leaderboard.validate`) and refused with its problems when invalid;
a bundle whose re-scoring report (``--rescore-reports``) says *rejected* is refused too, and a bundle without one is
shown as "not re-scored". Runs are grouped by (split, metric profile): one section each, never mixed.

Per section (statistics from :mod:`idlora_bench.report`): a sortable table of every method (mean, 95% CI, coverage,
significance against the reference with Holm over the section, seed spread for several seeds), the paper's reported
rows for the ``paper`` profile only (marked "reported", never ranked), the calibration between the anchors, forest
and distribution plots, and downloads (CSV, LaTeX, comparisons). Per method: a page with its per-sample rows
(reference, target and generated video side by side, each metric's value or failure reason), worst first.

Site layout::

    index.html                      every section's table, the submissions
    assets/                         leaderboard.css, leaderboard.js (local: no CDN)
    <section>/                      table.csv/.tex, summary.csv, comparisons.csv, calibration.*, plots
    <section>/<method>.html         method pages (+ <method>-samples.csv, <method>-forest/-distributions plots)
    media/<split>/<clip path>       reference and target clips (shipped splits; external ones only when asked)
    media/<section>/<method>/seed<k>/<pair_id>.mp4   the generated videos
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import atomic_write_text
from idlora_bench.data.splits import Split, load_split
from idlora_bench.leaderboard.archive import Limits
from idlora_bench.leaderboard.bundle import BundleManifest, safe_name
from idlora_bench.leaderboard.rescore import RESCORE_FORMAT
from idlora_bench.leaderboard.validate import BundleRunData, opened_bundle
from idlora_bench.report import render
from idlora_bench.report.paired_stats import FailurePolicy
from idlora_bench.report.stats import summarise
from idlora_bench.report.tables import (
    LoadedRuns,
    Table,
    calibration_table,
    combine_runs,
    load_reported,
    main_table,
)

ASSETS = ("leaderboard.css", "leaderboard.js")


@dataclass(frozen=True)
class SiteOptions:
    """How the site's statistics are made (see :func:`idlora_bench.report.tables.main_table`)."""

    reference: str = "gt"
    policy: FailurePolicy = "complete-case"
    alpha: float = 0.05
    n_boot: int = 10_000
    seed: int = 0
    cluster: str | None = None
    reported: tuple[str, ...] = ("table1", "table2")
    worst_k: int = 5
    publish_external_media: bool = False
    data_root: Path | None = None
    plots: bool = True


@dataclass
class Submission:
    """A validated bundle: where it came from, its id and manifest, its runs and its re-scoring status."""

    source: Path
    bundle_id: str
    manifest: BundleManifest
    runs: list[BundleRunData]
    rescore: str  # "accepted" or "not re-scored"


@dataclass
class Section:
    """One (split, profile) of the site: its runs, tables and comparisons."""

    split: Split
    profile: str
    slug: str
    entries: list[tuple[Submission, BundleRunData]]
    loaded: LoadedRuns
    table: Table
    comparisons: pd.DataFrame
    summary: pd.DataFrame
    calibration: Table | None = None
    files: dict[str, str] = field(default_factory=dict)  # label -> path relative to the site root
    method_pages: dict[str, str] = field(default_factory=dict)  # method -> page path relative to the site root
    split_media: bool = False

    @property
    def title(self) -> str:
        return f"{self.split.name} · {self.profile}"


def method_slug(method: str) -> str:
    return safe_name(method)


# ------------------------------------------------------------------------------------------ inputs
def read_rescore_reports(paths: list[Path]) -> dict[str, bool]:
    """bundle id -> accepted, from ``rescore-report.json`` files (format checked)."""
    verdicts: dict[str, bool] = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValidationError(f"{path}: not a readable re-scoring report ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != RESCORE_FORMAT or "bundle_id" not in data:
            raise ValidationError(f"{path}: field 'format' is not {RESCORE_FORMAT!r} (not a bench leaderboard rescore "
                                  "report)")
        verdicts[str(data["bundle_id"])] = bool(data.get("accepted"))
    return verdicts


def open_submissions(stack: ExitStack, bundles: list[Path], verdicts: dict[str, bool], options: SiteOptions,
                     limits: Limits) -> list[Submission]:
    """Validate every bundle (kept open in ``stack``); any invalid or rejected one stops the build with its problems."""
    submissions, problems = [], []
    for path in bundles:
        report = stack.enter_context(opened_bundle(Path(path), data_root=options.data_root, limits=limits))
        if not report.ok:
            problems += [f"{path}: {problem}" for problem in report.problems]
            continue
        assert report.manifest is not None and report.bundle_id is not None
        verdict = verdicts.get(report.bundle_id)
        if verdict is False:
            problems.append(f"{path}: its re-scoring report rejects it (bundle {report.bundle_id[:12]})")
            continue
        submissions.append(Submission(Path(path), report.bundle_id, report.manifest, report.runs,
                                      "accepted" if verdict else "not re-scored"))
    if problems:
        raise ValidationError(f"the site is not built ({len(problems)} problem(s)):\n  - " + "\n  - ".join(problems))
    return submissions


# ------------------------------------------------------------------------------------------ sections
def _group(submissions: list[Submission]) -> dict[tuple[str, str], list[tuple[Submission, BundleRunData]]]:
    groups: dict[tuple[str, str], list[tuple[Submission, BundleRunData]]] = {}
    seen: dict[tuple[str, str, str, int], Path] = {}
    for submission in submissions:
        for run in submission.runs:
            key = (run.manifest.split, run.manifest.profile, run.manifest.method, run.manifest.seed)
            if key in seen:
                raise ValidationError(f"method {key[2]!r} seed {key[3]} on split {key[0]!r} (profile {key[1]!r}) is in "
                                      f"two bundles: {seen[key]} and {submission.source}")
            seen[key] = submission.source
            groups.setdefault((key[0], key[1]), []).append((submission, run))
    return groups


def _reported_rows(profile: str, split: str, tables: tuple[str, ...]) -> pd.DataFrame | None:
    """The paper's printed rows for ``split`` (paper profile only; first table wins for a repeated value)."""
    if profile != "paper" or not tables:
        return None
    frame = pd.concat([load_reported(name) for name in tables], ignore_index=True)
    frame = frame[frame["split"] == split].drop_duplicates(["split", "method", "metric"])
    return frame if len(frame) else None


def build_section(split_name: str, profile: str, entries: list[tuple[Submission, BundleRunData]],
                  options: SiteOptions) -> Section:
    """Tables and comparisons of one (split, profile)."""
    frames = [run.results.assign(seed=run.manifest.seed) for _, run in entries]
    loaded = combine_runs(frames, [run.manifest for _, run in entries], seeds="mean")
    if options.reference not in set(loaded.results["method"]):
        raise ValidationError(f"split {split_name!r}, profile {profile!r}: no run of the reference method "
                              f"{options.reference!r} among the bundles (add it, e.g. an anchors bundle, or choose "
                              "--against)")
    reported = _reported_rows(profile, split_name, options.reported)
    table, comparisons = main_table(loaded.results, options.reference, display=loaded.display, policy=options.policy,
                                    alpha=options.alpha, reported=reported, n_boot=options.n_boot, seed=options.seed,
                                    cluster=options.cluster)
    summary = summarise(loaded.results, cluster=options.cluster, n_boot=options.n_boot, seed=options.seed)
    methods = set(loaded.results["method"])
    calibration = (calibration_table(loaded.results, display=loaded.display, alpha=options.alpha)
                   if {"gt", "swap-speaker"} <= methods else None)
    split = load_split(split_name, options.data_root)
    return Section(split, profile, f"{safe_name(split_name)}--{safe_name(profile)}", entries, loaded, table,
                   comparisons, summary, calibration)


def write_downloads(section: Section, site: Path) -> None:
    """CSV and LaTeX of the section's table (and calibration), its summary and comparisons, and its plots."""
    folder = site / section.slug
    folder.mkdir(parents=True, exist_ok=True)
    written = {"table (CSV)": "table.csv", "table (LaTeX)": "table.tex", "summary: mean, 95% CI, coverage (CSV)":
               "summary.csv", "paired comparisons (CSV)": "comparisons.csv"}
    atomic_write_text(folder / "table.csv", render.to_csv(section.table))
    atomic_write_text(folder / "table.tex", render.to_latex(section.table))
    atomic_write_text(folder / "summary.csv", section.summary.to_csv(index=False))
    atomic_write_text(folder / "comparisons.csv", section.comparisons.to_csv(index=False))
    if section.calibration is not None:
        atomic_write_text(folder / "calibration.csv", render.to_csv(section.calibration))
        atomic_write_text(folder / "calibration.tex", render.to_latex(section.calibration))
        written.update({"calibration (CSV)": "calibration.csv", "calibration (LaTeX)": "calibration.tex"})
    section.files = {label: f"{section.slug}/{name}" for label, name in written.items()}


def write_section_plots(section: Section, site: Path) -> None:
    """Forest plot of the comparisons and per-metric distributions (PNG + SVG) of the whole section."""
    from idlora_bench.report import plots

    folder = site / section.slug
    if len(section.comparisons):
        plots.forest_plot(section.comparisons, folder, labels=section.table.labels)
        section.files.update({"forest plot (SVG)": f"{section.slug}/forest.svg"})
    plots.distribution_plot(section.loaded.results, folder, labels=section.table.labels)
    section.files.update({"distributions (SVG)": f"{section.slug}/distributions.svg"})


def copy_media(section: Section, site: Path, options: SiteOptions) -> None:
    """Reference and target clips (shipped splits, or external ones when asked) and every generated video."""
    split = section.split
    section.split_media = split.card.media == "shipped" or options.publish_external_media
    if section.split_media:
        for clip in split.clips():
            destination = site / "media" / safe_name(split.name) / clip.path
            if not destination.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(split.media_path(clip), destination)
    for _, run in section.entries:
        if run.videos_dir is None:
            continue
        folder = site / generated_folder(section, run.manifest.method, run.manifest.seed)
        folder.mkdir(parents=True, exist_ok=True)
        for video in sorted(run.videos_dir.glob("*.mp4")):
            shutil.copyfile(video, folder / video.name)


def generated_folder(section: Section, method: str, seed: int) -> str:
    """Site-relative folder of a run's generated videos."""
    return f"media/{section.slug}/{method_slug(method)}/seed{seed}"


def clip_url(section: Section, path: str) -> str | None:
    """Site-relative URL of a split clip, None when the split's media are not published."""
    return f"media/{safe_name(section.split.name)}/{path}" if section.split_media else None


# ------------------------------------------------------------------------------------------ build
def copy_assets(site: Path) -> None:
    """The site's CSS and JS from the package (``site_assets/``)."""
    folder = site / "assets"
    folder.mkdir(parents=True, exist_ok=True)
    package = resources.files("idlora_bench.leaderboard") / "site_assets"
    for name in ASSETS:
        (folder / name).write_bytes((package / name).read_bytes())


def build_site(bundles: list[Path], out: Path, options: SiteOptions = SiteOptions(),
               rescore_reports: list[Path] | None = None, limits: Limits = Limits()) -> Path:
    """Validate the bundles and write the site to ``out`` (a new or empty folder; written beside it, then moved).
    Returns the index page's path."""
    from idlora_bench.leaderboard import site_pages

    out = Path(out)
    if not bundles:
        raise ValidationError("no bundles to build a leaderboard from")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValidationError(f"{out}: the site folder must be new or empty")
    verdicts = read_rescore_reports(rescore_reports or [])
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".site-", dir=out.parent))
    try:
        with ExitStack() as stack:
            submissions = open_submissions(stack, bundles, verdicts, options, limits)
            sections = [build_section(split, profile, entries, options)
                        for (split, profile), entries in sorted(_group(submissions).items())]
            copy_assets(staging)
            for section in sections:
                write_downloads(section, staging)
                if options.plots:
                    write_section_plots(section, staging)
                copy_media(section, staging, options)
                site_pages.write_method_pages(section, staging, options)
            atomic_write_text(staging / "index.html", site_pages.index_page(sections, submissions, options))
        if out.exists():
            out.rmdir()
        staging.rename(out)
        return out / "index.html"
    finally:
        if staging.exists():
            shutil.rmtree(staging)
