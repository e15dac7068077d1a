"""``bench submit`` and ``bench leaderboard validate|rescore|build`` (see ``idlora_bench.leaderboard``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from idlora_bench.cli.console import console, err_console, progress
from idlora_bench.core.errors import BenchError

if TYPE_CHECKING:
    from idlora_bench.leaderboard.archive import Limits


def _limits(args: argparse.Namespace) -> Limits:
    """Bundle size limits from ``--max-file-mb`` / ``--max-total-mb`` (MiB)."""
    from idlora_bench.leaderboard.archive import Limits

    return Limits(member_bytes=int(args.max_file_mb * (1 << 20)), total_bytes=int(args.max_total_mb * (1 << 20)))


def cmd_submit(args: argparse.Namespace) -> int:
    from idlora_bench.leaderboard.submit import submit

    outcome = submit([Path(p) for p in args.runs], Path(args.output), profile=args.profile, selftest=args.selftest,
                     no_selftest=args.no_selftest, include_videos=not args.no_videos, title=args.title,
                     submitter=args.submitter or "", data_root=args.data_root)
    manifest = outcome.manifest
    console.print(f"[green]bundle written[/]: {outcome.path} (bundle id {outcome.bundle_id}); profile "
                  f"{manifest.profile}, {len(manifest.runs)} run(s), {len(manifest.files)} file(s), videos "
                  f"{'included' if manifest.videos_included else 'left out'}, selftest "
                  f"{'included' if manifest.selftest.included else 'left out (recorded)'}")
    for warning in outcome.warnings:
        err_console.print(f"  [yellow]warning[/]: {warning}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from idlora_bench.leaderboard.validate import opened_bundle

    with opened_bundle(Path(args.bundle), data_root=args.data_root, limits=_limits(args)) as report:
        for warning in report.warnings:
            err_console.print(f"[yellow]warning[/]: {warning}")
        if report.ok:
            assert report.manifest is not None
            runs = ", ".join(f"{r.manifest.method} seed {r.manifest.seed} on {r.manifest.split}" for r in report.runs)
            console.print(f"[green]bundle {args.bundle} is valid[/] (bundle id {report.bundle_id}): profile "
                          f"{report.manifest.profile}; {runs}")
            return 0
        err_console.print(f"[red]bundle {args.bundle} is INVALID ({len(report.problems)} problem(s)):[/]")
        for problem in report.problems:
            err_console.print(f"  - {problem}", markup=False, highlight=False)
        return 1


def cmd_rescore(args: argparse.Namespace) -> int:
    from idlora_bench.leaderboard.rescore import DEFAULT_REL_TOL, Tolerance, rescore_bundle

    tolerance = Tolerance(abs_tol=args.abs_tol, rel_tol=DEFAULT_REL_TOL if args.rel_tol is None else args.rel_tol)
    report = rescore_bundle(Path(args.bundle), out_dir=args.out, data_root=args.data_root, device=args.device,
                            cache_path=args.cache, tolerance=tolerance, limits=_limits(args), progress=progress)
    console.print(report.to_markdown(), markup=False, highlight=False)
    if args.out:
        err_console.print(f"report: {Path(args.out) / 'rescore-report.json'}")
    if report.accepted:
        console.print("[green]ACCEPTED[/]: every claimed per-sample value was recomputed from the videos")
        return 0
    err_console.print(f"[red]REJECTED[/]: {len(report.flags)} row(s) differ from the re-scored values; pairs "
                      + ", ".join(report.flagged_pairs))
    return 1


def _bundles(args: argparse.Namespace) -> list[Path]:
    """Bundles named on the command line and those in ``--submissions`` (archives and folders with bundle.json)."""
    from idlora_bench.leaderboard.bundle import BUNDLE_MANIFEST, is_archive

    found = [Path(p) for p in args.bundles]
    for folder in args.submissions or []:
        folder = Path(folder)
        if not folder.is_dir():
            raise BenchError(f"--submissions {folder}: not a folder")
        found += sorted(p for p in folder.iterdir() if (p.is_file() and is_archive(p))
                        or (p.is_dir() and (p / BUNDLE_MANIFEST).is_file()))
    if not found:
        raise BenchError("no bundles: name them, or give --submissions DIR holding .tar.gz bundles")
    return found


def cmd_build(args: argparse.Namespace) -> int:
    from idlora_bench.leaderboard.site import SiteOptions, build_site
    from idlora_bench.report.stats import CLUSTER_COLUMNS

    reported = tuple(t for item in args.reported.split(",") if (t := item.strip()) and t != "none")
    options = SiteOptions(reference=args.against, policy=args.policy, alpha=args.alpha, n_boot=args.n_boot,
                          seed=args.seed, cluster=CLUSTER_COLUMNS.get(args.cluster), reported=reported,
                          worst_k=args.worst_k, publish_external_media=args.publish_external_media,
                          data_root=args.data_root, plots=not args.no_plots)
    index = build_site(_bundles(args), Path(args.output), options, rescore_reports=args.rescore_reports,
                       limits=_limits(args))
    console.print(f"[green]leaderboard site written[/]: {index} (serve the folder, e.g. python -m http.server -d "
                  f"{Path(args.output)})")
    return 0


def _limit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-file-mb", type=float, default=2048.0, help="largest file of a bundle (MiB)")
    parser.add_argument("--max-total-mb", type=float, default=65536.0, help="largest bundle, all files (MiB)")
    parser.add_argument("--data-root", type=Path, help="media root of external splits ($IDLORA_BENCH_DATA)")


def add_submit_parser(sub: argparse._SubParsersAction) -> None:
    submit = sub.add_parser("submit", help="pack run folders into a leaderboard submission bundle (validated)")
    submit.add_argument("runs", nargs="+", help="run folders of one metric profile")
    submit.add_argument("-o", "--output", required=True, help="BUNDLE.tar.gz (archive) or a new folder")
    submit.add_argument("--profile", help="profile to pack when a run folder holds several")
    submit.add_argument("--selftest", type=Path, help="selftest-<profile>.json of the profile (bench selftest)")
    submit.add_argument("--no-selftest", action="store_true", help="submit without a selftest report (recorded)")
    submit.add_argument("--no-videos", action="store_true", help="leave the generated videos out (cannot be re-scored)")
    submit.add_argument("--title", help="the submission's title on the leaderboard (default: its methods)")
    submit.add_argument("--submitter", help="who submits (name, team or contact)")
    submit.add_argument("--data-root", type=Path, help="media root of external splits ($IDLORA_BENCH_DATA)")
    submit.set_defaults(func=cmd_submit)


def add_leaderboard_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("leaderboard", help="submission bundles: validate, rescore; the static site: build")
    actions = parser.add_subparsers(dest="action", required=True)
    validate = actions.add_parser("validate", help="every check that costs no metric computation (all problems)")
    validate.add_argument("bundle", help="BUNDLE.tar.gz or a bundle folder")
    _limit_options(validate)
    validate.set_defaults(func=cmd_validate)

    rescore = actions.add_parser("rescore", help="recompute every metric from the videos, compare per sample")
    rescore.add_argument("bundle", help="BUNDLE.tar.gz or a bundle folder")
    rescore.add_argument("--out", type=Path, help="new folder for the extracted bundle, re-scored results and "
                         "rescore-report.json (default: a temporary folder)")
    rescore.add_argument("--device", default="cpu", help="torch device for the metric models")
    rescore.add_argument("--cache", type=Path, help="feature cache to use (default: a new, empty one)")
    rescore.add_argument("--abs-tol", type=float, help="absolute tolerance (default: 10^-(digits+1) per metric)")
    rescore.add_argument("--rel-tol", type=float, help="relative tolerance (default 1e-4)")
    _limit_options(rescore)
    rescore.set_defaults(func=cmd_rescore)

    build = actions.add_parser("build", help="the static leaderboard site from bundles")
    build.add_argument("bundles", nargs="*", help="bundles (.tar.gz or folders)")
    build.add_argument("--submissions", action="append", help="folder of bundles (repeatable)")
    build.add_argument("-o", "--output", required=True, help="new or empty folder for the site")
    build.add_argument("--against", default="gt", help="reference method of the significance tests (default gt)")
    build.add_argument("--policy", choices=["complete-case", "worst-case"], default="complete-case")
    build.add_argument("--alpha", type=float, default=0.05)
    build.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples")
    build.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    build.add_argument("--cluster", choices=["none", "speaker"], default="none",
                       help="speaker: clustered bootstrap (speakers, then their pairs) and speaker-wise sign flips")
    build.add_argument("--reported", default="table1,table2",
                       help="paper tables shown beside the paper profile ('none' for none)")
    build.add_argument("--rescore-reports", type=Path, nargs="*", default=[],
                       help="rescore-report.json files: their bundles are shown as re-scored; a rejected one is refused")
    build.add_argument("--worst-k", type=int, default=5, help="samples marked worst on a method page")
    build.add_argument("--publish-external-media", action="store_true",
                       help="copy external splits' reference/target clips into the site (check their licence first)")
    build.add_argument("--no-plots", action="store_true", help="leave out the forest and distribution plots")
    _limit_options(build)
    build.set_defaults(func=cmd_build)
