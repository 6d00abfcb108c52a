"""Evaluating the language's expressions: ints, floats, bools, strings, none, lists and tuples,
tensor references (`@name`), the builtins and the file's own functions (`def`).

Values are plain Python values. Every operation that Python would refuse, or that would
run away (a huge power, a list of a billion items), becomes an E301 with the expression's
position, so no user input reaches a traceback or a hang.

All evaluation of a file draws on one Budget: every expression evaluated costs a unit, and
every value built costs its size (items, counted through nested lists, so two lists that share
their halves count both), as does comparing two values. Per-value limits alone cannot bound a
run: a loop can build a million small lists, or compare two equal nested lists whose shared
structure makes a 60-step program take 2**60 steps. When the budget runs out, evaluation stops
with E303 at the expression that was being evaluated.
"""

from __future__ import annotations

import math
import operator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator

from . import ir
from .errors import Span, did_you_mean, error
from .values import TensorRef, show, text, type_name

MAX_ITEMS = 1_000_000  # the largest value an expression may build, in items through nested lists
MAX_INT_BITS = 4096
MAX_WORK = 3_000_000  # units per file: about a second here; the whole zoo takes about 1% of it


class Budget:
    """The evaluation work left to one file (expressions evaluated plus items built and compared)."""

    __slots__ = ("left", "total", "functions", "calls")

    def __init__(self, units: int = MAX_WORK, functions: dict[str, ir.FuncDef] | None = None) -> None:
        self.left = self.total = units
        self.functions = functions or {}  # the file's `def`s, which every expression may call
        self.calls = 0  # user functions being evaluated, one inside another

    def spend(self, units: int, span: Span) -> None:
        self.left -= units
        if self.left < 0:
            self.left = 0
            raise error("E303", f"evaluation is too costly: the spec used up its budget of {self.total:,} units "
                                "(expressions evaluated plus list items built and compared)", span,
                        "a real network needs a small fraction of it; look for a loop that builds or compares "
                        "large lists")

    @contextmanager
    def active(self) -> Iterator[Budget]:
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)


_CURRENT: ContextVar[Budget | None] = ContextVar("archspec_budget", default=None)


def size(v: Any, limit: int = MAX_ITEMS) -> int:
    """Items in a value, counted through nested lists and tuples (a scalar is 1); stops past `limit`."""
    if not isinstance(v, (list, tuple)):
        return 1
    count = 0
    stack = [v]
    while stack and count <= limit:
        x = stack.pop()
        count += len(x)
        stack.extend(i for i in x if isinstance(i, (list, tuple)))
    return count


def _charge(value: Any, span: Span) -> Any:
    """Spend a new value's size, refusing a value over MAX_ITEMS or an int over MAX_INT_BITS."""
    if isinstance(value, str):
        if len(value) > MAX_ITEMS:
            raise error("E301", f"a string of more than {MAX_ITEMS:,} characters is too large", span)
        _budget().spend(len(value), span)
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise error("E301", f"the result is too large a number (over {MAX_INT_BITS:,} bits)", span)
        return value
    if isinstance(value, (list, tuple)):
        n = size(value)
        if n > MAX_ITEMS:
            raise error("E301", f"a value of more than {MAX_ITEMS:,} items is too large", span)
        _budget().spend(n, span)
    return value


def _budget() -> Budget:
    return _CURRENT.get()  # type: ignore[return-value]  (evaluate() makes sure there is one)

_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _range(*args: Any) -> list[int]:
    for a in args:
        if isinstance(a, bool) or not isinstance(a, int):
            raise TypeError(f"range() takes ints, got {type_name(a)} `{show(a)}`")
    r = range(*args)
    if len(r) > MAX_ITEMS:
        raise OverflowError(f"range of {len(r):,} items is too long (the limit is {MAX_ITEMS:,})")
    return list(r)


