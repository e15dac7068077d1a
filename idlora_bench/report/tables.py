"""Comparison tables from run results: Table 1/2 style (methods x metrics per split), Table 4 style (lip
motion vs face similarity on each method's top 30% by face similarity), Table 5 style (a sweep of one
generation parameter), calibration between the sanity anchors, with reported paper rows beside measured ones.

A table is built as a :class:`Table` (data) and rendered by :mod:`idlora_bench.report.render` to Markdown,
LaTeX (booktabs), CSV and HTML.

Conventions:
- best (bold) and second best (underlined) per column and split block, by the metric's direction, among
  measured non-anchor methods (anchors ``gt``/``still-reference``/``swap-speaker`` and reported rows are
  not ranked);
- ``†`` marks a significant improvement over the reference method, ``‡`` a significant degradation
  (paired sign-flip permutation test, Holm-corrected over the whole family, p < alpha);
- coverage (scored / all pairs) is shown beside a value whenever it is below 100%;
- a method run with several seeds has one value per pair, the mean over its seeds (``load_runs(seeds="mean")``,
  :mod:`idlora_bench.report.seeds`); ``±x`` beside its value is the mean over pairs of the per-pair SD across
  seeds;
- ``cluster="speaker_id"``: the paired bootstrap resamples speakers then their pairs, and the sign-flip test flips
  whole speakers (stated under the table);
- calibration cells are ``n/a`` where floor and ceiling are not significantly different on the metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.types import ANCHOR_METHODS, RunManifest
from idlora_bench.report.paired_stats import FailurePolicy, compare_methods, holm
from idlora_bench.report.seeds import SeedPolicy, aggregate_seeds, separate_seeds
from idlora_bench.report.stats import paired_t_p_value
from idlora_bench.store.run_files import load_run

REPORTED_DIR = Path(__file__).resolve().parents[2] / "leaderboard" / "reported"


@dataclass
class Cell:
    value: float | None
    n_ok: int = 0
    n_pairs: int = 0
    rank: int | None = None  # 1 best, 2 second
    mark: str = ""  # "†" significantly better, "‡" significantly worse than the reference
    seed_sd: float | None = None  # mean over pairs of the per-pair SD across seeds (several seeds only)
    n_seeds: int = 1
    missing: str = "-"  # shown instead of a value that is None ("n/a": not defined, see the table's notes)

    @property
    def coverage_note(self) -> str:
        return f"{self.n_ok}/{self.n_pairs}" if self.n_pairs and self.n_ok < self.n_pairs else ""


@dataclass
class Row:
    label: str
    kind: str  # "measured", "anchor", "reference", "reported"
    cells: dict[str, Cell]


@dataclass
class Block:
    title: str
    rows: list[Row]


@dataclass(frozen=True)
class MetricDisplay:
    """How a metric family's column is shown: read from the run manifests (which copy it from the metric
    class), so tables never import metric code."""

    label: str
    digits: int
    direction: str


@dataclass
class Table:
    title: str
    columns: list[str]  # metric families
    directions: dict[str, str]
    blocks: list[Block]
    notes: list[str] = field(default_factory=list)
    digits: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def header(self, column: str) -> str:
        arrow = "↑" if self.directions.get(column) == "higher" else "↓"
        return f"{self.labels.get(column, column)} {arrow}"


# ------------------------------------------------------------------------------------------ loading runs
@dataclass
class LoadedRuns:
    """Runs read for a table: ``results`` one row per (split, method, pair, metric) after the seed policy (a
    method's seeds averaged per pair, or one row label per seed), ``per_seed`` the rows as read (column ``seed``)."""

    results: pd.DataFrame
    manifests: list[RunManifest]
    profile: str
    per_seed: pd.DataFrame | None = None

    @property
    def display(self) -> dict[str, MetricDisplay]:
        return metric_display(self.manifests)

    @property
    def smoke_methods(self) -> set[str]:
        """Methods with a run made with a smoke configuration (shown only with ``allow_smoke``)."""
        return {m.method for m in self.manifests if m.smoke}


def metric_display(manifests: list[RunManifest]) -> dict[str, MetricDisplay]:
    """Family -> label, digits and direction, in the column order of the first manifest naming each family."""
    display: dict[str, MetricDisplay] = {}
    for manifest in manifests:
        for metric in manifest.metrics:
            display.setdefault(metric.family, MetricDisplay(metric.label or metric.family, metric.digits,
                                                            metric.direction))
    return display


def load_runs(paths: list[Path], profile: str | None = None, allow_smoke: bool = False,
              seeds: SeedPolicy = "mean") -> LoadedRuns:
    """Results and manifests of run folders (or their ``results-<profile>.jsonl`` / manifest files); one profile.

    Runs of one method with different seeds (the manifests' ``seed``) are combined by ``seeds``: ``mean`` (one
    value per pair, the mean over seeds, with the seed-to-seed spread) or ``separate`` (one row per seed).
    The same method and seed twice on a split is refused.
    """
    frames, manifests = [], []
    for path in paths:
        run = load_run(Path(path), profile)
        if run.manifest.smoke and not allow_smoke:
            raise ValidationError(f"{run.files.results_jsonl}: made with a smoke configuration ({run.manifest.method}); "
                                  "smoke runs are refused by comparison tables (--allow-smoke to show anyway)")
        frames.append(run.results.assign(seed=run.manifest.seed))
        manifests.append(run.manifest)
    return combine_runs(frames, manifests, seeds)


def combine_runs(frames: list[pd.DataFrame], manifests: list[RunManifest], seeds: SeedPolicy = "mean") -> LoadedRuns:
    """:func:`load_runs` on results already read (each frame with a ``seed`` column) and their manifests."""
    profiles = {m.profile for m in manifests}
    if len(profiles) > 1:
        raise ValidationError(f"runs use different metric profiles {sorted(profiles)}; profiles are never mixed")
    if not frames:
        raise ValidationError("no runs to combine")
    per_seed = pd.concat(frames, ignore_index=True)
    duplicated = per_seed.duplicated(["split", "method", "pair_id", "metric", "seed"])
    if duplicated.any():
        first = per_seed[duplicated].iloc[0]
        raise ValidationError(f"method {first['method']!r} seed {int(first['seed'])} appears in more than one run "
                              f"on split {first['split']!r}")
    if seeds == "mean":
        results = aggregate_seeds(per_seed)
    elif seeds == "separate":
        results = aggregate_seeds(separate_seeds(per_seed))
    else:
        raise ValidationError(f"unknown seed policy {seeds!r}; choose mean or separate")
    return LoadedRuns(results, manifests, profiles.pop(), per_seed)


# ------------------------------------------------------------------------------------------ reported rows
def load_reported(table: str) -> pd.DataFrame:
    """The paper's numbers for ``table`` (``table1``, ``table2``, ``table4``, ``table5``), marked reported."""
    path = REPORTED_DIR / f"{table}.csv"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in REPORTED_DIR.glob("table*.csv")))
        raise ValidationError(f"no reported table {table!r} (known: {known})")
    reported = pd.read_csv(path)
    names = REPORTED_DIR / "methods.csv"  # paper row name -> the bench method (and options) that reproduces it
    if names.is_file():
        mapping = pd.read_csv(names, keep_default_na=False).rename(columns={"paper_method": "method"})
        reported = reported.merge(mapping, on="method", how="left")
    return reported


