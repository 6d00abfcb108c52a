"""The shape rules of the nodes `add`, `mul` and `concat` lower into.

`add` and `mul` broadcast as torch does, checked statically: a squeeze-and-excitation gate of
shape [C, 1, 1] times a [C, H, W] map is [C, H, W]. A learned tensor (`param`) has no batch
dimension; it broadcasts against batched tensors with its leading dimension against the batch,
as `x + self.pos_embedding` does in torch. `concat` joins batched tensors along one dimension
(channels, 0, by default), every other dimension equal; a learned tensor whose leading size is 1 joins
them expanded to the batch, as ViT's `class_token.expand(n, -1, -1)`.
"""

from __future__ import annotations

from ..layers import ShapeProblem, dim_index
from ..summary import show_shape

BATCH = "N"


def combine_shape(kind: str, values: list[tuple[tuple[int, ...], bool, object]], dim: int = 0):
    """(output shape without the batch, batched) of `kind` over branch values (shape, batched, span)."""
    if kind == "concat":
        return _concat(values, dim), True
    return _broadcast(kind, values)


def _full(shape: tuple[int, ...], batched: bool) -> tuple:
    return (BATCH, *shape) if batched else shape


def _broadcast(kind: str, values) -> tuple[tuple[int, ...], bool]:
    first = _full(values[0][0], values[0][1])
    out = list(first)
    for i, (shape, batched, _) in enumerate(values[1:], start=2):
        other = _full(shape, batched)
        n = max(len(out), len(other))
        a, b = [1] * (n - len(out)) + out, [1] * (n - len(other)) + list(other)
        merged = []
        for x, y in zip(a, b):
            if _one(y):  # a 1 broadcasts first, so that a symbolic size is never asked whether it is 1
                merged.append(x)
            elif _one(x):
                merged.append(y)
            elif x == y:  # two symbolic sizes: equal at every valid size (a constraint)
                merged.append(x)
            else:
                raise _mismatch(kind, "branches must have shapes that broadcast", values, i)
        out = merged
    if BATCH in out:
        if out[0] != BATCH or out.count(BATCH) != 1:
            raise _mismatch(kind, "a tensor without the batch would broadcast the batch into another dimension",
                            values, len(values))
        return tuple(out[1:]), True
    return tuple(out), False


def _one(v) -> bool:
    return type(v) is int and v == 1


def _concat(values, dim: int) -> tuple[int, ...]:
    if not any(batched for _, batched, _ in values) or \
            any(not batched and not (shape and _one(shape[0])) for shape, batched, _ in values):
        raise ShapeProblem("E403", "concat: a tensor without the batch (`param`) joins batched ones only with a "
                                   "leading size 1, which is expanded to the batch (ViT's class token)")
    values = [(shape if batched else shape[1:], True, span) for shape, batched, span in values]
    first = values[0][0]
    d = dim_index(dim, first, "concat")
    for i, (shape, _, _) in enumerate(values[1:], start=2):
        if len(shape) != len(first) or any(a != b for k, (a, b) in enumerate(zip(first, shape)) if k != d):
            what = "channels" if d == 0 else f"dimension {d}"
            raise _mismatch("concat", f"branches must agree on every dimension but {what}", values, i, "E403")
    return (*first[:d], sum(shape[d] for shape, _, _ in values), *first[d + 1:])


def _mismatch(kind: str, message: str, values, i: int, code: str = "E402") -> ShapeProblem:
    def shown(k: int) -> str:
        shape, batched, _ = values[k]
        return show_shape(list(shape)) + ("" if batched else " (no batch)")
    problem = ShapeProblem(code, f"{kind}: {message}: branch 1 gives {shown(0)}, branch {i} gives {shown(i - 1)}",
                           f"branch 1 is at {values[0][2]}", f"branch {i} is at {values[i - 1][2]}")
    problem.span = values[i - 1][2]  # type: ignore[attr-defined]  (the branch that does not fit)
    return problem
