"""ONNX translations for the pools where torch's exporter falls short, from the static shapes.

torch's exporter writes a ceil-mode pool as ONNX's pool with `ceil_mode=1`, whose output size
rule keeps a last window that torch drops (a window that would start in the right padding or
past the input), so the shapes disagree; and it has no translation at all for an adaptive pool
whose output size does not divide its input size. archspec knows every spatial size, and so
does the exporter when it translates (only the batch is symbolic), so these translations write
what torch computes with plain ONNX ops:

- a max pool: explicit end padding (ignored by the max, as ONNX pads always are), floor mode;
- an average pool: the same, zero padding, and where torch's divisor is not the window's size
  (a window cut by the end of the padded input, or padding not counted) a multiplication by a
  constant map of `window size / torch's divisor`;
- an adaptive pool: torch's windows, start = floor(i * in / out) and end = ceil((i + 1) * in /
  out), reduced one axis at a time (both the mean and the max of a rectangle are separable):
  `out_h + out_w` Slices and reductions, or one ordinary pool when the windows tile evenly.

Each is registered for the aten op as a whole (max_pool2d, avg_pool2d, adaptive_*_pool2d), so it
also writes the ordinary cases, the same ops torch's own translation would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx
import torch
from onnxscript import opset18 as op


def pool_size(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """torch's output size of a pool along one axis (aten's pooling_output_shape)."""
    span = d * (k - 1) + 1
    n = size + 2 * p - span
    out = (-(-n // s) if ceil else n // s) + 1
    if ceil and (out - 1) * s >= size + p:  # a last window starting in the right padding is dropped
        out -= 1
    return out


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive pooling windows along one axis: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def _pair(v: Sequence[int] | int, default: Sequence[int] | None = None) -> list[int]:
    if isinstance(v, int):
        return [v, v]
    v = list(v)
    if not v:
        return list(default) if default is not None else []
    return v * 2 if len(v) == 1 else v


def _spatial(x) -> tuple[int, int] | None:
    """The input's height and width, or None where they are dynamic (a spec's `input [3, H, W]`)."""
    h, w = x.shape[-2], x.shape[-1]
    if not isinstance(h, int) or not isinstance(w, int):
        return None
    return h, w


def _dynamic(what: str):
    # archspec refuses such a pool at `check --target onnx` (and before compiling) with the layer's position
    raise ValueError(f"{what} of a dynamic height or width has no exact ONNX form")


def _end_padding(sizes, kernel, stride, padding, dilation, ceil) -> tuple[list[int], list[int]]:
    """(torch's output sizes, the extra end padding per axis that makes floor mode give them)."""
    outs, extra = [], []
    for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation):
        out = pool_size(n, k, s, p, d, ceil)
        outs.append(out)
        extra.append(max(0, (out - 1) * s + d * (k - 1) + 1 - (n + 2 * p)))
    return outs, extra