def _reported_label(method: str, group: pd.DataFrame) -> str:
    """``<paper name> (reported)``, with the bench method that reproduces the row when known."""
    bench = group["bench_method"].iloc[0] if "bench_method" in group else None
    if not isinstance(bench, str) or not bench:
        return f"{method} (reported)"
    options = group["options"].iloc[0] if "options" in group else ""
    return f"{method} (reported; {bench}{' ' + options if isinstance(options, str) and options else ''})"


# ------------------------------------------------------------------------------------------ tables
def _columns(results: pd.DataFrame, display: dict[str, MetricDisplay]) -> list[str]:
    """Metric families present in the results, in the profile's order (as the manifests list them)."""
    present = list(dict.fromkeys(results["metric"]))
    return [m for m in display if m in present] + [m for m in present if m not in display]


def _format(display: dict[str, MetricDisplay]) -> dict[str, dict[str, object]]:
    """``labels`` and ``digits`` keyword arguments of :class:`Table` from the metric display facts."""
    return {"labels": {family: d.label for family, d in display.items()},
            "digits": {family: d.digits for family, d in display.items()}}


def _rank(block_rows: list[Row], columns: list[str], directions: dict[str, str]) -> None:
    for column in columns:
        ranked = [r for r in block_rows if r.kind in ("measured", "reference") and column in r.cells
                  and r.cells[column].value is not None]
        values = sorted({r.cells[column].value for r in ranked}, reverse=directions[column] == "higher")
        for row in ranked:
            position = values.index(row.cells[column].value)
            row.cells[column].rank = position + 1 if position < 2 else None


