"""Rendering the shared context into report.md (GitHub markdown) and index.html (self-contained, no network)."""
from __future__ import annotations

import html
import math
import re
from pathlib import Path

import jinja2
from markupsafe import Markup

from bench.report.load import load_run
from bench.report.tables import Table

TEMPLATES = Path(__file__).resolve().parent / "templates"


def md_escape(value) -> Markup:
    """Safe inside a GitHub table cell: no raw HTML, no pipes, no line breaks. Markup: escaped once, not again."""
    text = "" if value is None else str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return Markup(text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", "<br>"))


def md_text(value) -> Markup:
    """Every value report.md prints without a filter: raw HTML in a name (an image, a category, a method, a
    dataset) is escaped, as index.html's autoescape does. Markup (a table, a value already escaped) passes."""
    if isinstance(value, Markup):
        return value
    text = "" if value is None else str(value)
    return Markup(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def md_code(value) -> Markup:
    """A code span holding `value` verbatim (HTML is not interpreted inside one; entities would show as typed)."""
    text = ("" if value is None else str(value)).replace("\n", " ")
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Markup(f"{fence}{pad}{text}{pad}{fence}")


def md_table(table: Table) -> Markup:
    header = ["method"] + [c.header for c in table.columns]
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |",
             "|" + "---|" + "|".join("---:" if c.key != "family" else "---" for c in table.columns) + "|"]
    for row in table.rows:
        cells = [md_escape(row.label)]
        for cell in row.cells:
            text = md_escape(cell.text)
            cells.append(f"**{text}**" if cell.bold else text)
        lines.append("| " + " | ".join(cells) + " |")
    if not table.rows:
        lines.append("| (no results) |" + " |" * len(table.columns))
    out = "\n".join(lines)
    if table.notes:
        out += "\n\n" + "\n".join(f"*{md_escape(n)}*" for n in table.notes)
    return Markup(out)


def html_code(value) -> Markup:
    """Escape, then show `backticked` spans as <code>."""
    text = html.escape("" if value is None else str(value))
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", text))


def _num_attr(x: float) -> str:
    return repr(float(x)) if isinstance(x, (int, float)) and math.isfinite(x) else "nan"


def html_table(table: Table) -> Markup:
    e = html.escape
    parts = [f'<div class="scroll"><table class="summary" id="{e(table.anchor)}">',
             '<tr><th class="name">method</th>' + "".join(
                 f'<th class="{"name" if c.key == "family" else ""}" title="{e(c.tooltip)}">{e(c.header)}</th>'
                 for c in table.columns) + "</tr>"]
    for row in table.rows:
        tds = [f'<td class="name method" data-method="{e(row.method)}">{e(row.label)}</td>']
        for col, cell in zip(table.columns, row.cells):
            if col.key == "family":
                tds.append(f'<td class="name method">{e(cell.text)}</td>')
                continue
            cls = "best" if cell.bold else ""
            tds.append(f'<td class="{cls}" data-metric="{e(col.key)}" data-mean="{_num_attr(cell.mean)}" '
                       f'data-ci="{_num_attr(cell.ci)}" data-n="{cell.n}">{e(cell.text)}</td>')
        parts.append(f'<tr class="fam-{e(row.family)}">' + "".join(tds) + "</tr>")
    if not table.rows:
        parts.append(f'<tr><td class="name" colspan="{len(table.columns) + 1}">(no results)</td></tr>')
    parts.append("</table></div>")
    for note in table.notes:
        parts.append(f'<p class="note">{e(note)}</p>')
    return Markup("\n".join(parts))


def _env(autoescape: bool) -> jinja2.Environment:
    # markdown has no autoescape of its own: every printed value goes through md_text instead
    extra = {} if autoescape else {"finalize": md_text}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=autoescape,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, **extra)
    env.filters["md"] = md_escape
    env.filters["mdcode"] = md_code
    env.filters["code"] = html_code
    env.globals["mdtable"] = md_table
    env.globals["htmltable"] = html_table
    return env


def render_report(run_dir: Path) -> dict[str, Path]:
    """Render <run_dir>/report.md and <run_dir>/index.html (plus figures/, crops/, summary.csv) from the run folder.

    Returns {"markdown": path to report.md, "html": path to index.html}.
    """
    from bench.report.context import build_context  # matplotlib is imported only when rendering

    run_dir = Path(run_dir)
    context = build_context(load_run(run_dir))
    md_path, html_path = run_dir / "report.md", run_dir / "index.html"
    md_text = _env(autoescape=False).get_template("report.md.j2").render(**context)
    while "\n\n\n" in md_text:
        md_text = md_text.replace("\n\n\n", "\n\n")
    md_path.write_text(md_text, encoding="utf-8")
    html_path.write_text(_env(autoescape=True).get_template("index.html.j2").render(**context), encoding="utf-8")
    return {"markdown": md_path, "html": html_path}
