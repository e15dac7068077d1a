"""``bench splits``: list, show, validate, build, import, check, probe (see ``idlora_bench.curation``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from idlora_bench.cli.console import console, err_console, progress


def cmd_list(args: argparse.Namespace) -> int:
    from idlora_bench.data import splits

    table = Table(title="splits")
    for column in ("name", "version", "media", "pairs", "speakers", "kinds"):
        table.add_column(column, no_wrap=column == "name")
    for name in splits.split_registry().names():
        card, _ = splits.load_card(name)
        kinds = ", ".join(f"{k} {v}" for k, v in card.expected.kinds.items())
        table.add_row(name, card.version, card.media, str(card.expected.pairs), str(card.expected.speakers), kinds)
    console.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from idlora_bench.data import splits

    card, directory = splits.load_card(args.name)
    console.print(f"[bold]{card.name}[/] v{card.version} ({directory})")
    for key, value in card.model_dump().items():
        if key not in ("name", "version"):
            console.print(f"[cyan]{key}[/]: {value}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from idlora_bench.data import splits

    split = splits.load_split(args.name, args.data_root)
    report = splits.validate_split(split, check_media=True, decode_media=args.decode)
    if report.ok:
        console.print(f"[green]split {args.name} is valid[/]: {report.counts}, every media file present with "
                      f"matching sha256{' and decodable' if args.decode else ''}")
        return 0
    err_console.print(f"[red]split {args.name} is INVALID ({len(report.problems)} problem(s)):[/]")
    for problem in report.problems:
        err_console.print(f"  - {problem}")
    return 1


def cmd_build(args: argparse.Namespace) -> int:
    from idlora_bench.curation.build import build_split

    result = build_split(args.name, args.spec, args.videos, args.out, trim_silence_dbfs=args.trim_silence_dbfs,
                         crf=args.crf, overwrite=args.overwrite, progress=progress)
    console.print(f"[green]built {args.name}[/]: {result.pairs} pairs, {result.clips} clips in {result.directory} "
                  f"(validated against the card; {len(result.trimmed)} reference(s) silence-trimmed)")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from idlora_bench.curation.check import check_split
    from idlora_bench.curation.training_list import load_training_list
    from idlora_bench.data import splits

    split = splits.load_split(args.name, args.data_root)
    training = load_training_list(args.train) if args.train else None
    report = check_split(split, training=training, speaker_threshold=args.speaker_threshold,
                         face_threshold=args.face_threshold, progress=progress)
    paths = report.write(Path(args.out))
    console.print(report.to_markdown())
    (console if report.ok else err_console).print(f"{'clean' if report.ok else 'findings'}: " +
                                                  ", ".join(str(p) for p in paths))
    return 0 if report.ok else 1


def cmd_import(args: argparse.Namespace) -> int:
    from idlora_bench.curation.importer import import_release

    result = import_release(args.name, args.source, args.out, captions=args.captions, speaker_regex=args.speaker_regex,
                            kind=args.kind, overwrite=args.overwrite)
    console.print(f"[green]imported {args.name}[/]: {result.pairs} pairs in {result.directory} (validated against "
                  "the card)")
    for note in result.notes:
        err_console.print(f"  note: {note}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from idlora_bench.curation.probes import build_probe
    from idlora_bench.data import splits

    folder = build_probe(args.kind, splits.load_split(args.source, args.data_root), args.out,
                         quiet_dbfs=args.quiet_dbfs, noisy_margin_db=args.noisy_margin_db)
    card = splits.load_yaml_model(splits.SplitCard, folder / "card.yaml")
    console.print(f"[green]probe {card.name}[/]: {card.expected.pairs} pairs in {folder}; register it with "
                  f"IDLORA_BENCH_SPLITS={Path(args.out).resolve()}")
    console.print(f"[cyan]protocol[/]: {card.protocol}")
    return 0


ACTIONS = {"list": cmd_list, "show": cmd_show, "validate": cmd_validate, "build": cmd_build, "check": cmd_check}


def add_splits_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("splits", help="the split registry: list, show, validate, build, import, check, probe")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every registered split").set_defaults(func=cmd_list)
    show = actions.add_parser("show", help="a split's card")
    show.add_argument("name")
    show.set_defaults(func=cmd_show)
    validate = actions.add_parser("validate", help="counts against the card, every file's sha256")
    validate.add_argument("name")
    validate.add_argument("--data-root", type=Path)
    validate.add_argument("--decode", action="store_true", help="also decode every media file")
    validate.set_defaults(func=cmd_validate)
    build = actions.add_parser("build", help="cut a split's clips from raw videos by a spec (CSV or JSONL)")
    build.add_argument("name", help="a registered split (its card gives the expected counts)")
    build.add_argument("--spec", type=Path, required=True, help="one row per pair (see idlora_bench/curation/spec.py)")
    build.add_argument("--videos", type=Path, required=True, help="folder the spec's video paths are relative to")
    build.add_argument("--out", type=Path, required=True, help="DATA_ROOT: the split is written to DATA_ROOT/NAME")
    build.add_argument("--trim-silence-dbfs", type=float, help="trim the references' leading/trailing silence below "
                       "this RMS level (dBFS, 10 ms frames), e.g. -40; off by default")
    build.add_argument("--crf", type=int, default=18, help="H.264 CRF of the written clips (default 18)")
    build.add_argument("--overwrite", action="store_true", help="replace DATA_ROOT/NAME if it exists")
    build.set_defaults(func=cmd_build)
    importer = actions.add_parser("import", help="import the authors' evaluation layout (references/, targets/)")
    importer.add_argument("name", help="a registered split (its card gives the expected counts)")
    importer.add_argument("--from", dest="source", type=Path, required=True, help="folder with references/, targets/")
    importer.add_argument("--out", type=Path, required=True, help="DATA_ROOT: the split is written to DATA_ROOT/NAME")
    importer.add_argument("--captions", type=Path, help="captions file (default: the one .jsonl/.json/.csv there)")
    importer.add_argument("--speaker-regex", help="regex with a (?P<speaker>...) group applied to each file stem")
    importer.add_argument("--kind", choices=["same-video", "cross-video"], help="kind of every pair (default: "
                          "the captions' kind field)")
    importer.add_argument("--overwrite", action="store_true", help="replace DATA_ROOT/NAME if it exists")
    importer.set_defaults(func=cmd_import)
    check = actions.add_parser("check", help="hygiene report: leakage, duplicates, media, identity, captions")
    check.add_argument("name")
    check.add_argument("--data-root", type=Path)
    check.add_argument("--train", type=Path, help="training metadata.jsonl (the authors' format) or a list of ids")
    check.add_argument("--speaker-threshold", type=float, default=0.65, help="GE2E speaker similarity floor")
    check.add_argument("--face-threshold", type=float, default=0.82, help="dlib face similarity floor")
    check.add_argument("--out", default=".", help="folder for hygiene-<split>.md/.json (default: here)")
    check.set_defaults(func=cmd_check)
    probe = actions.add_parser("probe", help="derive a probe split (identity-mismatch, quiet-to-noisy) from a split")
    probe.add_argument("kind", choices=["identity-mismatch", "quiet-to-noisy"])
    probe.add_argument("--from", dest="source", required=True, help="the split to derive it from")
    probe.add_argument("--data-root", type=Path, help="media root of the source split if external")
    probe.add_argument("--out", type=Path, required=True, help="folder for <source>-<kind>/ (card, pairs, media)")
    probe.add_argument("--quiet-dbfs", type=float, default=-50.0, help="quiet-to-noisy: reference floor below this")
    probe.add_argument("--noisy-margin-db", type=float, default=10.0,
                       help="quiet-to-noisy: target floor at least this much above the reference's")
    probe.set_defaults(func=cmd_probe)
