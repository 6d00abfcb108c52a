"""A network's dataflow graph as Graphviz DOT, in the spirit of the book's figures.

A layer is a box; a block or a named container is a box drawn around its body (a cluster), or one
box where it lies deeper than `depth`; `add` and `mul` are a circled + and x where their branches
meet, `concat` a small box, and graph wiring (`@name`s, several outputs) is plain edges, so
branches stand side by side. Every edge is labelled with the shape of the tensor it carries, per
sample as a spec writes shapes; each node's tooltip (hover, in SVG) gives its path, output shape,
parameters, MACs and receptive field.

The walk follows the IR: nodes in execution order, their `inputs` are the edges; a body's input
node stands for whatever feeds the container, and the container's value is its body's output.
Node ids are `n0`, `n1`, ... in that order and all user text goes through `escape.dot_string`, so
the same network always gives the same text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .. import ir
from ..escape import dot_string
from ..layers import LAYERS
from ..summary import describe, rf_text, show_shape

# Fill colours by the registry's layer categories (pastels, as in the book's figures).
FILL = {
    "convolution": "#cfe2f3",
    "linear": "#d9d2e9",
    "normalisation": "#fff2cc",
    "activation": "#d9ead3",
    "pooling": "#f4cccc",
    "regularisation": "#eeeeee",
    "resampling": "#fce5cd",
    "shape": "#ffffff",
    "tensor": "#ead1dc",
}
CLUSTER_FILL = ("#f7f7f7", "#ececec")  # alternating by nesting level, so nested boxes stand apart
BLOCK_FILL = "#e3e3e3"  # a block collapsed into one box
COMBINE = {"add": "+", "mul": "\u00d7"}

HEADER = (
    '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#555555", fontname="Helvetica", '
    'fontsize=10, height=0.3, margin="0.12,0.04"];',
    '  edge [fontname="Helvetica", fontsize=8, fontcolor="#555555", color="#777777", arrowsize=0.6];',
)


@dataclass
class Drawing:
    """What `build` drew: the DOT text and how many nodes and clusters it holds."""

    text: str
    nodes: int
    clusters: int


@dataclass
class _Out:
    depth: int | None
    nodes: list[str] = field(default_factory=list)  # node and cluster statements, indented
    edges: list[str] = field(default_factory=list)  # edges, written after every node is placed
    count: int = 0
    clusters: int = 0

    def node(self, indent: str, attrs: dict[str, str]) -> str:
        nid = f"n{self.count}"
        self.count += 1
        self.nodes.append(f"{indent}{nid} [{_attrs(attrs)}];")
        return nid


def to_dot(net: ir.Network, depth: int | None = None) -> str:
    """The DOT text of a network, blocks expanded down to `depth` (1: the network's own nodes;
    None: every level)."""
    return build(net, depth).text


def build(net: ir.Network, depth: int | None = None) -> Drawing:
    out = _Out(depth)
    ends = _body(net.graph, 1, {}, out, "  ")
    g = net.graph
    outputs = [(name, i, False) for name, i in g.outputs] + [(name, i, True) for name, i in g.training]
    for name, i, training in outputs:
        label = "output" + (f" {name}" if name else "") + (" (training)" if training else "")
        style = "filled,dashed" if training else "filled"
        nid = out.node("  ", {"label": dot_string(label), "shape": "ellipse", "style": f'"{style}"',
                              "fillcolor": '"#ffffff"', "tooltip": dot_string(label)})
        out.edges.append(_edge(ends[i], nid, g.nodes[i], training))
    caption = (f"{net.name} ({net.file})\n{_count(net.params)} params, {_count(net.macs)} MACs; "
               "shapes per sample (the batch left out)")
    lines = [f"digraph {dot_string(net.name)} {{",
             f"  graph [rankdir=TB, newrank=true, nodesep=0.3, ranksep=0.3, fontname=\"Helvetica\", fontsize=11, "
             f"labelloc=t, label={dot_string(caption)}, tooltip={dot_string(net.name, tooltip=True)}];",
             *HEADER, *out.nodes, *out.edges, "}"]
    return Drawing("\n".join(lines) + "\n", out.count, out.clusters)


def _body(g: ir.Graph, level: int, given: dict[int, str], out: _Out, indent: str) -> dict[int, str]:
    """Draw one body; the DOT id of the node that gives each IR node's value (`given` maps the
    body's input nodes to what feeds them from outside)."""
    ends = dict(given)
    for i, node in enumerate(g.nodes):
        if node.kind == "input":
            if i not in ends:  # a network's own input
                name = "input" if node.op == "input" else f"input {node.op}"
                ends[i] = out.node(indent, {"label": dot_string(name), "shape": "ellipse",
                                            "tooltip": dot_string(f"{name}\n{show_shape(node.out_shape)}", True)})
            continue
        if node.body is not None and (out.depth is None or level < out.depth):
            ends[i] = _cluster(node, level, [ends[s] for s in node.inputs], out, indent)
            continue
        nid = out.node(indent, _look(node))
        for src in node.inputs:
            out.edges.append(_edge(ends[src], nid, g.nodes[src], node.training_only or g.nodes[src].training_only))
        ends[i] = nid
    return ends


