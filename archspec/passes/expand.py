"""Expand a network into its dataflow graph: evaluate arguments, unroll blocks, loops and
conditionals, lower seq/add/mul/concat into nodes with explicit inputs, and shape every node as
it is made.

Shapes are inferred here, node by node, because a block may read the shape of the tensor that
reaches it (`in_channels`, `in_shape`), so its body depends on them. Each node's output shape,
parameters, MACs and activation size come from its layer's record (archspec/layers/); blocks
and named containers are nodes whose body is a graph of its own.

Variables follow Python's rules: a `let` or a `for` target binds in the enclosing block or
network; loops and branches open no scope of their own. Expansion keeps going after an error
where what follows does not depend on it: other statements, sibling branches, other arguments.
A value that could not be made is marked failed, and whatever reads it is skipped without a
further error, so each mistake is reported once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from math import prod
from typing import Any

from .. import ir
from ..errors import ArchError, Diagnostic, Span, did_you_mean, error, io_error
from ..evaluate import POISONED, Poisoned, evaluate
from ..layers import LAYERS, MAX_DIM, REQUIRED, ShapeProblem
from ..loader import Program
from ..names import label_problem, network_problem
from ..sizes import Recorder, Size, SizeError, is_symbolic, quiet, recording, sample_of, site, total
from ..summary import show_shape
from ..values import TensorRef, show, text, type_name
from .combine import combine_shape

MAX_STEPS = 100_000  # layers created plus loop iterations: far beyond any real network (ResNet-1202 has
# about 4,000), and small enough that the passes over them finish in seconds
MAX_CALL_DEPTH = 64
MAX_ERRORS = 1_000  # diagnostics collected from one network before expansion stops
BYTES = 4  # fp32
FAILED = -1  # the id of a value that could not be made
LETS = "#lets"  # env key: let name -> (its expression, the env it read), copied on write


@dataclass
class Overrides:
    """What the command line changes: `--set name=expr` values and `--input C,H,W`."""

    values: dict[str, ir.Expr] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # the values as archspec records them
    input: tuple[int, ...] | None = None
    batch: int = 1


class _Failed(Exception):
    """A statement failed and its diagnostics are recorded: unwind to the statement loop."""


class _Stop(ArchError):
    """A limit was hit, or too much is wrong: stop expanding, with every diagnostic so far."""


ONE = (1, 1, 1, 1)  # the receptive field of an input: itself (ints until upsampling makes a fraction)


@dataclass
class _Run:
    program: Program
    whole: tuple = ONE  # the field of a layer that sees the whole input (linear, adaptive pools)
    steps: int = 0
    depth: int = 0
    asserts: list = field(default_factory=list)
    problems: list[Diagnostic] = field(default_factory=list)
    recording: bool = False  # symbolic sizes: comparisons become constraints (archspec/sizes.py)
    memo: dict = field(default_factory=dict)  # block calls expanded so far: key -> _Expanded
    sized: dict = field(default_factory=dict)  # symbolic shapes' bytes, by the shape's text (_bytes)
    variables: tuple = ()  # the symbolic sizes, each (name, the sample it is decided at)
    recorder: Any = None  # where comparisons of sizes become constraints (sizes.Recorder)

    def step(self, span: Span, n: int = 1) -> None:
        self.steps += n
        if self.steps > MAX_STEPS:
            raise error("E408", f"the network is too large: more than {MAX_STEPS:,} layers and loop steps", span)

    def loop(self, span: Span, n: int) -> None:
        """Refuse a loop of n steps before running it, when they alone would pass the limit."""
        if self.steps + n > MAX_STEPS:
            raise error("E408", f"the network is too large: a loop of {n:,} steps passes the limit of "
                                f"{MAX_STEPS:,} layers and loop steps", span)

    def report(self, exc: ArchError, notes: tuple[str, ...] = ()) -> None:
        for d in exc.diagnostics:
            self.problems.append(dataclasses.replace(d, notes=d.notes + notes) if notes else d)
        if len(self.problems) >= MAX_ERRORS or any(d.io or d.code in ("E408", "E303") for d in exc.diagnostics):
            raise _Stop(self.problems)


class _Body:
    """A graph under construction: its nodes, the names of its tensors, and its module numbering."""

    def __init__(self, path: str) -> None:
        self.path = path  # of the module that owns this graph ("" for the network)
        self.nodes: list[ir.GNode] = []
        self.names: dict[str, int] = {}  # tensor names (labels) -> node id, for `@name`
        self.segments: dict[str, Span] = {}  # segment -> where its node is named (or written)
        self.count = 0  # nodes that add a module path segment so far
        self.prefix = ""  # inside `name = modules { ... }`: "name.", before the segments of the nodes made there
        self.inputs: list[int] = []
        self.outputs: list[tuple[str, int]] = []
        self.training: list[tuple[str, int]] = []

    def add(self, node: ir.GNode) -> int:
        self.nodes.append(node)
        return len(self.nodes) - 1

    def segment(self, label: str | None, span: Span) -> tuple[str, str]:
        """(segment, path) for a node that adds a module: its label, or its index among its siblings."""
        index = self.count
        self.count += 1
        seg = label if label is not None else str(index)
        if seg in self.segments:
            where = f"in `{self.path}`" if self.path else "at the top level"
            raise error("E208", f"two modules are named `{seg}` {where}", span,
                        f"the first is at {self.segments[seg]}")
        self.segments[seg] = span
        return self.prefix + seg, f"{self.path}.{seg}" if self.path else seg

    def graph(self) -> ir.Graph:
        return ir.Graph.model_construct(nodes=tuple(self.nodes), inputs=tuple(self.inputs),
                                        outputs=tuple(self.outputs), training=tuple(self.training))

    def shape(self, i: int) -> tuple[int, ...]:
        return self.nodes[i].out_shape


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
    problem = network_problem(d.name)
    if problem:
        raise error("E208", f"`{d.name}` cannot name a network: {problem}", d.span)
    env, canonical = _bind_network(d, overrides)
    arguments = dict(env)
    body, env, steps = _variant(d, env, program)
    b = _Body("")
    inputs = [s for s in body.body if isinstance(s, ir.Input)]
    first_span, variables = _inputs(body, inputs, env, overrides, b)
    # Block calls expanded once serve every network of the file (with symbolic sizes, those whose size
    # names stand for the same variables: the key holds them; passes/expand.py `_call_key`).
    run = _Run(program, memo=program.expansions,
               variables=tuple((name, env[name].sample) for name in variables if isinstance(env[name], Size)))
    first = b.nodes[b.inputs[0]].out_shape
    run.whole = (first[1], first[2], 1, 1) if len(first) >= 3 else (first[1] if len(first) > 1 else 1, 1, 1, 1)
    env["@"] = b.names
    recorder = run.recorder = Recorder()
    run.recording = bool(variables)  # numbers only: nothing to record, and no cost for it
    with recording(recorder) if variables else _NOTHING:
        _Walker(run, b).chain(body.body, env, b.inputs[0])
    if run.problems:
        raise ArchError(run.problems)
    if not b.outputs:
        if b.training:
            raise error("E213", "a network whose outputs are all `if training` has no output in eval mode", d.span,
                        "name its main output with `output NAME`")
        b.outputs.append(("", _last_value(b)))
    graph = b.graph()
    return ir.Network.model_construct(
        span=d.span, name=d.name, file=program.root, input_shape=graph.nodes[graph.inputs[0]].out_shape,
        input_span=first_span, graph=graph, overrides=canonical, arguments=arguments,
        asserts=tuple(run.asserts), warnings=(), batch=overrides.batch, variant=tuple(steps),
        sizes=tuple(variables), constraints=tuple(recorder.constraints) if variables else ())


class _Nothing:
    """A `with` that does nothing, reused (cheaper than contextlib.nullcontext() made each time)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_NOTHING = _Nothing()


