"""HTML of the leaderboard site: the index (one sortable table per split and profile) and the method pages
(per-sample rows with the reference, target and generated videos side by side, worst first).

Plain strings with every data value passed through :func:`html.escape`; the pages load only the site's own
``assets/leaderboard.css`` and ``assets/leaderboard.js`` (sorting), nothing from the network.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import atomic_write_text
from idlora_bench.leaderboard.site import Section, SiteOptions, Submission, clip_url, generated_folder, method_slug
from idlora_bench.report.tables import Row

KIND_BADGES = {"anchor": "anchor", "reported": "reported", "reference": "reference", "measured": ""}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _number(value: float | None, digits: int) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def page(title: str, body: str, depth: int) -> str:
    """A whole page: ``depth`` folders below the site root (for the asset links)."""
    prefix = "../" * depth
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_e(title)}</title>\n'
            f'<link rel="icon" href="data:,">\n<link rel="stylesheet" href="{prefix}assets/leaderboard.css">\n'
            f'<script src="{prefix}assets/leaderboard.js" defer></script>\n</head>\n<body>\n{body}\n</body>\n</html>\n')


def _header_cells(section: Section) -> list[str]:
    cells = []
    for column in section.table.columns:
        direction = section.table.directions.get(column, "higher")
        cells.append(f'<th data-sort="number" data-direction="{direction}" data-metric="{_e(column)}" '
                     f'title="{"higher" if direction == "higher" else "lower"} is better">'
                     f'{_e(section.table.header(column))}</th>')
    return cells


def _ci_text(options: SiteOptions) -> str:
    return ("speaker-clustered bootstrap 95% CI (speakers resampled, then their pairs)" if options.cluster
            else "Student-t 95% CI")


def _measured_cell(section: Section, row: Row, column: str) -> str:
    cell = row.cells.get(column)
    if cell is None:
        return '<td data-value=""></td>'
    digits = section.table.digits.get(column, 3)
    found = section.summary[(section.summary["method"] == row.label) & (section.summary["metric"] == column)]
    if row.kind == "reported" or found.empty:
        value = "" if cell.value is None else repr(cell.value)
        return f'<td data-value="{value}">{_e(_number(cell.value, digits))}</td>'
    summary = found.iloc[0]
    mark = {"†": '<sup class="better" title="significantly better than the reference (Holm)">†</sup>',
            "‡": '<sup class="worse" title="significantly worse than the reference (Holm)">‡</sup>'}.get(cell.mark, "")
    rank = {1: " best", 2: " second"}.get(cell.rank or 0, "")
    mean = summary["mean"]
    ci = f'[{_number(summary["ci_low"], digits)}, {_number(summary["ci_high"], digits)}]'
    coverage = f'{int(summary["n_ok"])}/{int(summary["n_pairs"])}'
    spread = (f' · ±{_number(cell.seed_sd, digits)} over {cell.n_seeds} seeds' if cell.seed_sd is not None else "")
    value = "" if not math.isfinite(mean) else repr(float(mean))
    return (f'<td class="cell{rank}" data-value="{value}"><span class="mean">{_e(_number(mean, digits))}</span>{mark}'
            f'<br><small class="ci">{_e(ci)} · <span title="scored / all pairs">{coverage}</span>{_e(spread)}</small>'
            '</td>')


def leaderboard_table(section: Section, submissions: dict[str, list[Submission]]) -> str:
    """The section's sortable table: one row per method (and reported row), a column per metric."""
    head = ('<tr><th data-sort="text">method</th><th data-sort="text">kind</th>' + "".join(_header_cells(section))
            + '<th data-sort="number">seeds</th><th data-sort="text">submission</th><th data-sort="text">checks</th></tr>')
    body = []
    for row in section.table.blocks[0].rows:
        link = section.method_pages.get(row.label)
        label = f'<a href="{_e(link)}">{_e(row.label)}</a>' if link else _e(row.label)
        badge = KIND_BADGES.get(row.kind, row.kind)
        cells = "".join(_measured_cell(section, row, column) for column in section.table.columns)
        own = submissions.get(row.label, [])
        seeds = section.loaded.results.loc[section.loaded.results["method"] == row.label, "n_seeds"]
        n_seeds = int(seeds.max()) if len(seeds) else 0
        titles = ", ".join(dict.fromkeys(s.manifest.title for s in own)) if own else "ID-LoRA paper"
        checks = "; ".join(dict.fromkeys(
            f"selftest {'passed' if s.manifest.selftest.included else 'not included'}, {s.rescore}" for s in own))
        body.append(f'<tr class="{_e(row.kind)}"><td class="method">{label}</td><td data-value="{_e(badge)}">'
                    f'{f"<span class=badge>{_e(badge)}</span>" if badge else ""}</td>{cells}'
                    f'<td data-value="{n_seeds or ""}">{n_seeds or ""}</td><td>{_e(titles)}</td>'
                    f'<td>{_e(checks or "reported, not measured here")}</td></tr>')
    return (f'<table class="sortable leaderboard" id="table-{_e(section.slug)}">\n<thead>{head}</thead>\n<tbody>\n'
            + "\n".join(body) + "\n</tbody>\n</table>")


