"""Resampling: interpolation to a scale, a size or another tensor's size, padding, pixel (un)shuffle."""

from __future__ import annotations

import math
from fractions import Fraction

from . import RF, Arg, Layer, Shape, ShapeProblem, check_dim, image, register


def interpolate_shape(a: dict, x: Shape) -> Shape:
    image(x, "interpolate")
    given = [k for k in ("scale", "size", "like") if a[k] is not None]
    if len(given) != 1:
        raise ShapeProblem("E302", "interpolate: give exactly one of scale, size and like"
                                   + (f" (got {', '.join(given)})" if given else ""))
    if a["like"] is not None:
        like = a["like"]
        if len(like) < 2:
            raise ShapeProblem("E405", f"interpolate: like= needs a tensor with a height and width, got {list(like)}")
        size = tuple(like[-2:])
    elif a["size"] is not None:
        size = a["size"]
    else:
        size = tuple(math.floor(n * s) for n, s in zip(x[1:], a["scale"]))
        if min(size) < 1:
            raise ShapeProblem("E401", f"interpolate: output size {list(size)} would be zero")
    if a["mode"] == "nearest" and a["align_corners"] is not None:
        raise ShapeProblem("E302", "interpolate: align_corners applies to bilinear and bicubic modes only")
    return (x[0], *(check_dim(n, "interpolate") for n in size))


def interpolate_rf(a: dict, x: Shape, rf: RF, whole: RF) -> RF:
    """The jump shrinks by the resampling factor (exactly: in/out); bilinear and bicubic each look at 2
    and 4 input pixels along an axis."""
    from ..sizes import sample  # a symbolic size (`input [3, H, W]`): the ratio at a generic size

    y = interpolate_shape(a, x)
    reach = {"nearest": 0, "bilinear": 1, "bicubic": 3}[a["mode"]]
    return (rf[0] + reach * rf[2], rf[1] + reach * rf[3], rf[2] * Fraction(sample(x[1]), sample(y[1])),
            rf[3] * Fraction(sample(x[2]), sample(y[2])))


def _interpolate_call(a: dict, x: str, like: str | None = None) -> str:
    if like is not None:
        how = f"size={like}.shape[-2:]"
    elif a["size"] is not None:
        how = f"size={tuple(a['size'])!r}"
    else:
        s = a["scale"]
        how = f"scale_factor={s[0]!r}" if s[0] == s[1] else f"scale_factor={tuple(s)!r}"
    extra = f', mode="{a["mode"]}"' if a["mode"] != "nearest" else ""
    if a["align_corners"] is not None:
        extra += f", align_corners={a['align_corners']!r}"
    return f"nn.functional.interpolate({x}, {how}{extra})"


def _pads(a: dict) -> tuple[int, int, int, int]:
    p = a["padding"]
    if len(p) == 1:
        return (p[0],) * 4
    if len(p) == 4:
        return tuple(p)  # type: ignore[return-value]
    raise ShapeProblem("E302", f"pad: padding takes 1 or 4 values (left, right, top, bottom), got {list(p)}")


def pad_shape(a: dict, x: Shape) -> Shape:
    image(x, "pad")
    left, right, top, bottom = _pads(a)
    if a["mode"] in ("reflect", "circular"):
        for axis, n, before, after in (("height", x[1], top, bottom), ("width", x[2], left, right)):
            if max(before, after) >= n + (a["mode"] == "circular"):
                raise ShapeProblem("E406", f"pad: {a['mode']} padding {max(before, after)} must be smaller than the "
                                           f"input {axis} {n}")
    return (x[0], x[1] + top + bottom, x[2] + left + right)


_PAD_CLASS = {"constant": "nn.ConstantPad2d", "reflect": "nn.ReflectionPad2d", "replicate": "nn.ReplicationPad2d",
              "circular": "nn.CircularPad2d"}


def _pad_class(a: dict) -> str:
    if a["mode"] == "constant" and a["value"] == 0:
        return "nn.ZeroPad2d"
    return _PAD_CLASS[a["mode"]]


def shuffle_shape(a: dict, x: Shape) -> Shape:
    image(x, "pixel_shuffle")
    r = a["upscale_factor"]
    if x[0] % (r * r):
        raise ShapeProblem("E404", f"pixel_shuffle: the channels {x[0]} are not a multiple of {r}*{r}")
    return (x[0] // (r * r), x[1] * r, x[2] * r)


def unshuffle_shape(a: dict, x: Shape) -> Shape:
    image(x, "pixel_unshuffle")
    r = a["downscale_factor"]
    if x[1] % r or x[2] % r:
        raise ShapeProblem("E404", f"pixel_unshuffle: height {x[1]} and width {x[2]} must be multiples of {r}")
    return (x[0] * r * r, x[1] // r, x[2] // r)


register(
    Layer("interpolate", "resize a (C, H, W) input by a scale, to a size, or to the size of another tensor "
          "(`like=@x`); modes nearest, bilinear, bicubic",
          (Arg("scale", "scale", None, torch="scale_factor"), Arg("size", "size", None), Arg("like", "tensor", None,
           torch=None), Arg("mode", "str", "nearest", choices=("nearest", "bilinear", "bicubic")),
           Arg("align_corners", "optional_bool", None)),
          interpolate_shape, "nn.Upsample", rf=interpolate_rf, functional=_interpolate_call, category="resampling"),
    Layer("pad", "pad a (C, H, W) input: one size for all sides, or (left, right, top, bottom); modes constant, "
          "reflect, replicate, circular",
          (Arg("padding", "pads", to_torch=lambda p: p[0] if len(p) == 1 else p),
           Arg("mode", "str", "constant", torch=None, choices=("constant", "reflect", "replicate", "circular")),
           Arg("value", "number", 0.0)),
          pad_shape, _pad_class, category="resampling"),
    Layer("pixel_shuffle", "(C*r*r, H, W) -> (C, H*r, W*r)", (Arg("upscale_factor", "count"),), shuffle_shape,
          "nn.PixelShuffle", functional=lambda a, x: f"nn.functional.pixel_shuffle({x}, {a['upscale_factor']})",
          rf=lambda a, x, rf, whole: (rf[0], rf[1], rf[2] / a["upscale_factor"], rf[3] / a["upscale_factor"]),
          category="resampling"),
    Layer("pixel_unshuffle", "(C, H*r, W*r) -> (C*r*r, H, W)", (Arg("downscale_factor", "count"),),
          unshuffle_shape, "nn.PixelUnshuffle",
          functional=lambda a, x: f"nn.functional.pixel_unshuffle({x}, {a['downscale_factor']})",
          rf=lambda a, x, rf, whole: (rf[0] + (a["downscale_factor"] - 1) * rf[2],
                                      rf[1] + (a["downscale_factor"] - 1) * rf[3],
                                      rf[2] * a["downscale_factor"], rf[3] * a["downscale_factor"]),
          category="resampling"),
)
