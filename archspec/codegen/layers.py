"""How each layer is written in torch: as a module (`nn.Conv2d(...)`) or, for an unnamed layer
without state inside a hand-written-style class, as a call (`torch.relu(x)`).

One small function per layer kind, in tables, as shape rules are in shapes.py.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import ir


def _v(v: Any) -> str:
    """A Python literal for an argument value; a square pair reads as one number."""
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        return repr(v[0])
    return repr(v)


def _kw(**pairs: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in pairs.items() if v is not None)


def _unless(value: Any, default: Any) -> str | None:
    """The literal of a value, or None (left out) when it equals torch's default."""
    return None if value == default else _v(value)


def emit_conv2d(n: ir.Node) -> str:
    a = n.args
    return "nn.Conv2d(" + _kw(
        in_channels=n.in_shape[0], out_channels=a["out_channels"], kernel_size=_v(a["kernel"]),
        stride=_unless(a["stride"], (1, 1)), padding=_unless(a["padding"], (0, 0)),
        dilation=_unless(a["dilation"], (1, 1)), groups=_unless(a["groups"], 1), bias=_unless(a["bias"], True)) + ")"


def _pool_args(n: ir.Node) -> dict[str, Any]:
    a = n.args
    extra = {"dilation": _unless(a["dilation"], (1, 1))} if "dilation" in a else {}
    extra["ceil_mode"] = _unless(a["ceil_mode"], False)
    if "count_include_pad" in a:
        extra["count_include_pad"] = _unless(a["count_include_pad"], True)
    return dict(kernel_size=_v(a["kernel"]), stride=_unless(a["stride"], a["kernel"]),
                padding=_unless(a["padding"], (0, 0)), **extra)


def _bn(cls: str) -> Callable[[ir.Node], str]:
    def emit(n: ir.Node) -> str:
        a = n.args
        return f"nn.{cls}(" + _kw(num_features=n.in_shape[0], eps=_unless(a["eps"], 1e-5),
                                  momentum=_unless(a["momentum"], 0.1), affine=_unless(a["affine"], True)) + ")"
    return emit


MODULES: dict[str, Callable[[ir.Node], str]] = {
    "conv2d": emit_conv2d,
    "maxpool2d": lambda n: "nn.MaxPool2d(" + _kw(**_pool_args(n)) + ")",
    "avgpool2d": lambda n: "nn.AvgPool2d(" + _kw(**_pool_args(n)) + ")",
    "adaptive_avgpool2d": lambda n: f"nn.AdaptiveAvgPool2d(output_size={n.args['output_size']!r})",
    "adaptive_maxpool2d": lambda n: f"nn.AdaptiveMaxPool2d(output_size={n.args['output_size']!r})",
    "linear": lambda n: "nn.Linear(" + _kw(in_features=n.in_shape[-1], out_features=n.args["out_features"],
                                           bias=_unless(n.args["bias"], True)) + ")",
    "flatten": lambda n: "nn.Flatten()",
    "batchnorm2d": _bn("BatchNorm2d"),
    "batchnorm1d": _bn("BatchNorm1d"),
    "dropout": lambda n: f"nn.Dropout(p={n.args['p']!r})",
    "relu": lambda n: "nn.ReLU()",
    "sigmoid": lambda n: "nn.Sigmoid()",
    "tanh": lambda n: "nn.Tanh()",
    "gelu": lambda n: "nn.GELU()",
    "identity": lambda n: "nn.Identity()",
}

# Layers without parameters or buffers, written as calls when unnamed inside a class's forward.
CALLS: dict[str, Callable[[ir.Node, str], str]] = {
    "relu": lambda n, x: f"torch.relu({x})",
    "sigmoid": lambda n, x: f"torch.sigmoid({x})",
    "tanh": lambda n, x: f"torch.tanh({x})",
    "gelu": lambda n, x: f"nn.functional.gelu({x})",
    "identity": lambda n, x: x,
    "flatten": lambda n, x: f"torch.flatten({x}, 1)",
    "dropout": lambda n, x: f"nn.functional.dropout({x}, p={n.args['p']!r}, training=self.training)",
    "maxpool2d": lambda n, x: f"nn.functional.max_pool2d({x}, " + _kw(**_pool_args(n)) + ")",
    "avgpool2d": lambda n, x: f"nn.functional.avg_pool2d({x}, " + _kw(**_pool_args(n)) + ")",
    "adaptive_avgpool2d": lambda n, x: f"nn.functional.adaptive_avg_pool2d({x}, {n.args['output_size']!r})",
    "adaptive_maxpool2d": lambda n, x: f"nn.functional.adaptive_max_pool2d({x}, {n.args['output_size']!r})",
}

# A ReLU may work in place when what it reads is a fresh tensor that nothing else reads: the
# output of one of these layers (none keeps its output for the backward pass), or of a sum. That
# is how torchvision writes it, and it saves a copy of every activation (2-4% of a VGG's time).
FRESH_OUTPUT = frozenset({"conv2d", "linear", "batchnorm2d", "batchnorm1d"})
IN_PLACE_MODULES: dict[str, Callable[[ir.Node], str]] = {"relu": lambda n: "nn.ReLU(inplace=True)"}
IN_PLACE_CALLS: dict[str, Callable[[ir.Node, str], str]] = {
    "relu": lambda n, x: f"nn.functional.relu({x}, inplace=True)",
}


def is_fresh(node: ir.Node | None) -> bool:
    """Whether a node's output is a new tensor that no backward pass keeps: a conv's, a linear's or a
    norm's output, or a sum of two or more branches."""
    if node is None:
        return False
    return (node.kind == "layer" and node.op in FRESH_OUTPUT) or (node.kind == "add" and len(node.children) >= 2)


def reads_fresh(node: ir.Node, before: ir.Node | None) -> bool:
    """Whether `node` may work in place: an in-place kind, right after a layer or sum it alone reads."""
    return node.kind == "layer" and node.op in IN_PLACE_CALLS and is_fresh(before)
