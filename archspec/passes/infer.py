"""Walk the shaped graph: receptive fields, totals, and the warnings about what is legal but suspect.

Every node's shape, parameters and MACs were set when expansion made it. Here the receptive field
of each node follows from its inputs' (the largest over several inputs, exactly, as fractions:
upsampling makes the jump a fraction of an input pixel), and the network gets its totals.
"""

from __future__ import annotations

from fractions import Fraction

from .. import ir
from ..errors import Diagnostic, error
from ..layers import LAYERS

MAX_PARAMS = 100_000_000_000  # refuse before anything is allocated: 400 GB of fp32 weights
LAYOUT = frozenset({"permute", "transpose", "reshape"})  # after these, a 3-D tensor is not (C, H, W)


def infer_shapes(net: ir.Network) -> ir.Network:
    first = net.graph.nodes[net.graph.inputs[0]].out_shape
    size = first[1:3] if len(first) >= 3 else (1, 1)
    whole = (Fraction(size[0]), Fraction(size[1] if len(size) > 1 else 1), Fraction(1), Fraction(1))
    warnings: list[Diagnostic] = []
    one = (Fraction(1),) * 4
    graph = _graph(_mark_training(net.graph), [one] * len(net.graph.inputs), whole, warnings)
    inside = [n for n in graph.nodes if n.kind != "input"]
    params = sum(n.params for n in inside)
    if params > MAX_PARAMS:
        raise error("E408", f"the network has {params:,} parameters, over the limit of {MAX_PARAMS:,}", net.span)
    run = [n for n in inside if not n.training_only]  # what an eval-mode forward pass computes
    return net.model_copy(update={
        "graph": graph, "warnings": net.warnings + tuple(warnings), "params": params,
        "macs": sum(n.macs for n in run), "activation_bytes": sum(n.activation_bytes for n in run)})


def _mark_training(g: ir.Graph) -> ir.Graph:
    """Mark the nodes only `if training` outputs read: an eval-mode pass does not compute them."""
    if not g.training:
        return g
    needed = _needed(g, [i for _, i in g.outputs])
    extra = _needed(g, [i for _, i in g.training]) - needed
    nodes = tuple(n.model_copy(update={"training_only": True}) if i in extra else n for i, n in enumerate(g.nodes))
    return g.model_copy(update={"nodes": nodes})


def _needed(g: ir.Graph, roots: list[int]) -> set[int]:
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo += g.nodes[i].inputs
    return seen


def _graph(g: ir.Graph, entry: list, whole, warnings: list[Diagnostic]) -> ir.Graph:
    rfs: list = []
    nodes: list[ir.GNode] = []
    feeds = {i: rf for i, rf in zip(g.inputs, entry)}
    used = {i for n in g.nodes for i in n.inputs} | {i for _, i in (*g.outputs, *g.training)}
    for i, n in enumerate(g.nodes):
        ins = [rfs[j] for j in n.inputs]
        if n.kind == "input":
            rf = feeds.get(i, (Fraction(1),) * 4)
        elif n.kind == "layer":
            rf = _layer_rf(n, g, ins, whole)
            _warn(n, g, warnings)
        elif n.kind == "combine":
            rf = _largest(ins)
        else:
            body = _graph(n.body, ins, whole, warnings)
            rf = _rf_of(body)
            n = n.model_copy(update={"body": body})
        if i not in used and n.kind != "input":
            warnings.append(Diagnostic("W602", f"the output of this {_what(n)} is never used", n.span,
                                       ("a later `@name` started a new chain, or the node is not an output",)))
        rfs.append(rf)
        nodes.append(n.model_copy(update={"rf": rf}))
    return g.model_copy(update={"nodes": tuple(nodes)})


def _rf_of(g: ir.Graph) -> tuple:
    return g.nodes[g.outputs[0][1]].rf


def _largest(ins: list) -> tuple:
    if not ins:
        return (Fraction(1),) * 4
    return tuple(max(r[k] for r in ins) for k in range(4))


def _layer_rf(n: ir.GNode, g: ir.Graph, ins: list, whole) -> tuple:
    layer = LAYERS[n.op]
    if not layer.sources:  # a learned tensor sees no input
        return (Fraction(1),) * 4
    rf = _largest(ins)
    if layer.rf is None:
        return rf
    x = g.nodes[n.inputs[0]].out_shape
    shaped = {k: (g.nodes[v.node].out_shape if hasattr(v, "node") else v) for k, v in n.args.items()}
    return tuple(Fraction(v) for v in layer.rf(shaped, x, rf, whole))


def _warn(n: ir.GNode, g: ir.Graph, warnings: list[Diagnostic]) -> None:
    x = g.nodes[n.inputs[0]] if n.inputs else None
    if n.op == "linear" and x is not None and len(x.out_shape) == 3 and not _relaid(x, g):
        shown = ", ".join(["N", *map(str, x.out_shape)])
        warnings.append(Diagnostic("W601", f"linear on a 4-D tensor [{shown}] acts on its last dimension only; "
                                           "did you forget `flatten`?", n.span))


def _relaid(x: ir.GNode, g: ir.Graph) -> bool:
    """Whether a tensor's layout was changed on purpose (channels last after a permute, and what follows)."""
    seen = 0
    while x is not None and seen < 64:
        if x.kind == "layer" and x.op in LAYOUT:
            return True
        if x.kind != "layer" or not x.inputs or x.op in ("conv2d", "conv_transpose2d"):
            return False
        x, seen = g.nodes[x.inputs[0]], seen + 1
    return False


def _what(n: ir.GNode) -> str:
    return {"layer": n.op, "block": f"`{n.op}` block", "group": n.op, "combine": n.op}.get(n.kind, "node")
