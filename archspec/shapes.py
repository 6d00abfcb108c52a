"""One small shape rule per layer kind, in tables: output shape, parameters, MACs, receptive field.

Shapes leave out the batch dimension: a conv sees (C, H, W). A rule raises ShapeProblem with
a code and a message that shows the numbers; shape inference adds the position.
Definitions (docs/language.md): MACs of a convolution are Cout*Hout*Wout*(Cin/groups)*kh*kw, of a
linear in*out; bias, batch norm, activations and pooling add none. The receptive field is a
size r and a jump j per axis: a conv or pool does r += dilation*(k-1)*j, then j *= stride.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any, Callable

Shape = tuple[int, ...]
RF = tuple[int, int, int, int]  # size h, size w, jump h, jump w

MAX_DIM = 2**31 - 1  # the largest size a tensor dimension may have


class ShapeProblem(Exception):
    def __init__(self, code: str, message: str, *notes: str):
        super().__init__(message)
        self.code, self.message, self.notes = code, message, notes


@dataclass(frozen=True)
class Out:
    shape: Shape
    params: int = 0
    macs: int = 0


def _rank(x: Shape, layer: str, ranks: tuple[int, ...], what: str) -> None:
    if len(x) not in ranks:
        raise ShapeProblem("E405", f"{layer} expects {what}, got a tensor of shape {list(x)} (rank {len(x)} "
                                   "without the batch)")


def _window(layer: str, axis: str, size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """PyTorch's output-size formula for a sliding window, with its ceil_mode correction."""
    span = d * (k - 1) + 1
    n = size + 2 * p - span
    out = (-(-n // s) if ceil else n // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    if out < 1:  # with ceil_mode a window may overhang the padded input and still give one output
        kernel = f"kernel {k}" if d == 1 else f"dilated kernel {span} (= {d}*({k}-1)+1)"
        raise ShapeProblem("E401", f"{layer}: output {axis} would be zero or less: {kernel} > input {size} + "
                                   f"2*padding {p}")
    return out


def _spatial(layer: str, x: Shape, k, s, p, d, ceil: bool = False) -> tuple[int, int]:
    return (_window(layer, "height", x[1], k[0], s[0], p[0], d[0], ceil),
            _window(layer, "width", x[2], k[1], s[1], p[1], d[1], ceil))


def shape_conv2d(a: dict, x: Shape) -> Out:
    _rank(x, "conv2d", (3,), "a (channels, height, width) input")
    cin, cout, g = x[0], a["out_channels"], a["groups"]
    for what, c in (("input", cin), ("output", cout)):
        if c % g:
            raise ShapeProblem("E404", f"conv2d: groups {g} does not divide the {what} channels {c}")
    h, w = _spatial("conv2d", x, a["kernel"], a["stride"], a["padding"], a["dilation"])
    kh, kw = a["kernel"]
    weights = cout * (cin // g) * kh * kw
    return Out((cout, h, w), weights + (cout if a["bias"] else 0), weights * h * w)


def _pool_padding(layer: str, a: dict, kernel_extent) -> None:
    for axis, p, k in zip(("height", "width"), a["padding"], kernel_extent):
        if 2 * p > k:
            raise ShapeProblem("E406", f"{layer}: padding {p} is more than half the kernel {k} along the {axis} "
                                       "(PyTorch refuses it)")


def shape_maxpool2d(a: dict, x: Shape) -> Out:
    _rank(x, "maxpool2d", (3,), "a (channels, height, width) input")
    _pool_padding("maxpool2d", a, a["kernel"])  # PyTorch bounds padding by the kernel, not its dilated span
    return Out((x[0],) + _spatial("maxpool2d", x, a["kernel"], a["stride"], a["padding"], a["dilation"],
                                  a["ceil_mode"]))


def shape_avgpool2d(a: dict, x: Shape) -> Out:
    _rank(x, "avgpool2d", (3,), "a (channels, height, width) input")
    _pool_padding("avgpool2d", a, a["kernel"])
    return Out((x[0],) + _spatial("avgpool2d", x, a["kernel"], a["stride"], a["padding"], (1, 1), a["ceil_mode"]))


def shape_adaptive(layer: str) -> Callable[[dict, Shape], Out]:
    def rule(a: dict, x: Shape) -> Out:
        _rank(x, layer, (3,), "a (channels, height, width) input")
        return Out((x[0],) + tuple(a["output_size"]))
    return rule


def shape_linear(a: dict, x: Shape) -> Out:
    _rank(x, "linear", tuple(range(1, 8)), "an input with features")
    fin, fout = x[-1], a["out_features"]
    rows = prod(x[:-1])
    return Out(x[:-1] + (fout,), fin * fout + (fout if a["bias"] else 0), rows * fin * fout)


def shape_flatten(a: dict, x: Shape) -> Out:
    return Out((prod(x),))


def shape_batchnorm(layer: str, ranks: tuple[int, ...], what: str) -> Callable[[dict, Shape], Out]:
    def rule(a: dict, x: Shape) -> Out:
        _rank(x, layer, ranks, what)
        return Out(x, 2 * x[0] if a["affine"] else 0)
    return rule


def shape_same(a: dict, x: Shape) -> Out:
    return Out(x)


SHAPE_RULES: dict[str, Callable[[dict, Shape], Out]] = {
    "conv2d": shape_conv2d,
    "maxpool2d": shape_maxpool2d,
    "avgpool2d": shape_avgpool2d,
    "adaptive_avgpool2d": shape_adaptive("adaptive_avgpool2d"),
    "adaptive_maxpool2d": shape_adaptive("adaptive_maxpool2d"),
    "linear": shape_linear,
    "flatten": shape_flatten,
    "batchnorm2d": shape_batchnorm("batchnorm2d", (3,), "a (channels, height, width) input"),
    "batchnorm1d": shape_batchnorm("batchnorm1d", (1, 2), "a (features,) or (channels, length) input"),
    "dropout": shape_same,
    "relu": shape_same,
    "sigmoid": shape_same,
    "tanh": shape_same,
    "gelu": shape_same,
    "identity": shape_same,
}


# ---- receptive field: (size h, size w, jump h, jump w) -------------------------------------

def rf_window(a: dict, rf: RF, whole: RF) -> RF:
    k, s = a["kernel"], a["stride"]
    d = a.get("dilation", (1, 1))
    return (rf[0] + d[0] * (k[0] - 1) * rf[2], rf[1] + d[1] * (k[1] - 1) * rf[3], rf[2] * s[0], rf[3] * s[1])


def rf_whole(a: dict, rf: RF, whole: RF) -> RF:
    return whole


RF_RULES: dict[str, Callable[[dict, RF, RF], RF]] = {
    "conv2d": rf_window,
    "maxpool2d": rf_window,
    "avgpool2d": rf_window,
    "adaptive_avgpool2d": rf_whole,
    "adaptive_maxpool2d": rf_whole,
    "linear": rf_whole,
    "flatten": rf_whole,
}


def layer_rule(op: str, args: dict[str, Any], x: Shape, rf: RF, whole: RF) -> tuple[Out, RF]:
    out = SHAPE_RULES[op](args, x)
    rule = RF_RULES.get(op)
    return out, (rule(args, rf, whole) if rule else rf)
