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
- coverage (scored / all pairs) is shown beside a value whenever it is below 100%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.types import ANCHOR_METHODS, RunManifest
from idlora_bench.report.paired_stats import FailurePolicy, compare_methods
from idlora_bench.store.run_files import load_run

REPORTED_DIR = Path(__file__).resolve().parents[2] / "leaderboard" / "reported"


@dataclass
class Cell:
    value: float | None
    n_ok: int = 0
    n_pairs: int = 0
    rank: int | None = None  # 1 best, 2 second
    mark: str = ""  # "†" significantly better, "‡" significantly worse than the reference

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
    results: pd.DataFrame
    manifests: list[RunManifest]
    profile: str

    @property
    def display(self) -> dict[str, MetricDisplay]:
        return metric_display(self.manifests)


def metric_display(manifests: list[RunManifest]) -> dict[str, MetricDisplay]:
    """Family -> label, digits and direction, in the column order of the first manifest naming each family."""
    display: dict[str, MetricDisplay] = {}
    for manifest in manifests:
        for metric in manifest.metrics:
            display.setdefault(metric.family, MetricDisplay(metric.label or metric.family, metric.digits,
                                                            metric.direction))
    return display


def load_runs(paths: list[Path], profile: str | None = None, allow_smoke: bool = False) -> LoadedRuns:
    """Results and manifests of run folders (or their ``results-<profile>.jsonl`` / manifest files); one profile."""
    frames, manifests = [], []
    for path in paths:
        run = load_run(Path(path), profile)
        if run.manifest.smoke and not allow_smoke:
            raise ValidationError(f"{run.files.results_jsonl}: made with a smoke configuration ({run.manifest.method}); "
                                  "smoke runs are refused by comparison tables (--allow-smoke to show anyway)")
        frames.append(run.results)
        manifests.append(run.manifest)
    profiles = {m.profile for m in manifests}
    if len(profiles) > 1:
        raise ValidationError(f"runs use different metric profiles {sorted(profiles)}; profiles are never mixed")
    results = pd.concat(frames, ignore_index=True)
    duplicated = results.duplicated(["split", "method", "pair_id", "metric"])
    if duplicated.any():
        first = results[duplicated].iloc[0]
        raise ValidationError(f"method {first['method']!r} appears in more than one run on split {first['split']!r}")
    return LoadedRuns(results, manifests, profiles.pop())


# ------------------------------------------------------------------------------------------ reported rows
def load_reported(table: str) -> pd.DataFrame:
    """The paper's numbers for ``table`` (``table1``, ``table2``, ``table4``, ``table5``), marked reported."""
    path = REPORTED_DIR / f"{table}.csv"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in REPORTED_DIR.glob("table*.csv")))
        raise ValidationError(f"no reported table {table!r} (known: {known})")
    return pd.read_csv(path)


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


def main_table(results: pd.DataFrame, reference: str, *, display: dict[str, MetricDisplay] | None = None,
               policy: FailurePolicy = "complete-case", alpha: float = 0.05, reported: pd.DataFrame | None = None,
               n_boot: int = 10_000, seed: int = 0) -> tuple[Table, pd.DataFrame]:
    """Table 1/2 style; returns the table and the comparisons behind its significance marks.

    ``display``: each family's label and digits (``LoadedRuns.display``); families without one show their name.
    """
    display = display or {}
    comparisons = compare_methods(results, reference, policy=policy, n_boot=n_boot, seed=seed, alpha=alpha)
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
                hit = comparisons[(comparisons["split"] == split) & (comparisons["metric"] == metric)
                                  & (comparisons["method"] == method)] if len(comparisons) else comparisons
                if len(hit) and bool(hit["significant"].iloc[0]):
                    cell.mark = "†" if bool(hit["better"].iloc[0]) else "‡"
                cells[metric] = cell
            rows.append(Row(method, kind, cells))
        if reported is not None:
            for method, group in reported[reported["split"] == split].groupby("method", sort=False):
                cells = {metric: Cell(float(v)) for metric, v in zip(group["metric"], group["value"])
                         if metric in directions}
                rows.append(Row(f"{method} (reported)", "reported", cells))
        _rank(rows, columns, directions)
        blocks.append(Block(str(split), rows))
    family = int(comparisons["family_size"].iloc[0]) if len(comparisons) else 0
    notes = [
        f"† / ‡: significantly better / worse than {reference} (paired sign-flip permutation test, "
        f"Holm-corrected over {family} comparisons = methods x metrics x splits, p < {alpha}).",
        f"Failed samples: {policy} ({'pairs scored for both methods' if policy == 'complete-case' else 'a failed pair gets the worst value seen'}); "
        "k/n beside a value = scored / all pairs when below 100%.",
        "Bold: best, underlined: second best among measured methods (anchors and reported rows are not ranked).",
    ]
    if reported is not None:
        notes.append("Rows marked (reported) are numbers printed in the ID-LoRA paper, not measured here.")
    return Table("comparison", columns, directions, blocks, notes, **_format(display)), comparisons


def calibration_table(results: pd.DataFrame, floor: str = "swap-speaker", ceiling: str = "gt",
                      display: dict[str, MetricDisplay] | None = None) -> Table:
    """Where each method sits between the floor (0) and the ceiling (1) anchors, per metric and split:
    ``(mean - floor mean) / (ceiling mean - floor mean)``; undefined when the anchors tie."""
    for anchor in (floor, ceiling):
        if anchor not in set(results["method"]):
            raise ValidationError(f"calibration needs the {anchor!r} run among the results")
    display = display or {}
    columns = _columns(results, display)
    means = (results[results["status"] == "ok"].groupby(["split", "method", "metric"])["value"].mean())
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
                cells[metric] = Cell(None if math.isclose(high, low) else float((value - low) / (high - low)))
            kind = "anchor" if method in (floor, ceiling) else "measured"
            rows.append(Row(method, kind, cells))
        blocks.append(Block(str(split), rows))
    notes = [f"0 = {floor} (floor), 1 = {ceiling} (ceiling), per metric: (mean - floor) / (ceiling - floor); "
             "the direction of each metric is already in the anchors' order."]
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
    """Long form: block, row, kind, metric, value, n_ok, n_pairs, rank, mark (what the CSV holds)."""
    records = []
    for block in table.blocks:
        for row in block.rows:
            for metric, cell in row.cells.items():
                records.append({"block": block.title, "row": row.label, "kind": row.kind, "metric": metric,
                                "value": np.nan if cell.value is None else cell.value, "n_ok": cell.n_ok,
                                "n_pairs": cell.n_pairs, "rank": cell.rank, "mark": cell.mark})
    return pd.DataFrame(records)
