"""Expand a network: evaluate its arguments, unroll blocks, loops and conditionals into Nodes.

The result is a tree of layers, block calls and seq/add/concat containers with every argument
a concrete value. Variables follow Python's rules: a `let` or a `for` target binds in the
enclosing block or network, loops and branches open no scope of their own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .. import ir
from ..errors import ArchError, Span, did_you_mean, error, io_error
from ..evaluate import evaluate
from ..layers import COERCE, LAYERS, REQUIRED, show, type_name
from ..loader import Program

MAX_STEPS = 100_000  # layers created plus loop iterations: far beyond any real network (ResNet-1202 has
# about 4,000), and small enough that the passes over them finish in seconds
MAX_CALL_DEPTH = 64


@dataclass
class Overrides:
    """What the command line changes: `--set name=expr` values and `--input C,H,W`."""

    values: dict[str, ir.Expr] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # the values as written, for headers
    input: tuple[int, ...] | None = None
    batch: int = 1


@dataclass
class _Run:
    program: Program
    steps: int = 0
    depth: int = 0
    asserts: list = field(default_factory=list)

    def step(self, span: Span, n: int = 1) -> None:
        self.steps += n
        if self.steps > MAX_STEPS:
            raise error("E408", f"the network is too large: more than {MAX_STEPS:,} layers and loop steps", span)

    def loop(self, span: Span, n: int) -> None:
        """Refuse a loop of n steps before running it, when they alone would pass the limit."""
        if self.steps + n > MAX_STEPS:
            raise error("E408", f"the network is too large: a loop of {n:,} steps passes the limit of "
                                f"{MAX_STEPS:,} layers and loop steps", span)


def pick_network(program: Program, name: str | None) -> ir.Definition:
    networks = [n for n in program.own if program.definitions[n].kind == "network"]
    if name is not None:
        d = program.definitions.get(name)
        if d is None or d.kind != "network":
            all_nets = [n for n, x in program.definitions.items() if x.kind == "network"]
            raise io_error("E212", f"no network `{name}` in {program.root}{did_you_mean(name, all_nets)}",
                           Span(program.root), "networks: " + (", ".join(all_nets) or "none"))
        return d
    if len(networks) == 1:
        return program.definitions[networks[0]]
    if not networks:
        raise io_error("E212", "this file defines no network", Span(program.root))
    stem = program.root.rsplit("/", 1)[-1].removesuffix(".arch")
    if stem in networks:
        return program.definitions[stem]
    raise io_error("E212", f"this file defines {len(networks)} networks; choose one with --network",
                   Span(program.root), "networks: " + ", ".join(networks))


@ir.collector_paused()
def expand(program: Program, network: str | None = None, overrides: Overrides | None = None) -> ir.Network:
    overrides = overrides or Overrides()
    d = pick_network(program, network)
    run = _Run(program)
    env = _bind_network(d, overrides)
    arguments = dict(env)
    children = _body(d.body, env, run)
    inputs = [s for s in d.body if isinstance(s, ir.Input)]
    input_span = inputs[0].span if inputs else d.span
    if overrides.input is not None:
        shape = overrides.input
    elif inputs:
        shape = tuple(_dim(x, env) for x in inputs[0].dims)
        if not shape:
            raise error("E302", "`input` needs at least one dimension, such as `input [3, 224, 224]`", input_span)
    else:
        raise error("E213", f"network `{d.name}` has no `input` statement", d.span,
                    "add one, such as `input [1, 28, 28]`, or pass --input C,H,W")
    root = ir.Node.model_construct(span=d.span, kind="seq", op=d.name, children=tuple(children))
    return ir.Network.model_construct(
        span=d.span, name=d.name, file=program.root, input_shape=shape, input_span=input_span, root=root,
        overrides=dict(overrides.texts), arguments=arguments,
        asserts=tuple(run.asserts), warnings=(), batch=overrides.batch)


def _dim(e: ir.Expr, env: dict) -> int:
    v = evaluate(e, env)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise error("E302", f"an input dimension must be a positive int, got {show(v)}", e.span)
    return v


def _bind_network(d: ir.Definition, overrides: Overrides) -> dict[str, Any]:
    names = [p.name for p in d.params]
    for key, expr in overrides.values.items():
        if key not in names:
            raise io_error("E203", f"network `{d.name}` has no parameter `{key}`{did_you_mean(key, names)}",
                           expr.span, f"its parameters are {', '.join(names) or 'none'}")
    env: dict[str, Any] = {}
    for p in d.params:
        expr = overrides.values.get(p.name, p.default)
        if expr is None:
            raise error("E204", f"network parameter `{p.name}` has no default; give it with --set {p.name}=...",
                        p.span)
        env[p.name] = _typed(p, evaluate(expr, env), expr.span)
    return env


def _typed(p: ir.Param, v: Any, span: Span) -> Any:
    ok = {
        None: True,
        "int": isinstance(v, int) and not isinstance(v, bool),
        "float": isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": isinstance(v, bool),
        "list": isinstance(v, (list, tuple)),
        "tuple": isinstance(v, (list, tuple)),
    }[p.type]
    if not ok:
        raise error("E205", f"parameter `{p.name}` is {p.type}, got {type_name(v)} `{show(v)}`", span)
    return float(v) if p.type == "float" else v


def _body(body: tuple, env: dict[str, Any], run: _Run) -> list[ir.Node]:
    out: list[ir.Node] = []
    for s in body:
        out += _STMT[type(s)](s, env, run)
    return out


def _node_stmt(s: ir.NodeStmt, env: dict, run: _Run) -> list[ir.Node]:
    run.step(s.span)
    label = None
    lspan = None
    if s.label is not None:
        label = s.label.name
        lspan = s.label.span
        if s.label.index is not None:
            i = evaluate(s.label.index, env)
            if isinstance(i, bool) or not isinstance(i, int):
                raise error("E205", f"a name's suffix must be an int, got {type_name(i)} `{show(i)}`",
                            s.label.index.span)
            label += str(i)
    if isinstance(s.node, ir.Container):
        return [_container(s.node, label, env, run, lspan)]
    if s.node.name in LAYERS:
        return [_layer(s.node, label, env, lspan)]
    return [_block(s.node, label, env, run, lspan)]


def _container(c: ir.Container, label: str | None, env: dict, run: _Run, lspan: Span | None = None) -> ir.Node:
    children = _body(c.body, env, run)
    if not children and c.kind != "seq":
        raise error("E407", f"`{c.kind}` has no branches", c.span)
    return ir.Node.model_construct(span=c.span, kind=c.kind, op=c.kind, label=label, label_span=lspan,
                                   children=tuple(children))


def _arguments(c: ir.Call, names: list[str], env: dict) -> tuple[dict[str, Any], dict[str, Span]]:
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    positional = iter(names)  # resolve has checked that positional arguments come first and fit
    for a in c.args or ():
        key = a.name if a.name is not None else next(positional)
        values[key] = evaluate(a.value, env)
        spans[key] = a.value.span
    return values, spans


def _positional(c: ir.Call) -> int:
    return sum(1 for a in c.args or () if a.name is None)


def _layer(c: ir.Call, label: str | None, env: dict, lspan: Span | None = None) -> ir.Node:
    sig = LAYERS[c.name]
    given, spans = _arguments(c, [a.name for a in sig], env)
    args: dict[str, Any] = {}
    for a in sig:
        v = given.get(a.name, a.default)
        try:
            args[a.name] = COERCE[a.kind](v) if v is not REQUIRED else v
        except TypeError as exc:
            raise error("E205", f"{c.name} argument `{a.name}`: {exc}", spans.get(a.name, c.span)) from None
        except ValueError as exc:
            raise error("E302", f"{c.name} argument `{a.name}` {exc}", spans.get(a.name, c.span)) from None
    if "stride" in args and args["stride"] is None:  # a pool's stride defaults to its kernel
        args["stride"] = args["kernel"]
    return ir.Node.model_construct(span=c.span, kind="layer", op=c.name, args=args, written=tuple(given),
                                   positional=_positional(c), label=label, label_span=lspan)


def _block(c: ir.Call, label: str | None, env: dict, run: _Run, lspan: Span | None = None) -> ir.Node:
    d = run.program.definitions[c.name]
    given, spans = _arguments(c, [p.name for p in d.params], env)
    local: dict[str, Any] = {}
    for p in d.params:
        if p.name in given:
            local[p.name] = _typed(p, given[p.name], spans[p.name])
        else:
            local[p.name] = _typed(p, evaluate(p.default, local), p.default.span)
    if run.depth >= MAX_CALL_DEPTH:
        raise io_error("E005", f"blocks are nested too deeply (more than {MAX_CALL_DEPTH} calls)", c.span)
    run.depth += 1
    try:
        children = _body(d.body, local, run)
    except ArchError as exc:
        # Say where the block was called from: the error sits inside its definition.
        raise ArchError([dataclasses.replace(x, notes=x.notes + (f"in `{c.name}` called at {c.span}",))
                         if len(x.notes) < 8 else x for x in exc.diagnostics]) from None
    finally:
        run.depth -= 1
    args = {p.name: local[p.name] for p in d.params}
    return ir.Node.model_construct(span=c.span, kind="block", op=c.name, args=args, written=tuple(given),
                                   positional=_positional(c), label=label, label_span=lspan,
                                   children=tuple(children))


def _repeat(s: ir.Repeat, env: dict, run: _Run) -> list[ir.Node]:
    n = evaluate(s.count, env)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise error("E302", f"`repeat` needs a count of zero or more, got {type_name(n)} `{show(n)}`", s.count.span)
    run.loop(s.span, n)
    out: list[ir.Node] = []
    for _ in range(n):
        run.step(s.span)
        out += _body(s.body, env, run)
    return out


def _for(s: ir.For, env: dict, run: _Run) -> list[ir.Node]:
    items = evaluate(s.iter, env)
    if not isinstance(items, (list, tuple)):
        raise error("E301", f"`for` needs a list to loop over, got {type_name(items)} `{show(items)}`", s.iter.span)
    run.loop(s.span, len(items))
    out: list[ir.Node] = []
    for item in items:
        run.step(s.span)
        _assign(s.target, item, env)
        out += _body(s.body, env, run)
    return out


def _assign(t: ir.Target, v: Any, env: dict) -> None:
    if isinstance(t, ir.NameTarget):
        env[t.id] = v
        return
    if not isinstance(v, (list, tuple)) or len(v) != len(t.items):
        want = len(t.items)
        raise error("E301", f"cannot unpack {type_name(v)} `{show(v)}` into {want} names", t.span)
    for sub, x in zip(t.items, v):
        _assign(sub, x, env)


def _if(s: ir.If, env: dict, run: _Run) -> list[ir.Node]:
    return _body(s.body if evaluate(s.test, env) else s.orelse, env, run)


def _let(s: ir.Let, env: dict, run: _Run) -> list[ir.Node]:
    env[s.name] = evaluate(s.value, env)
    return []


def _assert(s: ir.Assert, env: dict, run: _Run) -> list[ir.Node]:
    run.asserts.append((s, dict(env)))  # checked after shape inference, when results are known
    return []


def _input(s: ir.Input, env: dict, run: _Run) -> list[ir.Node]:
    return []  # read by expand() itself


_STMT = {
    ir.NodeStmt: _node_stmt, ir.Repeat: _repeat, ir.For: _for, ir.If: _if, ir.Let: _let,
    ir.Assert: _assert, ir.Input: _input,
}