def _what(s: ir.IR) -> str:
    """How `archspec sizes` names a statement that compares sizes itself."""
    return {ir.If: "if", ir.Let: "let", ir.Assert: "assert", ir.Repeat: "repeat", ir.For: "for"}.get(type(s), "")


def _largest(rfs: list) -> tuple:
    """The receptive field of a node with several inputs: the largest size and jump among them."""
    if len(rfs) == 1:
        return rfs[0]
    return tuple(max(r[k] for r in rfs) for k in range(4))


def _variant(d: ir.Definition, env: dict, program: Program) -> tuple[ir.Definition, dict, list]:
    """The definition whose body a network expands (itself, or what its `= other(...)` names), the
    environment of that body, and each step taken: (the call's argument expressions, the env they read)."""
    steps = []
    seen = {d.name}
    while d.alias is not None:
        target = program.definitions[d.alias.name]
        if target.name in seen:  # resolve reports the cycle
            raise error("E207", f"network `{target.name}` is a variant of itself", d.alias.span)
        seen.add(target.name)
        names = [p.name for p in target.params]
        positional = iter(names)
        given: dict[str, Any] = {}
        exprs: dict[str, ir.Expr] = {}
        for a in d.alias.args or ():
            key = a.name if a.name is not None else next(positional)
            given[key] = evaluate(a.value, env)
            exprs[key] = a.value
        steps.append((exprs, dict(env)))
        local: dict[str, Any] = {}
        for p in target.params:
            if p.name in given:
                local[p.name] = _typed(p, given[p.name], exprs[p.name].span)
            elif p.default is not None:
                local[p.name] = _typed(p, evaluate(p.default, local), p.default.span)
            else:
                raise error("E204", f"network `{target.name}` needs its argument `{p.name}`", d.alias.span)
        d, env = target, local
    return d, env, steps


