"""Render a :class:`~idlora_bench.tables.Table` to Markdown, LaTeX (booktabs), CSV and HTML."""

from __future__ import annotations

import html
from pathlib import Path

from idlora_bench.io_utils import atomic_write_text
from idlora_bench.tables import Cell, Table, as_frame

FORMATS = ("md", "latex", "csv", "html")
_SUFFIX = {"md": ".md", "latex": ".tex", "csv": ".csv", "html": ".html"}


def _number(table: Table, column: str, cell: Cell) -> str:
    if cell.value is None:
        return "-"
    digits = table.digits.get(column, 2 if column in ("lse_d", "lse_c", "lip_motion") else 3)
    return f"{cell.value:.{digits}f}"


def to_markdown(table: Table) -> str:
    lines = [f"**{table.title}**", ""]
    header = ["split", "method", *(table.header(c) for c in table.columns)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for block in table.blocks:
        for index, row in enumerate(block.rows):
            cells = []
            for column in table.columns:
                cell = row.cells.get(column)
                if cell is None:
                    cells.append("")
                    continue
                text = _number(table, column, cell)
                text = f"**{text}**" if cell.rank == 1 else (f"<u>{text}</u>" if cell.rank == 2 else text)
                text += cell.mark
                if cell.coverage_note:
                    text += f" ({cell.coverage_note})"
                cells.append(text)
            label = f"*{row.label}*" if row.kind in ("reported", "anchor") else row.label
            lines.append("| " + " | ".join([block.title if index == 0 else "", label, *cells]) + " |")
    lines += [""] + [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text.replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace("→", r"$\rightarrow$")


def to_latex(table: Table) -> str:
    spec = "ll" + "c" * len(table.columns)
    lines = [r"% requires \usepackage{booktabs}", r"\begin{tabular}{" + spec + "}", r"\toprule",
             " & ".join(["Split", "Method", *(_latex_escape(table.header(c)) for c in table.columns)]) + r" \\",
             r"\midrule"]
    for number, block in enumerate(table.blocks):
        if number:
            lines.append(r"\midrule")
        for index, row in enumerate(block.rows):
            cells = []
            for column in table.columns:
                cell = row.cells.get(column)
                if cell is None:
                    cells.append("")
                    continue
                text = _number(table, column, cell)
                text = rf"\textbf{{{text}}}" if cell.rank == 1 else (rf"\underline{{{text}}}" if cell.rank == 2 else text)
                text += {"†": r"$^\dagger$", "‡": r"$^\ddagger$"}.get(cell.mark, "")
                if cell.coverage_note:
                    text += rf"\,{{\scriptsize({cell.coverage_note})}}"
                cells.append(text)
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
            cells = []
            for column in table.columns:
                cell = row.cells.get(column)
                if cell is None:
                    cells.append("<td></td>")
                    continue
                text = html.escape(_number(table, column, cell))
                text = f"<b>{text}</b>" if cell.rank == 1 else (f"<u>{text}</u>" if cell.rank == 2 else text)
                text += f"<sup>{cell.mark}</sup>" if cell.mark else ""
                if cell.coverage_note:
                    text += f' <small title="scored / all pairs">({cell.coverage_note})</small>'
                cells.append(f"<td>{text}</td>")
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
