"""``bench human analyze``: from stored answers to the paper's numbers, figures and tables.

1. **Controls**: an annotator who answered any hidden control outside its known answers is excluded, with every
   answer (counted and listed in ``annotators.csv``); so is one who has not answered all the controls of the slot
   (``incomplete_controls``) unless ``keep_incomplete``. Practice answers are never analysed.
2. **A/B** (per question): preference rates with ties (share of annotations preferring the first run, Equal, the
   second run; exact Clopper-Pearson 95% CIs), the win rate excluding ties with its CI, the two-sided exact
   binomial test of the win count against 1/2 (``scipy.stats.binomtest``), a pair-level sign test (pairs whose
   majority prefers either run) and per-pair agreement (share of annotator pairs giving the same answer; Fleiss'
   kappa over pairs).
3. **MOS**: per run and per scenario, mean rating with Student-t 95% CI over ratings, SD, share of 1 ("Bad")
   ratings; first run vs each other run: mean difference, Cohen's d (pooled SD over ratings), Welch's t and
   Mann-Whitney p, and where the same pairs were rated for both, the paired t-test and Wilcoxon signed-rank test
   on per-pair mean ratings (with d_z), and the number of scenarios each run wins.

Figures (matplotlib, PNG + SVG): stacked preference bars per question (paper Fig. 3) and per-scenario MOS with
95% CIs (paper Fig. 5). Tables: Markdown and LaTeX (booktabs); every number also in CSV and ``analysis.json``.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from idlora_bench.core.errors import ValidationError  # noqa: E402
from idlora_bench.core.io import atomic_write_text  # noqa: E402
from idlora_bench.human.export import answers_frame, read_responses  # noqa: E402
from idlora_bench.human.model import Study  # noqa: E402
from idlora_bench.report.paired_stats import cohens_dz, wilcoxon_p_value  # noqa: E402
from idlora_bench.report.stats import mean_ci95  # noqa: E402


@dataclass
class Analysis:
    """What :func:`analyze_study` found and wrote."""

    annotators: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    paths: list[Path] = field(default_factory=list)

    @property
    def excluded(self) -> pd.DataFrame:
        return self.annotators[self.annotators["status"] != "kept"]


# ------------------------------------------------------------------------------------------ controls
def _slot_of(study: Study, annotator: str, answered: set[str], given: object) -> int:
    if given is not None and not (isinstance(given, float) and math.isnan(given)):
        return int(given)  # type: ignore[call-overload]
    slots = [slot.slot for slot in study.slots if answered <= set(slot.item_ids)]
    if not slots:
        raise ValidationError(f"annotator {annotator} answered items of more than one slot")
    return slots[0]


def annotator_status(study: Study, answers: pd.DataFrame, keep_incomplete: bool = False) -> pd.DataFrame:
    """One row per annotator: slot, controls expected / answered / failed, failed item ids, status (``kept``,
    ``failed_control``, ``incomplete_controls``) and the number of test answers."""
    items = study.items_by_id()
    rows = []
    for annotator, group in answers.groupby("annotator_id", sort=True):
        answered = set(group["item_id"])
        slot = _slot_of(study, str(annotator), answered, group["slot"].iloc[0] if "slot" in group else None)
        controls = [i for i in study.slots[slot].item_ids if items[i].kind == "control"]
        known = group[group["kind"] == "control"]
        failed = known.loc[~known["passed"].astype(bool), "item_id"].tolist()
        status = "failed_control" if failed else (
            "incomplete_controls" if len(known) < len(controls) and not keep_incomplete else "kept")
        rows.append({"annotator_id": annotator, "slot": slot, "controls_expected": len(controls),
                     "controls_answered": len(known), "controls_failed": len(failed),
                     "failed_items": " ".join(failed), "test_answers": int((group["kind"] == "test").sum()),
                     "status": status})
    return pd.DataFrame(rows, columns=["annotator_id", "slot", "controls_expected", "controls_answered",
                                       "controls_failed", "failed_items", "test_answers", "status"])


# ------------------------------------------------------------------------------------------ A/B
def _proportion(k: int, n: int) -> tuple[float, float, float]:
    """Share ``k / n`` with its exact (Clopper-Pearson) 95% CI; NaN when n = 0."""
    if n == 0:
        return math.nan, math.nan, math.nan
    interval = scipy_stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return k / n, float(interval.low), float(interval.high)


def _binomial_p(k: int, n: int) -> float:
    return float(scipy_stats.binomtest(k, n, 0.5, alternative="two-sided").pvalue) if n else math.nan


def fleiss_kappa(counts: np.ndarray) -> tuple[float, float]:
    """``(mean pairwise agreement, Fleiss' kappa)`` of an (items x categories) count matrix; items with fewer than
    two ratings are left out (the per-item agreement allows different numbers of raters)."""
    counts = np.asarray(counts, np.float64)
    raters = counts.sum(axis=1)
    counts = counts[raters >= 2]
    raters = raters[raters >= 2]
    if len(counts) == 0:
        return math.nan, math.nan
    agreement = ((counts * (counts - 1)).sum(axis=1) / (raters * (raters - 1))).mean()
    shares = counts.sum(axis=0) / counts.sum()
    chance = float((shares**2).sum())
    kappa = math.nan if chance == 1 else (agreement - chance) / (1 - chance)
    return float(agreement), float(kappa)


def ab_per_pair(study: Study, tests: pd.DataFrame) -> pd.DataFrame:
    """One row per (question, pair): answers for each run and Equal, the majority and the agreement."""
    first, second = (run.label for run in study.runs)
    rows = []
    for (question, pair_id), group in tests.groupby(["question", "pair_id"], sort=True):
        counts = {first: int((group["chosen"] == first).sum()), "equal": int((group["chosen"] == "equal").sum()),
                  second: int((group["chosen"] == second).sum())}
        top = max(counts.values())
        leaders = [name for name, count in counts.items() if count == top]
        agreement, _ = fleiss_kappa(np.array([list(counts.values())]))
        rows.append({"question": question, "pair_id": pair_id, "n": len(group), **counts,
                     "majority": leaders[0] if len(leaders) == 1 else "tie", "agreement": agreement})
    return pd.DataFrame(rows, columns=["question", "pair_id", "n", first, "equal", second, "majority", "agreement"])


def ab_summary(study: Study, tests: pd.DataFrame, per_pair: pd.DataFrame) -> pd.DataFrame:
    """One row per question (see the module docstring for every column)."""
    first, second = (run.label for run in study.runs)
    rows = []
    for question in study.questions:
        chosen = tests.loc[tests["question"] == question.key, "chosen"]
        wins, ties, losses = (int((chosen == name).sum()) for name in (first, "equal", second))
        n = wins + ties + losses
        pairs = per_pair[per_pair["question"] == question.key]
        pair_wins, pair_losses = int((pairs["majority"] == first).sum()), int((pairs["majority"] == second).sum())
        counts = pairs[[first, "equal", second]].to_numpy()
        agreement, kappa = fleiss_kappa(counts) if len(counts) else (math.nan, math.nan)
        row = {"question": question.key, "title": question.title, "n": n, "n_pairs": len(pairs),
               "wins": wins, "ties": ties, "losses": losses}
        for name, k in (("pref_first", wins), ("pref_equal", ties), ("pref_second", losses)):
            row[name], row[f"{name}_low"], row[f"{name}_high"] = _proportion(k, n)
        row["win_rate"], row["win_rate_low"], row["win_rate_high"] = _proportion(wins, wins + losses)
        row["p_binomial"] = _binomial_p(wins, wins + losses)
        row.update(pair_wins=pair_wins, pair_losses=pair_losses, p_pairs=_binomial_p(pair_wins, pair_wins + pair_losses),
                   agreement=agreement, fleiss_kappa=kappa)
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ MOS
def _rating_stats(ratings: np.ndarray) -> dict[str, float]:
    mean, low, high = mean_ci95(ratings)
    return {"n": len(ratings), "mean": mean, "ci_low": low, "ci_high": high,
            "sd": float(np.std(ratings, ddof=1)) if len(ratings) > 1 else math.nan,
            "share_bad": float(np.mean(ratings == 1)) if len(ratings) else math.nan}


def mos_tables(study: Study, tests: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``mos_summary`` (per run), ``mos_scenarios`` (per scenario x run) and ``mos_comparisons`` (first run vs
    each other run)."""
    tests = tests.assign(rating=tests["chosen"].astype(int))
    labels = [run.label for run in study.runs]
    summary = pd.DataFrame([{"source": label, "videos": int(tests.loc[tests["source"] == label, "pair_id"].nunique()),
                             **_rating_stats(tests.loc[tests["source"] == label, "rating"].to_numpy(np.float64))}
                            for label in labels])
    scenarios = pd.DataFrame([{"scenario": scenario, "source": label,
                               **_rating_stats(group.loc[group["source"] == label, "rating"].to_numpy(np.float64))}
                              for scenario, group in tests.groupby("scenario", sort=True) for label in labels])
    comparisons = [_mos_compare(tests, scenarios, labels[0], other) for other in labels[1:]]
    return {"mos_summary": summary, "mos_scenarios": scenarios,
            "mos_comparisons": pd.DataFrame(comparisons, columns=list(_mos_compare_columns()))}


def _mos_compare_columns() -> tuple[str, ...]:
    return ("first", "second", "mean_diff", "cohens_d", "p_welch", "p_mannwhitney", "paired_pairs",
            "paired_mean_diff", "paired_dz", "p_paired_t", "p_wilcoxon", "scenarios_won", "scenarios")


def _mos_compare(tests: pd.DataFrame, scenarios: pd.DataFrame, first: str, second: str) -> dict[str, object]:
    a = tests.loc[tests["source"] == first, "rating"].to_numpy(np.float64)
    b = tests.loc[tests["source"] == second, "rating"].to_numpy(np.float64)
    pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)) \
        if len(a) > 1 and len(b) > 1 else math.nan
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    per_pair = tests.pivot_table(index="pair_id", columns="source", values="rating", aggfunc="mean")
    both = per_pair[[first, second]].dropna() if {first, second} <= set(per_pair.columns) else pd.DataFrame()
    d = (both[first] - both[second]).to_numpy(np.float64) if len(both) else np.array([])
    means = scenarios.pivot_table(index="scenario", columns="source", values="mean")[[first, second]].dropna()
    enough = len(a) > 1 and len(b) > 1
    return {"first": first, "second": second, "mean_diff": diff,
            "cohens_d": diff / pooled if pooled and not math.isnan(pooled) else math.nan,
            "p_welch": float(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue) if enough else math.nan,
            "p_mannwhitney": float(scipy_stats.mannwhitneyu(a, b, alternative="two-sided").pvalue) if enough else math.nan,
            "paired_pairs": len(d), "paired_mean_diff": float(d.mean()) if len(d) else math.nan,
            "paired_dz": cohens_dz(d),
            "p_paired_t": float(scipy_stats.ttest_rel(both[first], both[second]).pvalue)
            if len(d) > 1 and np.any(d != 0) else (1.0 if len(d) > 1 else math.nan),
            "p_wilcoxon": wilcoxon_p_value(d),
            "scenarios_won": int((means[first] > means[second]).sum()), "scenarios": len(means)}