def _last_value(b: _Body) -> int:
    return b.nodes.__len__() - 1 if b.nodes else b.inputs[0]


def _inputs(d: ir.Definition, inputs: list[ir.Input], env: dict, overrides: Overrides, b: _Body
            ) -> tuple[Span, list[str]]:
    """The network's input nodes (one per `input` statement; --input replaces the first's shape), and
    the names of its symbolic sizes (`input [3, H, W]`), bound in `env` to Sizes, or to the numbers
    --input gives them."""
    if not inputs:
        if overrides.input is None:
            raise error("E213", f"network `{d.name}` has no `input` statement", d.span,
                        "add one, such as `input [1, 28, 28]`, or pass --input C,H,W")
        inputs = [ir.Input.model_construct(span=d.span, dims=(), name=None)]
    variables: list[str] = []
    for k, stmt in enumerate(inputs):
        if k == 0 and overrides.input is not None:
            shape = tuple(overrides.input)
            _fix_sizes(stmt, shape, env)
        else:
            for x in stmt.dims:
                if isinstance(x, ir.Name) and x.id not in env:
                    env[x.id] = Size.var(x.id, sample_of(len(variables)))
                    variables.append(x.id)
            shape = tuple(_dim(x, env) for x in stmt.dims)
            if not shape:
                raise error("E302", "`input` needs at least one dimension, such as `input [3, 224, 224]`", stmt.span)
        name = stmt.name or "input"
        node = ir.GNode.model_construct(span=stmt.span, kind="input", op=name, out_shape=shape,
                                        activation_bytes=BYTES * prod(shape), rf=ONE)
        i = b.add(node)
        b.inputs.append(i)
        b.names[name] = i
    return inputs[0].span, variables


def _fix_sizes(stmt: ir.Input, shape: tuple[int, ...], env: dict) -> None:
    """--input on `input [3, H, W]`: H and W take its numbers (the same name twice, the same number)."""
    fixed: dict[str, int] = {}
    for x, n in zip(stmt.dims, shape):
        if isinstance(x, ir.Name) and (x.id not in env or x.id in fixed):
            if fixed.setdefault(x.id, n) != n:
                raise io_error("E302", f"--input gives the size `{x.id}` two values, {fixed[x.id]} and {n}", x.span)
            env[x.id] = n


def _dim(e: ir.Expr, env: dict) -> int | Size:
    v = evaluate(e, env)
    if isinstance(v, Size):
        return v
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise error("E302", f"an input dimension must be a positive int or a size name (`H`), got {show(v)}",
                    e.span)
    return v


def _bind_network(d: ir.Definition, overrides: Overrides) -> tuple[dict[str, Any], dict[str, str]]:
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
    return env, {k: overrides.texts[k] for k in overrides.values}


def _typed(p: ir.Param, v: Any, span: Span) -> Any:
    ok = {
        None: True,
        "int": isinstance(v, int) and not isinstance(v, bool),
        "float": isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": isinstance(v, bool),
        "str": isinstance(v, str),
        "list": isinstance(v, (list, tuple)),
        "tuple": isinstance(v, (list, tuple)),
    }[p.type]
    if not ok:
        raise error("E205", f"parameter `{p.name}` is {p.type}, got {type_name(v)} `{show(v)}`", span)
    return float(v) if p.type == "float" else v


