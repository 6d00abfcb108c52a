"""Share one class among instances of a block that differ only in literal numbers.

The class bodies of the instances are compared token by token with their literals blanked
out; instances with the same skeleton share a class whose constructor takes the literals
that differ. Each such parameter is named after the block parameter (or the input channel
count) whose value it carries in every instance, so `Residual(in_channels=64, channels=128,
stride=2)` reads as the spec's `residual(128, stride=2)` does.
"""

from __future__ import annotations

import ast
import io
import keyword
import tokenize
from dataclasses import dataclass
from typing import Any

from ..escape import py_value
from ..names import Namespace


@dataclass
class Variant:
    node: Any  # the ir.Node this class body was written for
    body: list[str]
    names: dict[str, Any]  # candidate parameter names -> this instance's value


@dataclass
class Shared:
    variants: list[Variant]
    params: list[tuple[str, str]]  # (name, annotation)
    body: list[str]
    call_args: list[list[str]]  # per variant, the constructor's arguments


@dataclass
class _Literal:
    start: int  # offsets into the body text
    end: int
    keyword: str  # the argument it is given to (`stride`), or ""
    owner: str  # the attribute being assigned (`conv2` in `self.conv2 = ...`), or ""


def _literals(text: str) -> list[_Literal]:
    starts = [0]
    for line in text.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    out, owner = [], ""
    for i, t in enumerate(toks):
        if t.string == "=" and i >= 3 and toks[i - 3].string == "self" and toks[i - 2].string == ".":
            owner = toks[i - 1].string
        if t.type == tokenize.NUMBER or (t.type == tokenize.NAME and t.string in ("True", "False")):
            out.append(_Literal(starts[t.start[0] - 1] + t.start[1], starts[t.end[0] - 1] + t.end[1],
                                _keyword_before(toks, i), owner))
    return out


def _keyword_before(toks: list[tokenize.TokenInfo], i: int) -> str:
    j = i - 1
    while j > 0 and (toks[j].type == tokenize.NUMBER or toks[j].string in (",", "(")):
        j -= 1
    if j > 0 and toks[j].string == "=" and toks[j - 1].type == tokenize.NAME:
        return toks[j - 1].string
    return ""


def _skeleton(text: str, lits: list[_Literal]) -> str:
    parts, last = [], 0
    for lit in lits:
        parts += [text[last:lit.start], "#"]
        last = lit.end
    return "".join(parts) + text[last:]


def parametrize(variants: list[Variant], scope: Namespace) -> list[Shared]:
    """Group instances by skeleton; `scope` is the file's namespace, which constructor parameters avoid."""
    groups: dict[str, list[tuple[Variant, str, list[_Literal]]]] = {}
    for v in variants:
        text = "\n".join(v.body)
        lits = _literals(text)
        groups.setdefault(_skeleton(text, lits), []).append((v, text, lits))
    return [_share(members, scope) for members in groups.values()]


def _share(members: list[tuple[Variant, str, list[_Literal]]], scope: Namespace) -> Shared:
    first, text, lits = members[0]
    variants = [m[0] for m in members]
    values = [[ast.literal_eval(t[lit.start:lit.end]) for lit in ls] for _, t, ls in members]
    varying = [i for i in range(len(lits)) if any(vals[i] != values[0][i] for vals in values)]
    exprs: dict[tuple, str] = {}  # a column of values -> the expression written for it
    taken = {"self", "x"}
    chosen: dict[int, str] = {}
    for i in varying:
        column = tuple(vals[i] for vals in values)
        if column not in exprs:
            exprs[column] = _name_for(column, lits[i], variants, taken)
            taken.add(_param(exprs[column]))
        chosen[i] = exprs[column]
    order = list(dict.fromkeys(_param(chosen[i]) for i in sorted(chosen)))
    # A spec's parameter may be named `self`, `lambda` or `nn`: Python's name for it comes from the
    # namespace, which avoids keywords, builtins, the file's globals and classes, and `self` and `x`.
    local = Namespace(scope)
    local.take("self")
    local.take("x")
    python = {n: local.create(n) for n in order}
    body = text
    for i in sorted(chosen, reverse=True):
        expr = chosen[i]
        renamed = python[_param(expr)] + expr[len(_param(expr)):]
        body = body[: lits[i].start] + renamed + body[lits[i].end:]
    value_of = {}  # parameter -> its value in each variant
    for column, expr in exprs.items():
        name = _param(expr)
        value_of[name] = [v.names[name] for v in variants] if expr != name else list(column)
    params = [(python[n], type(value_of[n][0]).__name__) for n in order]
    if params:
        body = body.replace("def __init__(self) -> None:", signature(params), 1)
    calls = [[f"{python[n]}={py_value(value_of[n][k])}" for n in order] for k in range(len(members))]
    return Shared(variants, params, body.split("\n"), calls)


def signature(params: list[tuple[str, str]]) -> str:
    one = "def __init__(self, " + ", ".join(f"{n}: {t}" for n, t in params) + ") -> None:"
    if len(one) <= 100:
        return one
    return "def __init__(\n    self,\n" + "".join(f"    {n}: {t},\n" for n, t in params) + ") -> None:"


def _param(expr: str) -> str:
    return expr.split("[", 1)[0]


def _candidates(names: dict[str, Any]) -> list[tuple[str, str]]:
    """(expression, parameter) pairs: each scalar parameter, and each item of a tuple or list."""
    out = []
    for name, value in names.items():
        if isinstance(value, (list, tuple)):
            out += [(f"{name}[{i}]", name) for i in range(len(value))]
        else:
            out.append((name, name))
    return out


def _item(value: Any, expr: str) -> Any:
    if "[" not in expr:
        return value
    i = int(expr[expr.index("[") + 1: -1])
    return value[i] if isinstance(value, (list, tuple)) and i < len(value) else None


def _name_for(column: tuple, lit: _Literal, variants: list[Variant], taken: set[str]) -> str:
    """The block's own parameters first, then in_channels, then a name from the keyword.

    A name from the keyword never reuses a block parameter's name: `groups=4` where the
    block's `groups` is 16 becomes `conv2_groups`, not a `groups` that means something else.
    """
    own = variants[0].names
    for expr, param in _candidates(own):
        if (param not in taken or "[" in expr) and all(
                _same(_item(v.names.get(param), expr), c) for v, c in zip(variants, column)):
            return expr
    base = lit.keyword if lit.keyword and not keyword.iskeyword(lit.keyword) else "value"
    if base in own and lit.owner:
        base = f"{lit.owner}_{base}"
    name, n = base, 2
    while name in taken or name in own:
        name, n = f"{base}{n}", n + 1
    return name


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b
