"""HTML building blocks of the inspection report: one self-contained page (inline CSS, JS and SVG; images as
data URIs; nothing fetched), sortable tables, tokens coloured by log-probability, highlighted spans, and SVG
histograms. Every text that reaches the page goes through ``esc``."""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Log-probabilities at or below this are drawn in the darkest red of the token scale (0 is green).
LOGPROB_FLOOR = -8.0

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 1.5em 3em; color: #1d1d1f; }
h1 { margin-top: 1em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
.note { color: #555; } .warn { background: #fff4d6; border-left: 4px solid #e0a800; padding: .4em .8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 7px; vertical-align: top; text-align: left; }
th { background: #f3f3f5; position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
.scroll { overflow-x: auto; max-width: 100%; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.text { max-width: 48em; }
details > summary { cursor: pointer; color: #0b57d0; }
.tok { border-radius: 3px; padding: 0 1px; margin: 0 1px 0 0; white-space: pre; display: inline-block; }
.toks { line-height: 1.9; }
.qa { border: 1px solid #e2e2e6; border-radius: 6px; padding: .4em .7em; margin: .5em 0; background: #fcfcfd; }
.qa .side { display: grid; grid-template-columns: 1fr 1fr; gap: .8em; }
.qa .side > div { min-width: 0; }
mark.answer { background: #c9e3ff; } mark.oracle { background: #ffc9c9; }
mark.entity { background: #ffe2b3; border-bottom: 2px solid #e07b00; }
.models { display: grid; gap: .7em; }
.models > div { border: 1px solid #e2e2e6; border-radius: 6px; padding: .5em .7em; min-width: 0; }
.models h4 { margin: 0 0 .3em; }
.bad { color: #b00020; } .good { color: #1b7f3b; }
ul.compact { margin: .2em 0; padding-left: 1.2em; }
svg text { font: 11px system-ui, sans-serif; }
"""

# Sorting: a click on a header sorts the body rows by the cells' data-sort values (numbers when the header says
# data-type="num"; empty values last), toggling the direction. A table with data-default-sort="<col>:<asc|desc>"
# is sorted on load; every sorted table records its state in data-sorted="<col>:<dir>".
JS = """
(function () {
  function value(row, col, num) {
    var cell = row.cells[col];
    var raw = cell ? (cell.hasAttribute('data-sort') ? cell.getAttribute('data-sort') : cell.textContent) : '';
    if (!num) return raw.toLowerCase();
    return raw === '' ? null : parseFloat(raw);
  }
  function sortTable(table, col, dir) {
    var body = table.tBodies[0], head = table.tHead.rows[0];
    var num = head.cells[col].getAttribute('data-type') === 'num';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, col, num), y = value(b, col, num);
      if (x === y) return 0;
      if (x === null || (num && isNaN(x))) return 1;
      if (y === null || (num && isNaN(y))) return -1;
      return (x < y ? -1 : 1) * (dir === 'asc' ? 1 : -1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(head.cells, function (th, i) {
      if (i === col) th.setAttribute('aria-sort', dir === 'asc' ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    });
    table.setAttribute('data-sorted', col + ':' + dir);
  }
  window.conseqSortTable = sortTable;
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener('click', function () {
        var current = table.getAttribute('data-sorted') || '';
        sortTable(table, col, current === col + ':asc' ? 'desc' : 'asc');
      });
    });
    var initial = table.getAttribute('data-default-sort');
    if (initial) sortTable(table, parseInt(initial.split(':')[0], 10), initial.split(':')[1]);
  });
})();
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: float | int | None, digits: int = 3) -> str:
    """A number for a table cell; "–" for a missing one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value and abs(value) < 10**-digits:  # e.g. QUALS near 0: significant digits
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def page(title: str, body: str, *, subtitle: str = "") -> str:
    """A whole HTML document: inline style, the body, then the table-sorting script."""
    sub = f'<p class="note">{esc(subtitle)}</p>' if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n<h1>{esc(title)}</h1>{sub}\n"
        f"{body}\n<script>{JS}</script>\n</body></html>\n"
    )


def section(title: str, body: str, *, anchor: str = "") -> str:
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return f"<section{ident}><h2>{esc(title)}</h2>\n{body}\n</section>\n"


@dataclass
class Cell:
    """A table cell: its HTML (already escaped) and the value it sorts by (None: sorts last)."""

    html: str
    sort: float | str | None = None
    numeric: bool = False


def num(value: float | int | None, digits: int = 3) -> Cell:
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return Cell(esc(fmt(value, digits)), None if missing else value, numeric=True)


def text(value: object, css: str = "") -> Cell:
    return Cell(f'<span class="{css}">{esc(value)}</span>' if css else esc(value), str(value))


def table(
    headers: Sequence[tuple[str, bool]],
    rows: Iterable[Sequence[Cell]],
    *,
    default_sort: tuple[int, str] | None = None,
    ident: str = "",
    sortable: bool = True,
) -> str:
    """A table; ``headers`` are (label, numeric?) and a numeric column sorts by number. ``default_sort`` = (column,
    "asc"|"desc") sorts it when the page loads."""
    attrs = f' id="{esc(ident)}"' if ident else ""
    if sortable:
        attrs += ' class="sortable"'
    if default_sort:
        attrs += f' data-default-sort="{default_sort[0]}:{default_sort[1]}"'
    head = "".join(f"<th{' data-type=num' if numeric else ''}>{esc(label)}</th>" for label, numeric in headers)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            sort = "" if cell.sort is None else f' data-sort="{esc(cell.sort)}"'
            cls = ' class="num"' if cell.numeric else ""
            cells.append(f"<td{cls}{sort}>{cell.html}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    rows_html = "\n".join(body)
    return (
        f'<div class="scroll"><table{attrs}><thead><tr>{head}</tr></thead><tbody>\n{rows_html}\n</tbody></table></div>'
    )


def markdown_tables(markdown: str) -> str:
    """The pipe tables of a markdown text (evaluate's table.md) as sortable HTML tables; other lines as paragraphs."""
    blocks, out = re.split(r"\n\s*\n", markdown.strip()), []
    for block in blocks:
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if len(lines) >= 2 and all(line.startswith("|") for line in lines) and set(lines[1]) <= set("|-: "):
            headers, *rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[:1] + lines[2:]]
            rows = [(r + [""] * len(headers))[: len(headers)] for r in rows]
            # a column is numeric when every cell is a number or "–" (missing); the first one names the row
            numeric = [
                i > 0 and all(_number(r[i]) is not None or r[i] in ("–", "") for r in rows) for i in range(len(headers))
            ]
            cells = [
                [Cell(esc(c), _number(c), numeric=True) if numeric[i] else text(c) for i, c in enumerate(r)]
                for r in rows
            ]
            out.append(table(list(zip(headers, numeric)), cells))
        elif lines:
            out.append(f"<p>{esc(' '.join(lines))}</p>")
    return "\n".join(out)


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------- texts and tokens


def logprob_colour(logprob: float) -> str:
    """Green for likely tokens (log p near 0) through yellow to red at LOGPROB_FLOOR and below."""
    share = max(0.0, min(1.0, 1.0 - logprob / LOGPROB_FLOOR)) if math.isfinite(logprob) else 0.0
    return f"hsl({round(120 * share)}, 75%, {round(78 + 8 * share)}%)"


def tokens_html(tokens: Sequence[str], logprobs: Sequence[float], other: Sequence[float] | None = None) -> str:
    """Each token on a background coloured by its log-probability; the tooltip gives the value (and ``other``:
    the same token's log-probability on the other side, for comparison)."""
    spans = []
    for i, (token, lp) in enumerate(zip(tokens, logprobs, strict=True)):
        tip = f"log p = {lp:.3f}" + (f" (other side {other[i]:.3f})" if other is not None else "")
        spans.append(
            f'<span class="tok" style="background:{logprob_colour(lp)}" title="{esc(tip)}">{esc(token)}</span>'
        )
    return '<div class="toks">' + "".join(spans) + "</div>"


def logprob_legend() -> str:
    steps = [0.0, -1.0, -2.0, -4.0, -6.0, LOGPROB_FLOOR]
    swatches = "".join(f'<span class="tok" style="background:{logprob_colour(v)}">{v:g}</span>' for v in steps)
    return f'<p class="note">Token colour = log p of the token (teacher forcing): {swatches} and below.</p>'


def find_spans(text: str, needle: str) -> list[tuple[int, int]]:
    """Every case-insensitive occurrence of ``needle`` (a raw substring, like QUALS's answer filter)."""
    if not needle:
        return []
    return [(m.start(), m.end()) for m in re.finditer(re.escape(needle), text, re.IGNORECASE)]


def highlight(text: str, marks: Sequence[tuple[int, int, str, str]]) -> str:
    """``text`` escaped, with (start, end, css class, tooltip) spans wrapped in <mark>; a span overlapping an
    earlier one (by start) is dropped."""
    out, pos = [], 0
    for start, end, css, tip in sorted(marks):
        if start < pos or end <= start:
            continue
        out.append(esc(text[pos:start]))
        out.append(f'<mark class="{esc(css)}" title="{esc(tip)}">{esc(text[start:end])}</mark>')
        pos = end
    out.append(esc(text[pos:]))
    return "".join(out)


def image_data_uri(path: Path, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()


# ------------------------------------------------------------------------------------------------------ charts

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def svg_histogram(
    series: dict[str, Sequence[float]],
    *,
    lines: dict[str, tuple[float, str]] | None = None,
    bins: int = 40,
    xlabel: str = "",
    width: int = 760,
    height: int = 320,
) -> str:
    """Step histograms of each series over shared bins (so they compare), with vertical dashed lines at
    ``lines`` ({label: (x, colour)}), axes with ticks, and a legend. Empty series are left out."""
    series = {k: [v for v in vs if v is not None and math.isfinite(v)] for k, vs in series.items()}
    series = {k: vs for k, vs in series.items() if vs}
    marks = {k: v for k, v in (lines or {}).items() if v[0] is not None}
    values = [v for vs in series.values() for v in vs] + [x for x, _ in marks.values()]
    if not values:
        return '<p class="note">No values to plot.</p>'
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1.0
    left, right, top, bottom = 50, 190, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    counts = {}
    for name, vs in series.items():
        c = [0] * bins
        for v in vs:
            c[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
        counts[name] = c
    peak = max(max(c) for c in counts.values())

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    def y(count: float) -> float:
        return top + plot_h - count / peak * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    for i in range(6):  # ticks
        v = lo + (hi - lo) * i / 5
        parts.append(
            f'<line x1="{x(v):.1f}" y1="{top + plot_h}" x2="{x(v):.1f}" y2="{top + plot_h + 4}" stroke="#666"/>'
        )
        parts.append(f'<text x="{x(v):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{v:.3g}</text>')
        c = peak * i / 5
        parts.append(f'<text x="{left - 6}" y="{y(c) + 4:.1f}" text-anchor="end">{c:.3g}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text>')
    legend_y = top + 4
    for i, (name, c) in enumerate(counts.items()):
        colour = PALETTE[i % len(PALETTE)]
        points = [f"{x(lo):.1f},{y(0):.1f}"]
        for b, count in enumerate(c):
            x0, x1 = x(lo + (hi - lo) * b / bins), x(lo + (hi - lo) * (b + 1) / bins)
            points += [f"{x0:.1f},{y(count):.1f}", f"{x1:.1f},{y(count):.1f}"]
        points.append(f"{x(hi):.1f},{y(0):.1f}")
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{" ".join(points)}"/>')
        label = f"{name} ({len(series[name])})"
        parts.append(_legend_line(width - right, legend_y, colour, ""))
        parts.append(f'<text x="{width - right + 32}" y="{legend_y + 12}">{esc(label)}</text>')
        legend_y += 18
    for label, (value, colour) in marks.items():
        dash = ' stroke-dasharray="5,4"'
        parts.append(
            f'<line x1="{x(value):.1f}" y1="{top}" x2="{x(value):.1f}" y2="{top + plot_h}" stroke="{colour}"{dash}/>'
        )
        parts.append(_legend_line(width - right, legend_y, colour, dash))
        parts.append(f'<text x="{width - right + 32}" y="{legend_y + 12}">{esc(f"{label} = {value:.3g}")}</text>')
        legend_y += 18
    parts.append("</svg>")
    return "".join(parts)


def _legend_line(x: float, y: float, colour: str, dash: str) -> str:
    return f'<line x1="{x + 10}" y1="{y + 8}" x2="{x + 28}" y2="{y + 8}" stroke="{colour}"{dash} stroke-width="2"/>'
