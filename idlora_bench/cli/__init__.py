"""``bench``: a thin command-line layer over the library (runner, splits, methods, metrics)."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from rich.logging import RichHandler
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from idlora_bench.cli.console import console, err_console
from idlora_bench.cli.console import progress as _progress
from idlora_bench.core.errors import BenchError
from idlora_bench.core.io import atomic_write_text


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def print_summary(summary: pd.DataFrame, title: str, display: dict[str, tuple[str, int]] | None = None) -> None:
    """Rows methods, columns metric families: mean [95% CI] and coverage (``display``: family -> (header, digits))."""
    display = display or {}
    table = Table(title=title, show_lines=False)
    table.add_column("method", style="bold")
    families = list(dict.fromkeys(summary["metric"]))
    for family in families:
        direction = summary.loc[summary["metric"] == family, "direction"].iloc[0]
        label = display.get(family, (family, 3))[0]
        table.add_column(f"{label} {'↑' if direction == 'higher' else '↓'}", justify="right")
    for method, group in summary.groupby("method", sort=False):
        cells = []
        for family in families:
            row = group[group["metric"] == family]
            if row.empty:
                cells.append("")
                continue
            r = row.iloc[0]
            coverage = f"{int(r.n_ok)}/{int(r.n_pairs)}"
            digits = display.get(family, (family, 3))[1]
            cells.append(f"{_fmt(r['mean'], digits)} [{_fmt(r.ci_low, digits)}, {_fmt(r.ci_high, digits)}]\n"
                         f"cov {coverage}")
        table.add_row(str(method), *cells)
    console.print(table)
    console.print("mean [Student-t 95% CI] over scored pairs; cov = scored / all pairs (failures are counted, "
                  "never dropped).")


def _display(*manifests: Any) -> dict[str, tuple[str, int]]:
    """Family -> (label, digits), from the run manifests (which copy them from the metric classes)."""
    return {metric.family: (metric.label or metric.family, metric.digits)
            for manifest in manifests for metric in manifest.metrics}


# ----------------------------------------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace) -> int:
    from idlora_bench import runner

    methods = [m for item in args.method for m in item.split(",") if m]
    options: dict[str, str] = {}
    for item in args.option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BenchError(f"--option takes KEY=VALUE, got {item!r}")
        options[key.replace("-", "_")] = value
    if args.model:
        options["model"] = args.model
    if args.out and len(methods) > 1:
        raise BenchError("--out names one run folder: give one --method, or use --runs-root for several")
    summaries, failures, manifests = [], [], []
    for method in methods:
        out = Path(args.out) if args.out else runner.default_run_dir(args.split, method, args.seed, Path(args.runs_root))
        outcome = runner.run(method, args.split, profile=args.profile, seed=args.seed, out_dir=out,
                             data_root=args.data_root, cache_path=args.cache, device=args.device,
                             metrics=args.metrics, method_options=options, progress=_progress,
                             executor=args.executor, ray_address=args.address,
                             ray_num_gpus_per_generator=args.gpus_per_generator,
                             ray_num_gpus_per_metric=args.gpus_per_metric, ray_generators=args.generators,
                             one_metric_at_a_time=args.one_metric_at_a_time)
        summaries.append(outcome.summary)
        manifests.append(outcome.manifest)
        failures.append(outcome.results[outcome.results["status"] == "failed"])
        err_console.print(f"[green]{method}[/]: results in {outcome.run_dir} ({outcome.counts})")
    print_summary(pd.concat(summaries), f"{args.split} split, profile {args.profile}, seed {args.seed}",
                  _display(*manifests))
    _print_failures(pd.concat(failures))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from idlora_bench import runner

    outcome = runner.score_outputs(Path(args.outputs), args.split, name=args.name, profile=args.profile,
                                   data_root=args.data_root, cache_path=args.cache, device=args.device,
                                   metrics=args.metrics, out_dir=Path(args.out) if args.out else None,
                                   progress=_progress, executor=args.executor, ray_address=args.address,
                                   ray_num_gpus_per_metric=args.gpus_per_metric,
                                   one_metric_at_a_time=args.one_metric_at_a_time)
    err_console.print(f"results in {outcome.run_dir}")
    print_summary(outcome.summary, f"{args.split} split, profile {args.profile}", _display(outcome.manifest))
    _print_failures(outcome.results[outcome.results["status"] == "failed"])
    return 0


def _print_failures(failed: pd.DataFrame) -> None:
    if failed.empty:
        return
    table = Table(title="failed samples (counted in coverage)")
    for column in ("method", "pair_id", "metric", "reason"):
        table.add_column(column, overflow="fold")
    for row in failed.itertuples():
        table.add_row(row.method, row.pair_id, row.metric, row.reason)
    console.print(table)


def cmd_table(args: argparse.Namespace) -> int:
    from idlora_bench.report import render, tables
    from idlora_bench.report.stats import CLUSTER_COLUMNS

    loaded = tables.load_runs([Path(p) for p in args.runs], profile=args.profile, allow_smoke=args.allow_smoke,
                              seeds=args.seeds)
    cluster = CLUSTER_COLUMNS[args.cluster] if args.cluster != "none" else None
    out_dir = Path(args.out)
    formats = tuple(f for item in (args.format or ["md,latex,csv,html"]) for f in item.split(",") if f)
    unknown = set(formats) - set(render.FORMATS)
    if unknown:
        raise BenchError(f"unknown format(s) {sorted(unknown)}; choose from {', '.join(render.FORMATS)}")
    reported = None
    if args.reported:
        if loaded.profile != "paper":
            raise BenchError(f"reported paper rows are measured with the paper profile; these runs use "
                             f"{loaded.profile!r} and their numbers are not comparable")
        reported = tables.load_reported(args.reported)
    written: list[Path] = []
    if args.style == "main":
        table, comparisons = tables.main_table(loaded.results, args.against, display=loaded.display,
                                               policy=args.policy, alpha=args.alpha, reported=reported,
                                               n_boot=args.n_boot, seed=args.seed, cluster=cluster,
                                               smoke=loaded.smoke_methods)
        written += render.write_all(table, out_dir, "table", formats)
        atomic_write_text(out_dir / "comparisons.csv", comparisons.to_csv(index=False))
        written.append(out_dir / "comparisons.csv")
        present = set(loaded.results["method"])
        if {"gt", "swap-speaker"} <= present:
            calibration = tables.calibration_table(loaded.results, display=loaded.display, alpha=args.alpha)
            written += render.write_all(calibration, out_dir, "calibration", formats)
        if args.plots:
            from idlora_bench.report import plots

            written += plots.forest_plot(comparisons, out_dir, labels=table.labels)
            written += plots.distribution_plot(loaded.results, out_dir, labels=table.labels)
    elif args.style == "lip-motion":
        table = tables.lip_motion_table(loaded.results, top_fraction=args.top_fraction, display=loaded.display)
        written += render.write_all(table, out_dir, "lip_motion", formats)
    else:
        if not args.sweep:
            raise BenchError("--style sweep needs --sweep PARAMETER (a key of the runs' method config)")
        table = tables.sweep_table(loaded, args.sweep)
        written += render.write_all(table, out_dir, "sweep", formats)
    if "md" in formats:
        console.print(render.to_markdown(table))
    err_console.print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from idlora_bench.methods import METHODS

    table = Table(title="methods")
    table.add_column("name")
    table.add_column("description")
    table.add_column("composed of")
    parts: dict[tuple[str, str], str] = {}
    for name in METHODS.names():
        try:
            cls = METHODS.get(name)
        except BenchError as exc:  # an entry whose package is missing: listed with the reason, not fatal
            table.add_row(name, f"(cannot be imported here: {exc})", "")
            continue
        composition = getattr(cls, "composition", None)  # composed methods (cascades) name their parts
        entries = composition() if callable(composition) else []
        parts.update({(kind, part): text for kind, part, text in entries})
        table.add_row(name, cls.description, " + ".join(part for _, part, _ in entries))
    console.print(table)
    if parts:
        part_table = Table(title="parts of composed methods")
        for column in ("kind", "name", "description"):
            part_table.add_column(column)
        for (kind, part), text in sorted(parts.items()):
            part_table.add_row(kind, part, text)
        console.print(part_table)
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from idlora_bench.metrics import METRICS, PROFILES

    table = Table(title="metrics (bench doctor: what is missing)")
    for column in ("profile", "name", "label", "version", "direction", "unit", "needs", "paper", "description"):
        table.add_column(column, overflow="fold")
    for profile in PROFILES.names():
        for name in PROFILES.get(profile):
            try:
                metric = METRICS.get(name)
            except BenchError as exc:
                table.add_row(profile, name, "", "", "", "", "", "", f"[red]unavailable[/]: {exc}")
                continue
            table.add_row(profile, name, metric.label or metric.family, metric.version, metric.direction, metric.unit,
                          ", ".join(sorted(metric.needs)), metric.paper_reference, metric.description)
    console.print(table)
    return 0


def declared_weights() -> list[Any]:
    """Every weights file declared by a registered metric or method (deduplicated, in declaration order); a
    metric or method whose module cannot be imported here declares nothing."""
    from idlora_bench.methods import METHODS
    from idlora_bench.metrics import METRICS

    seen: dict[str, Any] = {}
    for registry in (METRICS, METHODS):
        for name in registry.names():
            try:
                entry = registry.get(name)
            except BenchError:
                continue
            declared = getattr(entry, "declared_weights", None)  # composed methods gather their parts' cards
            for weights in declared() if callable(declared) else getattr(entry, "weights", ()):
                seen.setdefault(weights.name, weights)
    return list(seen.values())


def cmd_models(args: argparse.Namespace) -> int:
    from idlora_bench.checkpoints import model_store

    if args.action == "list":
        table = Table(title=f"models (store: {model_store.models_dir()})")
        for column in ("model", "file", "status", "source", "licence"):
            table.add_column(column, overflow="fold")
        for weights in model_store.select(args.names, declared_weights()):
            status = weights.status()
            colour = {"ok": "green", "missing": "yellow"}.get(status, "red")
            table.add_row(weights.model, weights.file, f"[{colour}]{status}[/]", weights.source, weights.licence)
        console.print(table)
        return 0
    if args.action == "verify":
        bad = 0
        for weights in model_store.select(args.names, declared_weights()):
            status = weights.status()
            bad += status != "ok"
            console.print(f"{'[green]ok[/]' if status == 'ok' else f'[red]{status}[/]'} {weights.name}"
                          + ("" if status == "ok" else f": fix with {weights.fix}"))
        return 1 if bad else 0
    if args.action == "pull":
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, console=err_console) as progress:
            tasks: dict[str, Any] = {}

            def report(label: str, done: int, total: int | None) -> None:
                if label not in tasks:
                    tasks[label] = progress.add_task(label, total=total)
                progress.update(tasks[label], completed=done, total=total)

            results = model_store.pull(model_store.select(args.names, declared_weights()), progress=report)
        for result in results:
            colour = {"present": "green", "downloaded": "green"}.get(result.status, "red")
            console.print(f"[{colour}]{result.status}[/] {result.weights.name} {result.message}")
        return 0 if all(r.status in ("present", "downloaded") for r in results) else 1
    if args.action == "import":
        if not args.names or len(args.names) != 1:
            raise BenchError("bench models import takes one folder: bench models import DIR")
        outcome = model_store.import_dir(Path(args.names[0]), declared_weights())
        for name in outcome.imported:
            console.print(f"[green]imported[/] {name}")
        for name in outcome.missing:
            console.print(f"[yellow]still missing[/] {name}")
        return 0
    raise BenchError(f"unknown models action {args.action!r}")


def metric_problems(name: str) -> list[str]:
    """What keeps one registered metric from running here: an import failure, missing packages, weights."""
    from idlora_bench.metrics import METRICS

    try:
        metric = METRICS.get(name)
    except BenchError as exc:
        return [f"{name}: {exc}"]
    problems = [f"{name}: package {module} is not installed -> pip install -c constraints.txt {requirement}"
                for module, requirement in metric.missing_packages().items()]
    problems += [f"{name}: {w.name} {w.status()} -> {w.fix}" for w in metric.weights if w.status() != "ok"]
    return problems


def cmd_doctor(args: argparse.Namespace) -> int:
    from idlora_bench.checkpoints.weights import models_dir
    from idlora_bench.core import provenance
    from idlora_bench.metrics import PROFILES

    console.print(f"idlora-bench {provenance.package_version()} (git {provenance.git_state()[0]}), "
                  f"python {provenance.python_version()}, model store {models_dir()}")
    for name, version in provenance.library_versions().items():
        console.print(f"  {name} {version}")
    ready = True
    for profile in PROFILES.names():
        problems = [problem for name in PROFILES.get(profile) for problem in metric_problems(name)]
        console.print(f"[bold]profile {profile}[/]: {'[green]ready[/]' if not problems else '[red]not ready[/]'}")
        for problem in problems:
            console.print(f"  - {problem}")
        ready &= profile != "offline" or not problems
    return 0 if ready else 1


def cmd_selftest(args: argparse.Namespace) -> int:
    from idlora_bench.selftest import run_selftest

    def report_check(result: Any) -> None:
        colour = {"passed": "green", "failed": "red"}.get(result.status, "yellow")
        err_console.print(f"[{colour}]{result.status}[/] {result.metric} {result.check}: {result.reason}")

    report = run_selftest(args.profile, device=args.device, out_dir=Path(args.out), progress=report_check)
    console.print(report.table())
    verdict = "[green]PASSED[/]" if report.passed else f"[red]FAILED[/] ({len(report.failed)} check(s))"
    console.print(f"selftest of profile {args.profile}: {verdict}; {Path(args.out) / f'selftest-{args.profile}.json'}")
    return 0 if report.passed else 1


# ----------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="idlora-bench: identity-driven audio-video "
                                     "personalization benchmark")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def scoring_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--split", required=True, help="split name (bench splits list)")
        p.add_argument("--profile", default="offline", help="metric profile (bench metrics list)")
        p.add_argument("--metrics", nargs="+", help="only these metrics of the profile (names or families)")
        p.add_argument("--data-root", type=Path, help="media root of external splits ($IDLORA_BENCH_DATA)")
        p.add_argument("--cache", type=Path, help="feature cache file ($IDLORA_BENCH_CACHE)")
        p.add_argument("--device", default="cpu", help="torch device for metric models (cpu, cuda, cuda:1)")
        p.add_argument("--executor", choices=["local", "ray"], default="local",
                       help="where work runs: this process, or a Ray cluster (pip install -c constraints.txt "
                       "ray==2.60.0)")
        p.add_argument("--address", help="with --executor ray: auto (the cluster `ray start` made here) or HOST:PORT "
                       "of its head node; default: start a local Ray instance")
        p.add_argument("--gpus-per-metric", type=float, default=0.0, help="with --executor ray: GPUs per metric actor")
        p.add_argument("--one-metric-at-a-time", action="store_true",
                       help="score metric-major, one metric's model in memory at a time (peak GPU memory per metric "
                       "in the counts)")

    run = sub.add_parser("run", help="generate (resumable) -> score -> summary")
    run.add_argument("--method", required=True, action="append", help="method name(s), comma-separated or repeated")
    scoring_options(run)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--gpus-per-generator", type=float, default=0.0,
                     help="with --executor ray: GPUs per generation actor")
    run.add_argument("--generators", type=int, default=1,
                     help="with --executor ray: generation actors (one model load each)")
    run.add_argument("--out", help="run folder (one method); default RUNS_ROOT/SPLIT/METHOD-seedN")
    run.add_argument("--runs-root", default="runs", help="where run folders go (default: runs)")
    run.add_argument("--model", help="method option 'model' (idlora / ltx-zeroshot: ltx-2, ltx-2.3, tiny-random or tiny-random-2.3)")
    run.add_argument("--option", action="append", metavar="KEY=VALUE",
                     help="method option, repeatable (e.g. --option checkpoint=talkvid --option steps=30)")
    run.set_defaults(func=cmd_run)

    score = sub.add_parser("score", help="score videos made elsewhere (<pair_id>.mp4 per pair)")
    score.add_argument("--outputs", required=True, help="folder of <pair_id>.mp4 files")
    score.add_argument("--name", help="method name to record (default external:<folder>)")
    score.add_argument("--out", help="where results go (default: the outputs folder)")
    scoring_options(score)
    score.set_defaults(func=cmd_score)

    table = sub.add_parser("table", help="significance-tested comparison tables (md, LaTeX, CSV, HTML)")
    table.add_argument("runs", nargs="+", help="run folders (or results-<profile>.jsonl files)")
    table.add_argument("--against", default="gt", help="reference method of the paired tests (default gt)")
    table.add_argument("--style", choices=["main", "lip-motion", "sweep"], default="main",
                       help="main: Table 1/2 style; lip-motion: Table 4 style; sweep: Table 5 style")
    table.add_argument("--format", action="append", default=[], help="md,latex,csv,html (default all)")
    table.add_argument("--out", default="tables", help="output folder (default: tables)")
    table.add_argument("--profile", help="profile to read when a run folder holds several")
    table.add_argument("--policy", choices=["complete-case", "worst-case"], default="complete-case",
                       help="how failed samples enter the paired tests")
    table.add_argument("--alpha", type=float, default=0.05)
    table.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples")
    table.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    table.add_argument("--cluster", choices=["none", "speaker"], default="none",
                       help="speaker: clustered bootstrap (resample speakers, then their pairs) and speaker-wise "
                       "sign flips; stated under the table")
    table.add_argument("--seeds", choices=["mean", "separate"], default="mean",
                       help="runs of one method with several seeds: mean per pair (spread shown) or a row per seed")
    table.add_argument("--reported", help="add the paper's reported rows: table1, table2")
    table.add_argument("--sweep", help="method-config parameter for --style sweep")
    table.add_argument("--top-fraction", type=float, default=0.3, help="lip-motion table: top share by face sim")
    table.add_argument("--plots", action="store_true", help="also write forest and distribution plots (PNG, SVG)")
    table.add_argument("--allow-smoke", action="store_true", help="show smoke-configuration runs anyway")
    table.set_defaults(func=cmd_table)

    from idlora_bench.cli.splits import add_splits_parser

    add_splits_parser(sub)

    from idlora_bench.cli.human import add_human_parser
    from idlora_bench.cli.leaderboard import add_leaderboard_parser, add_submit_parser

    add_submit_parser(sub)
    add_leaderboard_parser(sub)
    add_human_parser(sub)

    methods_parser = sub.add_parser("methods", help="method adapters")
    methods_parser.add_argument("action", choices=["list"])
    methods_parser.set_defaults(func=cmd_methods)

    metrics_parser = sub.add_parser("metrics", help="metrics and profiles")
    metrics_parser.add_argument("action", choices=["list"])
    metrics_parser.set_defaults(func=cmd_metrics)

    models_parser = sub.add_parser("models", help="metric and generator weights: list, pull, verify, import")
    models_parser.add_argument("action", choices=["list", "pull", "verify", "import"])
    models_parser.add_argument("names", nargs="*", help="model names (default: all); for import: the folder")
    models_parser.set_defaults(func=cmd_models)

    selftest = sub.add_parser("selftest", help="real-weight checks of a metric profile (pass/fail + JSON report)")
    selftest.add_argument("--profile", default="offline", help="metric profile (bench metrics list)")
    selftest.add_argument("--device", default="cpu", help="torch device for the metric models")
    selftest.add_argument("--out", default=".", help="folder for selftest-<profile>.json (default: here)")
    selftest.set_defaults(func=cmd_selftest)

    doctor = sub.add_parser("doctor", help="environment and weights: what is missing and how to fix it")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False)])
    try:
        from idlora_bench.core.plugins import load_plugins

        load_plugins()
        return args.func(args)
    except BenchError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        return 2

