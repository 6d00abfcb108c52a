"""How one node is written in torch: its module's constructor call, or the call that computes it
without a module. Everything comes from the layer's record: its torch class, the arguments read
off the input (`in_channels`), and each argument under torch's keyword, left out where it equals
the default, written as the spec's expression where it reads the class's parameters.
"""

from __future__ import annotations

from typing import Any

from .. import ir
from ..escape import py_value
from ..layers import LAYERS, REQUIRED, literal
from ..values import TensorRef
from .symbolic import Scope, Sym, render
from .symbolic import literal as lit

# Constructor arguments read off the input, and the dimension they read.
INFERRED_DIM = {"in_channels": 0, "num_features": 0, "num_channels": 0, "in_features": -1, "normalized_shape": -1,
                "embed_dim": -1, "dim": -1}


def default_of(layer, arg, args: dict) -> Any:
    if arg.same_as is not None:
        return args[arg.same_as]
    if arg.default is REQUIRED:
        return REQUIRED
    return arg.coerce(arg.default) if arg.default is not None else None


def shaped_args(node: ir.GNode, graph: ir.Graph) -> dict:
    """The node's arguments, tensor arguments replaced by their shapes (what shape rules read)."""
    return {k: (graph.nodes[v.node].out_shape if isinstance(v, TensorRef) else v) for k, v in node.args.items()}


def constructor(node: ir.GNode, graph: ir.Graph, scope: Scope, dims: tuple[Sym, Sym], inplace: bool = False
                ) -> tuple[str, bool]:
    """(the module's constructor call, whether it reads off a value it could not write in the class's terms)."""
    layer = LAYERS[node.op]
    x = graph.nodes[node.inputs[0]].out_shape if node.inputs else ()
    a = node.args
    if node.op == "param":
        return _param(node, scope)
    parts: list[str] = []
    tainted = False
    for key, value in layer.inferred(shaped_args(node, graph), x).items():
        sym = _inferred(key, value, x, dims)
        tainted |= sym.tainted
        parts.append(f"{key}={scope.write(sym)}")
    exprs, env = node.source or ({}, {})
    for arg in layer.args:
        name = arg.torch_name
        if name is None or arg.kind == "tensor":
            continue
        v = a[arg.name]
        sym = render(exprs[arg.name], env, scope) if arg.name in exprs and arg.to_torch is None else Sym("")
        tainted |= sym.tainted
        if sym.symbolic and not sym.tainted:
            parts.append(f"{name}={scope.write(sym)}")
            continue
        if v == default_of(layer, arg, a):
            continue
        shown = arg.to_torch(v) if arg.to_torch else v
        constant = _constant(exprs.get(arg.name)) if isinstance(v, float) and arg.to_torch is None else None
        parts.append(f"{name}={constant or (py_value(shown) if arg.keep_pair else literal(shown))}")
    parts += [f"{key}={value}" for key, value in layer.fixed]
    if inplace:
        parts.append("inplace=True")
    return f"{layer.module_class(a)}({', '.join(parts)})", tainted


def _param(node: ir.GNode, scope: Scope) -> tuple[str, bool]:
    """`nn.Parameter(torch.full([dim, 1, 1], layer_scale))`: its shape and value in the class's terms."""
    from ..layers.tensor import param_init

    a = node.args
    exprs, env = node.source or ({}, {})
    shape = render(exprs["shape"], env, scope) if "shape" in exprs else Sym("")
    value = render(exprs[a["init"] == "normal" and "std" or "value"], env, scope) \
        if (("std" if a["init"] == "normal" else "value") in exprs) else Sym("")
    if not (shape.symbolic or value.symbolic) or shape.tainted or value.tainted:
        return f"nn.Parameter({param_init(a)})", False
    dims = scope.write(shape) if shape.symbolic else py_value(list(a["shape"]))
    if a["init"] in ("zeros", "ones"):
        return f"nn.Parameter(torch.{a['init']}({dims}))", False
    number = scope.write(value) if value.symbolic else py_value(float(a["value" if a["init"] == "constant" else "std"]))
    if a["init"] == "constant":
        return f"nn.Parameter(torch.full({dims}, {number}))", False
    return f"nn.Parameter(torch.randn({dims}) * {number})", False


def _constant(e) -> str | None:
    """A float written as arithmetic on numbers (`1 - 0.9997`): that text, where its value would be long
    (0.00029999999999996696); None otherwise."""
    from ..render import render_expr

    def numbers_only(x) -> bool:
        if isinstance(x, ir.Num):
            return True
        if isinstance(x, ir.BinOp):
            return numbers_only(x.left) and numbers_only(x.right)
        return isinstance(x, ir.UnaryOp) and numbers_only(x.operand)

    if e is None or isinstance(e, ir.Num) or not numbers_only(e):
        return None
    return render_expr(e)


def _inferred(key: str, value: Any, x: tuple, dims: tuple[Sym, Sym]) -> Sym:
    d = INFERRED_DIM.get(key)
    if d is not None and x and value == x[d]:
        return dims[0] if d == 0 else dims[1]
    return lit(value)


def functional(node: ir.GNode, var: str, inplace: bool = False, extra: list[str] | None = None) -> str:
    """The call that computes a stateless node without a module."""
    layer = LAYERS[node.op]
    if node.op == "interpolate" and extra:
        from ..layers.resample import _interpolate_call

        return _interpolate_call(node.args, var, extra[0])
    if inplace and layer.inplace is not None:
        return layer.inplace(node.args, var)
    return layer.functional(node.args, var)  # type: ignore[misc]


def module_call(node: ir.GNode, module: str, var: str) -> str:
    """How forward calls a node's module on its input: `self.conv1(x)`, or as its record says
    (`self.self_attention(x, x, x, need_weights=False)[0]`)."""
    layer = LAYERS[node.op] if node.kind == "layer" else None
    return layer.call(module, var) if layer is not None and layer.call is not None else f"{module}({var})"


def stateless(node: ir.GNode, graph: ir.Graph) -> bool:
    """A layer with no parameters or buffers that has a function form: written as a call where unnamed."""
    layer = LAYERS[node.op]
    if layer.functional is None or layer.sources != 1:
        return False
    x = graph.nodes[node.inputs[0]].out_shape
    a = shaped_args(node, graph)
    return not layer.weights(a, x) and not layer.buffers(a, x)


def takes_tensors(node: ir.GNode) -> bool:
    return any(isinstance(v, TensorRef) for v in node.args.values())


__all__ = ["constructor", "functional", "module_call", "stateless", "takes_tensors", "py_value"]
