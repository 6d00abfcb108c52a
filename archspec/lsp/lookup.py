"""Positions -> what is there: the syntax under the cursor, the expanded nodes it became, where a
name is defined. Positions are (line, column) counting from 1 in characters, as Spans count.

An expanded node (`ir.GNode`) keeps the span of the call or container it was made from, so the
nodes of a network are found by that span: one node for a layer of the network's own body, one
per call for a layer inside a block (every `bottleneck` of a ResNet-50 shares the span of the
`bottleneck(...)` written once in a loop).
"""

from __future__ import annotations

import os
import re
from fractions import Fraction

from .. import ir
from ..errors import Span
from ..layers import LAYERS, REQUIRED
from ..parse import display_path
from ..render import render_expr
from ..sizes import Pretty, Size
from ..summary import rf_text, show_shape
from ..values import show
from .analysis import Analysis, walk_syntax

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ROWS = 24  # the most expanded nodes a hover lists


def contains(span: Span, line: int, col: int) -> bool:
    """Whether (line, col) is in the span, its end included (a cursor just after a word is on it)."""
    if not span.line or line < span.line or line > span.end_line:
        return False
    return not (line == span.line and col < span.column or line == span.end_line and col > span.end_column)


def syntax_at(source: ir.SourceFile, line: int, col: int) -> list[ir.IR]:
    """The syntax nodes containing the position, outermost first (an item, then down to a name)."""
    path: list[ir.IR] = []
    level: list = [*source.imports, *source.definitions, *source.functions]
    while level:
        inner = next((x for x in level if contains(x.span, line, col)), None)
        if inner is None:
            break
        path.append(inner)
        level = []
        for v in inner.__dict__.values():
            items = v if isinstance(v, tuple) else (v,)
            level += [x for x in items if isinstance(x, ir.IR)]
        level = _flatten_unplaced(level)
    return path


def _flatten_unplaced(nodes: list[ir.IR]) -> list[ir.IR]:
    """Nodes without a span of their own stand for their children (a parameter list, say)."""
    out = []
    for x in nodes:
        if x.span.line:
            out.append(x)
        else:
            out += [v for v in x.__dict__.values() if isinstance(v, ir.IR)]
    return out


def node_index(net: ir.Network) -> dict[Span, list[ir.GNode]]:
    """The expanded nodes of a network by the span they were made from, in execution order."""
    index: dict[Span, list[ir.GNode]] = {}
    for i in net.graph.inputs:
        index.setdefault(net.graph.nodes[i].span, []).append(net.graph.nodes[i])
    for n in ir.walk(net.graph):
        if n.kind != "input" and n.span.line:
            index.setdefault(n.span, []).append(n)
    return index


def made_from(path: list[ir.IR]) -> Span | None:
    """The span of the call, container or input under the cursor (what expanded nodes keep)."""
    for x in reversed(path):
        if isinstance(x, ir.NodeStmt):
            return x.node.span
        if isinstance(x, (ir.Call, ir.Container, ir.Input)):
            return x.span
        if isinstance(x, ir.Definition):
            return None
    return None


def shape(net: ir.Network, n: ir.GNode, size=str) -> str:
    """A node's output shape with the batch, as the summary writes it (symbolic sizes by `size`)."""
    return show_shape([net.batch, *n.out_shape] if n.batched else list(n.out_shape), size)


def figure(x, size=str) -> str:
    """A count (parameters, MACs) with thousands separators, or a symbolic size's text."""
    return f"{x:,}" if isinstance(x, int) else size(x)


def field_text(rf: tuple, size=str) -> str:
    number = [size(x) if isinstance(x, Size) else int(x) if Fraction(x).denominator == 1 else float(x) for x in rf]
    return rf_text({"size": number[:2], "stride": number[2:]})


def nodes_table(net: ir.Network, nodes: list[ir.GNode]) -> str:
    """The expanded nodes as a markdown table: module, output shape, parameters, MACs, receptive field."""
    size = Pretty(net)
    rows = ["| module | output | params | MACs | RF |", "|---|---|---:|---:|---:|"]
    for n in nodes[:ROWS]:
        name = f"`{n.path}`" if n.path else f"({n.op})" if n.kind != "input" else f"input `{n.op}`"
        rows.append(f"| {name} | {shape(net, n, size)} | {figure(n.params, size)} | "
                    f"{figure(n.macs * net.batch, size)} | {field_text(n.rf, size)} |")
    if len(nodes) > ROWS:
        rows.append(f"| ... {len(nodes) - ROWS:,} more | | | | |")
    return "\n".join(rows)


