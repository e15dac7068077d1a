"""Plots of paired comparisons (matplotlib, PNG and SVG).

- :func:`forest_plot`: per metric, each method's mean difference to the reference with its paired
  bootstrap 95% CI, oriented so that right is better; significant comparisons (Holm) are filled.
- :func:`distribution_plot`: per metric, the per-pair values of every method (box + points).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(figure: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    for path in paths:
        figure.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(figure)
    return paths


def forest_plot(comparisons: pd.DataFrame, out_dir: Path, stem: str = "forest",
                labels: dict[str, str] | None = None) -> list[Path]:
    """One panel per (split, metric): mean difference vs the reference, right = better (``labels``: family ->
    column label)."""
    labels = labels or {}
    panels = list(comparisons.groupby(["split", "metric"], sort=False))
    figure, axes = plt.subplots(len(panels), 1, figsize=(7, 1.2 + 0.45 * comparisons["method"].nunique() * len(panels)),
                                squeeze=False)
    for axis, ((split, metric), rows) in zip(axes[:, 0], panels):
        sign = 1.0 if rows["direction"].iloc[0] == "higher" else -1.0
        y = np.arange(len(rows))
        mean = sign * rows["mean_diff"].to_numpy()
        low, high = np.sort(np.stack([sign * rows["ci_low"], sign * rows["ci_high"]]), axis=0)
        axis.errorbar(mean, y, xerr=[mean - low, high - mean], fmt="none", ecolor="0.3", capsize=3)
        filled = rows["significant"].to_numpy(bool)
        axis.scatter(mean[filled], y[filled], color="C0", zorder=3, label="significant (Holm)")
        axis.scatter(mean[~filled], y[~filled], facecolors="white", edgecolors="C0", zorder=3, label="not significant")
        axis.axvline(0.0, color="0.6", linewidth=1)
        axis.set_yticks(y, rows["method"])
        reference = rows["reference"].iloc[0]
        axis.set_title(f"{split}: {labels.get(metric, metric)} - difference to {reference} (right = better)",
                       fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="best")
    figure.tight_layout()
    return _save(figure, out_dir, stem)


def distribution_plot(results: pd.DataFrame, out_dir: Path, stem: str = "distributions",
                      labels: dict[str, str] | None = None) -> list[Path]:
    """One panel per (split, metric): per-pair values of each method (ok rows only)."""
    labels = labels or {}
    ok = results[results["status"] == "ok"]
    panels = list(ok.groupby(["split", "metric"], sort=False))
    columns = min(3, len(panels))
    rows_count = int(np.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows_count, columns, figsize=(4.2 * columns, 3.2 * rows_count), squeeze=False)
    for axis, ((split, metric), rows) in zip(axes.ravel(), panels):
        methods = list(dict.fromkeys(rows["method"]))
        data = [rows.loc[rows["method"] == m, "value"].to_numpy() for m in methods]
        axis.boxplot(data, showfliers=False)
        for position, values in enumerate(data, start=1):
            jitter = np.random.default_rng(position).uniform(-0.12, 0.12, len(values))
            axis.scatter(position + jitter, values, s=8, alpha=0.6, color="C1")
        axis.set_xticks(range(1, len(methods) + 1), methods, rotation=30, ha="right", fontsize=7)
        arrow = "↑" if rows["direction"].iloc[0] == "higher" else "↓"
        axis.set_title(f"{split}: {labels.get(metric, metric)} {arrow}", fontsize=9)
    for axis in axes.ravel()[len(panels):]:
        axis.set_visible(False)
    figure.tight_layout()
    return _save(figure, out_dir, stem)