def _section_html(section: Section, submissions: dict[str, list[Submission]], options: SiteOptions) -> str:
    notes = [f"Cells: mean over scored pairs, {_ci_text(options)} of the mean, coverage k/n = scored / all pairs "
             "(failures are counted, never dropped)."] + section.table.notes
    downloads = "".join(f'<li><a href="{_e(path)}">{_e(label)}</a></li>' for label, path in section.files.items())
    plots = "".join(f'<figure><img src="{_e(path)}" alt="{_e(label)}" loading="lazy"><figcaption>{_e(label)}'
                    '</figcaption></figure>' for label, path in section.files.items() if path.endswith(".svg"))
    calibration = ""
    if section.calibration is not None:
        from idlora_bench.report.render import to_html

        calibration = f'<h3>Calibration between the anchors</h3><div class="calibration">{to_html(section.calibration)}</div>'
    return (f'<section id="{_e(section.slug)}"><h2>{_e(section.title)}</h2>\n'
            f'<p class="meta">split {_e(section.split.name)} v{_e(section.split.card.version)}, '
            f'{len(section.split.pairs)} pairs, pairs sha256 <code>{_e(section.split.pairs_sha256[:16])}…</code>; '
            f'metric profile <b>{_e(section.profile)}</b>; reference {_e(options.reference)}. Click a column header '
            'to sort.</p>\n' + leaderboard_table(section, submissions)
            + '\n<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>\n" + calibration
            + f'<div class="plots">{plots}</div><h3>Downloads</h3><ul class="downloads">{downloads}</ul></section>')


def index_page(sections: list[Section], submissions: list[Submission], options: SiteOptions) -> str:
    """The site's front page."""
    by_method: dict[str, list[Submission]] = {}
    for submission in submissions:
        for run in submission.runs:
            by_method.setdefault(run.manifest.method, []).append(submission)
    nav = "".join(f'<li><a href="#{_e(s.slug)}">{_e(s.title)}</a></li>' for s in sections)
    rows = "".join(
        f'<tr><td>{_e(s.manifest.title)}</td><td>{_e(s.manifest.submitter)}</td><td><code>{_e(s.bundle_id[:12])}</code>'
        f'</td><td>{_e(s.manifest.profile)}</td><td>{len(s.runs)}</td><td>{_e(s.manifest.package_version)}</td>'
        f'<td>{"passed" if s.manifest.selftest.included else "not included"}</td><td>{_e(s.rescore)}</td>'
        f'<td>{_e(s.manifest.created_utc)}</td></tr>' for s in submissions)
    body = (f'<header><h1>idlora-bench leaderboard</h1><p>Identity-driven audio-video generation: every row below is '
            'a submission bundle that passed validation; re-scored bundles were recomputed from their videos.</p>'
            f'<nav><ul>{nav}</ul></nav></header>\n<main>\n'
            + "\n".join(_section_html(s, by_method, options) for s in sections)
            + '\n<section id="submissions"><h2>Submissions</h2><table class="sortable" id="submissions-table"><thead><tr>'
            '<th data-sort="text">title</th><th data-sort="text">submitter</th><th data-sort="text">bundle</th>'
            '<th data-sort="text">profile</th><th data-sort="number">runs</th><th data-sort="text">package</th>'
            '<th data-sort="text">selftest</th><th data-sort="text">re-scoring</th><th data-sort="text">created</th>'
            f'</tr></thead><tbody>{rows}</tbody></table></section>\n</main>')
    return page("idlora-bench leaderboard", body, 0)


# ------------------------------------------------------------------------------------------ method pages
def worst_first(rows: pd.DataFrame, directions: dict[str, str]) -> pd.Series:
    """Per pair, a score in [-1, 1]: the mean over metrics of the pair's position among this method's pairs
    (0 = worst value, 1 = best, by the metric's direction; -1 for a failed metric). Sorted ascending: worst first."""
    scores: dict[str, list[float]] = {}
    for metric, group in rows.groupby("metric", sort=False):
        ok = group[group["status"] == "ok"]
        ranks = ok["value"].rank(method="average", ascending=directions.get(metric, "higher") == "higher")
        position = (ranks - 1) / (len(ok) - 1) if len(ok) > 1 else ranks * 0 + 0.5
        for pair_id, value in zip(ok["pair_id"], position):
            scores.setdefault(pair_id, []).append(float(value))
        for pair_id in group.loc[group["status"] != "ok", "pair_id"]:
            scores.setdefault(pair_id, []).append(-1.0)
    series = pd.Series({pair: float(np.mean(values)) for pair, values in scores.items()}, dtype=np.float64)
    return series.sort_values(kind="stable")


