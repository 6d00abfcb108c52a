"""A spec's expressions written again as Python, in terms of a class's constructor parameters.

Generated classes take the parameters of the block (or network) they come from, as torchvision's
classes do: `Bottleneck(in_channels=256, planes=64, stride=2)`, `MobileNetV2(num_classes=1000,
width_mult=1.0)`. A layer's argument is written as the expression the spec wrote, in those
parameters (`nn.Conv2d(in_channels=width, ...)` where `let width = planes * base_width // 64 *
groups`), when it depends on them; otherwise as its value.

Which parameters a class can take is decided statically (`exposable`): a parameter whose value
only flows into layer arguments (directly, through `let`s and user functions, or into another
block's parameter that is itself exposable). One that decides the structure (a loop count, an
`if`, a name, an input size) is not: its value is built into the class, and instances with
other values get classes of their own.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterator

from .. import ir
from ..escape import py_value
from ..evaluate import Budget, evaluate
from ..values import TensorRef

LETS = "#lets"
ATOM, POSTFIX, UNARY, POWER = 10, 9, 7, 8
_LEVEL = {"or": 1, "and": 2, "not": 3, "compare": 4, "+": 5, "-": 5, "*": 6, "/": 6, "//": 6, "%": 6, "**": 8}
PY_BUILTINS = {"len", "min", "max", "sum", "abs", "int", "float", "round", "list", "tuple"}
MATH = {"ceil": "math.ceil", "floor": "math.floor", "sqrt": "math.sqrt", "log": "math.log", "exp": "math.exp"}
LISTS = {"range", "enumerate", "zip"}  # lists in the language, iterators in Python


@dataclass(frozen=True)
class Sym:
    """A Python expression for a value: `symbolic` when it reads constructor parameters; `tainted` when
    it depends on them but could not be written in them (so a class built on it takes none)."""

    text: str
    symbolic: bool = False
    tainted: bool = False
    prec: int = ATOM
    reads: frozenset = frozenset()  # the scope's names it is written in
    terms: tuple = ()  # a sum of channels (concat): ((term text, count, precedence), ...): `a + 3 * b`


def total(parts: list["Sym"]) -> "Sym":
    """The sum of several channel counts, like terms collected: `in_channels + 3 * growth_rate`."""
    counts: dict[str, int] = {}
    prec: dict[str, int] = {}
    for p in parts:
        for text, k, level in (p.terms or ((p.text, 1, p.prec),)):
            counts[text] = counts.get(text, 0) + k
            prec[text] = min(prec.get(text, ATOM), level)
    literal_sum = sum(int(t) * k for t, k in counts.items() if _number(t))
    symbolic = [(t, k, prec[t]) for t, k in counts.items() if not _number(t) and k]
    pieces = [t if k == 1 else f"{k} * {t if _times_reads_whole(t, prec[t]) else '(' + t + ')'}"
              for t, k, _ in symbolic]
    if literal_sum or not pieces:
        pieces.append(str(literal_sum))
        symbolic.append((str(literal_sum), 1, ATOM))
    level = 5 if len(pieces) > 1 else 6 if symbolic[0][1] != 1 else symbolic[0][2]
    return Sym(" + ".join(pieces), any(p.symbolic for p in parts), any(p.tainted for p in parts), level,
               frozenset().union(*(p.reads for p in parts)), tuple(symbolic))


def divided(s: "Sym", k: int) -> "Sym | None":
    """`s // k` term by term when every term of the sum `s` is a multiple of k (exact, and readable:
    `2 * (oup // 2)` in halves is `oup // 2`); None otherwise."""
    if not s.terms or any((int(t) if _number(t) else n) % k for t, n, _ in s.terms):
        return None
    return total([Sym(str(int(t) // k), prec=ATOM) if _number(t) else
                  Sym(t, s.symbolic, s.tainted, level, s.reads, ((t, n // k, level),)) for t, n, level in s.terms])


def _times_reads_whole(text: str, prec: int) -> bool:
    """Whether `k * text` multiplies all of `text`: an atom, or a product (`k * base * 2`), but not a
    quotient (`k * (a // b)`, as `k * a // b` is `(k * a) // b`)."""
    if prec != 6:
        return prec > 6
    import ast

    node = ast.parse(text, mode="eval").body
    while isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)):
        if not isinstance(node.op, ast.Mult):
            return False  # `a // b * c`: k * a // b * c would divide k * a
        node = node.left
    return True


def _number(text: str) -> bool:
    return text.lstrip("-").isdigit()


def param(name: str, python: str | None = None) -> Sym:
    """A constructor parameter (the spec's `name`, Python's `python`), as a class body reads it."""
    return Sym(python or name, True, reads=frozenset({name}))


def literal(value: Any) -> Sym:
    text = py_value(value)
    return Sym(text, prec=UNARY if text.startswith("-") else ATOM)


@dataclass
class Scope:
    """What names mean where a class body (or an inlined chain) is written."""

    names: dict[str, Sym]
    used: set[str] = field(default_factory=set)  # the parameters actually read
    functions: set[str] = field(default_factory=set)  # user functions read, to write into the file
    # `let`s written as local variables of the class's __init__: spec name -> (Python name, text)
    locals: dict[str, tuple[str, str]] | None = None
    taken: set[str] = field(default_factory=set)
    guards: bool = False  # a merged class (codegen/merge.py): its `if`s are written, not built in
    decided: frozenset = frozenset()  # `if`s (by id) already written around this scope (a named container's own)

    def write(self, s: Sym) -> str:
        """The text of a value written into the class: what it reads is now used."""
        self.used |= s.reads
        return s.text


def render(e: ir.Expr, env: dict, scope: Scope) -> Sym:
    """`e`, read in `env`, as Python in `scope`'s terms; its value when it reads none of them."""
    sym = _render(e, env, scope)
    if sym.symbolic or sym.tainted:
        return sym
    return _value(e, env)