def _sum(xs: Any, start: Any = 0) -> Any:
    if isinstance(start, (list, tuple)):  # joining lists: refuse a result too long before building it
        items = list(xs)
        total = len(start) + sum(len(x) for x in items if isinstance(x, (list, tuple)))
        if total > MAX_ITEMS:
            raise OverflowError(f"a list of {total:,} items is too long (the limit is {MAX_ITEMS:,})")
        xs = items
    return sum(xs, start)


def _ndigits(n: Any) -> Any:
    # round(5, -10**9) would compute 10**(10**9) first
    if isinstance(n, int) and not isinstance(n, bool) and abs(n) > 400:
        raise OverflowError(f"{n} digits is out of range")
    return n


def _rounding(fn: Callable[[float], int]) -> Callable[[Any], int]:
    def call(x: Any) -> int:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise TypeError(f"expected a number, got {type_name(x)} `{show(x)}`")
        return fn(x)
    return call


def _log(x: Any, base: Any = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _str(v: Any) -> str:
    return text(v)


BUILTINS: dict[str, Callable[..., Any]] = {
    "len": len,
    "ceil": _rounding(math.ceil),
    "floor": _rounding(math.floor),
    "sqrt": math.sqrt,
    "log": _log,
    "exp": math.exp,
    "str": _str,
    "range": _range,
    "enumerate": lambda xs, start=0: [(i + start, x) for i, x in enumerate(xs)],
    "zip": lambda *xs: [tuple(t) for t in zip(*xs)],
    "min": min,
    "max": max,
    "sum": _sum,
    "abs": abs,
    "int": int,
    "float": float,
    "round": lambda x, n=None: round(x) if n is None else round(x, _ndigits(n)),
    "list": list,
    "tuple": tuple,
}


_NAMES_OF_LITERALS = {"True": "true", "False": "false", "None": "an explicit value"}


def evaluate(e: ir.Expr, env: dict[str, Any]) -> Any:
    """The value of an expression in an environment of names; raises ArchError E301/E202/E303.

    It draws on the active Budget (a file's, during a build); called outside one, the call gets
    a budget of its own."""
    budget = _CURRENT.get()
    if budget is None:
        with Budget().active():
            return evaluate(e, env)
    budget.spend(1, e.span)
    try:
        return _EVAL[type(e)](e, env)
    except (TypeError, ValueError, ZeroDivisionError, IndexError, OverflowError, KeyError) as exc:
        raise error("E301", f"cannot evaluate this expression: {_message(exc)}", e.span) from None


def _message(exc: Exception) -> str:
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, IndexError):
        return "index out of range"
    if isinstance(exc, OverflowError) and len(exc.args) == 2:  # (errno, strerror) from float arithmetic
        return "the result is too large a number"
    text = str(exc)
    for py, ours in (("'list'", "list"), ("'tuple'", "tuple"), ("'int'", "int"), ("'float'", "float"),
                     ("'bool'", "bool"), ("NoneType", "nothing")):
        text = text.replace(py, ours)
    return text


class Poisoned(Exception):
    """An expression read a name whose value failed to evaluate (and was reported): skip it quietly."""


POISONED = object()


def _name(e: ir.Name, env: dict[str, Any]) -> Any:
    if e.id in env:
        v = env[e.id]
        if v is POISONED:
            raise Poisoned(e.id)
        return v
    hint = f"; write `{_NAMES_OF_LITERALS[e.id]}`" if e.id in _NAMES_OF_LITERALS else did_you_mean(e.id, env)
    raise error("E202", f"unknown name `{e.id}`{hint}", e.span)


