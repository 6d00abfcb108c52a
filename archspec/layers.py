"""The layer catalogue: each layer's arguments, in PyTorch's order and with its defaults.

Resolution checks calls against these signatures, expansion uses them to bind and normalise
arguments, codegen to write the constructor call. Input channels and features are never
arguments: they are inferred, as LazyConv2d and LazyLinear do, but statically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

REQUIRED = object()


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str  # a key of COERCE
    default: Any = REQUIRED


def _int(v: Any, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"expected an int, got {type_name(v)} `{show(v)}`")
    if v < low:
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


def _float(v: Any, low: float, high: float, low_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"expected a number, got {type_name(v)} `{show(v)}`")
    if v < low or v > high or (low_open and v == low):
        bound = f"in ({low}, {high}]" if low_open else f"in [{low}, {high}]"
        raise ValueError(f"must be {bound}, got {v}")
    return float(v)


# kind -> function that checks a value and returns it normalised (pairs become (h, w)).
COERCE: dict[str, Callable[[Any], Any]] = {
    "count": lambda v: _int(v, 1),
    "pair1": lambda v: _pair(v, 1),
    "pair0": lambda v: _pair(v, 0),
    "stride": lambda v: None if v is None else _pair(v, 1),
    "bool": _bool,
    "prob": lambda v: _float(v, 0.0, 1.0),
    "fraction": lambda v: _float(v, 0.0, 1.0),
    "epsilon": lambda v: _float(v, 0.0, 1.0, low_open=True),
}

_BN = (Arg("eps", "epsilon", 1e-5), Arg("momentum", "fraction", 0.1), Arg("affine", "bool", True))
_POOL = (Arg("kernel", "pair1"), Arg("stride", "stride", None), Arg("padding", "pair0", 0))

LAYERS: dict[str, tuple[Arg, ...]] = {
    "conv2d": (Arg("out_channels", "count"), Arg("kernel", "pair1"), Arg("stride", "pair1", 1),
               Arg("padding", "pair0", 0), Arg("dilation", "pair1", 1), Arg("groups", "count", 1),
               Arg("bias", "bool", True)),
    "maxpool2d": _POOL + (Arg("dilation", "pair1", 1), Arg("ceil_mode", "bool", False)),
    "avgpool2d": _POOL + (Arg("ceil_mode", "bool", False), Arg("count_include_pad", "bool", True)),
    "adaptive_avgpool2d": (Arg("output_size", "pair1"),),
    "adaptive_maxpool2d": (Arg("output_size", "pair1"),),
    "linear": (Arg("out_features", "count"), Arg("bias", "bool", True)),
    "flatten": (),
    "batchnorm2d": _BN,
    "batchnorm1d": _BN,
    "dropout": (Arg("p", "prob", 0.5),),
    "relu": (),
    "sigmoid": (),
    "tanh": (),
    "gelu": (),
    "identity": (),
}


def type_name(v: Any) -> str:
    return {bool: "bool", int: "int", float: "float", list: "list", tuple: "tuple", str: "str"}.get(type(v), "value")


SHOWN = 80  # the most characters of a value an error message quotes


def show(v: Any, limit: int = SHOWN) -> str:
    """A value as the language writes it, cut to about `limit` characters (`...` where cut).

    The walk stops once the text is long enough, so a huge or deeply shared list costs no more
    than a short one to show."""
    out: list[str] = []
    size = 0
    stack: list[Any] = [v]
    while stack:
        item = stack.pop()
        if isinstance(item, _Text):
            piece = item.text
        elif isinstance(item, bool):
            piece = "true" if item else "false"
        elif isinstance(item, (list, tuple)):
            close = "]" if isinstance(item, list) else ("," if len(item) == 1 else "") + ")"
            stack.append(_Text(close if len(item) <= limit else ", ..." + close))
            shown = item[:limit]  # no more items than characters to show
            for i, x in enumerate(reversed(shown)):
                stack.append(x)
                if i < len(shown) - 1:
                    stack.append(_Text(", "))
            piece = "[" if isinstance(item, list) else "("
        elif item is None:
            piece = "none"
        elif isinstance(item, str):
            piece = '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
        elif isinstance(item, int) and item.bit_length() > 4 * limit:
            piece = f"<an int of {item.bit_length():,} bits>"
        else:
            piece = repr(item)
        out.append(piece)
        size += len(piece)
        if size > limit:
            return "".join(out)[:limit] + "..."
    return "".join(out)


class _Text:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text
