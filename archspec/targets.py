"""What an export target cannot compute exactly, found statically (`archspec check --target onnx`).

Each layer's record says why ONNX could not compute it at the input it gets (`Layer.onnx`): today,
pools whose exact ONNX form needs a size that a spec leaves symbolic (`input [3, H, W]`). The same
check runs before `archspec compile` writes anything, so an export never fails half-way with the
exporter's own message.
"""

from __future__ import annotations

from . import ir
from .errors import Diagnostic
from .layers import LAYERS
from .summary import show_shape

TARGETS = ("onnx",)


def problems(net: ir.Network, target: str) -> list[Diagnostic]:
    """One located error (E612) per layer the target cannot compute exactly."""
    out: list[Diagnostic] = []
    for g, n in _layers(net.graph):
        rule = LAYERS[n.op].onnx if target == "onnx" else None
        if rule is None:
            continue
        x = g.nodes[n.inputs[0]].out_shape if n.inputs else ()
        reason = rule(n.args, x)
        if reason:
            out.append(Diagnostic("E612", f"{n.op} `{n.path}` cannot be exported to {target.upper()} exactly: "
                                          f"{reason}", n.span,
                                  (f"input shape {show_shape(['N', *x])}",
                                   "fix the size with --input C,H,W (ONNX then gets a static graph), or change the "
                                   "layer")))
    return out


def _layers(g: ir.Graph):
    for n in g.nodes:
        if n.kind == "layer":
            yield g, n
        if n.body is not None:
            yield from _layers(n.body)
