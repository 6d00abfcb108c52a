"""Tensor plumbing: flatten, reshape, permute, transpose, slices, channel shuffle, and learned tensors.

Dimensions are counted without the batch: 0 is the channels (torch's 1). None of these has
parameters or MACs except `param`, a learned tensor of its own shape (not batched), which other
nodes use as an operand (`mul { identity  @scale }`).
"""

from __future__ import annotations

from math import prod

from ..escape import py_value
from . import Arg, Layer, Shape, ShapeProblem, dim_index, register, rf_whole, torch_dim


def flatten_shape(a: dict, x: Shape) -> Shape:
    if not x:
        return x
    start, end = dim_index(a["start_dim"], x, "flatten", "start_dim"), dim_index(a["end_dim"], x, "flatten", "end_dim")
    if start > end:
        raise ShapeProblem("E302", f"flatten: start_dim {a['start_dim']} comes after end_dim {a['end_dim']} for an "
                                   f"input of shape {list(x)}")
    return (*x[:start], prod(x[start:end + 1]), *x[end + 1:])


def _flatten_call(a: dict, x: str) -> str:
    start, end = torch_dim(a["start_dim"]), torch_dim(a["end_dim"])
    return f"torch.flatten({x}, {start})" if end == -1 else f"torch.flatten({x}, {start}, {end})"


def reshape_shape(a: dict, x: Shape) -> Shape:
    sizes = list(a["shape"])
    unknown = [i for i, n in enumerate(sizes) if n == -1]
    if len(unknown) > 1 or any(n < -1 or n == 0 for n in sizes):
        raise ShapeProblem("E302", f"reshape: sizes must be positive, with at most one -1, got {sizes}")
    total, known = prod(x), prod(n for n in sizes if n != -1)
    if unknown:
        if total % known:
            raise ShapeProblem("E409", f"reshape: {list(x)} ({total:,} values) cannot be arranged as {sizes}")
        sizes[unknown[0]] = total // known
    if prod(sizes) != total:
        raise ShapeProblem("E409", f"reshape: {list(x)} holds {total:,} values, {sizes} needs {prod(sizes):,}")
    return tuple(sizes)


def permute_shape(a: dict, x: Shape) -> Shape:
    dims = [dim_index(d, x, "permute") for d in a["dims"]]
    if sorted(dims) != list(range(len(x))):
        raise ShapeProblem("E302", f"permute: dims {list(a['dims'])} must name each of the {len(x)} dimensions of "
                                   f"{list(x)} once")
    return tuple(x[d] for d in dims)


def transpose_shape(a: dict, x: Shape) -> Shape:
    d0, d1 = dim_index(a["dim0"], x, "transpose", "dim0"), dim_index(a["dim1"], x, "transpose", "dim1")
    y = list(x)
    y[d0], y[d1] = y[d1], y[d0]
    return tuple(y)


def slice_shape(a: dict, x: Shape) -> Shape:
    d = dim_index(a["dim"], x, "slice")
    start, end = a["start"], a["end"] if a["end"] is not None else x[d]
    if not 0 <= start < end <= x[d]:
        raise ShapeProblem("E302", f"slice: [{start}, {end}) is not a non-empty range of dimension {a['dim']} "
                                   f"(size {x[d]})")
    return (*x[:d], end - start, *x[d + 1:])


def select_shape(a: dict, x: Shape) -> Shape:
    d = dim_index(a["dim"], x, "select")
    if not -x[d] <= a["index"] < x[d]:
        raise ShapeProblem("E302", f"select: index {a['index']} is out of range for dimension {a['dim']} "
                                   f"(size {x[d]})")
    return (*x[:d], *x[d + 1:])