def _seed_cell(cell: Cell, own: pd.DataFrame) -> None:
    """Seed facts of a cell from aggregated rows (columns ``n_seeds`` / ``seed_sd``, see ``report.seeds``)."""
    if "n_seeds" not in own.columns or own.empty:
        return
    cell.n_seeds = int(own["n_seeds"].max())
    spread = own.loc[own["status"] == "ok", "seed_sd"].to_numpy(np.float64)
    if cell.n_seeds > 1 and np.isfinite(spread).any():
        cell.seed_sd = float(np.nanmean(spread))


def statistics_notes(reference: str, family: int, policy: FailurePolicy, alpha: float, n_boot: int,
                     cluster: str | None, results: pd.DataFrame) -> list[str]:
    """The sentences under a comparison table: test, correction, failure policy, bootstrap, seeds."""
    unit = "speakers (all pairs of a speaker flipped together)" if cluster else "pairs"
    notes = [
        f"† / ‡: significantly better / worse than {reference} (paired sign-flip permutation test over {unit}, "
        f"Holm-corrected over {family} comparisons = methods x metrics x splits, p < {alpha}).",
        f"Failed samples: {policy} ({'pairs scored for both methods' if policy == 'complete-case' else 'a failed pair gets the worst value seen'}); "
        "k/n beside a value = scored / all pairs when below 100%.",
    ]
    if cluster:
        notes.append(f"95% CIs of the paired differences (comparisons): speaker-clustered bootstrap, {n_boot} resamples "
                     f"(resample speakers with replacement, then each drawn speaker's pairs; clusters = {cluster}).")
    else:
        notes.append(f"95% CIs of the paired differences (comparisons): bootstrap over pairs, {n_boot} resamples "
                     "(pairs of one speaker treated as independent; --cluster speaker resamples speakers).")
    if "n_seeds" in results.columns and (results["n_seeds"] > 1).any():
        counts = sorted({int(n) for n in results.groupby("method")["n_seeds"].max() if n > 1})
        notes.append(f"Methods with several seeds ({'/'.join(map(str, counts))} seeds): each pair's value is its "
                     "mean over seeds; ±x = mean over pairs of the per-pair SD across seeds (seed-to-seed spread, "
                     "not a CI).")
    return notes


def main_table(results: pd.DataFrame, reference: str, *, display: dict[str, MetricDisplay] | None = None,
               policy: FailurePolicy = "complete-case", alpha: float = 0.05, reported: pd.DataFrame | None = None,
               n_boot: int = 10_000, seed: int = 0, cluster: str | None = None,
               smoke: set[str] | frozenset[str] = frozenset()) -> tuple[Table, pd.DataFrame]:
    """Table 1/2 style; returns the table and the comparisons behind its significance marks.

    ``display``: each family's label and digits (``LoadedRuns.display``); families without one show their name.
    ``cluster``: a results column (``speaker_id``) for the clustered bootstrap and sign flips (see paired_stats).
    ``smoke``: methods whose runs used a smoke configuration (``LoadedRuns.smoke_methods``): labelled ``(smoke)``.
    """
    display = display or {}
    comparisons = compare_methods(results, reference, policy=policy, n_boot=n_boot, seed=seed, alpha=alpha,
                                  cluster=cluster)
    columns = _columns(results, display)
    directions = dict(results.groupby("metric")["direction"].first())
    blocks = []
    for split, split_rows in results.groupby("split", sort=False):
        rows = []
        for method in dict.fromkeys(split_rows["method"]):
            kind = "anchor" if method in ANCHOR_METHODS else ("reference" if method == reference else "measured")
            cells = {}
            for metric in columns:
                own = split_rows[(split_rows["method"] == method) & (split_rows["metric"] == metric)]
                if own.empty:
                    continue
                ok = own.loc[own["status"] == "ok", "value"]
                cell = Cell(float(ok.mean()) if len(ok) else None, len(ok), own["pair_id"].nunique())
                _seed_cell(cell, own)
                hit = comparisons[(comparisons["split"] == split) & (comparisons["metric"] == metric)
                                  & (comparisons["method"] == method)] if len(comparisons) else comparisons
                if len(hit) and bool(hit["significant"].iloc[0]):
                    cell.mark = "†" if bool(hit["better"].iloc[0]) else "‡"
                cells[metric] = cell
            rows.append(Row(f"{method} (smoke)" if method in smoke else method, kind, cells))
        if reported is not None:
            for method, group in reported[reported["split"] == split].groupby("method", sort=False):
                cells = {metric: Cell(float(v)) for metric, v in zip(group["metric"], group["value"])
                         if metric in directions}
                rows.append(Row(_reported_label(str(method), group), "reported", cells))
        _rank(rows, columns, directions)
        blocks.append(Block(str(split), rows))
    family = int(comparisons["family_size"].iloc[0]) if len(comparisons) else 0
    notes = statistics_notes(reference, family, policy, alpha, n_boot, cluster, results)
    notes.append("Bold: best, underlined: second best among measured methods (anchors and reported rows are not ranked).")
    if reported is not None:
        notes.append("Rows marked (reported) are numbers printed in the ID-LoRA paper, not measured here; after the "
                     "semicolon, the bench method (and options) that reproduces the row.")
    if smoke:
        notes.append("Rows marked (smoke) were made with tiny random or fake models: they test the pipeline, "
                     "not the method.")
    return Table("comparison", columns, directions, blocks, notes, **_format(display)), comparisons