def params_text(params: tuple[ir.Param, ...]) -> str:
    parts = []
    for p in params:
        text = p.name + (f": {p.type}" if p.type else "")
        parts.append(text + (f" = {render_expr(p.default)}" if p.default is not None else ""))
    return ", ".join(parts)


def layer_doc(name: str) -> str:
    layer = LAYERS[name]
    lines = [f"```arch\n{layer.signature()}\n```", layer.doc]
    for a in layer.args:
        default = " (required)" if a.default is REQUIRED else f" = {show(a.default)}"
        choices = f"; one of {', '.join(map(show, a.choices))}" if a.choices else ""
        lines.append(f"- `{a.name}`{default}{': ' + a.doc if a.doc else ''}{choices}")
    return "\n\n".join(lines[:2]) + ("\n\n" + "\n".join(lines[2:]) if len(lines) > 2 else "")


def definition_doc(d: ir.Definition | ir.FuncDef) -> str:
    kind = "def" if isinstance(d, ir.FuncDef) else d.kind
    head = f"{kind} {d.name}({params_text(d.params)})"
    if isinstance(d, ir.Definition) and d.alias is not None:
        head += f" = {d.alias.name}(...)"
    return f"```arch\n{head}\n```"


def hover(a: Analysis, line: int, col: int) -> tuple[str, Span] | None:
    """Markdown for the position, and the span it is about; None where there is nothing to say."""
    path = syntax_at(a.source, line, col)
    if not path:
        return None
    net = a.network()
    parts: list[str] = []
    about = path[-1].span
    call = next((x for x in reversed(path) if isinstance(x, ir.Call)), None)
    top = path[0]
    if call is not None and _on_name(call, line, col):
        about = call.span
        parts.append(_call_doc(a, call.name))
    elif isinstance(top, (ir.Definition, ir.FuncDef)) and len(path) <= 2 and _on_name(top, line, col, a):
        parts.append(definition_doc(top))
        if isinstance(top, ir.Definition) and top.kind == "network" and net is not None and top.name == net.name:
            parts.append(_totals(net))
        elif isinstance(top, ir.Definition) and top.kind == "block" and net is not None:
            calls = [n for n in ir.walk(net.graph) if n.kind == "block" and n.op == top.name]
            if calls:
                parts.append(f"called {len(calls):,} time{'s' * (len(calls) != 1)} in `{net.name}`:\n\n"
                             + nodes_table(net, calls))
        return "\n\n---\n\n".join(parts), top.span
    where = made_from(path)
    if net is not None and where is not None:
        nodes = node_index_of(a).get(where, [])
        if nodes:
            about = where
            parts.append(f"in `{net.name}`:\n\n" + nodes_table(net, nodes))
    elif where is not None and a.focus is not None:
        parts.append(f"no shapes: `{a.focus}` does not check (its diagnostics say why)")
    return ("\n\n---\n\n".join(parts), about) if parts else None


def node_index_of(a: Analysis) -> dict[Span, list[ir.GNode]]:
    """The focus network's node index, built once per analysis."""
    net = a.network()
    if net is None:
        return {}
    if a.index is None or a.index[0] is not net:
        a.index = (net, node_index(net))
    return a.index[1]


def _on_name(x: ir.IR, line: int, col: int, a: Analysis | None = None) -> bool:
    """Whether the position is on the name of a call, or of a definition's header."""
    if isinstance(x, ir.Call):
        return line == x.span.line and x.span.column <= col <= x.span.column + len(x.name)
    name = name_span(x, a.text if a else "")
    return name is not None and contains(name, line, col)


def name_span(d: ir.Definition | ir.FuncDef, text: str) -> Span | None:
    """Where a definition's name is written in its header (`block NAME(`)."""
    lines = text.splitlines()
    if not 0 < d.span.line <= len(lines):
        return None
    m = re.compile(rf"\b{re.escape(d.name)}\b").search(lines[d.span.line - 1], d.span.column - 1)
    if m is None:
        return None
    return Span(d.span.file, d.span.line, m.start() + 1, d.span.line, m.end() + 1)