def chunk_shape(a: dict, x: Shape) -> Shape:
    d = dim_index(a["dim"], x, "chunk")
    size = -(-x[d] // a["chunks"])  # torch.chunk: chunks of ceil(n / chunks), the last smaller
    start = a["index"] * size
    if start >= x[d]:
        raise ShapeProblem("E302", f"chunk: dimension {a['dim']} of size {x[d]} in chunks of {size} has no chunk "
                                   f"{a['index']}")
    return (*x[:d], min(size, x[d] - start), *x[d + 1:])


def shuffle_shape(a: dict, x: Shape) -> Shape:
    if len(x) != 3:
        raise ShapeProblem("E405", f"channel_shuffle expects a (channels, height, width) input, got {list(x)}")
    if x[0] % a["groups"]:
        raise ShapeProblem("E404", f"channel_shuffle: groups {a['groups']} does not divide the channels {x[0]}")
    return x


def param_shape(a: dict, x: Shape) -> Shape:
    if not a["shape"] or any(n < 1 for n in a["shape"]):
        raise ShapeProblem("E302", f"param: a shape of positive sizes is needed, got {list(a['shape'])}")
    if a["init"] == "normal" and a["std"] <= 0:
        raise ShapeProblem("E302", f"param: init \"normal\" needs std above 0, got {a['std']}")
    return tuple(a["shape"])


def param_init(a: dict) -> str:
    """The expression that creates the tensor, as torchvision writes its own."""
    shape = ", ".join(map(str, a["shape"]))
    if a["init"] == "zeros":
        return f"torch.zeros({shape})"
    if a["init"] == "ones":
        return f"torch.ones({shape})"
    if a["init"] == "constant":
        return f"torch.full(({shape}{',' if len(a['shape']) == 1 else ''}), {py_value(float(a['value']))})"
    return f"torch.randn({shape}) * {py_value(float(a['std']))}"


def _dims_call(a: dict) -> str:
    return "[0, " + ", ".join(str(torch_dim(d) if d >= 0 else d) for d in a["dims"]) + "]"


register(
    Layer("flatten", "join dimensions start_dim..end_dim (without the batch) into one",
          (Arg("start_dim", "dim", 0, to_torch=torch_dim), Arg("end_dim", "dim", -1, to_torch=torch_dim)),
          flatten_shape, "nn.Flatten", rf=rf_whole, functional=_flatten_call, category="shape"),
    Layer("reshape", "the same values in another shape (without the batch); one size may be -1",
          (Arg("shape", "sizes", to_torch=list),), reshape_shape, "Reshape",
          functional=lambda a, x: f"{x}.reshape({x}.shape[0], {', '.join(map(str, a['shape']))})",
          helpers=("Reshape",), rf=rf_whole, category="shape"),
    Layer("permute", "reorder the dimensions (without the batch): permute((1, 2, 0)) makes (C, H, W) (H, W, C)",
          (Arg("dims", "dims", to_torch=lambda d: [0, *(torch_dim(x) for x in d)]),), permute_shape, "Permute",
          functional=lambda a, x: f"torch.permute({x}, {_dims_call(a)})", helpers=("Permute",), category="shape"),
    Layer("transpose", "swap two dimensions (without the batch)",
          (Arg("dim0", "dim", to_torch=torch_dim), Arg("dim1", "dim", to_torch=torch_dim)), transpose_shape,
          "Transpose",
          functional=lambda a, x: f"{x}.transpose({torch_dim(a['dim0'])}, {torch_dim(a['dim1'])})",
          helpers=("Transpose",), category="shape"),
    Layer("slice", "the range [start, end) of a dimension (channels by default)",
          (Arg("start", "count0"), Arg("end", "count"), Arg("dim", "dim", 0, to_torch=torch_dim)), slice_shape,
          "Slice",
          functional=lambda a, x: _narrow(a, x), helpers=("Slice",), category="shape"),
    Layer("select", "one index of a dimension, which disappears (ViT's class token: select(0))",
          (Arg("index", "int"), Arg("dim", "dim", 0, to_torch=torch_dim)), select_shape, "Select",
          functional=lambda a, x: f"{x}.select({torch_dim(a['dim'])}, {a['index']})", helpers=("Select",),
          category="shape"),
    Layer("chunk", "chunk `index` of `chunks` equal parts of a dimension (channels by default), as torch.chunk",
          (Arg("chunks", "count"), Arg("index", "count0"), Arg("dim", "dim", 0, to_torch=torch_dim)),
          chunk_shape, "Chunk", functional=lambda a, x: f"{x}.chunk({a['chunks']}, dim={torch_dim(a['dim'])})"
          f"[{a['index']}]", helpers=("Chunk",), category="shape"),
    Layer("channel_shuffle", "interleave the channels of `groups` groups (ShuffleNet)",
          (Arg("groups", "count"),), shuffle_shape, "ChannelShuffle",
          functional=lambda a, x: f"channel_shuffle({x}, {a['groups']})", helpers=("channel_shuffle",
                                                                                   "ChannelShuffle"),
          category="shape"),
    Layer("param", "a learned tensor of the given shape, not batched, as an operand (`mul { identity  @scale }`); "
          "init zeros, ones, constant (value) or normal (std)",
          (Arg("shape", "dims", torch=None), Arg("init", "str", "zeros", torch=None,
                                                 choices=("zeros", "ones", "constant", "normal")),
           Arg("value", "number", 0.0, torch=None), Arg("std", "number", 1.0, torch=None)),
          param_shape, "nn.Parameter", weights=lambda a, x: {"": tuple(a["shape"])}, sources=0, category="tensor"),
)


def _narrow(a: dict, x: str) -> str:
    return f"{x}[{', '.join([':'] * (torch_dim(a['dim'])))}, {a['start']}:{a['end']}]" if a["dim"] >= 0 \
        else f"{x}.narrow({a['dim']}, {a['start']}, {a['end'] - a['start']})"
