"""IR back to the language's text: the canonical rendering of a parsed expression.

What a user typed is never copied anywhere: `--set num_classes=10  # a note` is recorded as
`num_classes=10`, re-rendered from the parsed expression, so comments, odd spacing and any
text the parser ignores stay behind.
"""

from __future__ import annotations

from typing import Callable

from . import ir

# Binding strength, loosest first, as in grammar.lark.
_LEVEL = {"cond": 0, "or": 1, "and": 2, "not": 3, "compare": 4, "+": 5, "-": 5, "*": 6, "/": 6, "//": 6,
          "%": 6, "unary": 7, "**": 8, "postfix": 9, "atom": 10}


def render_expr(e: ir.Expr) -> str:
    return _render(e)[0]


def _level(e: ir.Expr) -> int:
    return _render(e)[1]


def _wrap(e: ir.Expr, at_least: int) -> str:
    text, level = _render(e)
    return f"({text})" if level < at_least else text


def _string(value: str) -> str:
    """A string as the language writes it: quotes and backslashes escaped, line breaks as \\n."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + escaped.replace("{", "\\{").replace("}", "\\}") + '"'


def _num(e: ir.Num) -> tuple[str, int]:
    return repr(e.value), _LEVEL["atom"]


def _binop(e: ir.BinOp) -> tuple[str, int]:
    level = _LEVEL[e.op]
    if e.op == "**":  # right-associative: the left side binds tighter
        return f"{_wrap(e.left, level + 1)} ** {_wrap(e.right, _LEVEL['unary'])}", level
    return f"{_wrap(e.left, level)} {e.op} {_wrap(e.right, level + 1)}", level


def _unary(e: ir.UnaryOp) -> tuple[str, int]:
    if e.op == "not":
        return f"not {_wrap(e.operand, _LEVEL['not'])}", _LEVEL["not"]
    return f"{e.op}{_wrap(e.operand, _LEVEL['unary'])}", _LEVEL["unary"]


def _compare(e: ir.Compare) -> tuple[str, int]:
    level = _LEVEL["compare"]
    parts = [_wrap(e.first, level + 1)]
    for op, x in zip(e.ops, e.rest):
        parts += [op, _wrap(x, level + 1)]
    return " ".join(parts), level


def _cond(e: ir.Cond) -> tuple[str, int]:
    return f"{_wrap(e.body, 1)} if {_wrap(e.test, 1)} else {_wrap(e.orelse, 0)}", _LEVEL["cond"]


def _items(items: tuple) -> str:
    return ", ".join(_wrap(x, 0) for x in items)


def _tuple(e: ir.TupleExpr) -> tuple[str, int]:
    inner = _items(e.items)
    return f"({inner}{',' if len(e.items) == 1 else ''})", _LEVEL["atom"]


def _args(args: tuple[ir.Arg, ...]) -> str:
    return ", ".join((f"{a.name}=" if a.name is not None else "") + _wrap(a.value, 0) for a in args)


_RENDER: dict[type, Callable[..., tuple[str, int]]] = {
    ir.Num: _num,
    ir.Bool: lambda e: ("true" if e.value else "false", _LEVEL["atom"]),
    ir.Str: lambda e: (_string(e.value), _LEVEL["atom"]),
    ir.NoneLit: lambda e: ("none", _LEVEL["atom"]),
    ir.Ref: lambda e: ("@" + e.name + (f"{{{render_expr(e.index)}}}" if e.index is not None else ""), _LEVEL["atom"]),
    ir.Name: lambda e: (e.id, _LEVEL["atom"]),
    ir.ListExpr: lambda e: (f"[{_items(e.items)}]", _LEVEL["atom"]),
    ir.TupleExpr: _tuple,
    ir.BinOp: _binop,
    ir.UnaryOp: _unary,
    ir.Compare: _compare,
    ir.Cond: _cond,
    ir.Index: lambda e: (f"{_wrap(e.value, _LEVEL['postfix'])}[{_wrap(e.index, 0)}]", _LEVEL["postfix"]),
    ir.FuncCall: lambda e: (f"{e.func}({_args(e.args)})", _LEVEL["postfix"]),
}


def _render(e: ir.Expr) -> tuple[str, int]:
    return _RENDER[type(e)](e)
