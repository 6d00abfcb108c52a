"""One network's report as one self-contained HTML page: its summary table (sortable), its diagram,
bar charts of parameters, MACs and activation memory per layer, the receptive field's growth, the
totals and the asserts with their results.

Everything is inline (CSS, JS, SVG) and the page's Content-Security-Policy forbids fetching
anything, so it opens anywhere, offline, and shows the same thing. Every piece of user text (names,
calls, file names, assert messages) is escaped for HTML here, through `text`; the diagram comes
from Graphviz, which escapes its own output. The page is a pure function of its inputs: the same
network gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from importlib.resources import files
from typing import Any

from .. import ir
from ..escape import printable
from ..summary import as_dict, rf_text, rows, show_shape
from .charts import bar_chart, line_chart, nice_bytes, numeric, si
from .dot import nesting

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


@dataclass(frozen=True)
class Check:
    """An assert of the spec and its result."""

    test: str  # the condition, as the language writes it
    message: str | None
    where: str  # file:line
    holds: bool
    values: str  # the figures it read: "params = 61,706"


@dataclass(frozen=True)
class Diagram:
    svg: str | None  # an inline <svg> element, or None where none was drawn
    note: str  # how it was drawn, or why there is none


@dataclass(frozen=True)
class Row:
    """One row of the table: a layer, or an add/mul/concat where branches meet."""

    index: int
    name: str
    row: dict[str, Any]  # summary.rows' row

    @property
    def title(self) -> str:
        """The name for a chart: a numbered layer's path with its op (`7 linear`), a named one's path."""
        last = self.name.rsplit(".", 1)[-1]
        return f"{self.name} {self.row['op']}" if last.isdigit() else self.name


def text(s: Any) -> str:
    """User text for HTML content or a quoted attribute: escaped, unprintable characters shown."""
    return escape(printable(str(s)), quote=True)


def table_rows(net: ir.Network) -> list[Row]:
    """Every layer and every add/mul/concat at full depth, in execution order."""
    out, parents = [], {0: ""}
    for r in rows(net, nesting(net)):
        parents[r["depth"]] = r["path"]
        if r["kind"] not in ("layer", "combine"):
            continue
        where = parents.get(r["depth"] - 1, "")
        name = r["path"] if r["kind"] == "layer" else f"{where} ({r['op']})".lstrip()
        out.append(Row(len(out), name, r))
    return out


def render_page(net: ir.Network, checks: list[Check], diagram: Diagram, version: str) -> str:
    summary = as_dict(net, 1)
    table = table_rows(net)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{text(net.name)}: archspec report</title>",
        f"<style>\n{_asset('report.css')}</style>",
        "</head>",
        "<body>",
        *_header(net, summary),
        *_totals(summary, table),
        *_warnings(net),
        *_asserts(checks),
        *_diagram(diagram),
        *_charts(net, table),
        *_table(table),
        f'<footer>Made by archspec {text(version)} from <code>{text(net.file)}</code>. Figures per sample '
        "(batch 1); activation memory in float32.</footer>",
        '<div id="tip" role="tooltip"></div>',
        f"<script>\n{_asset('report.js')}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _asset(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def _header(net: ir.Network, s: dict[str, Any]) -> list[str]:
    inputs = s.get("inputs") or {"input": s["input"]}
    outputs = s.get("outputs") or {"output": s["output_shape"]}
    shapes = ", ".join(f"{text(k)} <code>{text(show_shape(v))}</code>" for k, v in inputs.items())
    shapes += " &rarr; " + ", ".join(f"{text(k)} <code>{text(show_shape(v))}</code>" for k, v in outputs.items())
    training = [name for name, _ in net.graph.training]
    if training:
        shapes += " (in training also " + ", ".join(text(t) for t in training) + ")"
    over = ", ".join(f"<code>{text(k)}={text(v)}</code>" for k, v in net.overrides.items())
    return [
        "<header>",
        f"<h1>{text(net.name)}</h1>",
        f'<p class="meta"><code>{text(net.file)}</code>: {shapes}</p>',
        *([f'<p class="meta">overrides: {over}</p>'] if over else []),
        '<nav><a href="#asserts">asserts</a><a href="#diagram">diagram</a><a href="#charts">charts</a>'
        '<a href="#layers">layers</a></nav>',
        "</header>",
    ]


def _totals(s: dict[str, Any], table: list[Row]) -> list[str]:
    t = s["totals"]
    act = t["activation_bytes"]
    layers = sum(r.row["kind"] == "layer" for r in table)
    joins = len(table) - layers
    cards = [("parameters", _comma(t["params"]), _si(t["params"])),
             ("MACs", _comma(t["macs"]), _si(t["macs"])),
             ("activation memory", _mib(act), f"{_comma(act)} bytes" if isinstance(act, int) else ""),
             ("layers", str(layers), f"and {joins} add, mul or concat" if joins else "")]
    out = ['<section class="totals" id="totals">']
    for k, v, sub in cards:
        out.append(f'<div class="card"><div class="k">{text(k)}</div><div class="v">{text(v)}</div>'
                   f'<div class="k">{text(sub)}</div></div>')
    out.append("</section>")
    return out


def _warnings(net: ir.Network) -> list[str]:
    if not net.warnings:
        return []
    items = [f"<li><code>{text(w.code)}</code> {text(w.span)}: {text(w.message)}</li>" for w in net.warnings]
    return ["<h2>Warnings</h2>", '<ul class="warnings">', *items, "</ul>"]


def _asserts(checks: list[Check]) -> list[str]:
    out = ['<h2 id="asserts">Asserts</h2>']
    if not checks:
        return out + ["<p>The spec states no asserts.</p>"]
    failed = sum(not c.holds for c in checks)
    out.append(f"<p>{len(checks) - failed} of {len(checks)} hold.</p>")
    out.append('<table class="asserts"><thead><tr><th>result</th><th>assert</th><th>figures</th><th>where</th>'
               "</tr></thead><tbody>")
    for c in checks:
        result = '<td class="ok">holds</td>' if c.holds else '<td class="fail">fails</td>'
        message = f"<br>{text(c.message)}" if c.message else ""
        out.append(f"<tr>{result}<td><code>{text(c.test)}</code>{message}</td><td>{text(c.values)}</td>"
                   f"<td><code>{text(c.where)}</code></td></tr>")
    out.append("</tbody></table>")
    return out


def _diagram(d: Diagram) -> list[str]:
    out = ['<h2 id="diagram">Diagram</h2>', f"<p>{text(d.note)}</p>"]
    if d.svg is not None:
        out += ['<p><button id="fit" type="button">actual size</button></p>', '<div class="diagram fit">', d.svg,
                "</div>"]
    return out


def _charts(net: ir.Network, table: list[Row]) -> list[str]:
    names = [r.title for r in table]
    params = [r.row["params"] for r in table]
    macs = [r.row["macs"] for r in table]
    act = [r.row["activation_bytes"] for r in table]
    rf_h = [r.row["receptive_field"]["size"][0] for r in table]
    rf_w = [r.row["receptive_field"]["size"][1] for r in table]
    series = [("height", rf_h)] + ([("width", rf_w)] if rf_w != rf_h else [])
    level = None
    if len(net.input_shape) >= 2:
        h = net.input_shape[-2]
        level = (f"input height {h}", h)
    totals = as_dict(net, 1)["totals"]
    out = ['<h2 id="charts">Per layer</h2>']
    out += _figure("params", "Parameters", names, params, totals["params"], _comma)
    out += _figure("macs", "Multiply-accumulates (MACs)", names, macs, totals["macs"], _comma)
    out += _figure("activations", "Activation memory (float32)", names, act, totals["activation_bytes"], _bytes,
                   binary=True)
    final = rf_text(table[-1].row["receptive_field"]) if table else ""
    caption = (f"Receptive field: the size of the input region each output position sees, after each layer "
               f"(at the end {final}; size/stride).")
    out += ['<figure id="chart-rf">', f"<figcaption>{text(caption)}</figcaption>",
            line_chart(names, series, "receptive field size per layer", level), "</figure>"]
    return out


def _figure(key: str, title: str, names: list[str], values: list[Any], total: Any, show,
            binary: bool = False) -> list[str]:
    """A bar chart with its caption: the network's total, and the largest layer's share of it."""
    nums = [numeric(v) for v in values]
    caption = f"{title} per layer: {show(total)} in all"
    whole = numeric(total)
    if whole and any(nums):
        best = max(range(len(nums)), key=lambda k: (nums[k] or 0, -k))  # the first of equals
        caption += f"; the largest, {names[best]}, has {show(values[best])} ({100 * (nums[best] or 0) / whole:.1f}%)"
    elif any(nums):
        best = max(range(len(nums)), key=lambda k: (nums[k] or 0, -k))
        caption += f"; the largest with a figure, {names[best]}, has {show(values[best])}"
    symbolic = sum(v is None for v in nums)
    if symbolic:
        caption += f"; {symbolic} symbolic figure{'s' * (symbolic != 1)} not drawn"
    if symbolic and not any(nums):  # nothing to draw: every figure but zeros depends on the input's size
        return [f'<figure id="chart-{key}">', f"<figcaption>{text(caption)} (give --input C,H,W to draw them)."
                "</figcaption>", "</figure>"]
    return [f'<figure id="chart-{key}">', f"<figcaption>{text(caption)}.</figcaption>",
            bar_chart(names, values, f"{title} per layer", show, *((show, nice_bytes) if binary else ())),
            "</figure>"]


COLUMNS = (("#", "number", "num index"), ("layer", "text", "path"), ("call", "text", "call"),
           ("output shape", "number", "shape"), ("params", "number", "num params"), ("MACs", "number", "num macs"),
           ("activations", "number", "num activations"), ("RF size/stride", "number", "num rf"))


def _table(table: list[Row]) -> list[str]:
    head = "".join(f'<th data-type="{kind}" class="{cls.split()[0]}" data-key="{cls.split()[-1]}">{text(name)}</th>'
                   for name, kind, cls in COLUMNS)
    out = ['<h2 id="layers">Layers</h2>',
           f"<p>{len(table)} rows: every layer, and every add, mul and concat where branches meet, in execution "
           "order. Click a header to sort by it; click again to reverse.</p>",
           f'<table class="sortable layers"><thead><tr>{head}</tr></thead><tbody>']
    for r in table:
        out.append(_row(r))
    out.append("</tbody></table>")
    return out


def _row(r: Row) -> str:
    d = r.row
    shape = d["output_shape"]
    size = d["receptive_field"]["size"]
    classes = " ".join(c for c in (d["kind"] if d["kind"] == "combine" else "",
                                   "training" if d.get("training_only") else "") if c)
    cls = f' class="{classes}"' if classes else ""
    cells = [
        _td(str(r.index + 1), "num index", r.index + 1),
        _td(r.name, "path"),
        _td(d["call"] + (" (training)" if d.get("training_only") else ""), "call"),
        _td(show_shape(shape), "shape", _product(shape)),
        _td(_comma(d["params"]), "num params", d["params"]),
        _td(_comma(d["macs"]), "num macs", d["macs"]),
        _td(_bytes(d["activation_bytes"]), "num activations", d["activation_bytes"]),
        _td(rf_text(d["receptive_field"]), "num rf", size[0]),
    ]
    return f'<tr id="row-{r.index}" data-i="{r.index}"{cls}>{"".join(cells)}</tr>'


def _td(content: str, cls: str, value: Any = None) -> str:
    v = f' data-v="{text(value)}"' if value is not None and numeric(value) is not None else ""
    return f'<td class="{cls}"{v}>{text(content)}</td>'


def _product(shape: list[Any]) -> int | None:
    n = 1
    for d in shape:
        if numeric(d) is None:
            return None
        n *= d
    return n


def _comma(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int) else str(x)


def _si(x: Any) -> str:
    return si(x) if numeric(x) is not None else ""


def _mib(n: Any) -> str:
    return f"{n / 2**20:.2f} MiB" if numeric(n) is not None else f"{n} bytes"


def _bytes(n: Any) -> str:
    if numeric(n) is None:
        return f"{n} B"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:g} B"