# ------------------------------------------------------------------------------------------ rendering
def _fmt(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}"


def _p(value: float) -> str:
    return "-" if math.isnan(value) else ("<0.001" if value < 0.001 else f"{value:.3f}")


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                          ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(char, escaped)
    return text.replace("<", r"$<$").replace("κ", r"$\kappa$")


def render_table(title: str, headers: list[str], rows: list[list[str]], notes: list[str], fmt: str) -> str:
    """A small table in Markdown (``md``) or LaTeX booktabs (``latex``)."""
    if fmt == "md":
        lines = [f"**{title}**", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines + [""] + [f"- {note}" for note in notes]) + "\n"
    lines = [f"% {_latex_escape(title)} (requires \\usepackage{{booktabs}})",
             r"\begin{tabular}{l" + "c" * (len(headers) - 1) + "}", r"\toprule",
             " & ".join(_latex_escape(h) for h in headers) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(cell) for cell in row) + r" \\" for row in rows]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"] + [f"% {_latex_escape(n)}" for n in notes]) + "\n"


def _ab_rows(study: Study, summary: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    first, second = (run.label for run in study.runs)
    headers = ["Question", "N", f"{first} %", "Equal %", f"{second} %", f"Win rate {first} % [95% CI]", "p",
               f"Pairs {first}:{second} (p)", "Agreement", "κ"]
    rows = [[r.title, str(r.n), _pct(r.pref_first), _pct(r.pref_equal), _pct(r.pref_second),
             f"{_pct(r.win_rate)} [{_pct(r.win_rate_low)}, {_pct(r.win_rate_high)}]", _p(r.p_binomial),
             f"{r.pair_wins}:{r.pair_losses} ({_p(r.p_pairs)})", _fmt(r.agreement), _fmt(r.fleiss_kappa)]
            for r in summary.itertuples()]
    return headers, rows


def _mos_sections(study: Study, tables: dict[str, pd.DataFrame]) -> list[tuple[str, list[str], list[list[str]]]]:
    summary, scenarios, comparisons = tables["mos_summary"], tables["mos_scenarios"], tables["mos_comparisons"]
    sections = [("MOS per method (1-5)", ["Method", "Ratings", "Videos", "MOS [95% CI]", "SD", "Bad (1) %"],
                 [[r.source, str(r.n), str(r.videos), f"{_fmt(r.mean)} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]",
                   _fmt(r.sd), _pct(r.share_bad)] for r in summary.itertuples()])]
    labels = [run.label for run in study.runs]
    by = scenarios.set_index(["scenario", "source"])
    rows = [[str(scenario)] + [f"{_fmt(by.loc[(scenario, label), 'mean'])} [{_fmt(by.loc[(scenario, label), 'ci_low'])}, "
                               f"{_fmt(by.loc[(scenario, label), 'ci_high'])}] (n={by.loc[(scenario, label), 'n']})"
                               for label in labels]
            for scenario in dict.fromkeys(scenarios["scenario"])]
    sections.append(("MOS per scenario [95% CI] (ratings)", ["Scenario", *labels], rows))
    if len(comparisons):
        sections.append(("MOS comparisons", ["Comparison", "Δ MOS", "Cohen's d", "p Welch", "p Mann-Whitney",
                                             "Paired pairs", "Δ paired", "d_z", "p paired t", "p Wilcoxon",
                                             "Scenarios won"],
                         [[f"{r.first} vs {r.second}", _fmt(r.mean_diff), _fmt(r.cohens_d, 3), _p(r.p_welch),
                           _p(r.p_mannwhitney), str(r.paired_pairs), _fmt(r.paired_mean_diff), _fmt(r.paired_dz, 3),
                           _p(r.p_paired_t), _p(r.p_wilcoxon), f"{r.scenarios_won}/{r.scenarios}"]
                          for r in comparisons.itertuples()]))
    return sections


# ------------------------------------------------------------------------------------------ figures
def _save(figure: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    for path in paths:
        figure.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(figure)
    return paths


def preference_figure(study: Study, summary: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Stacked horizontal bars per question: first run, Equal, second run (% of annotations)."""
    first, second = (run.label for run in study.runs)
    figure, axis = plt.subplots(figsize=(8, 0.9 + 0.8 * len(summary)))
    y = np.arange(len(summary))[::-1]
    left = np.zeros(len(summary))
    for column, label, colour in (("pref_first", first, "#3a6ea5"), ("pref_equal", "Equal", "#b8b8b8"),
                                  ("pref_second", second, "#d9822b")):
        share = 100 * summary[column].fillna(0).to_numpy()
        axis.barh(y, share, left=left, color=colour, label=label, edgecolor="white")
        for yi, x, s in zip(y, left, share):
            if s >= 6:
                axis.text(x + s / 2, yi, f"{s:.1f}%", ha="center", va="center", fontsize=9, color="black")
        left += share
    axis.set_yticks(y, [f"{r.title}\nwin rate {_pct(r.win_rate)}%, p {_p(r.p_binomial)}, n={r.n}"
                        for r in summary.itertuples()])
    axis.set_xlim(0, 100)
    axis.set_xlabel("annotations (%)")
    axis.legend(ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _save(figure, out_dir, "ab_preferences")


def mos_figure(study: Study, tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
    """Grouped bars per scenario (and overall): mean rating per run with its 95% CI."""
    labels = [run.label for run in study.runs]
    scenarios = tables["mos_scenarios"]
    overall = tables["mos_summary"].assign(scenario="Overall")
    frame = pd.concat([scenarios, overall[scenarios.columns]], ignore_index=True)
    names = list(dict.fromkeys(frame["scenario"]))
    x = np.arange(len(names))
    width = 0.8 / len(labels)
    figure, axis = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 4))
    for index, label in enumerate(labels):
        rows = frame[frame["source"] == label].set_index("scenario").reindex(names)
        mean = rows["mean"].to_numpy(np.float64)
        error = np.vstack([mean - rows["ci_low"].to_numpy(np.float64), rows["ci_high"].to_numpy(np.float64) - mean])
        axis.bar(x + (index - (len(labels) - 1) / 2) * width, mean, width, yerr=np.nan_to_num(error), capsize=3,
                 label=label)
    axis.set_xticks(x, ["\n".join(textwrap.wrap(str(name), 18)) for name in names], fontsize=8)
    axis.set_ylim(1, 5)
    axis.set_ylabel("MOS (1-5), 95% CI")
    axis.legend(frameon=False)
    return _save(figure, out_dir, "mos_scenarios")


# ------------------------------------------------------------------------------------------ entry point
def _write_tables(out_dir: Path, stem: str, sections: list[tuple[str, list[str], list[list[str]]]],
                  notes: list[str]) -> list[Path]:
    paths = []
    for fmt, suffix in (("md", ".md"), ("latex", ".tex")):
        text = "\n".join(render_table(title, headers, rows, notes if n == len(sections) - 1 else [], fmt)
                         for n, (title, headers, rows) in enumerate(sections))
        paths.append(atomic_write_text(out_dir / f"{stem}{suffix}", text))
    return paths


def analyze_study(study: Study, study_dir: Path, out_dir: Path, *, db_path: Path | None = None,
                  csv_path: Path | None = None, keep_incomplete: bool = False) -> Analysis:
    """Analyse the answers of ``study`` (from its SQLite file or ``csv_path``); write tables, figures, CSVs and
    ``analysis.json`` to ``out_dir``."""
    answers = answers_frame(study, read_responses(study, study_dir, db_path, csv_path))
    if answers.empty:
        raise ValidationError(f"study {study.study_id}: no answers stored yet")
    annotators = annotator_status(study, answers, keep_incomplete)
    kept = set(annotators.loc[annotators["status"] == "kept", "annotator_id"])
    tests = answers[(answers["kind"] == "test") & answers["annotator_id"].isin(kept)]
    if tests.empty:
        raise ValidationError(f"study {study.study_id}: no test answers from annotators who passed the controls "
                              f"({len(annotators) - len(kept)} of {len(annotators)} excluded; see their status with "
                              "bench human export --responses)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    excluded = annotators[annotators["status"] != "kept"]
    notes = [f"{len(kept)} annotator(s) kept; {int((excluded['status'] == 'failed_control').sum())} excluded for "
             f"failing a hidden control, {int((excluded['status'] == 'incomplete_controls').sum())} for unanswered "
             "controls (listed in annotators.csv)."]
    if study.kind == "ab":
        per_pair = ab_per_pair(study, tests)
        tables = {"ab_summary": ab_summary(study, tests, per_pair), "ab_per_pair": per_pair}
        notes += ["p: two-sided exact binomial test of the win count excluding Equal against 1/2; Pairs: pairs whose "
                  "majority prefers each run, with the same test; win-rate CI exact (Clopper-Pearson).",
                  "Agreement: share of annotator pairs giving the same answer on a pair, averaged; κ: Fleiss' kappa."]
        paths = _write_tables(out_dir, "ab", [("A/B preferences", *_ab_rows(study, tables["ab_summary"]))], notes)
        paths += preference_figure(study, tables["ab_summary"], out_dir)
    else:
        tables = mos_tables(study, tests)
        notes += ["CI: Student-t 95% over ratings; Cohen's d with the pooled SD of ratings; paired tests on per-pair "
                  "mean ratings of pairs rated for both runs."]
        paths = _write_tables(out_dir, "mos", _mos_sections(study, tables), notes)
        paths += mos_figure(study, tables, out_dir)
    for name, frame in {**tables, "annotators": annotators}.items():
        paths.append(atomic_write_text(out_dir / f"{name}.csv", frame.to_csv(index=False)))
    payload = {"study_id": study.study_id, "kind": study.kind, "runs": [run.label for run in study.runs],
               "annotators": {"total": len(annotators), "kept": len(kept),
                              "excluded": excluded[["annotator_id", "status", "failed_items"]].to_dict("records")},
               **{name: json.loads(frame.to_json(orient="records")) for name, frame in tables.items()}}
    paths.append(atomic_write_text(out_dir / "analysis.json", json.dumps(payload, indent=2)))
    return Analysis(annotators, tables, paths)