def anchor_separation(results: pd.DataFrame, floor: str, ceiling: str, alpha: float = 0.05) -> pd.DataFrame:
    """Per (split, metric): is the ceiling significantly different from the floor? Paired t-test on the pairs scored
    for both anchors (:func:`~idlora_bench.report.stats.paired_t_p_value`), Holm over every (split, metric).
    Columns split, metric, n, mean_diff, p, p_holm, separated."""
    ok = results[results["status"] == "ok"]
    records = []
    for (split, metric), rows in ok.groupby(["split", "metric"], sort=False):
        table = rows.pivot_table(index="pair_id", columns="method", values="value", aggfunc="first")
        if floor not in table.columns or ceiling not in table.columns:
            continue
        both = table[[floor, ceiling]].dropna()
        diffs = (both[ceiling] - both[floor]).to_numpy(np.float64)
        records.append({"split": split, "metric": metric, "n": len(diffs),
                        "mean_diff": float(diffs.mean()) if len(diffs) else math.nan,
                        "p": paired_t_p_value(diffs)})
    frame = pd.DataFrame(records, columns=["split", "metric", "n", "mean_diff", "p"])
    frame["p_holm"] = holm(frame["p"].to_numpy()) if len(frame) else []
    frame["separated"] = frame["p_holm"] < alpha
    return frame


def calibration_table(results: pd.DataFrame, floor: str = "swap-speaker", ceiling: str = "gt",
                      display: dict[str, MetricDisplay] | None = None, alpha: float = 0.05) -> Table:
    """Where each method sits between the floor (0) and the ceiling (1) anchors, per metric and split:
    ``(mean - floor mean) / (ceiling mean - floor mean)``; ``n/a`` when the anchors are not significantly different
    on that metric (:func:`anchor_separation`): a position between two indistinguishable anchors is noise."""
    for anchor in (floor, ceiling):
        if anchor not in set(results["method"]):
            raise ValidationError(f"calibration needs the {anchor!r} run among the results")
    display = display or {}
    columns = _columns(results, display)
    means = (results[results["status"] == "ok"].groupby(["split", "method", "metric"])["value"].mean())
    separation = anchor_separation(results, floor, ceiling, alpha)
    separated = {(row.split, row.metric): bool(row.separated) for row in separation.itertuples()}
    blocks = []
    for split in dict.fromkeys(results["split"]):
        rows = []
        for method in dict.fromkeys(results.loc[results["split"] == split, "method"]):
            cells = {}
            for metric in columns:
                try:
                    low, high, value = (means[(split, name, metric)] for name in (floor, ceiling, method))
                except KeyError:
                    continue
                if not separated.get((split, metric), False) or math.isclose(high, low):
                    cells[metric] = Cell(None, missing="n/a")
                else:
                    cells[metric] = Cell(float((value - low) / (high - low)))
            kind = "anchor" if method in (floor, ceiling) else "measured"
            rows.append(Row(method, kind, cells))
        blocks.append(Block(str(split), rows))
    notes = [f"0 = {floor} (floor), 1 = {ceiling} (ceiling), per metric: (mean - floor) / (ceiling - floor); "
             "the direction of each metric is already in the anchors' order.",
             f"n/a: {ceiling} and {floor} are not significantly different on that metric (paired t-test on the pairs "
             f"scored for both, Holm over {len(separation)} metric x split tests, p >= {alpha}): the metric does not "
             "separate the anchors there, so a position between them would be noise."]
    return Table("calibration", columns, {c: "higher" for c in columns}, blocks, notes,
                 digits={c: 2 for c in columns}, labels=_format(display)["labels"])