class _Walker:
    """Walks statements into the graph of one body; `chain` threads a value through them, `branches`
    feeds each node statement the same value and collects their outputs."""

    def __init__(self, run: _Run, body: _Body, guard: tuple = ()) -> None:
        self.run, self.b = run, body
        # The `if`s of the enclosing block that led here, each (statement, branch taken, env): codegen
        # writes one class for calls of a block that differ only in them (passes reset it per block).
        self.guard = guard

    # -- the two ways of walking a list of statements --------------------------------------------
    def chain(self, stmts: tuple, env: dict, cur: int) -> int:
        for s in stmts:
            cur = self._guarded(s, env, cur, None)
        return cur

    def branches(self, stmts: tuple, env: dict, start: int, out: list[int]) -> None:
        for s in stmts:
            self._guarded(s, env, start, out)

    def _guarded(self, s: ir.IR, env: dict, cur: int, out: list[int] | None) -> int:
        """One statement; on an error, record it and go on with a failed value (chain) or branch."""
        try:
            if not self.run.recording:
                return self._statement(s, env, cur, out)
            with site(s.span, _what(s)):  # symbolic sizes: what it compares becomes a constraint here
                return self._statement(s, env, cur, out)
        except _Stop:
            raise
        except ArchError as exc:
            self.run.report(exc)
        except (_Failed, Poisoned):
            pass
        if isinstance(s, ir.Let):  # what reads the name later is skipped, not reported again
            rebind(env, s.name, POISONED)
        elif isinstance(s, ir.For):
            for name in _targets(s.target):
                env.setdefault(name, POISONED)
        if out is not None:
            out.append(FAILED)
            return cur
        return FAILED

    def _statement(self, s: ir.IR, env: dict, cur: int, out: list[int] | None) -> int:
        if isinstance(s, ir.NodeStmt):
            y = self.node(s, env, cur)
            if out is not None:
                out.append(y)
                return cur
            return y
        if isinstance(s, ir.Repeat):
            n = evaluate(s.count, env)
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise error("E302", f"`repeat` needs a count of zero or more, got {type_name(n)} `{show(n)}`",
                            s.count.span)
            self.run.loop(s.span, n)
            for _ in range(n):
                self.run.step(s.span)
                cur = self._walk(s.body, env, cur, out)
            return cur
        if isinstance(s, ir.For):
            items = evaluate(s.iter, env)
            if not isinstance(items, (list, tuple)):
                raise error("E301", f"`for` needs a list to loop over, got {type_name(items)} `{show(items)}`",
                            s.iter.span)
            self.run.loop(s.span, len(items))
            for item in items:
                self.run.step(s.span)
                _assign(s.target, item, env)
                cur = self._walk(s.body, env, cur, out)
            return cur
        if isinstance(s, ir.If):
            taken = bool(evaluate(s.test, env))
            outer = self.guard
            self.guard = outer + ((s, taken, snapshot(env)),)
            try:
                return self._walk(s.body if taken else s.orelse, env, cur, out)
            finally:
                self.guard = outer
        if isinstance(s, ir.Let):
            at = snapshot(env)  # the env its expression read: where it came from, for codegen
            value = evaluate(s.value, env)
            env[LETS] = {**env.get(LETS, {}), s.name: (s.value, at)}
            rebind(env, s.name, value)  # after LETS: the next snapshot holds both
            return cur
        if isinstance(s, ir.Assert):
            self.run.asserts.append((s, snapshot(env)))  # checked after shape inference, when results are known
            return cur
        if isinstance(s, ir.Output):
            self._output(s, env, cur)
            return cur
        return cur  # `input`: read by expand() itself

    def _walk(self, stmts: tuple, env: dict, cur: int, out: list[int] | None) -> int:
        if out is None:
            return self.chain(stmts, env, cur)
        self.branches(stmts, env, cur, out)
        return cur

    def _output(self, s: ir.Output, env: dict, cur: int) -> None:
        value = evaluate(s.ref, env).node if s.ref is not None else cur
        if any(name == s.name for name, _ in (*self.b.outputs, *self.b.training)):
            raise error("E214", f"the output `{s.name}` is declared twice", s.span)
        if value == FAILED:
            raise _Failed
        (self.b.training if s.training else self.b.outputs).append((s.name, value))

    # -- node statements ---------------------------------------------------------------------
    def node(self, s: ir.NodeStmt, env: dict, cur: int) -> int:
        self.run.step(s.span)
        label, lspan = self._label(s.label, env)
        if s.label is None or not s.label.tensor:
            return self._node(s.node, label, lspan, env, cur)
        if label in self.b.names:  # `@name = ...`: a name for the tensor; its module is numbered
            raise error("E208", f"the tensor name `@{label}` is taken in this body", lspan or s.span)
        y = self._node(s.node, None, None, env, cur)
        self.b.names[label] = y
        if y != FAILED and not isinstance(s.node, ir.Ref) and self.b.nodes[y].tensor is None:
            self.b.nodes[y] = self.b.nodes[y].model_copy(update={"tensor": label})
        return y

    def _node(self, n: ir.Call | ir.Container | ir.Ref, label: str | None, lspan: Span | None, env: dict,
              cur: int) -> int:
        if isinstance(n, ir.Ref):
            if label is not None:
                raise error("E208", "a reference cannot be named: name the node it refers to", lspan or n.span)
            return evaluate(n, env).node
        if isinstance(n, ir.Container):
            if n.kind == "modules":
                return self._holder(n, label, lspan, env, cur)
            if label is None:
                return self._anonymous(n, env, cur)
            return self._group(n, label, lspan, env, cur)
        if n.name in LAYERS:
            return self._layer(n, label, lspan, env, cur)
        return self._block(n, label, lspan, env, cur)

    def _label(self, label: ir.Label | None, env: dict) -> tuple[str | None, Span | None]:
        if label is None:
            return None, None
        if label.parts is not None:
            name = "".join(p if isinstance(p, str) else _label_part(p, env) for p in label.parts)
        elif label.index is not None:
            name = label.name + _label_part(label.index, env)
        else:
            name = label.name
        problem = label_problem(name)
        if problem:
            raise error("E208", f"`{name}` cannot name a module: {problem}", label.span)
        return name, label.span

    def _name(self, label: str | None, i: int) -> int:
        if label is not None:
            self.b.names[label] = i
        return i

    def _anonymous(self, c: ir.Container, env: dict, cur: int) -> int:
        if c.kind == "seq":
            return self.chain(c.body, env, cur)
        outs: list[int] = []
        self.branches(c.body, env, cur, outs)
        return self._combine(c, env, outs, self.b)

    def _holder(self, c: ir.Container, label: str | None, lspan: Span | None, env: dict, cur: int) -> int:
        """`name = modules { ... }`: a module that only holds others (torchvision's ModuleList, ModuleDict and
        IntermediateLayerGetter). Its statements are part of this body, reading its tensors and read by what
        follows; the modules they make are numbered and named under `name`."""
        if label is None:
            raise error("E208", "`modules` needs a name: `backbone = modules { ... }`", c.span)
        seg, path = self.b.segment(label, lspan or c.span)
        b = self.b
        saved = (b.path, b.prefix, b.count, b.segments)
        b.path, b.prefix, b.count, b.segments = path, seg + ".", 0, {}
        try:
            return self.chain(c.body, env, cur)
        finally:
            b.path, b.prefix, b.count, b.segments = saved

    def _combine(self, c: ir.Container, env: dict, outs: list[int], b: _Body) -> int:
        """An add, mul or concat of branch outputs in body `b`, as a node of its own."""
        if not outs:
            raise error("E407", f"`{c.kind}` has no branches", c.span)
        if FAILED in outs:
            raise _Failed
        dim = _container_dim(c, env)
        values = [(b.nodes[i].out_shape, b.nodes[i].batched, b.nodes[i].span) for i in outs]
        try:
            with site(c.span, c.kind) if self.run.recording else _NOTHING:
                shape, batched = combine_shape(c.kind, values, dim)
        except ShapeProblem as p:
            raise ArchError(Diagnostic(p.code, p.message, getattr(p, "span", None) or c.span, p.notes)) from None
        with quiet() if self.run.recording else _NOTHING:
            rf = _largest([b.nodes[i].rf for i in outs])
        node = ir.GNode.model_construct(span=c.span, kind="combine", op=c.kind, args={"dim": dim} if c.kind ==
                                        "concat" else {}, inputs=tuple(outs), out_shape=shape, batched=batched,
                                        activation_bytes=_bytes(shape, self.run.sized) if len(outs) > 1 else 0, rf=rf,
                                        guard=self.guard)
        return b.add(node)

    def _group(self, c: ir.Container, label: str, lspan: Span | None, env: dict, cur: int) -> int:
        """A named container: a module of its own, whose body is a graph."""
        if cur == FAILED:
            raise _Failed
        seg, path = self.b.segment(label, lspan or c.span)
        inner = _Body(path)
        x = self._entry(inner, cur, c.span)
        scoped = {k: v for k, v in env.items() if k != SNAP}
        scoped["@"] = inner.names
        walker = _Walker(self.run, inner, self.guard)  # a named container is part of its block's class
        if c.kind == "seq":
            y = walker.chain(c.body, scoped, x)
        else:
            outs: list[int] = []
            walker.branches(c.body, scoped, x, outs)
            y = walker._combine(c, scoped, outs, inner)
        if y == FAILED:
            raise _Failed
        inner.outputs.append(("", y))
        return self._name(label, self._module(inner.graph(), y, kind="group", op=c.kind, span=c.span, label=label,
                                              lspan=lspan, seg=seg, path=path, cur=cur))

    def _entry(self, inner: _Body, cur: int, span: Span) -> int:
        node = self.b.nodes[cur]
        i = inner.add(ir.GNode.model_construct(span=span, kind="input", op="x", out_shape=node.out_shape,
                                               batched=node.batched, rf=node.rf))
        inner.inputs.append(i)
        inner.names["input"] = i  # `@input` in a block or named container: the tensor reaching it
        return i

    def _module(self, graph: ir.Graph, y: int, *, kind: str, op: str, span: Span, label: str | None,
                lspan: Span | None, seg: str, path: str, cur: int, args: dict | None = None,
                written: tuple = (), positional: int = 0, source: Any = None, totals: tuple | None = None) -> int:
        totals = totals if totals is not None else _totals(graph)
        out = graph.nodes[y]
        node = ir.GNode.model_construct(
            span=span, kind=kind, op=op, args=args or {}, written=written, positional=positional, inputs=(cur,),
            label=label, label_span=lspan, path=path, segment=seg, body=graph, out_shape=out.out_shape,
            batched=out.batched, params=totals[0], macs=totals[1], activation_bytes=totals[2], rf=out.rf,
            guard=self.guard, source=source)
        return self.b.add(node)

    def _layer(self, c: ir.Call, label: str | None, lspan: Span | None, env: dict, cur: int) -> int:
        layer = LAYERS[c.name]
        args, written, spans = self._arguments(c, layer, env)
        refs = [v for v in args.values() if isinstance(v, TensorRef)]
        inputs = ((cur,) if layer.sources else ()) + tuple(r.node for r in refs)
        if FAILED in inputs:
            raise _Failed
        x = self.b.shape(cur) if layer.sources else ()
        if layer.sources and not self.b.nodes[cur].batched:
            raise error("E405", f"{c.name} takes a batched tensor; `param` gives one without the batch, for `add` "
                                "and `mul`", c.span)
        shaped = {k: (self.b.shape(v.node) if isinstance(v, TensorRef) else v) for k, v in args.items()}
        try:
            with site(c.span, c.name) if self.run.recording else _NOTHING:  # its comparisons of sizes, here
                y = layer.shape(shaped, x)
                params = layer.params(shaped, x)
                macs = layer.macs(shaped, x, y)
        except ShapeProblem as p:
            notes = p.notes + ((f"input shape {show_shape(x)}",) if layer.sources else ())
            raise ArchError(Diagnostic(p.code, p.message, c.span, notes)) from None
        except SizeError as p:
            raise error(p.code, f"{c.name}: {p.message}", c.span, f"input shape {show_shape(x)}") from None
        if isinstance(params, Size):
            raise error("E410", f"{c.name}: its parameters would depend on the input size ({params})", c.span,
                        f"input shape {show_shape(x)}", "fix the size with --input, or pool to a fixed size first "
                        "(adaptive_avgpool2d)")
        if not (self.run.recording and is_symbolic(y)) and (any(n > MAX_DIM for n in y) or prod(y) > MAX_DIM * 16):
            raise error("E408", f"{c.name}: output shape {list(y)} is absurdly large", c.span)
        seg, path = self.b.segment(label, lspan or c.span)
        rf = ONE
        if layer.sources:
            with quiet() if self.run.recording else _NOTHING:  # a receptive field never refuses a size
                rf = _largest([self.b.nodes[i].rf for i in inputs])
                if layer.rf is not None:
                    rf = layer.rf(shaped, x, rf, self.run.whole)
        node = ir.GNode.model_construct(
            span=c.span, kind="layer", op=c.name, args=args, written=written, positional=_positional(c),
            inputs=inputs, label=label, label_span=lspan, path=path, segment=seg, out_shape=tuple(y),
            batched=bool(layer.sources), params=params, macs=macs, guard=self.guard,
            activation_bytes=0 if c.name == "identity" else _bytes(y, self.run.sized), source=self._source,
            rf=rf)
        return self._name(label, self.b.add(node))

    def _arguments(self, c: ir.Call, layer, env: dict) -> tuple[dict[str, Any], tuple[str, ...], dict[str, Span]]:
        """A layer's arguments, each checked and normalised by its kind; every bad one is reported."""
        sig = layer.args
        given, spans = _given(c, [a.name for a in sig], env, self.run)
        self._source = _source(c, [a.name for a in sig], env)
        args: dict[str, Any] = {}
        bad: list[Diagnostic] = []
        for a in sig:
            v = given.get(a.name, a.default)
            if v is REQUIRED:
                continue  # resolve has reported it
            if self.run.recording and is_symbolic(v):  # only a network with symbolic sizes has Size values
                bad.append(Diagnostic("E410", f"{c.name} argument `{a.name}` is `{show(v)}`, which depends on the "
                                              "input size: a layer's arguments are numbers", spans.get(a.name, c.span),
                                      ("fix the size with --input, or compute the argument without it",)))
                continue
            try:
                args[a.name] = a.coerce(v)
            except TypeError as exc:
                bad.append(Diagnostic("E205", f"{c.name} argument `{a.name}`: {exc}", spans.get(a.name, c.span)))
            except ValueError as exc:
                bad.append(Diagnostic("E302", f"{c.name} argument `{a.name}` {exc}", spans.get(a.name, c.span),
                                      _choices(a)))
        if bad:
            raise ArchError(bad)
        for a in sig:  # a default that is another argument's value (a pool's stride is its kernel)
            if a.same_as and args.get(a.name) is None:
                args[a.name] = args[a.same_as]
        return args, tuple(given), spans

    def _block(self, c: ir.Call, label: str | None, lspan: Span | None, env: dict, cur: int) -> int:
        d = self.run.program.definitions[c.name]
        given, spans = _given(c, [p.name for p in d.params], env, self.run)
        if cur == FAILED:
            raise _Failed
        x = self.b.nodes[cur]
        local: dict[str, Any] = {"in_shape": list(x.out_shape), "in_channels": x.out_shape[0] if x.out_shape else 1}
        for p in d.params:
            if p.name in given:
                local[p.name] = _typed(p, given[p.name], spans[p.name])
            else:
                local[p.name] = _typed(p, evaluate(p.default, local), p.default.span)
        if self.run.depth >= MAX_CALL_DEPTH:
            raise io_error("E005", f"blocks are nested too deeply (more than {MAX_CALL_DEPTH} calls)", c.span)
        seg, path = self.b.segment(label, lspan or c.span)
        key = _call_key(d, local, x, self.run.depth, self.run.variables)
        done = self.run.memo.get(key) if key is not None else None
        if done is not None and self.run.steps + done.steps <= MAX_STEPS:
            self.run.steps += done.steps
            self.run.asserts.extend(done.asserts)
            if self.run.recording:  # the constraints its layers made, now this network's too
                self.run.recorder.replay(done.made)
            with quiet() if self.run.recording else _NOTHING:  # a receptive field never refuses a size
                graph = _moved(done.graph, done.path, path, x.rf, self.run.whole, c.span)
            y, totals = done.output, done.totals
        else:
            graph, y, totals = self._expand_block(c, d, local, path, cur, key)
        args = {p.name: local[p.name] for p in d.params}
        i = self._module(graph, y, kind="block", op=c.name, span=c.span, label=label, lspan=lspan, seg=seg,
                         path=path, cur=cur, args=args, written=tuple(given), positional=_positional(c),
                         source=_source(c, [p.name for p in d.params], env), totals=totals)
        return self._name(label, i)

    def _expand_block(self, c: ir.Call, d: ir.Definition, local: dict, path: str, cur: int, key: Any
                      ) -> tuple[ir.Graph, int, tuple]:
        """A block's body as a graph of its own, its output and totals (_totals), remembered under `key`
        (not None) when it expanded cleanly."""
        inner = _Body(path)
        entry = self._entry(inner, cur, c.span)
        local["@"] = inner.names
        before, steps, asserts = len(self.run.problems), self.run.steps, len(self.run.asserts)
        made = len(self.run.recorder.made) if self.run.recording else 0
        self.run.depth += 1
        try:
            y = _Walker(self.run, inner).chain(d.body, local, entry)
        finally:
            self.run.depth -= 1
        # An error inside the block's definition: say where the block was called from.
        note = f"in `{c.name}` called at {c.span}"
        self.run.problems[before:] = [dataclasses.replace(p, notes=p.notes + (note,)) if len(p.notes) < 8 else p
                                      for p in self.run.problems[before:]]
        if y == FAILED or len(self.run.problems) > before:
            raise _Failed
        inner.outputs.append(("", y))
        graph = inner.graph()
        totals = _totals(graph)
        if key is not None:
            self.run.memo[key] = _Expanded(graph, path, y, self.run.steps - steps, tuple(self.run.asserts[asserts:]),
                                           totals, tuple(self.run.recorder.made[made:]) if self.run.recording else ())
        return graph, y, totals