def _call_doc(a: Analysis, name: str) -> str:
    if name in LAYERS:
        return layer_doc(name)
    d = (a.program.definitions if a.program else {d.name: d for d in a.source.definitions}).get(name)
    return definition_doc(d) if d is not None else f"`{name}`: no such layer or block"


def _totals(net: ir.Network) -> str:
    size = Pretty(net)
    return (f"input {show_shape([net.batch, *net.input_shape], size)} -> output "
            f"{show_shape([net.batch, *net.out_shape], size)}\n\nparams {figure(net.params, size)} · "
            f"MACs {figure(net.macs * net.batch, size)}")


def inlay_hints(a: Analysis, first: int, last: int) -> list[tuple[int, str]]:
    """(line, text) for each line from `first` to `last` where a node of the focus network ends:
    the output shape of the node that ends last on it (each shape when a loop makes several)."""
    net = a.network()
    if net is None:
        return []
    ends: dict[int, Span] = {}
    for span in node_index_of(a):
        if span.file == a.path and first <= span.end_line <= last:
            best = ends.get(span.end_line)
            if best is None or (span.end_column, -span.column) > (best.end_column, -best.column):
                ends[span.end_line] = span
    out = []
    size = Pretty(net)
    for line in sorted(ends):
        nodes = node_index_of(a)[ends[line]]
        shapes = list(dict.fromkeys(shape(net, n, size) for n in nodes))
        text = shapes[0] if len(shapes) == 1 else f"{shapes[0]} … {shapes[-1]}"
        if len(nodes) > 1:
            text += f" ×{len(nodes)}"
        out.append((line, "→ " + text))
    return out


def definition(a: Analysis, line: int, col: int) -> list[Span]:
    """Where the thing under the cursor is defined: a block, network or function, an import's file,
    a `@name`'s node, a parameter, `let` or loop variable."""
    path = syntax_at(a.source, line, col)
    if path and isinstance(path[0], ir.Import):
        target = display_path(path[0].path, a.path if not a.path.startswith("<") else None)
        return [Span(os.path.abspath(target), 1, 1, 1, 1)] if os.path.isfile(target) else []
    word = word_at(a.text, line, col)
    if word is None:
        return []
    name, start = word
    before = a.text.splitlines()[line - 1][: start - 1].rstrip()
    scope = path[0] if path and isinstance(path[0], (ir.Definition, ir.FuncDef)) else None
    if before.endswith("@"):
        return _labels(scope, name) if scope is not None else []
    defs = a.program.definitions if a.program else {d.name: d for d in a.source.definitions}
    funcs = a.program.functions if a.program else {f.name: f for f in a.source.functions}
    found = defs.get(name) or funcs.get(name)
    if found is not None:
        text = a.text if found.span.file == a.path else read_file(found.span.file)
        return [name_span(found, text) or found.span]
    return _locals(scope, name, line) if scope is not None else []


def word_at(text: str, line: int, col: int) -> tuple[str, int] | None:
    """The name at the position and the column it starts at."""
    lines = text.splitlines()
    if not 0 < line <= len(lines):
        return None
    for m in WORD.finditer(lines[line - 1]):
        if m.start() + 1 <= col <= m.end() + 1:
            return m.group(), m.start() + 1
    return None


def read_file(path: str) -> str:
    """A file's text, or "" when it cannot be read (a location in it then starts at its first line)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return ""


def _labels(scope: ir.IR, name: str) -> list[Span]:
    out = []
    for x in walk_syntax(scope):
        if isinstance(x, ir.NodeStmt) and x.label is not None and x.label.name == name:
            out.append(x.label.span)
        elif isinstance(x, ir.Input) and (x.name or "input") == name:
            out.append(x.span)
    return sorted(out)[:1]


def _locals(scope: ir.Definition | ir.FuncDef, name: str, line: int) -> list[Span]:
    """A parameter, or the last `let` or loop variable of that name before the line."""
    found = [p.span for p in scope.params if p.name == name]
    for x in walk_syntax(scope):
        if isinstance(x, ir.Let) and x.name == name and x.span.line <= line:
            found.append(x.span)
        elif isinstance(x, ir.NameTarget) and x.id == name and x.span.line <= line:
            found.append(x.span)
    return [max(found)] if found else []