def lip_motion_table(results: pd.DataFrame, top_fraction: float = 0.3,
                     display: dict[str, MetricDisplay] | None = None) -> Table:
    """Table 4 style: per method and split, mean lip motion and face similarity over the method's own top
    ``top_fraction`` of pairs by face similarity (``ceil(fraction x n)`` pairs, at least 1)."""
    needed = {"lip_motion", "face_similarity"}
    if not needed <= set(results["metric"]):
        raise ValidationError(f"the lip-motion table needs metrics {sorted(needed)}")
    ok = results[results["status"] == "ok"].pivot_table(index=["split", "method", "pair_id"], columns="metric",
                                                        values="value")
    blocks = []
    for split in dict.fromkeys(results["split"]):
        rows = []
        for method in dict.fromkeys(results.loc[results["split"] == split, "method"]):
            both = ok.loc[(split, method)].dropna(subset=list(needed))
            if both.empty:
                continue
            top = both.sort_values("face_similarity", ascending=False).head(max(1, math.ceil(top_fraction * len(both))))
            cells = {"lip_motion": Cell(float(top["lip_motion"].mean()), len(top), len(top)),
                     "face_similarity": Cell(float(top["face_similarity"].mean()), len(top), len(top))}
            rows.append(Row(method, "anchor" if method in ANCHOR_METHODS else "measured", cells))
        blocks.append(Block(str(split), rows))
    notes = [f"Means over each method's top {top_fraction:.0%} of pairs by face similarity (paper Table 4)."]
    return Table("lip motion vs face similarity", ["lip_motion", "face_similarity"],
                 {"lip_motion": "higher", "face_similarity": "higher"}, blocks, notes, **_format(display or {}))


def sweep_table(loaded: LoadedRuns, parameter: str) -> Table:
    """Table 5 style: one row per run, labelled by ``method_config[parameter]``, sorted by its value."""
    labels = {}
    for manifest in loaded.manifests:
        if parameter not in manifest.method_config:
            raise ValidationError(f"run {manifest.run_id}: method config has no parameter {parameter!r} "
                                  f"(has {sorted(manifest.method_config)})")
        labels[manifest.method] = manifest.method_config[parameter]
    results = loaded.results
    columns = _columns(results, loaded.display)
    directions = dict(results.groupby("metric")["direction"].first())
    blocks = []
    for split in dict.fromkeys(results["split"]):
        rows = []
        for method in sorted(labels, key=lambda m: (str(type(labels[m])), labels[m])):
            own = results[(results["split"] == split) & (results["method"] == method)]
            cells = {}
            for metric in columns:
                metric_rows = own[own["metric"] == metric]
                ok = metric_rows.loc[metric_rows["status"] == "ok", "value"]
                cells[metric] = Cell(float(ok.mean()) if len(ok) else None, len(ok), metric_rows["pair_id"].nunique())
            rows.append(Row(f"{parameter} = {labels[method]}", "measured", cells))
        _rank(rows, columns, directions)
        blocks.append(Block(str(split), rows))
    return Table(f"sweep of {parameter}", columns, directions, blocks, [f"One run per value of {parameter}."],
                 **_format(loaded.display))


def as_frame(table: Table) -> pd.DataFrame:
    """Long form: block, row, kind, metric, value, n_ok, n_pairs, rank, mark, n_seeds, seed_sd, note (the CSV)."""
    records = []
    for block in table.blocks:
        for row in block.rows:
            for metric, cell in row.cells.items():
                records.append({"block": block.title, "row": row.label, "kind": row.kind, "metric": metric,
                                "value": np.nan if cell.value is None else cell.value, "n_ok": cell.n_ok,
                                "n_pairs": cell.n_pairs, "rank": cell.rank, "mark": cell.mark,
                                "n_seeds": cell.n_seeds, "seed_sd": np.nan if cell.seed_sd is None else cell.seed_sd,
                                "note": cell.missing if cell.value is None else ""})
    return pd.DataFrame(records)
