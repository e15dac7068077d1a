"""Render a :class:`~idlora_bench.report.tables.Table` to Markdown, LaTeX (booktabs), CSV and HTML.

Digits and column labels come with the table (from the metric classes, through the run manifests).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from idlora_bench.core.io import atomic_write_text
from idlora_bench.report.tables import Cell, Table, as_frame

FORMATS = ("md", "latex", "csv", "html")
_SUFFIX = {"md": ".md", "latex": ".tex", "csv": ".csv", "html": ".html"}


def _number(table: Table, column: str, cell: Cell) -> str:
    """The value with the column's digits (``cell.missing`` when there is none) and, for a method with several
    seeds, ``±`` the mean per-pair SD across seeds."""
    if cell.value is None:
        return cell.missing
    digits = table.digits.get(column, 3)
    return f"{cell.value:.{digits}f}"


def _spread(table: Table, column: str, cell: Cell) -> str:
    if cell.seed_sd is None:
        return ""
    return f" ±{cell.seed_sd:.{table.digits.get(column, 3)}f}"


def _format_cell(table: Table, column: str, cell: Cell | None, *, escape: Callable[[str], str],
                 bold: Callable[[str], str], underline: Callable[[str], str], marks: dict[str, str],
                 coverage: Callable[[str], str]) -> str:
    """One cell's text: the number (escaped), bold if best, underlined if second, the significance mark and
    the coverage note, each in the target format's markup."""
    if cell is None:
        return ""
    text = escape(_number(table, column, cell))
    text = bold(text) if cell.rank == 1 else (underline(text) if cell.rank == 2 else text)
    text += marks.get(cell.mark, "") + escape(_spread(table, column, cell))
    return text + (coverage(cell.coverage_note) if cell.coverage_note else "")


def _same(text: str) -> str:
    return text


def to_markdown(table: Table) -> str:
    lines = [f"**{table.title}**", ""]
    header = ["split", "method", *(table.header(c) for c in table.columns)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for block in table.blocks:
        for index, row in enumerate(block.rows):
            cells = [_format_cell(table, column, row.cells.get(column), escape=_same, bold="**{}**".format,
                                  underline="<u>{}</u>".format, marks={"†": "†", "‡": "‡"}, coverage=" ({})".format)
                     for column in table.columns]
            label = f"*{row.label}*" if row.kind in ("reported", "anchor") else row.label
            lines.append("| " + " | ".join([block.title if index == 0 else "", label, *cells]) + " |")
    lines += [""] + [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return (text.replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace("→", r"$\rightarrow$")
            .replace("±", r"$\pm$"))


def to_latex(table: Table) -> str:
    spec = "ll" + "c" * len(table.columns)
    lines = [r"% requires \usepackage{booktabs}", r"\begin{tabular}{" + spec + "}", r"\toprule",
             " & ".join(["Split", "Method", *(_latex_escape(table.header(c)) for c in table.columns)]) + r" \\",
             r"\midrule"]
    for number, block in enumerate(table.blocks):
        if number:
            lines.append(r"\midrule")
        for index, row in enumerate(block.rows):
            cells = [_format_cell(table, column, row.cells.get(column), escape=_latex_escape,
                                  bold=r"\textbf{{{}}}".format,
                                  underline=r"\underline{{{}}}".format,
                                  marks={"†": r"$^\dagger$", "‡": r"$^\ddagger$"},
                                  coverage=r"\,{{\scriptsize({})}}".format)
                     for column in table.columns]
            label = _latex_escape(row.label)
            label = rf"\textit{{{label}}}" if row.kind in ("reported", "anchor") else label
            split = _latex_escape(block.title) if index == 0 else ""
            lines.append(" & ".join([split, label, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += ["% " + _latex_escape(note) for note in table.notes]
    return "\n".join(lines) + "\n"


def to_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(table.header(c))}</th>" for c in table.columns)
    body = []
    for block in table.blocks:
        for index, row in enumerate(block.rows):
            cells = ["<td>" + _format_cell(table, column, row.cells.get(column), escape=html.escape,
                                           bold="<b>{}</b>".format, underline="<u>{}</u>".format,
                                           marks={"†": "<sup>†</sup>", "‡": "<sup>‡</sup>"},
                                           coverage=' <small title="scored / all pairs">({})</small>'.format) + "</td>"
                     for column in table.columns]
            label = html.escape(row.label)
            label = f"<i>{label}</i>" if row.kind in ("reported", "anchor") else label
            split = f"<th>{html.escape(block.title)}</th>" if index == 0 else "<td></td>"
            body.append(f'<tr class="{row.kind}">{split}<td>{label}</td>{"".join(cells)}</tr>')
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in table.notes)
    return (f"<table>\n<caption>{html.escape(table.title)}</caption>\n<thead><tr><th>split</th><th>method</th>{head}"
            f"</tr></thead>\n<tbody>\n" + "\n".join(body) + f"\n</tbody>\n</table>\n<ul>{notes}</ul>\n")


def to_csv(table: Table) -> str:
    return as_frame(table).to_csv(index=False)


RENDERERS = {"md": to_markdown, "latex": to_latex, "csv": to_csv, "html": to_html}


def write_all(table: Table, out_dir: Path, stem: str, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write the table in every format to ``out_dir/<stem>.<ext>``; returns the paths."""
    written = []
    for fmt in formats:
        path = Path(out_dir) / f"{stem}{_SUFFIX[fmt]}"
        atomic_write_text(path, RENDERERS[fmt](table))
        written.append(path)
    return written