def _binop(e: ir.BinOp, env: dict[str, Any]) -> Any:
    if e.op in ("and", "or"):
        left = evaluate(e.left, env)
        if (e.op == "and") != bool(left):
            return left
        return evaluate(e.right, env)
    a, b = evaluate(e.left, env), evaluate(e.right, env)
    _guard(e.op, a, b, e.span)
    if isinstance(a, int) and isinstance(b, int):
        _budget().spend((a.bit_length() + b.bit_length()) // 64, e.span)  # big-int arithmetic is not free
    try:
        value = _charge(_BINOPS[e.op](a, b), e.span)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise error("E301", f"cannot compute {type_name(a)} {e.op} {type_name(b)}: {_message(exc)}", e.span) from None
    if isinstance(value, complex):  # (-8) ** 0.5
        raise error("E301", f"a negative number to a fractional power is not a real number ({show(a)} ** {show(b)})",
                    e.span)
    if isinstance(value, float) and not math.isfinite(value):
        raise error("E301", f"{show(a)} {e.op} {show(b)} is not a finite number", e.span)
    return value


def _guard(op: str, a: Any, b: Any, span: Span) -> None:
    """Refuse operations whose result would be absurdly large before Python computes them."""
    if op == "**" and isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a) > 1 and b > 0:
        if b * math.log2(abs(a)) > MAX_INT_BITS:
            raise error("E301", f"{show(a)} ** {show(b)} is too large a number", span)
    if op == "*":
        for seq, n in ((a, b), (b, a)):
            if isinstance(seq, (list, tuple, str)) and isinstance(n, int) and len(seq) * n > MAX_ITEMS:
                raise error("E301", f"a list of {len(seq) * n:,} items is too long (the limit is {MAX_ITEMS:,})", span)
        if isinstance(a, int) and isinstance(b, int) and a.bit_length() + b.bit_length() > MAX_INT_BITS:
            raise error("E301", "the product is too large a number", span)  # squaring in a loop explodes
    if op == "+" and isinstance(a, (list, tuple, str)) and isinstance(b, (list, tuple, str)) and \
            len(a) + len(b) > MAX_ITEMS:
        raise error("E301", f"a list of {len(a) + len(b):,} items is too long (the limit is {MAX_ITEMS:,})", span)


def _unary(e: ir.UnaryOp, env: dict[str, Any]) -> Any:
    v = evaluate(e.operand, env)
    if e.op == "not":
        return not v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise error("E301", f"cannot apply `{e.op}` to {type_name(v)} `{show(v)}`", e.span)
    return -v if e.op == "-" else v  # negation keeps the size of an int


def _compare(e: ir.Compare, env: dict[str, Any]) -> bool:
    left = evaluate(e.first, env)
    for op, expr in zip(e.ops, e.rest):
        right = evaluate(expr, env)
        _budget().spend(min(size(left), size(right)), e.span)  # both are within MAX_ITEMS
        try:
            ok = _COMPARE[op](_comparable(left), _comparable(right))
        except TypeError:
            raise error("E301", f"cannot compare {type_name(left)} `{show(left)}` {op} {type_name(right)} "
                                f"`{show(right)}`", e.span) from None
        if not ok:
            return False
        left = right
    return True


def _comparable(v: Any) -> Any:
    """Lists and tuples compare by their items, so `output == [10]` holds for a shape (10,)."""
    return list(v) if isinstance(v, tuple) else v


def _cond(e: ir.Cond, env: dict[str, Any]) -> Any:
    return evaluate(e.body, env) if evaluate(e.test, env) else evaluate(e.orelse, env)


def _index(e: ir.Index, env: dict[str, Any]) -> Any:
    seq, i = evaluate(e.value, env), evaluate(e.index, env)
    if not isinstance(seq, (list, tuple)):
        raise error("E301", f"cannot index {type_name(seq)} `{show(seq)}`", e.span)
    if isinstance(i, bool) or not isinstance(i, int):
        raise error("E301", f"an index must be an int, got {type_name(i)} `{show(i)}`", e.index.span)
    if not -len(seq) <= i < len(seq):
        raise error("E301", f"index {i} is out of range for a list of {len(seq)} items", e.index.span)
    return seq[i]


MAX_CALLS = 64  # user functions calling user functions (resolution refuses recursion; this bounds the rest)