def _video(url: str | None, label: str, missing: str) -> str:
    if url is None:
        return f'<div class="player missing"><span>{_e(label)}</span><small>{_e(missing)}</small></div>'
    return (f'<div class="player"><span>{_e(label)}</span><video controls preload="metadata" src="{_e(url)}">'
            f'</video></div>')


def _generated_url(section: Section, method: str, pair_id: str, site: Path) -> str | None:
    seeds = sorted(run.manifest.seed for _, run in section.entries if run.manifest.method == method)
    for seed in seeds:
        relative = f"{generated_folder(section, method, seed)}/{pair_id}.mp4"
        if (site / relative).is_file():
            return "../" + relative
    return None


def _sample_rows(section: Section, method: str, site: Path, worst_k: int) -> tuple[str, pd.DataFrame]:
    """The per-sample table body (worst first) and its rows as a frame for the CSV download."""
    results = section.loaded.results
    own = results[results["method"] == method]
    order = worst_first(own, section.table.directions)
    pairs = {pair.pair_id: pair for pair in section.split.pairs}
    lines, records = [], []
    for position, (pair_id, score) in enumerate(order.items(), start=1):
        pair = pairs[pair_id]
        rows = own[own["pair_id"] == pair_id].set_index("metric")
        ref, tgt = clip_url(section, pair.reference.path), clip_url(section, pair.target.path)
        players = (_video(None if ref is None else "../" + ref, "reference", "not published (dataset licence)")
                   + _video(None if tgt is None else "../" + tgt, "target", "not published (dataset licence)")
                   + _video(_generated_url(section, method, pair_id, site), "generated", "no video (not generated)"))
        cells, record = [], {"rank": position, "pair_id": pair_id, "speaker_id": pair.speaker_id, "kind": pair.kind,
                             "worst_score": score}
        for column in section.table.columns:
            if column not in rows.index:
                cells.append('<td data-value=""></td>')
                continue
            row = rows.loc[column]
            digits = section.table.digits.get(column, 3)
            if row["status"] == "ok":
                spread = (f' <small>±{_number(row["seed_sd"], digits)}</small>' if row.get("n_seeds", 1) > 1
                          and pd.notna(row.get("seed_sd")) else "")
                cells.append(f'<td data-value="{float(row["value"])!r}">{_e(_number(row["value"], digits))}{spread}</td>')
                record[column] = float(row["value"])
            else:
                cells.append(f'<td class="failed" data-value="">{_e(row["reason"])}</td>')
                record[column] = f"failed: {row['reason']}"
        worst = ' class="worst"' if position <= worst_k else ""
        badge = ' <span class="badge worst">worst</span>' if position <= worst_k else ""
        lines.append(f'<tr{worst} data-pair="{_e(pair_id)}"><td data-value="{position}">{position}{badge}</td>'
                     f'<td class="pair">{_e(pair_id)}</td><td>{_e(pair.speaker_id)}</td><td>{_e(pair.kind)}</td>'
                     f'<td class="players">{players}</td>{"".join(cells)}</tr>')
        records.append(record)
    return "\n".join(lines), pd.DataFrame(records)


