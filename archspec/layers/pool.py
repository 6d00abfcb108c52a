"""Pooling: sliding-window max and average pools, and adaptive pools to a fixed output size."""

from __future__ import annotations

from ..escape import py_value
from . import Arg, Layer, Shape, ShapeProblem, image, literal, register, rf_whole, rf_window, spatial


def _padding_check(layer: str, a: dict) -> None:
    for axis, p, k in zip(("height", "width"), a["padding"], a["kernel"]):
        if 2 * p > k:  # PyTorch bounds padding by the kernel, not its dilated span
            raise ShapeProblem("E406", f"{layer}: padding {p} is more than half the kernel {k} along the {axis} "
                                       "(PyTorch refuses it)")


def maxpool_shape(a: dict, x: Shape) -> Shape:
    image(x, "maxpool2d")
    _padding_check("maxpool2d", a)
    return (x[0], *spatial("maxpool2d", x, a["kernel"], a["stride"], a["padding"], a["dilation"], a["ceil_mode"]))


def avgpool_shape(a: dict, x: Shape) -> Shape:
    image(x, "avgpool2d")
    _padding_check("avgpool2d", a)
    return (x[0], *spatial("avgpool2d", x, a["kernel"], a["stride"], a["padding"], (1, 1), a["ceil_mode"]))


def _kw(a: dict, names: dict[str, tuple[str, object]]) -> str:
    """`kernel_size=3, stride=2`: the arguments a pool's functional form needs, defaults left out."""
    parts = []
    for spec_name, (torch_name, default) in names.items():
        v = a[spec_name]
        if spec_name == "stride" and v == a["kernel"]:
            continue
        if v != default:
            parts.append(f"{torch_name}={literal(v)}")
    return ", ".join(parts)


_MAX = {"kernel": ("kernel_size", None), "stride": ("stride", None), "padding": ("padding", (0, 0)),
        "dilation": ("dilation", (1, 1)), "ceil_mode": ("ceil_mode", False)}
_AVG = {"kernel": ("kernel_size", None), "stride": ("stride", None), "padding": ("padding", (0, 0)),
        "ceil_mode": ("ceil_mode", False), "count_include_pad": ("count_include_pad", True)}


def adaptive(layer: str):
    def shape(a: dict, x: Shape) -> Shape:
        image(x, layer)
        return (x[0], *a["output_size"])
    return shape


POOL = (Arg("kernel", "pair1", torch="kernel_size"), Arg("stride", "stride", None, same_as="kernel"),
        Arg("padding", "pair0", 0))

def _symbolic(x: Shape) -> bool:
    return any(not isinstance(d, int) for d in x[1:])


def _onnx_ceil(a: dict, x: Shape) -> str | None:
    """ONNX's ceil mode keeps a last window that torch drops; archspec pads it away, which needs the size."""
    if a["ceil_mode"] and _symbolic(x):
        return ("ceil_mode=true on a symbolic size: ONNX keeps a last window torch drops, and the exact form "
                "needs the size as a number")
    return None


def _onnx_adaptive(a: dict, x: Shape) -> str | None:
    """torch's adaptive windows depend on the input size; a global pool (to 1x1) does not."""
    if a["output_size"] != (1, 1) and _symbolic(x):
        return (f"an adaptive pool to {a['output_size'][0]}x{a['output_size'][1]} on a symbolic size: its windows "
                "depend on the size, which ONNX would need as a number")
    return None


register(
    Layer("maxpool2d", "2-D max pooling; the stride defaults to the kernel",
          POOL + (Arg("dilation", "pair1", 1), Arg("ceil_mode", "bool", False)), maxpool_shape, "nn.MaxPool2d",
          rf=rf_window, functional=lambda a, x: f"nn.functional.max_pool2d({x}, {_kw(a, _MAX)})", category="pooling",
          onnx=_onnx_ceil),
    Layer("avgpool2d", "2-D average pooling; the stride defaults to the kernel",
          POOL + (Arg("ceil_mode", "bool", False), Arg("count_include_pad", "bool", True)), avgpool_shape,
          "nn.AvgPool2d", rf=rf_window, functional=lambda a, x: f"nn.functional.avg_pool2d({x}, {_kw(a, _AVG)})",
          category="pooling", onnx=_onnx_ceil),
    Layer("adaptive_avgpool2d", "average pooling to a fixed (h, w) output, torch's windows",
          (Arg("output_size", "pair1", keep_pair=True),), adaptive("adaptive_avgpool2d"), "nn.AdaptiveAvgPool2d",
          rf=rf_whole,
          functional=lambda a, x: f"nn.functional.adaptive_avg_pool2d({x}, {py_value(a['output_size'])})",
          category="pooling", onnx=_onnx_adaptive),
    Layer("adaptive_maxpool2d", "max pooling to a fixed (h, w) output, torch's windows",
          (Arg("output_size", "pair1", keep_pair=True),), adaptive("adaptive_maxpool2d"), "nn.AdaptiveMaxPool2d",
          rf=rf_whole,
          functional=lambda a, x: f"nn.functional.adaptive_max_pool2d({x}, {py_value(a['output_size'])})",
          category="pooling", onnx=_onnx_adaptive),
)
