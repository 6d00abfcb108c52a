"""The layer registry: every layer kind is one record, and everything about it lives there.

A record holds the layer's signature (arguments with types, defaults, PyTorch's keyword for
each, the values a string argument takes), its shape rule, its learned parameters and buffers
(so its parameter count), its MACs, its receptive-field rule, how it is written in torch (a
module, and a function call where it has no state), whether it may work in place, how training
initialises it, and a line of documentation. Resolution, expansion, shape inference, the
summary, codegen, the interpreter check, `archspec layers` and the docs' layer table all read
these records; adding a layer means adding a record (tests/test_layers.py checks that every
record is complete and that docs/language.md lists it).

Shapes leave out the batch dimension, and so do the dimensions a spec writes: `flatten` starts
at dimension 0, the channels, which is torch's dimension 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from math import prod
from typing import Any, Callable

from ..values import show, type_name

REQUIRED = object()
Shape = tuple[int, ...]
RF = tuple[Fraction, Fraction, Fraction, Fraction]  # size h, size w, jump h, jump w
MAX_DIM = 2**31 - 1  # the largest size a tensor dimension may have


class ShapeProblem(Exception):
    """A shape rule's refusal; shape inference adds the position."""

    def __init__(self, code: str, message: str, *notes: str):
        super().__init__(message)
        self.code, self.message, self.notes = code, message, notes


# ---- argument kinds: each checks a value and returns it normalised ----------------------------------

def _int(v: Any, low: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"expected an int, got {type_name(v)} `{show(v)}`")
    if low is not None and v < low:
        raise ValueError(f"must be at least {low}, got {v}")
    return v


def _pair(v: Any, low: int) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise TypeError(f"expected an int or an (h, w) pair, got {len(v)} values `{show(v)}`")
        return (_int(v[0], low), _int(v[1], low))
    return (_int(v, low),) * 2


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"expected true or false, got {type_name(v)} `{show(v)}`")
    return v


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"expected a number, got {type_name(v)} `{show(v)}`")
    return float(v)


def _float(v: Any, low: float, high: float, low_open: bool = False) -> float:
    x = _number(v)
    if x < low or x > high or (low_open and x == low):
        bound = f"in ({low}, {high}]" if low_open else f"in [{low}, {high}]"
        raise ValueError(f"must be {bound}, got {show(v)}")
    return x


def _ints(v: Any, low: int | None = None) -> tuple[int, ...]:
    if isinstance(v, (list, tuple)):
        return tuple(_int(x, low) for x in v)
    return (_int(v, low),)


def _positive_floats(v: Any) -> tuple[float, float]:
    vals = tuple(v) if isinstance(v, (list, tuple)) else (v, v)
    if len(vals) != 2:
        raise TypeError(f"expected a number or an (h, w) pair, got `{show(v)}`")
    out = tuple(_number(x) for x in vals)
    if any(x <= 0 for x in out):
        raise ValueError(f"must be above 0, got {show(v)}")
    return out  # type: ignore[return-value]


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"expected a string, got {type_name(v)} `{show(v)}`")
    return v