def _method_summary(section: Section, method: str, options: SiteOptions) -> str:
    """Per metric: mean [CI], coverage, difference to the reference [CI], Holm p, seed spread."""
    rows = []
    for column in section.table.columns:
        digits = section.table.digits.get(column, 3)
        found = section.summary[(section.summary["method"] == method) & (section.summary["metric"] == column)]
        if found.empty:
            continue
        s = found.iloc[0]
        comparison = section.comparisons[(section.comparisons["method"] == method)
                                         & (section.comparisons["metric"] == column)] if len(section.comparisons) else []
        if len(comparison):
            c = comparison.iloc[0]
            versus = (f'{_number(c["mean_diff"], digits)} [{_number(c["ci_low"], digits)}, {_number(c["ci_high"], digits)}]'
                      f'</td><td>{c["p_holm"]:.3g}</td><td>{"yes, " + ("better" if c["better"] else "worse") if c["significant"] else "no"}')
        else:
            versus = "–</td><td>–</td><td>–"
        spread = _number(s.get("seed_sd"), digits) if s.get("n_seeds", 1) > 1 else "–"
        rows.append(f'<tr><td>{_e(section.table.header(column))}</td><td>{_number(s["mean"], digits)} '
                    f'[{_number(s["ci_low"], digits)}, {_number(s["ci_high"], digits)}]</td>'
                    f'<td>{int(s["n_ok"])}/{int(s["n_pairs"])}</td><td>{versus}</td><td>{spread}</td></tr>')
    return ('<table class="summary"><thead><tr><th>metric</th><th>mean [95% CI]</th><th>coverage</th>'
            f'<th>difference to {_e(options.reference)} [95% CI]</th><th>p (Holm)</th><th>significant</th>'
            f'<th>seed spread (mean per-pair SD)</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _method_plots(section: Section, method: str, site: Path, options: SiteOptions) -> str:
    if not options.plots:
        return ""
    from idlora_bench.report import plots

    folder = site / section.slug
    slug = method_slug(method)
    figures = []
    comparisons = section.comparisons[section.comparisons["method"] == method] if len(section.comparisons) else []
    if len(comparisons):
        plots.forest_plot(comparisons, folder, stem=f"{slug}-forest", labels=section.table.labels)
        figures.append((f"{slug}-forest.svg", f"difference to {options.reference} per metric (right = better)"))
    results = section.loaded.results
    chosen = results[results["method"].isin([method, options.reference])]
    plots.distribution_plot(chosen, folder, stem=f"{slug}-distributions", labels=section.table.labels)
    figures.append((f"{slug}-distributions.svg", "per-pair values"))
    return '<div class="plots">' + "".join(
        f'<figure><img src="{_e(name)}" alt="{_e(caption)}"><figcaption>{_e(caption)} · '
        f'<a href="{_e(name.replace(".svg", ".png"))}">PNG</a></figcaption></figure>' for name, caption in figures) + "</div>"


def _provenance(section: Section, method: str) -> str:
    items = []
    for submission, run in section.entries:
        if run.manifest.method != method:
            continue
        m = run.manifest
        items.append(f'<li>seed {m.seed}: bundle <code>{_e(submission.bundle_id[:12])}</code> '
                     f'“{_e(submission.manifest.title)}” ({_e(submission.rescore)}; selftest '
                     f'{"passed" if submission.manifest.selftest.included else "not included"}), run '
                     f'<code>{_e(m.run_id)}</code>, idlora-bench {_e(m.package_version)} (git '
                     f'{_e((m.git_hash or "unknown")[:10])}{", dirty" if m.git_dirty else ""}), device {_e(m.device)}, '
                     f'created {_e(m.created_utc)}<details><summary>method config</summary><pre>'
                     f'{_e(json.dumps(m.method_config, indent=2, sort_keys=True))}</pre></details></li>')
    return f'<ul class="provenance">{"".join(items)}</ul>'


def write_method_pages(section: Section, site: Path, options: SiteOptions) -> None:
    """One page per method of the section (``<section>/<method>.html``) and its per-sample CSV."""
    owners: dict[str, str] = {}
    for method in dict.fromkeys(section.loaded.results["method"]):
        slug = method_slug(method)
        if owners.setdefault(slug, method) != method:
            raise ValidationError(f"{section.title}: methods {owners[slug]!r} and {method!r} share the page name "
                                  f"{slug!r}; rename one of them")
        section.method_pages[method] = f"{section.slug}/{slug}.html"
    for method in section.method_pages:
        slug = method_slug(method)
        body_rows, frame = _sample_rows(section, method, site, options.worst_k)
        atomic_write_text(site / section.slug / f"{slug}-samples.csv", frame.to_csv(index=False))
        head = ("<tr><th data-sort=\"number\">#</th><th data-sort=\"text\">pair</th><th data-sort=\"text\">speaker</th>"
                "<th data-sort=\"text\">kind</th><th>reference · target · generated</th>"
                + "".join(_header_cells(section)) + "</tr>")
        body = (f'<header><p><a href="../index.html#{_e(section.slug)}">← leaderboard</a></p>'
                f'<h1>{_e(method)}</h1><p class="meta">{_e(section.title)}</p></header>\n<main>\n'
                + _provenance(section, method) + "<h2>Summary</h2>" + _method_summary(section, method, options)
                + _method_plots(section, method, site, options)
                + f'<h2>Per sample</h2><p>Worst first: mean over metrics of each pair\'s position among this method\'s '
                f'pairs (0 = worst value by the metric\'s direction, 1 = best, a failure below every value); the '
                f'{options.worst_k} worst are marked. Values of several seeds are their mean (± their SD). '
                f'<a href="{_e(slug)}-samples.csv">Download (CSV)</a></p>'
                f'<table class="sortable samples" id="samples"><thead>{head}</thead><tbody>\n{body_rows}\n</tbody>'
                '</table>\n</main>')
        atomic_write_text(site / section.method_pages[method], page(f"{method} · {section.title}", body, 1))