def _totals(graph: ir.Graph) -> tuple:
    """A module's parameters, MACs and activation bytes: those of the nodes of its body."""
    inside = [n for n in graph.nodes if n.kind != "input"]
    return (sum(n.params for n in inside), total(n.macs for n in inside), total(n.activation_bytes for n in inside))


@dataclass(frozen=True)
class _Expanded:
    """A block call expanded once: its body's graph, made at `path`, and what expanding it counted."""

    graph: ir.Graph
    path: str
    output: int
    steps: int
    asserts: tuple
    totals: tuple  # the module's params, MACs and activation bytes (_totals), the same at every call
    made: tuple = ()  # with symbolic sizes: every comparison its layers made (sizes.Recorder.made)


class _Unkeyed(Exception):
    """A value that cannot be part of a call's key (a tensor reference)."""


def _call_key(d: ir.Definition, local: dict, x: ir.GNode, depth: int, variables: tuple) -> Any:
    """What a block call's body depends on, besides where it is (its module path) and the receptive
    field reaching it: the definition, its arguments (with their types: 1 and 1.0 and true differ), the
    shape of its input, how deep the call is, and the network's size variables with the samples they are
    decided at (a size's text, `H`, names another variable in a network whose `H` comes second). Calls
    with the same key expand to the same graph, which `_moved` places at another path. None for a call
    that cannot be keyed."""
    try:
        return (id(d), depth, _frozen(x.out_shape), x.batched, tuple(_frozen(local[p.name]) for p in d.params),
                variables)
    except _Unkeyed:
        return None