def _optional(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else kind(v)


def _tensor(v: Any) -> Any:
    from ..values import TensorRef

    if not isinstance(v, TensorRef):
        raise TypeError(f"expected a tensor such as `@name`, got {type_name(v)} `{show(v)}`")
    return v


COERCE: dict[str, Callable[[Any], Any]] = {
    "count": lambda v: _int(v, 1),
    "count0": lambda v: _int(v, 0),
    "int": _int,
    "dim": _int,  # checked against the input's rank by the shape rule
    "dims": _ints,
    "sizes": lambda v: _ints(v),  # a shape; -1 for one inferred size, checked by the rule
    "pair1": lambda v: _pair(v, 1),
    "pair0": lambda v: _pair(v, 0),
    "stride": lambda v: None if v is None else _pair(v, 1),
    "pads": lambda v: _ints(v, 0),
    "bool": _bool,
    "optional_bool": _optional(_bool),
    "prob": lambda v: _float(v, 0.0, 1.0),
    "fraction": lambda v: _float(v, 0.0, 1.0),
    "optional_fraction": _optional(lambda v: _float(v, 0.0, 1.0)),
    "epsilon": lambda v: _float(v, 0.0, 1.0, low_open=True),
    "number": _number,
    "scale": _optional(_positive_floats),
    "size": _optional(lambda v: _pair(v, 1)),
    "tensor": _optional(_tensor),
    "str": lambda v: _str(v),
}


@dataclass(frozen=True)
class Arg:
    """One argument of a layer: its name in a spec, kind, default, and its keyword in the torch module.

    `torch` None: the argument is not passed to the constructor (it shapes the call another way).
    `to_torch` converts the value (a spec's dimension counts without the batch; torch's with it).
    `choices`: the strings a string argument takes (checked, with a located error listing them).
    """

    name: str
    kind: str
    default: Any = REQUIRED
    torch: str | None = ""  # "": the same name
    to_torch: Callable[[Any], Any] | None = None
    choices: tuple[str, ...] = ()
    doc: str = ""
    same_as: str | None = None  # a default of None means the value of this other argument (a pool's stride)
    keep_pair: bool = False  # written as a pair even when square (`output_size=(1, 1)`, as torchvision writes it)

    @property
    def torch_name(self) -> str | None:
        return self.name if self.torch == "" else self.torch

    def coerce(self, v: Any) -> Any:
        v = COERCE[self.kind](v)
        if self.choices and v not in self.choices:
            raise ValueError(f"must be one of {', '.join(map(show, self.choices))}, got {show(v)}")
        return v


def _none(a: dict, x: Shape) -> dict:
    return {}


def _zero(a: dict, x: Shape, y: Shape) -> int:
    return 0


@dataclass(frozen=True)
class Layer:
    """One layer kind. Shapes passed to its rules leave out the batch; tensor arguments (`like=@x`)
    arrive in `a` as the shapes of those tensors."""

    name: str
    doc: str
    args: tuple[Arg, ...]
    shape: Callable[[dict, Shape], Shape]
    module: str | Callable[[dict], str]  # the torch class (`nn.Conv2d`) or a helper class of the generated file;
    # a function of the arguments where they choose the class (`pad`)
    weights: Callable[[dict, Shape], dict[str, Shape]] = _none  # learned parameters: name -> shape
    buffers: Callable[[dict, Shape], dict[str, Shape]] = _none  # running statistics and the like
    macs: Callable[[dict, Shape, Shape], int] = _zero
    rf: Callable[[dict, Shape, RF, RF], RF] | None = None  # (args, input, field, whole input); None: unchanged
    inferred: Callable[[dict, Shape], dict[str, Any]] = _none  # constructor arguments read off the input
    functional: Callable[[dict, str], str] | None = None  # the call that computes it without a module
    inplace: Callable[[dict, str], str] | None = None  # its call overwriting a fresh input that nothing else
    # reads, where it may (`nn.functional.relu(x, inplace=True)`; its module then takes inplace=True)
    fresh: bool = False  # its output is a new tensor that its backward pass does not keep
    init: str = "default"  # `archspec train --init xavier` gives "xavier" layers Xavier-uniform weights
    helpers: tuple[str, ...] = ()  # definitions the generated file needs (codegen/helpers.py)
    sources: int = 1  # inputs it takes: 1, or 0 for a learned tensor
    call: Callable[[str, str], str] | None = None  # how forward calls its module where not `module(x)`:
    # (the module, the input) -> the expression (nn.MultiheadAttention as self-attention)
    fixed: tuple[tuple[str, str], ...] = ()  # constructor keywords always written, after the arguments
    category: str = ""
    aliases: tuple[str, ...] = field(default=())
    # why ONNX cannot compute it exactly at this input (a symbolic size it would need as a number); None: it can
    onnx: Callable[[dict, Shape], str | None] | None = None

    def module_class(self, a: dict) -> str:
        return self.module(a) if callable(self.module) else self.module

    def params(self, a: dict, x: Shape) -> int:
        return sum(prod(s) for s in self.weights(a, x).values())

    def signature(self) -> str:
        parts = []
        for arg in self.args:
            if arg.default is REQUIRED:
                parts.append(arg.name)
            else:
                parts.append(f"{arg.name}={show(arg.default)}")
        return f"{self.name}({', '.join(parts)})" if parts else self.name


LAYERS: dict[str, Layer] = {}


def register(*layers: Layer) -> None:
    for layer in layers:
        if layer.name in LAYERS:
            raise ValueError(f"layer {layer.name} registered twice")
        LAYERS[layer.name] = layer


# ---- rules shared by several layers ----------------------------------------------------------------

def need_rank(x: Shape, layer: str, ranks: tuple[int, ...], what: str) -> None:
    if len(x) not in ranks:
        raise ShapeProblem("E405", f"{layer} expects {what}, got a tensor of shape {list(x)} (rank {len(x)} "
                                   "without the batch)")


def image(x: Shape, layer: str) -> None:
    need_rank(x, layer, (3,), "a (channels, height, width) input")


def window(layer: str, axis: str, size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """PyTorch's output-size formula for a sliding window, with its ceil_mode correction."""
    span = d * (k - 1) + 1
    n = size + 2 * p - span
    if not ceil:
        out = n // s + 1
    elif p + s - span > 0:
        # torch drops a last window that would start at or past size + p: the windows that start
        # before it, ceil((size + p) / s), are fewer than ceil(n / s) + 1 by at most one, and here
        # never more (a closed form, so a symbolic size needs no branch)
        out = (size + p + s - 1) // s
    else:
        out = (n + s - 1) // s + 1  # ceil(n / s) + 1: no window can start that late
    if out < 1:  # with ceil_mode a window may overhang the padded input and still give one output
        kernel = f"kernel {k}" if d == 1 else f"dilated kernel {span} (= {d}*({k}-1)+1)"
        raise ShapeProblem("E401", f"{layer}: output {axis} would be zero or less: {kernel} > input {size} + "
                                   f"2*padding {p}")
    return out


def spatial(layer: str, x: Shape, k, s, p, d, ceil: bool = False) -> tuple[int, int]:
    return (window(layer, "height", x[1], k[0], s[0], p[0], d[0], ceil),
            window(layer, "width", x[2], k[1], s[1], p[1], d[1], ceil))


def same(a: dict, x: Shape) -> Shape:
    return x


def channels(a: dict, x: Shape) -> dict[str, Shape]:
    """Per-channel scale and shift (batch norm's weight and bias)."""
    return {"weight": (x[0],), "bias": (x[0],)}


def dim_index(d: int, x: Shape, layer: str, what: str = "dim") -> int:
    """A dimension of the input (without the batch), negative counting from the end, checked."""
    if not -len(x) <= d < len(x):
        raise ShapeProblem("E405", f"{layer}: {what} {d} is out of range for an input of shape {list(x)} "
                                   f"(dimensions 0 to {len(x) - 1} without the batch, or -1 to -{len(x)})")
    return d % len(x)


def torch_dim(d: int) -> int:
    """A spec's dimension (without the batch) as torch counts it (with the batch first)."""
    return d + 1 if d >= 0 else d


def rf_window(a: dict, x: Shape, rf: RF, whole: RF) -> RF:
    k, s = a["kernel"], a["stride"]
    d = a.get("dilation", (1, 1))
    return (rf[0] + d[0] * (k[0] - 1) * rf[2], rf[1] + d[1] * (k[1] - 1) * rf[3], rf[2] * s[0], rf[3] * s[1])


def rf_whole(a: dict, x: Shape, rf: RF, whole: RF) -> RF:
    return whole


def rf_features(a: dict, x: Shape, rf: RF, whole: RF) -> RF:
    """A layer on the last dimension: of a flat vector it sees everything; of a [H, W, C] map (channels
    last), each position on its own."""
    return whole if len(x) <= 1 else rf


def literal(v: Any) -> str:
    """A Python literal for an argument value; a square pair reads as one number."""
    from ..escape import py_value

    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] and not isinstance(v[0], (tuple, list)):
        return py_value(v[0])
    return py_value(v)


def check_dim(n: int, layer: str) -> int:
    if isinstance(n, int) and n > MAX_DIM:  # a symbolic size (archspec/sizes.py) is checked once it is a number
        raise ShapeProblem("E408", f"{layer}: a dimension of {n:,} is absurdly large")
    return n


def fraction(x: float) -> Fraction:
    return Fraction(x).limit_denominator(1 << 20) if not isinstance(x, int) else Fraction(x)


def finite(x: float, what: str, layer: str) -> float:
    if not math.isfinite(x):
        raise ShapeProblem("E302", f"{layer}: {what} is not finite")
    return x


from . import activation, attention, conv, norm, pool, regularize, resample, tensor  # noqa: E402,F401  (they register)


def markdown_table() -> str:
    """docs/language.md's layer table, from the records (tests/test_layers.py keeps the docs equal to it)."""
    rows = ["| layer | torch | what it computes |", "|---|---|---|"]
    for name in sorted(LAYERS, key=lambda n: (LAYERS[n].category, n)):
        layer = LAYERS[name]
        torch = layer.module if isinstance(layer.module, str) else "by `mode`"
        rows.append(f"| `{layer.signature()}` | `{torch}` | {layer.doc} ({layer.category}) |")
    return "\n".join(rows)

__all__ = ["Arg", "COERCE", "LAYERS", "Layer", "REQUIRED", "RF", "Shape", "ShapeProblem", "register"]
