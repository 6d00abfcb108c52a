"""Walk the shaped graph: totals, and the warnings about what is legal but suspect.

Every node's shape, parameters, MACs and receptive field were set when expansion made it (the
field of a node follows from its inputs': the largest over several inputs, exactly: upsampling
makes the jump a fraction of an input pixel). Here the nodes only `if training` outputs read are
marked (an eval-mode pass does not compute them), and the network gets its totals.
"""

from __future__ import annotations

from .. import ir
from ..errors import Diagnostic, error
from ..sizes import total

MAX_PARAMS = 100_000_000_000  # refuse before anything is allocated: 400 GB of fp32 weights
LAYOUT = frozenset({"permute", "transpose", "reshape"})  # after these, a 3-D tensor is not (C, H, W)


def infer_shapes(net: ir.Network) -> ir.Network:
    warnings: list[Diagnostic] = []
    graph = _mark_training(net.graph)
    _warn_graph(graph, warnings)
    inside = [n for n in graph.nodes if n.kind != "input"]
    params = sum(n.params for n in inside)
    if params > MAX_PARAMS:
        raise error("E408", f"the network has {params:,} parameters, over the limit of {MAX_PARAMS:,}", net.span)
    run = [n for n in inside if not n.training_only]  # what an eval-mode forward pass computes
    return net.model_copy(update={
        "graph": graph, "warnings": net.warnings + tuple(warnings), "params": params,
        "macs": total(n.macs for n in run), "activation_bytes": total(n.activation_bytes for n in run)})


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


def _warn_graph(g: ir.Graph, warnings: list[Diagnostic], relaid_input: bool = False) -> bool:
    """Warn about the body's nodes; whether its output's layout was changed on purpose (channels last
    after a permute, and what follows until a convolution), tracked forward through blocks and branches
    so that a block of channels-last layers (Swin's MLP) knows what reaches it."""
    used = {i for n in g.nodes for i in n.inputs} | {i for _, i in (*g.outputs, *g.training)}
    relaid: list[bool] = []
    for i, n in enumerate(g.nodes):
        first = bool(n.inputs) and relaid[n.inputs[0]]
        if n.kind == "layer":
            _warn(n, g, warnings, first)
        if n.body is not None:
            first = _warn_graph(n.body, warnings, first)
        relaid.append(relaid_input if n.kind == "input" else
                      n.op in LAYOUT or (first and n.op not in ("conv2d", "conv_transpose2d"))
                      if n.kind == "layer" else first)
        if i not in used and n.kind != "input":
            warnings.append(Diagnostic("W602", f"the output of this {_what(n)} is never used", n.span,
                                       ("a later `@name` started a new chain, or the node is not an output",)))
    return bool(g.outputs) and relaid[g.outputs[0][1]]


def _warn(n: ir.GNode, g: ir.Graph, warnings: list[Diagnostic], relaid: bool) -> None:
    x = g.nodes[n.inputs[0]] if n.inputs else None
    if n.op == "linear" and x is not None and len(x.out_shape) == 3 and not relaid:
        shown = ", ".join(["N", *map(str, x.out_shape)])
        warnings.append(Diagnostic("W601", f"linear on a 4-D tensor [{shown}] acts on its last dimension only; "
                                           "did you forget `flatten`?", n.span))


def _what(n: ir.GNode) -> str:
    return {"layer": n.op, "block": f"`{n.op}` block", "group": n.op, "combine": n.op}.get(n.kind, "node")
