"""Convolutions and the fully connected layer."""

from __future__ import annotations

from fractions import Fraction
from math import prod

from . import (
    RF,
    Arg,
    Layer,
    Shape,
    ShapeProblem,
    check_dim,
    image,
    need_rank,
    register,
    rf_features,
    rf_window,
    spatial,
)


def _conv_channels(layer: str, cin: int, cout: int, g: int) -> None:
    for what, c in (("input", cin), ("output", cout)):
        if c % g:
            raise ShapeProblem("E404", f"{layer}: groups {g} does not divide the {what} channels {c}")


def conv2d_shape(a: dict, x: Shape) -> Shape:
    image(x, "conv2d")
    _conv_channels("conv2d", x[0], a["out_channels"], a["groups"])
    return (a["out_channels"], *spatial("conv2d", x, a["kernel"], a["stride"], a["padding"], a["dilation"]))


def conv2d_weights(a: dict, x: Shape) -> dict[str, Shape]:
    w = {"weight": (a["out_channels"], x[0] // a["groups"], *a["kernel"])}
    return {**w, "bias": (a["out_channels"],)} if a["bias"] else w


def conv2d_macs(a: dict, x: Shape, y: Shape) -> int:
    return prod(y) * (x[0] // a["groups"]) * prod(a["kernel"])


CONV_ARGS = (Arg("out_channels", "count"), Arg("kernel", "pair1", torch="kernel_size"),
             Arg("stride", "pair1", 1), Arg("padding", "pair0", 0), Arg("dilation", "pair1", 1),
             Arg("groups", "count", 1), Arg("bias", "bool", True))


def transpose_shape(a: dict, x: Shape) -> Shape:
    image(x, "conv_transpose2d")
    _conv_channels("conv_transpose2d", x[0], a["out_channels"], a["groups"])
    out = []
    for axis, n, k, s, p, op, d in zip(("height", "width"), x[1:], a["kernel"], a["stride"], a["padding"],
                                       a["output_padding"], a["dilation"]):
        if op >= max(s, d):
            raise ShapeProblem("E302", f"conv_transpose2d: output_padding {op} must be smaller than the stride "
                                       f"{s} or the dilation {d} along the {axis}")
        size = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        if size < 1:
            raise ShapeProblem("E401", f"conv_transpose2d: output {axis} would be zero or less ({size})")
        out.append(check_dim(size, "conv_transpose2d"))
    return (a["out_channels"], *out)


def transpose_weights(a: dict, x: Shape) -> dict[str, Shape]:
    w = {"weight": (x[0], a["out_channels"] // a["groups"], *a["kernel"])}
    return {**w, "bias": (a["out_channels"],)} if a["bias"] else w


def transpose_macs(a: dict, x: Shape, y: Shape) -> int:
    return prod(x) * (a["out_channels"] // a["groups"]) * prod(a["kernel"])


def transpose_rf(a: dict, x: Shape, rf: RF, whole: RF) -> RF:
    """An output pixel sees d*(k-1)/s + 1 input pixels: the field grows by d*(k-1)/s input jumps,
    and the jump shrinks by the stride (a fraction of an input pixel, kept exact)."""
    k, s, d = a["kernel"], a["stride"], a["dilation"]
    return (rf[0] + Fraction(d[0] * (k[0] - 1), s[0]) * rf[2], rf[1] + Fraction(d[1] * (k[1] - 1), s[1]) * rf[3],
            Fraction(rf[2]) / s[0], Fraction(rf[3]) / s[1])


def linear_shape(a: dict, x: Shape) -> Shape:
    need_rank(x, "linear", tuple(range(1, 8)), "an input with features")
    return (*x[:-1], a["out_features"])


def linear_weights(a: dict, x: Shape) -> dict[str, Shape]:
    w = {"weight": (a["out_features"], x[-1])}
    return {**w, "bias": (a["out_features"],)} if a["bias"] else w


register(
    Layer("conv2d", "2-D convolution; MACs Cout*Hout*Wout*(Cin/groups)*kh*kw", CONV_ARGS, conv2d_shape,
          "nn.Conv2d", weights=conv2d_weights, macs=conv2d_macs, rf=rf_window,
          inferred=lambda a, x: {"in_channels": x[0]}, fresh=True, init="xavier", category="convolution"),
    Layer("conv_transpose2d", "2-D transposed convolution; MACs Cin*Hin*Win*(Cout/groups)*kh*kw",
          (Arg("out_channels", "count"), Arg("kernel", "pair1", torch="kernel_size"), Arg("stride", "pair1", 1),
           Arg("padding", "pair0", 0), Arg("output_padding", "pair0", 0), Arg("groups", "count", 1),
           Arg("bias", "bool", True), Arg("dilation", "pair1", 1)),
          transpose_shape, "nn.ConvTranspose2d", weights=transpose_weights, macs=transpose_macs, rf=transpose_rf,
          inferred=lambda a, x: {"in_channels": x[0]}, fresh=True, init="xavier", category="convolution"),
    Layer("linear", "fully connected layer on the last dimension; MACs in*out per row",
          (Arg("out_features", "count"), Arg("bias", "bool", True)), linear_shape, "nn.Linear",
          weights=linear_weights, macs=lambda a, x, y: prod(x) * a["out_features"], rf=rf_features,
          inferred=lambda a, x: {"in_features": x[-1]}, fresh=True, init="xavier", category="linear"),
)