def _cluster(node: ir.GNode, level: int, feeds: list[str], out: _Out, indent: str) -> str:
    body = node.body
    assert body is not None
    cid = out.clusters
    out.clusters += 1
    style = "rounded,filled,dashed" if node.training_only else "rounded,filled"
    attrs = {"label": dot_string(_title(node)), "tooltip": dot_string(_tip(node), True), "style": f'"{style}"',
             "fillcolor": f'"{CLUSTER_FILL[(level - 1) % 2]}"', "color": '"#999999"', "labeljust": "l",
             "fontsize": "10"}
    out.nodes.append(f"{indent}subgraph cluster_{cid} {{")
    out.nodes.append(f"{indent}  graph [{_attrs(attrs)}];")
    inner = _body(body, level + 1, dict(zip(body.inputs, feeds)), out, indent + "  ")
    out.nodes.append(f"{indent}}}")
    return inner[body.outputs[0][1]]


def _look(node: ir.GNode) -> dict[str, str]:
    """The attributes of a node drawn as one shape: a layer, an add/mul/concat, a collapsed block."""
    attrs = {"tooltip": dot_string(_tip(node), True)}
    dashed = ",dashed" if node.training_only else ""
    if node.kind == "combine" and node.op in COMBINE:
        attrs.update(label=dot_string(COMBINE[node.op]), shape="circle", width="0.3", fixedsize="true",
                     fontsize="12", style=f'"filled{dashed}"')
    elif node.kind == "combine":
        attrs.update(label=dot_string(describe(node)), fontsize="9", style=f'"rounded,filled{dashed}"')
    elif node.kind == "layer":
        layer = LAYERS.get(node.op)
        fill = FILL.get(layer.category, "#ffffff") if layer is not None else "#ffffff"
        attrs.update(label=dot_string(_title(node, "\n")), fillcolor=f'"{fill}"', style=f'"rounded,filled{dashed}"')
    else:  # a block or a named container drawn as one box
        inside = sum(1 for _ in ir.layers(node.body)) if node.body is not None else 0
        label = f"{_title(node)}\n{_count(node.params)} params, {inside} layer{'s' * (inside != 1)}"
        attrs.update(label=dot_string(label), fillcolor=f'"{BLOCK_FILL}"', peripheries="2",
                     style=f'"rounded,filled{dashed}"')
    return attrs


def _title(node: ir.GNode, sep: str = " = ") -> str:
    """`conv1 = conv2d(64, kernel=3)` (a named node) or `conv2d(64, kernel=3)`."""
    call = describe(node)
    return f"{node.label}{sep}{call}" if node.label is not None and node.label != call else call


def _tip(node: ir.GNode) -> str:
    if node.kind == "combine":
        head = [f"{describe(node)} of {len(node.inputs)} branches"]
    else:
        head = [node.path or "(no module path)", describe(node)]
    lines = [*head, f"output {show_shape(node.out_shape)}", f"params {_count(node.params)}",
             f"MACs {_count(node.macs)}", f"receptive field {_rf(node.rf)}"]
    if node.span.line:
        lines.append(f"{node.span.file}:{node.span.line}")
    if node.training_only:
        lines.append("computed in training mode only")
    return "\n".join(lines)


def _edge(src: str, dst: str, value: ir.GNode, dashed: bool) -> str:
    shape = show_shape(value.out_shape)
    style = ", style=dashed" if dashed else ""
    return f"  {src} -> {dst} [label={dot_string(' ' + shape)}, tooltip={dot_string(shape, True)}{style}];"


def _attrs(attrs: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in attrs.items())


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def _rf(rf: tuple[Any, Any, Any, Any]) -> str:
    return rf_text({"size": [_number(rf[0]), _number(rf[1])], "stride": [_number(rf[2]), _number(rf[3])]})


def _number(x: Any) -> int | float | str:
    """A receptive-field figure as `rf_text` takes it: a number, or the text of a symbolic size."""
    if not isinstance(x, (int, float, Fraction)):
        return str(x)
    x = Fraction(x)
    return int(x) if x.denominator == 1 else float(x)


def count_nodes(net: ir.Network, depth: int | None = None) -> int:
    """How many nodes `build(net, depth)` draws, without drawing them."""
    g = net.graph
    return _count_body(g, 1, depth, top=True) + len(g.outputs) + len(g.training)


def _count_body(g: ir.Graph, level: int, depth: int | None, top: bool = False) -> int:
    n = 0
    for node in g.nodes:
        if node.kind == "input":
            n += top
        elif node.body is not None and (depth is None or level < depth):
            n += _count_body(node.body, level + 1, depth)
        else:
            n += 1
    return n


def nesting(net: ir.Network) -> int:
    """The deepest level of nodes in a network (1 when it has no blocks)."""
    def deepest(g: ir.Graph, level: int) -> int:
        return max([level, *(deepest(n.body, level + 1) for n in g.nodes if n.body is not None)])
    return deepest(net.graph, 1)
