"""Runs of one method with several seeds: one value per pair (the mean over seeds) and the seed-to-seed spread.

A pair's aggregated value is the mean of its ok values over the seeds; it is a failure only when it failed for every
seed (its reason then lists the seeds' distinct reasons). Each aggregated row carries ``n_seeds`` (seeds with a row
for the pair), ``n_seeds_ok`` and ``seed_sd``: the standard deviation (ddof 1) of the pair's ok values across
seeds, NaN with fewer than 2. Tables report the spread as the mean over pairs of ``seed_sd``: how much one pair's
number moves when only the seed changes (not a confidence interval of the method's mean).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

SeedPolicy = Literal["mean", "separate"]
SEED_POLICIES: tuple[str, ...] = ("mean", "separate")
KEYS = ["split", "method", "pair_id", "metric"]


def _reasons(reasons: pd.Series) -> str | None:
    distinct = list(dict.fromkeys(r for r in reasons if isinstance(r, str) and r))
    return " | ".join(distinct) if distinct else None


def aggregate_seeds(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (split, method, pair, metric) from rows of one or more seeds (column ``seed``; 0 when absent).

    Keeps every column of the first seed's row (lowest seed; its ``generated_sha256`` and ``details``), replaces
    ``value``/``status``/``reason`` by the aggregate and adds ``n_seeds``, ``n_seeds_ok``, ``seed_sd`` and
    ``seeds`` (the seeds, comma-separated). Row order: first appearance of each key.
    """
    frame = results if "seed" in results.columns else results.assign(seed=0)
    frame = frame.sort_values("seed", kind="stable")
    frame = frame.assign(_ok=frame["value"].where(frame["status"] == "ok").astype(np.float64))
    grouped = frame.groupby(KEYS, sort=False)
    first = grouped.head(1).set_index(KEYS)
    mean = grouped["_ok"].mean()
    n_ok = grouped["_ok"].count()
    out = first.assign(
        value=mean.reindex(first.index),
        n_seeds=grouped.size().reindex(first.index).astype(int),
        n_seeds_ok=n_ok.reindex(first.index).astype(int),
        seed_sd=grouped["_ok"].std(ddof=1).reindex(first.index),
        seeds=grouped["seed"].agg(lambda s: ",".join(str(int(v)) for v in sorted(set(s)))).reindex(first.index),
    )
    ok = out["n_seeds_ok"] > 0
    out["status"] = np.where(ok, "ok", "failed")
    out["value"] = out["value"].where(ok, None)
    out["reason"] = grouped["reason"].agg(_reasons).reindex(first.index).where(~ok, None)
    return out.drop(columns=["_ok", "seed"]).reset_index()[[*results.columns.drop("seed", errors="ignore"),
                                                             "n_seeds", "n_seeds_ok", "seed_sd", "seeds"]]


def separate_seeds(results: pd.DataFrame) -> pd.DataFrame:
    """Rows of a method run with several seeds relabelled ``<method> (seed <k>)`` (one table row per seed)."""
    frame = results if "seed" in results.columns else results.assign(seed=0)
    several = frame.groupby(["split", "method"])["seed"].transform("nunique") > 1
    labelled = frame["method"].where(~several, frame["method"] + " (seed " + frame["seed"].astype(str) + ")")
    return frame.assign(method=labelled)


def seed_spread(results: pd.DataFrame) -> pd.DataFrame:
    """Per (split, method, metric) of aggregated rows: ``n_seeds`` (most seeds of a pair) and ``seed_sd`` (mean
    over pairs of the per-pair SD across seeds, NaN when no pair has 2 ok seeds)."""
    rows = []
    for (split, method, metric), group in results.groupby(["split", "method", "metric"], sort=False):
        spread = group["seed_sd"].to_numpy(np.float64)
        rows.append({"split": split, "method": method, "metric": metric, "n_seeds": int(group["n_seeds"].max()),
                     "seed_sd": float(np.nanmean(spread)) if np.isfinite(spread).any() else float("nan")})
    return pd.DataFrame(rows, columns=["split", "method", "metric", "n_seeds", "seed_sd"])