def max_pool2d(self, kernel_size, stride=(), padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    kernel = _pair(kernel_size)
    stride, padding, dilation = _pair(stride, kernel), _pair(padding), _pair(dilation)
    sizes = _spatial(self)
    if sizes is None:  # dynamic sizes: floor mode needs none of them
        if ceil_mode:
            _dynamic("a ceil-mode max pool")
        return _first(op.MaxPool(self, kernel_shape=kernel, strides=stride, pads=[*padding, *padding],
                                 dilations=dilation, ceil_mode=0))
    _, extra = _end_padding(sizes, kernel, stride, padding, dilation, ceil_mode)
    begin, end = padding, [p + e for p, e in zip(padding, extra)]
    if any(e >= k for e, k in zip(end, kernel)):  # ONNX pads must stay below the kernel: pad explicitly
        lowest = op.CastLike(op.Constant(value_float=-math.inf), self)
        self = op.Pad(self, op.Constant(value_ints=[0, 0, *begin, 0, 0, *end]), lowest)
        begin, end = [0, 0], [0, 0]
    return _first(op.MaxPool(self, kernel_shape=kernel, strides=stride, pads=[*begin, *end], dilations=dilation,
                             ceil_mode=0))


def _first(outputs):
    """The values of a MaxPool (onnxscript gives its optional indices output too)."""
    return outputs[0] if isinstance(outputs, tuple) else outputs


def avg_pool2d(self, kernel_size, stride=(), padding=(0, 0), ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    kernel = _pair(kernel_size)
    stride, padding = _pair(stride, kernel), _pair(padding)
    sizes = _spatial(self)
    if sizes is None:  # dynamic sizes: in floor mode no window passes the padded input, so ONNX's divisor is torch's
        if ceil_mode or divisor_override:
            _dynamic("a ceil-mode average pool, or one with a divisor,")
        return op.AveragePool(self, kernel_shape=kernel, strides=stride, pads=[*padding, *padding],
                              count_include_pad=int(count_include_pad), ceil_mode=0)
    outs, extra = _end_padding(sizes, kernel, stride, padding, (1, 1), ceil_mode)
    end = [p + e for p, e in zip(padding, extra)]
    if not divisor_override and (not count_include_pad or not any(extra)):
        # ONNX's divisor is torch's: the window (no window is cut short by the end of the padded input)
        # or, not counting padding, the part of the window inside the input, however it is padded.
        return op.AveragePool(self, kernel_shape=kernel, strides=stride, pads=[*padding, *end],
                              count_include_pad=int(count_include_pad), ceil_mode=0)
    # The mean over a zero-padded window, times window size / torch's divisor for each output.
    zero = op.CastLike(op.Constant(value_float=0.0), self)
    padded = op.Pad(self, op.Constant(value_ints=[0, 0, *padding, 0, 0, *end]), zero)
    mean = op.AveragePool(padded, kernel_shape=kernel, strides=stride, count_include_pad=1, ceil_mode=0)
    ratio = kernel[0] * kernel[1] / _divisors(sizes, outs, kernel, stride, padding, divisor_override)
    scale = op.CastLike(op.Constant(value=onnx.numpy_helper.from_array(ratio.astype(np.float32))), self)
    return op.Mul(mean, scale)


def _divisors(sizes, outs, kernel, stride, padding, divisor_override) -> np.ndarray:
    """torch's divisor for each output position, [1, 1, oh, ow], counting padding: each window cut at the
    end of the padded input (aten's avg_pool2d: hend = min(hstart + kH, H + padH))."""
    if divisor_override:
        return np.full((1, 1, *outs), float(divisor_override))
    per_axis = []
    for out, n, k, s, p in zip(outs, sizes, kernel, stride, padding):
        per_axis.append(np.array([min(i * s - p + k, n + p) - (i * s - p) for i in range(out)], dtype=np.float64))
    return np.outer(*per_axis).reshape(1, 1, *outs)


def _adaptive(self, output_size, reduce, pool):
    sizes = _spatial(self)
    if sizes is None:
        if all(o == 1 for o in output_size):  # a global pool takes any size
            return reduce(self, op.Constant(value_ints=[2, 3]), keepdims=1)
        _dynamic("an adaptive pool to a size other than 1")
    h, w = sizes
    oh, ow = (output_size[0] if output_size[0] is not None else h), (output_size[-1] if output_size[-1] is not None
                                                                      else w)
    if h % oh == 0 and w % ow == 0:  # even windows: one ordinary pool
        kernel = [h // oh, w // ow]
        return pool(self, kernel_shape=kernel, strides=kernel)
    for axis, size, out in ((2, h, oh), (3, w, ow)):
        if size % out == 0:
            k = size // out
            kernel, strides = ([k, 1], [k, 1]) if axis == 2 else ([1, k], [1, k])
            self = pool(self, kernel_shape=kernel, strides=strides)
            continue
        parts = []
        for start, end in adaptive_windows(size, out):
            part = op.Slice(self, op.Constant(value_ints=[start]), op.Constant(value_ints=[end]),
                            op.Constant(value_ints=[axis]))
            parts.append(reduce(part, op.Constant(value_ints=[axis]), keepdims=1))
        self = op.Concat(*parts, axis=axis)
    return self


def adaptive_avg_pool2d(self, output_size):
    return _adaptive(self, output_size, op.ReduceMean, op.AveragePool)


def adaptive_max_pool2d(self, output_size):
    values = _adaptive(self, output_size, op.ReduceMax, lambda x, **kw: _first(op.MaxPool(x, **kw)))
    return values, op.Cast(values, to=onnx.TensorProto.INT64)  # torch returns indices too; nothing reads them


def translations() -> dict:
    """The custom translation table for torch.onnx.export(..., custom_translation_table=...)."""
    aten = torch.ops.aten
    return {
        aten.max_pool2d.default: max_pool2d,
        aten.avg_pool2d.default: avg_pool2d,
        aten.adaptive_avg_pool2d.default: adaptive_avg_pool2d,
        aten.adaptive_max_pool2d.default: adaptive_max_pool2d,
    }