def _frozen(v: Any) -> Any:
    t = type(v)
    if t is int or t is str or t is bool or t is float or v is None:
        return t, v
    if t is list or t is tuple:
        return t, tuple(_frozen(item) for item in v)
    if t is Size:  # by its text: comparing sizes would record a constraint
        return t, str(v)
    raise _Unkeyed


def _moved(g: ir.Graph, old: str, new: str, rf: tuple, whole: tuple, call: Span | None = None) -> ir.Graph:
    """A copy of a block body's graph, expanded at module path `old`, for a call at `new` (written at
    `call`) whose input has receptive field `rf`: paths renamed, the input's span and receptive fields
    recomputed as `_entry`, `_layer` and `_combine` make them."""
    cut = len(old)
    nodes: list[ir.GNode] = []
    for n in g.nodes:
        update: dict[str, Any] = {"path": new + n.path[cut:]} if n.path else {}
        kind = n.kind
        if kind == "input":
            update["rf"] = rf
            if call is not None:
                update["span"] = call
        elif kind == "combine":
            update["rf"] = _largest([nodes[i].rf for i in n.inputs])
        elif kind == "layer":
            layer = LAYERS[n.op]
            if layer.sources:
                field_ = _largest([nodes[i].rf for i in n.inputs])
                if layer.rf is not None:
                    shaped = {k: (nodes[v.node].out_shape if isinstance(v, TensorRef) else v)
                              for k, v in n.args.items()}
                    field_ = layer.rf(shaped, nodes[n.inputs[0]].out_shape, field_, whole)
                update["rf"] = field_
        else:  # a block or a named container: its own body, entered with its input's field
            body = _moved(n.body, old, new, nodes[n.inputs[0]].rf, whole)
            update["body"] = body
            update["rf"] = body.nodes[body.outputs[0][1]].rf
        nodes.append(n.model_copy(update=update))
    return g.model_copy(update={"nodes": tuple(nodes)})