def _user_call(f: ir.FuncDef, e: ir.FuncCall, env: dict[str, Any]) -> Any:
    """A `def`: its parameters bound like a block's, its `let`s, then its result, in a scope of its own."""
    budget = _budget()
    args = [evaluate(a.value, env) for a in e.args if a.name is None]
    kwargs = {a.name: evaluate(a.value, env) for a in e.args if a.name is not None}
    names = [p.name for p in f.params]
    if len(args) > len(names):
        raise error("E204", f"`{f.name}` takes at most {len(names)} arguments, got {len(args)}", e.span)
    local: dict[str, Any] = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in names:
            raise error("E203", f"`{f.name}` has no parameter `{key}`{did_you_mean(key, names)}", e.span)
        if key in local:
            raise error("E211", f"argument `{key}` is given twice", e.span)
        local[key] = value
    if budget.calls >= MAX_CALLS:
        raise error("E005", f"functions call each other too deeply (more than {MAX_CALLS} calls)", e.span)
    budget.calls += 1
    try:
        for p in f.params:
            if p.name not in local:
                if p.default is None:
                    raise error("E204", f"`{f.name}` is missing its argument `{p.name}`", e.span)
                local[p.name] = evaluate(p.default, local)
        for let in f.lets:
            local[let.name] = evaluate(let.value, local)
        return evaluate(f.result, local)
    finally:
        budget.calls -= 1


def _call(e: ir.FuncCall, env: dict[str, Any]) -> Any:
    user = _budget().functions.get(e.func)
    if user is not None:
        return _user_call(user, e, env)
    fn = BUILTINS.get(e.func)
    if fn is None:
        raise error("E202", f"unknown function `{e.func}`{did_you_mean(e.func, BUILTINS)}", e.span)
    args = [evaluate(a.value, env) for a in e.args if a.name is None]
    kwargs = {a.name: evaluate(a.value, env) for a in e.args if a.name is not None}
    _budget().spend(sum(len(v) for v in (*args, *kwargs.values()) if isinstance(v, (list, tuple))), e.span)
    try:
        return _charge(fn(*args, **kwargs), e.span)
    except (TypeError, ValueError, OverflowError) as exc:
        raise error("E301", f"{e.func}(): {_message(exc)}", e.span) from None


def _ref(e: ir.Ref, env: dict[str, Any]) -> TensorRef:
    """`@name`: a named node of the body being expanded (its names live under the key "@")."""
    name = e.name if e.index is None else e.name + text(_suffix(e.index, env))
    names = env.get("@") or {}
    if name not in names:
        known = [n for n in names]
        hint = did_you_mean(name, known) if known else ""
        raise error("E217", f"no tensor `@{name}` here: it must be the name of an earlier node of this body{hint}",
                    e.span, *(("names so far: " + ", ".join("@" + n for n in known[:12]),) if known else ()))
    return TensorRef(name, names[name])


def _suffix(e: ir.Expr, env: dict[str, Any]) -> Any:
    i = evaluate(e, env)
    if isinstance(i, bool) or not isinstance(i, (int, str)):
        raise error("E205", f"a name's suffix must be an int or a string, got {type_name(i)} `{show(i)}`", e.span)
    return i


_EVAL: dict[type, Callable[[Any, dict[str, Any]], Any]] = {
    ir.Num: lambda e, env: e.value,
    ir.Str: lambda e, env: _charge(e.value, e.span),
    ir.NoneLit: lambda e, env: None,
    ir.Ref: _ref,
    ir.Bool: lambda e, env: e.value,
    ir.Name: _name,
    ir.ListExpr: lambda e, env: _charge([evaluate(x, env) for x in e.items], e.span),
    ir.TupleExpr: lambda e, env: _charge(tuple(evaluate(x, env) for x in e.items), e.span),
    ir.BinOp: _binop,
    ir.UnaryOp: _unary,
    ir.Compare: _compare,
    ir.Cond: _cond,
    ir.Index: _index,
    ir.FuncCall: _call,
}


def names_in(e: Any) -> set[str]:
    """Every name an expression reads (for resolution and for assert messages)."""
    if isinstance(e, ir.Name):
        return {e.id}
    found: set[str] = set()
    for field in type(e).model_fields:
        v = getattr(e, field)
        for x in (v if isinstance(v, tuple) else (v,)):
            if isinstance(x, ir.IR):
                found |= names_in(x)
    return found
