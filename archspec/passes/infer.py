"""Infer shapes: every node's output shape, parameters, MACs, receptive field and activation size.

Layers use the rules in shapes.py; containers combine their children: a seq threads its
input through them, an add sums branches of one shape, a concat joins branches on channels.
The receptive field of an add or concat is the largest over its branches.
"""

from __future__ import annotations

from math import prod

from .. import ir
from ..errors import ArchError, Diagnostic, Span, error
from ..shapes import MAX_DIM, RF, Shape, ShapeProblem, layer_rule

MAX_PARAMS = 100_000_000_000  # refuse before anything is allocated: 400 GB of fp32 weights
BYTES = 4  # fp32


class _Ctx:
    def __init__(self, net: ir.Network):
        shape = net.input_shape
        size = shape[1:3] if len(shape) >= 3 else (1, 1)
        self.whole: RF = (size[0], size[1] if len(size) > 1 else 1, 1, 1)
        self.warnings: list[Diagnostic] = []


def infer_shapes(net: ir.Network) -> ir.Network:
    ctx = _Ctx(net)
    root, _, _ = _infer(net.root, net.input_shape, (1, 1, 1, 1), ctx)
    if root.params > MAX_PARAMS:
        raise error("E408", f"the network has {root.params:,} parameters, over the limit of {MAX_PARAMS:,}",
                    net.span)
    return net.model_copy(update={"root": root, "warnings": net.warnings + tuple(ctx.warnings)})


def _infer(node: ir.Node, x: Shape, rf: RF, ctx: _Ctx) -> tuple[ir.Node, Shape, RF]:
    if node.kind == "layer":
        return _layer(node, x, rf, ctx)
    if node.kind in ("seq", "block"):
        children, y, rf_out = _chain(node.children, x, rf, ctx)
    else:
        children, y, rf_out = _branches(node, x, rf, ctx)
    made = node.kind in ("add", "concat")  # these write a new tensor; a seq passes its last one on
    own_bytes = BYTES * prod(y) if made else 0
    return node.model_copy(update={
        "children": tuple(children), "in_shape": x, "out_shape": y, "rf": rf_out,
        "params": sum(c.params for c in children), "macs": sum(c.macs for c in children),
        "activation_bytes": own_bytes + sum(c.activation_bytes for c in children),
    }), y, rf_out


def _layer(node: ir.Node, x: Shape, rf: RF, ctx: _Ctx) -> tuple[ir.Node, Shape, RF]:
    try:
        out, rf_out = layer_rule(node.op, node.args, x, rf, ctx.whole)
    except ShapeProblem as p:
        raise ArchError(Diagnostic(p.code, p.message, node.span, p.notes + (f"input shape {list(x)}",))) from None
    if any(d > MAX_DIM for d in out.shape) or prod(out.shape) > MAX_DIM * 16:
        raise error("E408", f"{node.op}: output shape {list(out.shape)} is absurdly large", node.span)
    if node.op == "linear" and len(x) == 3:
        shown = ", ".join(["N", *map(str, x)])
        ctx.warnings.append(Diagnostic("W601", f"linear on a 4-D tensor [{shown}] acts on its last dimension "
                                               "only; did you forget `flatten`?", node.span))
    bytes_ = 0 if node.op == "identity" else BYTES * prod(out.shape)
    return node.model_copy(update={"in_shape": x, "out_shape": out.shape, "params": out.params, "macs": out.macs,
                                   "rf": rf_out, "activation_bytes": bytes_}), out.shape, rf_out


def _chain(children, x: Shape, rf: RF, ctx: _Ctx):
    done = []
    for c in children:
        c, x, rf = _infer(c, x, rf, ctx)
        done.append(c)
    return done, x, rf


def _branches(node: ir.Node, x: Shape, rf: RF, ctx: _Ctx):
    done = [_infer(c, x, rf, ctx) for c in node.children]
    shapes = [s for _, s, _ in done]
    rf_out = tuple(max(r[i] for _, _, r in done) for i in range(4))
    if node.kind == "add":
        for i, s in enumerate(shapes[1:], start=2):
            if s != shapes[0]:
                raise _mismatch("E402", "add: branches must have the same shape", node, done, i)
        y = shapes[0]
    else:
        for i, s in enumerate(shapes[1:], start=2):
            if len(s) != len(shapes[0]) or s[1:] != shapes[0][1:] or not s:
                raise _mismatch("E403", "concat: branches must agree on every dimension but channels",
                                node, done, i)
        y = (sum(s[0] for s in shapes),) + shapes[0][1:]
    return [c for c, _, _ in done], y, rf_out


def _mismatch(code: str, message: str, node: ir.Node, done, i: int) -> ArchError:
    (first, s1, _), (other, s2, _) = done[0], done[i - 1]
    return ArchError(Diagnostic(code, f"{message}: branch 1 gives {list(s1)}, branch {i} gives {list(s2)}",
                                _point(other, node.span),
                                (f"branch 1 is at {first.span}", f"branch {i} is at {other.span}")))


def _point(node: ir.Node, fallback: Span) -> Span:
    return node.span if node.span.line else fallback