def _bytes(shape: tuple, kept: dict) -> Any:
    """A tensor's size in bytes (fp32). A symbolic one is kept in `kept` (one network's: there each size
    name stands for one variable) by its shape's text: many layers share a shape, and multiplying sizes
    out is the costly part of checking a network with symbolic sizes."""
    if all(type(d) is int for d in shape):
        return BYTES * prod(shape)
    key = tuple(d if type(d) is int else str(d) for d in shape)
    found = kept.get(key)
    if found is None:
        found = kept[key] = BYTES * prod(shape)
    return found


def _container_dim(c: ir.Container, env: dict) -> int:
    for a in c.args or ():
        v = evaluate(a.value, env)
        if isinstance(v, bool) or not isinstance(v, int):
            raise error("E205", f"concat's dim must be an int, got {type_name(v)} `{show(v)}`", a.value.span)
        return v
    return 0


def _label_part(e: ir.Expr, env: dict) -> str:
    i = evaluate(e, env)
    if isinstance(i, bool) or not isinstance(i, (int, str)):
        raise error("E205", f"a name's suffix must be an int or a string, got {type_name(i)} `{show(i)}`", e.span)
    return text(i)


def _given(c: ir.Call, names: list[str], env: dict, run: _Run) -> tuple[dict[str, Any], dict[str, Span]]:
    """The arguments of a call, evaluated; each that fails is reported and left out (the others still count)."""
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    positional = iter(names)  # resolve has checked that positional arguments come first and fit
    failed = False
    for a in c.args or ():
        key = a.name if a.name is not None else next(positional)
        spans[key] = a.value.span
        try:
            values[key] = evaluate(a.value, env)
        except _Stop:
            raise
        except ArchError as exc:
            run.report(exc)
            failed = True
        except Poisoned:
            failed = True
    if failed:
        raise _Failed
    return values, spans