_FUNCTIONS: ContextVar[dict | None] = ContextVar("archspec_functions", default=None)


@contextmanager
def functions_of(program) -> Iterator[None]:
    """The spec's own functions, for the values computed while its classes are written."""
    token = _FUNCTIONS.set(dict(program.functions))
    try:
        yield
    finally:
        _FUNCTIONS.reset(token)


def _value(e: ir.Expr, env: dict) -> Sym:
    v = _evaluated(e, env)
    if isinstance(v, TensorRef):
        return Sym("<tensor>", tainted=True)
    try:
        return literal(v)
    except (TypeError, ValueError):
        return Sym(repr(v), tainted=True)


def _wrap(s: Sym, at_least: int) -> str:
    return f"({s.text})" if s.prec < at_least else s.text


def _join(*parts: Sym) -> tuple[bool, bool]:
    return any(p.symbolic for p in parts), any(p.tainted for p in parts)


def _reads(*parts: Sym) -> frozenset:
    return frozenset().union(*(p.reads for p in parts))


def _render(e: ir.Expr, env: dict, scope: Scope) -> Sym:
    if isinstance(e, ir.Name):
        return _name(e.id, env, scope)
    if isinstance(e, ir.BinOp):
        a, b = _render(e.left, env, scope), _render(e.right, env, scope)
        _parts = (a, b)
        sym, taint = _join(a, b)
        if not (sym or taint):
            return Sym("")
        a, b = _full(a, e.left, env), _full(b, e.right, env)
        level = _LEVEL[e.op]
        if e.op == "**":
            return Sym(f"{_wrap(a, level + 1)} ** {_wrap(b, UNARY)}", sym, taint, level, _reads(*_parts))
        return Sym(f"{_wrap(a, level)} {e.op} {_wrap(b, level + 1)}", sym, taint, level, _reads(*_parts))
    if isinstance(e, ir.UnaryOp):
        a = _render(e.operand, env, scope)
        if not (a.symbolic or a.tainted):
            return Sym("")
        if e.op == "not":
            return Sym(f"not {_wrap(a, 3)}", a.symbolic, a.tainted, 3, a.reads)
        return Sym(f"{e.op}{_wrap(a, UNARY)}", a.symbolic, a.tainted, UNARY, a.reads)
    if isinstance(e, ir.Compare):
        parts = _parts = [_render(x, env, scope) for x in (e.first, *e.rest)]
        sym, taint = _join(*parts)
        if not (sym or taint):
            return Sym("")
        values = [_evaluated(x, env) for p, x in zip(parts, (e.first, *e.rest)) if not (p.symbolic or p.tainted)]
        if any(isinstance(v, (list, tuple)) for v in values):  # the language compares lists and tuples alike
            return Sym("", False, True)
        texts = [_wrap(_full(p, x, env), 5) for p, x in zip(parts, (e.first, *e.rest))]
        out = texts[0]
        for op, t in zip(e.ops, texts[1:]):
            out += f" {op} {t}"
        return Sym(out, sym, taint, 4, _reads(*_parts))
    if isinstance(e, ir.Cond):
        parts = _parts = [_render(x, env, scope) for x in (e.body, e.test, e.orelse)]
        sym, taint = _join(*parts)
        if not (sym or taint):
            return Sym("")
        body, test, orelse = (_full(p, x, env) for p, x in zip(parts, (e.body, e.test, e.orelse)))
        text = f"{_wrap(body, 1)} if {_wrap(test, 1)} else {_wrap(orelse, 0)}"
        return Sym(text, sym, taint, 0, _reads(*_parts))
    if isinstance(e, ir.Index):
        a, i = _render(e.value, env, scope), _render(e.index, env, scope)
        _parts = (a, i)
        sym, taint = _join(a, i)
        if not (sym or taint):
            return Sym("")
        text = f"{_wrap(_full(a, e.value, env), POSTFIX)}[{_full(i, e.index, env).text}]"
        return Sym(text, sym, taint, POSTFIX, _reads(*_parts))
    if isinstance(e, (ir.ListExpr, ir.TupleExpr)):
        parts = [_render(x, env, scope) for x in e.items]
        sym, taint = _join(*parts)
        if not (sym or taint):
            return Sym("")
        inner = ", ".join(_full(p, x, env).text for p, x in zip(parts, e.items))
        if isinstance(e, ir.ListExpr):
            return Sym(f"[{inner}]", sym, taint, reads=_reads(*parts))
        return Sym(f"({inner}{',' if len(e.items) == 1 else ''})", sym, taint, reads=_reads(*parts))
    if isinstance(e, ir.FuncCall):
        return _call(e, env, scope)
    return Sym("")  # literals, references: no parameter in them


