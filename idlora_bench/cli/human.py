"""``bench human``: build A/B and MOS studies, serve them, export answers and assignments, analyse the answers
(see ``idlora_bench.human``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.table import Table

from idlora_bench.cli.console import console, err_console
from idlora_bench.core.errors import BenchError

if TYPE_CHECKING:
    from idlora_bench.human.model import Study


def _print_study(study: Study, out: Path) -> None:
    kinds = pd.Series([item.kind for item in study.items]).value_counts().to_dict()
    console.print(f"[green]study {study.study_id}[/] in {out}: {len(study.pairs)} pairs, {len(study.slots)} slots "
                  f"(annotator lists), {kinds.get('test', 0)} test items, {kinds.get('control', 0)} hidden controls, "
                  f"{kinds.get('practice', 0)} practice items; {study.annotators_per_item} annotators per item")
    if study.excluded_pairs:
        left_out = sorted({e.pair_id for e in study.excluded_pairs})
        err_console.print(f"[yellow]{len(left_out)} pair(s) left out[/] (no usable video in a run):")
        for entry in study.excluded_pairs:
            err_console.print(f"  - {entry.pair_id} ({entry.run}): {entry.reason}")
    for name, definition in study.controls.items():
        console.print(f"[cyan]control {name}[/]: {definition}")
    console.print(f"next: bench human serve {out}  (then bench human export {out} --assignments assignments.csv)")


def _common(args: argparse.Namespace) -> dict[str, object]:
    return {"data_root": args.data_root, "profile": args.profile, "seed": args.seed,
            "annotators_per_item": args.annotators_per_item, "pairs_per_slot": args.pairs_per_slot,
            "controls": args.controls, "practice": args.practice,
            "media_mode": "symlink" if args.link_media else "copy"}


def _out(args: argparse.Namespace, kind: str) -> Path:
    return Path(args.out) if args.out else Path("studies") / f"{kind}-{args.split}-seed{args.seed}"


def cmd_ab(args: argparse.Namespace) -> int:
    from idlora_bench.human.study import build_ab_study

    questions = [q.strip() for q in args.questions.split(",") if q.strip()]
    out = _out(args, "ab")
    study = build_ab_study(Path(args.run_a), Path(args.run_b), args.split, out, questions=questions, **_common(args))
    _print_study(study, out)
    return 0


def _read_scenarios(path: Path) -> dict[str, str]:
    try:
        frame = pd.read_csv(path, dtype=str)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BenchError(f"{path}: cannot be read as CSV ({exc})") from None
    if not {"pair_id", "scenario"} <= set(frame.columns):
        raise BenchError(f"{path}: needs the columns pair_id and scenario")
    if frame["pair_id"].duplicated().any():
        raise BenchError(f"{path}: pair {frame.loc[frame['pair_id'].duplicated(), 'pair_id'].iloc[0]} repeats")
    return dict(zip(frame["pair_id"], frame["scenario"]))


def cmd_mos(args: argparse.Namespace) -> int:
    from idlora_bench.human.study import build_mos_study

    out = _out(args, "mos")
    scenarios = _read_scenarios(Path(args.scenarios)) if args.scenarios else None
    study = build_mos_study([Path(p) for p in args.runs], args.split, out, question=args.question,
                            describe=args.describe, title=args.title, scenario_by=args.scenario_by,
                            scenarios=scenarios, control_description=args.control_description, **_common(args))
    _print_study(study, out)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from idlora_bench.human.model import default_db_path
    from idlora_bench.human.server import make_server

    server = make_server(Path(args.study), args.host, args.port, Path(args.db) if args.db else None,
                         quiet=not args.log_requests)
    host, port = server.server_address[:2]
    console.print(f"serving {Path(args.study) / 'site'} at http://{host}:{port}/index.html?slot=N ; answers -> "
                  f"{args.db or default_db_path(Path(args.study))} (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from idlora_bench.human.export import write_assignments_csv, write_responses_csv
    from idlora_bench.human.model import load_study

    if not args.responses and not args.assignments:
        raise BenchError("bench human export needs --responses FILE and/or --assignments FILE")
    study = load_study(Path(args.study))
    if args.assignments:
        path = write_assignments_csv(study, Path(args.assignments), args.base_url)
        console.print(f"assignments: {path} ({len(study.slots)} slots)")
    if args.responses:
        path = write_responses_csv(study, Path(args.study), Path(args.responses), Path(args.db) if args.db else None)
        console.print(f"responses: {path}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from idlora_bench.human.analyze import analyze_study
    from idlora_bench.human.model import load_study

    study = load_study(Path(args.study))
    out = Path(args.out) if args.out else Path(args.study) / "analysis"
    analysis = analyze_study(study, Path(args.study), out, db_path=Path(args.db) if args.db else None,
                             csv_path=Path(args.responses) if args.responses else None,
                             keep_incomplete=args.keep_incomplete)
    table = Table(title=f"annotators of {study.study_id}")
    for column in ("status", "count"):
        table.add_column(column)
    for status, count in analysis.annotators["status"].value_counts().items():
        table.add_row(str(status), str(count))
    console.print(table)
    for row in analysis.excluded.itertuples():
        err_console.print(f"  excluded {row.annotator_id} (slot {row.slot}): {row.status} {row.failed_items}")
    stem = "ab" if study.kind == "ab" else "mos"
    console.print((out / f"{stem}.md").read_text())
    err_console.print("wrote " + ", ".join(str(p) for p in analysis.paths))
    return 0


def _study_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", required=True, help="split name the runs were made on")
    parser.add_argument("--out", help="study folder (default studies/<kind>-<split>-seed<seed>)")
    parser.add_argument("--profile", help="metric profile to read when a run folder holds several")
    parser.add_argument("--data-root", type=Path, help="media root of external splits ($IDLORA_BENCH_DATA)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (recorded)")
    parser.add_argument("--annotators-per-item", type=int, default=9, help="annotators per item (default 9)")
    parser.add_argument("--pairs-per-slot", type=int, help="cut the pairs into chunks of at most N per annotator "
                        "(default: every annotator sees every pair once)")
    parser.add_argument("--controls", type=int, default=1, help="hidden control items per question and group")
    parser.add_argument("--practice", type=int, default=1, help="practice items per question and group")
    parser.add_argument("--link-media", action="store_true", help="symlink media into the study instead of copying")


def add_human_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("human", help="human studies: A/B and MOS pages, answer server, export, analysis")
    actions = parser.add_subparsers(dest="action", required=True)

    ab = actions.add_parser("ab", help="build an A/B preference study of two runs")
    ab.add_argument("run_a", help="run folder of the first method (win rates are reported for it)")
    ab.add_argument("run_b", help="run folder of the second method")
    ab.add_argument("--questions", default="voice,environment,manner",
                    help="comma-separated: voice, environment, manner (default all three)")
    _study_options(ab)
    ab.set_defaults(func=cmd_ab)

    mos = actions.add_parser("mos", help="build a 1-5 MOS study of one or more runs")
    mos.add_argument("runs", nargs="+", help="run folders (the first is compared with each other)")
    mos.add_argument("--question", required=True, help="what annotators rate, e.g. 'How well can the described "
                     "sounds be heard?'")
    mos.add_argument("--title", default="Sound match", help="section title on the cards")
    mos.add_argument("--describe", default="environment", choices=["environment", "manner", "prompt", "reference", "none"],
                     help="shown beside each video: the pair's environment text (default), style text, whole "
                     "prompt, reference video or nothing")
    mos.add_argument("--scenario-by", default="environment_sounds",
                     choices=["environment_sounds", "speaking_style", "speaker_id", "kind"],
                     help="pair field that names the scenario of per-scenario results")
    mos.add_argument("--scenarios", help="CSV with pair_id,scenario (overrides --scenario-by)")
    mos.add_argument("--control-description", default="loud music playing throughout the video",
                     help="description shown on the silent control cards")
    _study_options(mos)
    mos.set_defaults(func=cmd_mos)

    serve = actions.add_parser("serve", help="serve a study's pages and store the answers (SQLite)")
    serve.add_argument("study", help="study folder")
    serve.add_argument("--host", default="127.0.0.1", help="interface (0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--db", help="answers file (default STUDY/responses.sqlite)")
    serve.add_argument("--log-requests", action="store_true", help="print every request")
    serve.set_defaults(func=cmd_serve)

    export = actions.add_parser("export", help="answers and assignment lists as CSV")
    export.add_argument("study", help="study folder")
    export.add_argument("--responses", help="write every answer (joined with its item) to this CSV")
    export.add_argument("--assignments", help="write slot -> URL and item ids to this CSV (for crowd platforms)")
    export.add_argument("--base-url", default="http://127.0.0.1:8000", help="where the study is served")
    export.add_argument("--db", help="answers file (default STUDY/responses.sqlite)")
    export.set_defaults(func=cmd_export)

    analyze = actions.add_parser("analyze", help="exclusions, binomial tests, MOS statistics, figures and tables")
    analyze.add_argument("study", help="study folder")
    analyze.add_argument("--out", help="output folder (default STUDY/analysis)")
    analyze.add_argument("--db", help="answers file (default STUDY/responses.sqlite)")
    analyze.add_argument("--responses", help="analyse this CSV (annotator_id, item_id, answer[, slot]) instead")
    analyze.add_argument("--keep-incomplete", action="store_true",
                         help="keep annotators who have not answered every control of their slot")
    analyze.set_defaults(func=cmd_analyze)