def _source(c: ir.Call, names: list[str], env: dict) -> tuple[dict[str, ir.Expr], dict]:
    """A call's argument expressions by parameter name, and the env they were evaluated in."""
    positional = iter(names)
    exprs = {}
    for a in c.args or ():
        key = a.name if a.name is not None else next(positional, None)
        if key is not None:
            exprs[key] = a.value
    return exprs, snapshot(env)


SNAP = "#snapshot"


def snapshot(env: dict) -> dict:
    """A frozen copy of `env` for provenance, shared by every node made until a name is bound again
    (then `rebind` drops it): a copy per binding, not per node."""
    snap = env.get(SNAP)
    if snap is None:
        snap = {k: v for k, v in env.items() if k != SNAP}
        env[SNAP] = snap
    return snap


def rebind(env: dict, name: str, value: Any) -> None:
    env[name] = value
    env.pop(SNAP, None)


def _choices(a) -> tuple[str, ...]:
    return (f"{a.name} is one of {', '.join(map(show, a.choices))}",) if a.choices else ()


def _positional(c: ir.Call) -> int:
    return sum(1 for a in c.args or () if a.name is None)


def _targets(t: ir.Target) -> list[str]:
    return [t.id] if isinstance(t, ir.NameTarget) else [n for x in t.items for n in _targets(x)]


def _assign(t: ir.Target, v: Any, env: dict) -> None:
    if isinstance(t, ir.NameTarget):
        rebind(env, t.id, v)
        if t.id in env.get(LETS, {}):  # a loop variable now: no `let` gives its value any more
            env[LETS] = {k: x for k, x in env[LETS].items() if k != t.id}
        return
    if not isinstance(v, (list, tuple)) or len(v) != len(t.items):
        want = len(t.items)
        raise error("E301", f"cannot unpack {type_name(v)} `{show(v)}` into {want} names", t.span)
    for sub, x in zip(t.items, v):
        _assign(sub, x, env)