def _full(s: Sym, e: ir.Expr, env: dict) -> Sym:
    """A part of a larger expression: its text if it reads parameters, else its value."""
    return s if (s.symbolic or s.tainted) else _value(e, env)


def _evaluated(e: ir.Expr, env: dict) -> Any:
    with Budget(functions=_FUNCTIONS.get() or {}).active():
        return evaluate(e, env)


def _name(name: str, env: dict, scope: Scope) -> Sym:
    lets = env.get(LETS, {})
    if name in scope.names and name not in lets:  # a `let` of the same name shadows the parameter
        found = scope.names[name]
        scope.used |= found.reads
        return found
    if name in lets:
        expr, at = lets[name]
        s = _render(expr, at, scope)
        if not (s.symbolic or s.tainted):
            return Sym("")
        if scope.locals is None or s.tainted or s.prec == ATOM:
            return s
        known = scope.locals.get(name)
        if known is None:  # `width = planes * base_width // 64 * groups`, once, where torchvision writes it
            py = _local_name(name, scope)
            scope.locals[name] = (py, s.text)
            known = (py, s.text)
        if known[1] == s.text:
            return Sym(known[0], True, False, ATOM, s.reads)
        return s  # the name means another value here (a loop rebinds it): written out
    return Sym("")


def _local_name(name: str, scope: Scope) -> str:
    import keyword

    from ..names import RESERVED

    base = name if name.isidentifier() and not keyword.iskeyword(name) and name not in RESERVED else name + "_"
    py, i = base, 2
    while py in scope.names or py in scope.taken or py in ("self", "x"):
        py, i = f"{base}{i}", i + 1
    scope.taken.add(py)
    return py


def _call(e: ir.FuncCall, env: dict, scope: Scope) -> Sym:
    parts = _parts = [_render(a.value, env, scope) for a in e.args]
    sym, taint = _join(*parts)
    if not (sym or taint):
        return Sym("")
    args = ", ".join((f"{a.name}=" if a.name else "") + _full(p, a.value, env).text for p, a in zip(parts, e.args))
    if e.func in PY_BUILTINS:
        return Sym(f"{e.func}({args})", sym, taint, POSTFIX, _reads(*_parts))
    if e.func in MATH:
        scope.functions.add("math")
        return Sym(f"{MATH[e.func]}({args})", sym, taint, POSTFIX, _reads(*_parts))
    if e.func in LISTS:
        return Sym(f"list({e.func}({args}))", sym, taint, POSTFIX, _reads(*_parts))
    if e.func == "str":  # the language writes true as `true`, Python as `True`
        return Sym("", False, True)
    scope.functions.add(e.func)
    return Sym(f"{e.func}({args})", sym, taint, POSTFIX, _reads(*_parts))


# ---- which parameters a class can take ---------------------------------------------------------

def _names(e: Any) -> set[str]:
    from ..evaluate import names_in

    return names_in(e) if e is not None else set()


def exposable(program, guards: bool = False) -> dict[str, set[str]]:
    """For each block and network, the parameters that only flow into layer arguments; with `guards`,
    into `if` tests as well (a class that writes those `if`s itself: codegen/merge.py)."""
    done: dict[str, set[str]] = {}

    def visit(name: str) -> set[str]:
        if name in done:
            return done[name]
        d = program.definitions[name]
        flows: dict[str, set[str]] = {}
        structural: set[str] = set()
        calls: list[tuple[str, str, set[str]]] = []
        _walk(d.body, program, flows, structural, calls, guards)
        if d.alias is not None:  # a variant: its parameters flow into the other network's
            params = [p.name for p in program.definitions[d.alias.name].params]
            positional = iter(params)
            for a in d.alias.args or ():
                key = a.name if a.name is not None else next(positional, None)
                if key is not None:
                    calls.append((d.alias.name, key, _names(a.value)))

        def reach(names: set[str]) -> set[str]:
            seen, todo = set(), list(names)
            while todo:
                n = todo.pop()
                if n not in seen:
                    seen.add(n)
                    todo += flows.get(n, ())
            return seen

        fixed = reach(structural)
        for callee, param, names in calls:
            if param not in visit(callee):
                fixed |= reach(names)
        done[name] = {p.name for p in d.params} - fixed
        return done[name]

    for name in program.definitions:
        visit(name)
    return done


def _walk(body: tuple, program, flows, structural: set[str], calls, guards: bool = False) -> None:
    for s in body:
        if isinstance(s, ir.Let):
            flows.setdefault(s.name, set()).update(_names(s.value))
        elif isinstance(s, (ir.Repeat, ir.For, ir.If)):
            test = s.count if isinstance(s, ir.Repeat) else s.iter if isinstance(s, ir.For) else s.test
            if not (guards and isinstance(s, ir.If)):
                structural.update(_names(test))
            _walk(s.body, program, flows, structural, calls, guards)
            if isinstance(s, ir.If):
                _walk(s.orelse, program, flows, structural, calls, guards)
        elif isinstance(s, ir.Input):
            for x in s.dims:
                structural.update(_names(x))
        elif isinstance(s, ir.Output) and s.ref is not None:
            structural.update(_names(s.ref.index))
        elif isinstance(s, ir.NodeStmt):
            if s.label is not None:
                structural.update(_names(s.label.index))
                for p in s.label.parts or ():
                    if not isinstance(p, str):
                        structural.update(_names(p))
            n = s.node
            if isinstance(n, ir.Container):
                for a in n.args or ():
                    structural.update(_names(a.value))
                _walk(n.body, program, flows, structural, calls, guards)
            elif isinstance(n, ir.Ref):
                structural.update(_names(n.index))
            elif n.name in program.definitions:
                params = [p.name for p in program.definitions[n.name].params]
                positional = iter(params)
                for a in n.args or ():
                    key = a.name if a.name is not None else next(positional, None)
                    if key is not None:
                        calls.append((n.name, key, _names(a.value)))
            else:  # a layer: tensor arguments decide the wiring
                for a in n.args or ():
                    if isinstance(a.value, ir.Ref):
                        structural.update(_names(a.value))


def python_function(f: ir.FuncDef, name: str) -> tuple[str, set[str]]:
    """A user function as a Python function of the same name (its lets as local variables), and
    the functions it calls (`math` for ceil and floor), which the file must define too."""
    scope = Scope({p.name: param(p.name) for p in f.params})
    params = []
    for p in f.params:
        params.append(p.name if p.default is None else f"{p.name}={_default(p.default)}")
    lines = [f"def {name}({', '.join(params)}):", f'    """`{f.name}` of the spec."""']
    for let in f.lets:
        lines.append(f"    {let.name} = {_expr_text(let.value, scope)}")
        scope.names[let.name] = param(let.name)
    lines.append(f"    return {_expr_text(f.result, scope)}")
    return "\n".join(lines), scope.functions


def _default(e: ir.Expr) -> str:
    return _value(e, {}).text


def _expr_text(e: ir.Expr, scope: Scope) -> str:
    """An expression of parameters and lets only (a function body): rendered without values."""
    s = _render(e, {}, scope)
    return s.text if (s.symbolic or s.tainted) else _value(e, {}).text
