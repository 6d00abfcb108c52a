"""The spec as the source of a torch nn.Module that reads as if written by hand.

It walks the dataflow graph. Every block and named container is a module: an `nn.Sequential`
when its body is a plain chain of unnamed nodes (as torchvision writes VGG's features), else a
class whose `__init__` makes its submodules and whose `forward` follows the graph, one statement
a line, a variable per live value (a value dies at its last use, fx's register_last_uses; its
name goes on to the next node, and a node the spec names gets a variable of that name where a
branch needs one). Unnamed layers without state are written as calls in `forward`; an in-place
ReLU or sum is used where the tensor it overwrites is fresh and read by nothing else.

Classes take the parameters of the block they come from (archspec/codegen/symbolic.py), so the
instances of a block share one class wherever the spec's own expressions can say how they differ:
`Bottleneck(in_channels=256, planes=64, stride=2)`. The root class takes the network's parameters,
with the values compiled as its defaults.

Every generated name comes from one Namespace (archspec/names.py), every piece of user text
through one escaping function (archspec/escape.py).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import dataclass, field

from .. import __version__, ir
from ..escape import escape, py_string, py_value
from ..layers import LAYERS
from ..names import Namespace, attribute, camel, set_attribute
from ..sizes import Size
from ..summary import show_shape
from . import helpers
from .emit import constructor, functional, module_call, stateless, takes_tensors
from .merge import merge, reads_another
from .symbolic import Scope, Sym, divided, exposable, functions_of, literal, param, python_function, render, total

IN = "#in"  # a scope's name for the channels of the tensor reaching the body (no spec name can be this)
LAST = "#last"  # and for its last size: a class reads it as a number (ViT's and Swin's channels-last widths)
LINE_LENGTH = 120  # the project's (pyproject.toml); longer lines are wrapped as a formatter would
SAME_SHAPE = frozenset({"activation", "normalisation", "regularisation", "attention"})
SAME_CHANNELS = frozenset({"maxpool2d", "avgpool2d", "adaptive_avgpool2d", "adaptive_maxpool2d", "interpolate",
                           "pad", "channel_shuffle"})


@dataclass
class _Class:
    name: str
    base: str  # "nn.Module" or "nn.Sequential"
    doc: str
    params: list[tuple[str, str, str | None]]  # (name, annotation, default literal or None)
    body: list[str]


@dataclass
class _Made:
    """A module node as its parent writes it: a constructor call, and the values of its class's parameters."""

    call: str | None  # the class (`Bottleneck`), or None when `text` is the whole expression (nn.Sequential)
    params: list[str] = field(default_factory=list)
    text: str = ""
    tainted: bool = False  # it reads a value the enclosing class cannot write in its parameters


class Generator:
    def __init__(self, net: ir.Network, program, sha: str):
        self.net, self.program, self.sha = net, program, sha
        self.definitions = program.definitions if program is not None else {}
        self.exposed = exposable(program) if program is not None else {}
        self.exposed_guarded = exposable(program, guards=True) if program is not None else {}
        self.calls: dict[str, list[ir.GNode]] = {}  # block -> its calls in the network (for merging)
        for n in ir.walk(net.graph):
            if n.kind == "block":
                self.calls.setdefault(n.op, []).append(n)
        self.merges: dict[str, ir.Graph | None] = {}
        self.baked: dict[str, set[str]] = {}  # a merged block's parameters whose `if`s are built in
        self.members: dict[str, dict] = {}  # a merged block: each merged node's nodes, by call
        # merged nodes that read another node in some call (merge.py): whether each may work in place there
        self.reads_another: dict[int, bool] = {}
        self.kept: list[ir.Graph] = []  # every merged graph, alive while ids of its nodes are in use
        self.written: dict[str, tuple] = {}  # a merged block's class, written (and checked) once
        self.names = Namespace()  # the file's top level
        self.functions = dict(program.functions) if program is not None else {}
        for name in self.functions:
            self.names.take(name)
        self.names.take("math")
        self.classes: list[_Class] = []
        self.by_text: dict[tuple[str, str], _Class] = {}
        self.helpers: set[str] = set()
        self.functions_used: set[str] = set()
        self.ordered_dict = False  # a Sequential of named modules was written: import OrderedDict

    # -- the file ------------------------------------------------------------------------------
    def run(self) -> str:
        with functions_of(self.program) if self.program is not None else _nothing():
            root = self._root()
        return self._render(root)

    def _root(self) -> _Class:
        net = self.net
        exposed = self.exposed.get(net.name, set())
        order = [p.name for p in self.definitions[net.name].params] if net.name in self.definitions else []
        for attempt in (exposed, set()):
            py = self._python_names([p for p in order if p in attempt])
            scope = Scope({p: param(p, py[p]) for p in attempt}, locals={}, taken=set(py.values()))
            body, base, tainted = self._body(net.graph, self._variant_scope(scope), root=True)
            if not tainted:
                break
        params = [(py[p], _annotation(net.arguments[p]), py_value(net.arguments[p])) for p in order
                  if p in scope.used]
        baked = [p for p in order if p not in scope.used and p in net.arguments and p not in exposed]
        doc = f"The `{net.name}` network of {file_name(net.file)}."
        if baked:
            doc += " Built for " + ", ".join(f"{p}={_short(net.arguments[p])}" for p in baked) + "."
        cls = _Class(self.names.create(camel(net.name), "Net"), base, doc, params, body)
        self.classes.append(cls)
        return cls

    def _variant_scope(self, scope: Scope) -> Scope:
        """For `network resnet50(...) = resnet(...)`: the body's names, in terms of the variant's parameters."""
        d = self.definitions.get(self.net.name)
        inner = scope
        for exprs, env in self.net.variant:
            target = self.definitions[d.alias.name]
            names = {}
            for p in target.params:
                names[p.name] = render(exprs[p.name], env, inner) if p.name in exprs else Sym("")
            values = _values_of(target, exprs, env)
            names = {k: (v if (v.symbolic or v.tainted) else literal(values[k])) for k, v in names.items()}
            nxt = Scope(names, locals={}, taken=set(scope.taken))
            nxt.used, nxt.functions = scope.used, scope.functions  # what it reads, the root class takes
            inner, d = nxt, target
        return inner

    def _functions(self) -> dict[str, str]:
        """The user functions the classes call, and those they call in turn (`math` included)."""
        written: dict[str, str] = {}
        todo = sorted(self.functions_used - {"math"})
        while todo:
            name = todo.pop()
            if name in written:
                continue
            written[name], calls = python_function(self.functions[name], name)
            self.functions_used |= calls
            todo += sorted(calls - {"math"} - written.keys())
        return {name: written[name] for name in sorted(written)}

    def _render(self, root: _Class) -> str:
        functions = self._functions()
        uses_torch = any("torch." in line for cls in self.classes for line in cls.body) or bool(self.helpers)
        lines = _header(self.net, root.name, self.sha, uses_torch, "math" in self.functions_used, self.ordered_dict)
        for name in helpers.needed(self.helpers):
            lines += ["", "", *helpers.source(name).split("\n")]
        for text in functions.values():
            lines += ["", "", *text.split("\n")]
        for cls in self.classes:
            lines += ["", "", f"class {cls.name}({cls.base}):", f'    """{escape(cls.doc)}"""', ""]
            if cls.params:
                sig = signature(cls.params)
                body = [sig if line == "def __init__(self) -> None:" else line for line in cls.body]
            else:
                body = cls.body
            for entry in body:
                for line in entry.split("\n"):
                    lines += _wrap(f"    {line}") if line else [""]
        return "\n".join(lines) + "\n"

    # -- a body as a class -------------------------------------------------------------------------
    def _body(self, g: ir.Graph, scope: Scope, root: bool = False) -> tuple[list[str], str, bool]:
        """(the class body's lines, its base class, whether a value could not be written in the scope)."""
        dims = self._dims(g, scope, _entry_dims(g, scope))
        tainted = False
        if _is_chain(g):
            items, tainted = self._chain_items(g, scope, dims)
            lines = ["def __init__(self) -> None:", "    super().__init__(",
                     *[f"        {_indent(t, '        ')}," for t in items], "    )"]
            return _with_locals(lines, scope, before=1), "nn.Sequential", tainted
        init = ["def __init__(self) -> None:", "    super().__init__()"]
        uses = _uses(g)
        holders: set[str] = set()
        lists = _module_lists(g)
        conditions: dict[int, str] = {}  # node -> how forward tests that this call has it
        flags = Namespace(self.names)
        for n in g.nodes:
            if n.segment is not None:
                flags.take(n.segment)
        chosen = _chosen_by_module(g)  # an operand chosen against a module (`downsample` or the input): no flag
        for i, n in enumerate(g.nodes):
            cond, t = self._condition(n, scope)
            tainted |= t
            if not _has_module(n, g):
                if cond is not None and i not in chosen:  # an optional step without a module: a flag, as
                    flag = flags.create(_flag_name(n), "condition")  # torchvision's use_res_connect
                    init.append(f"    self.{flag} = {cond}")
                    conditions[i] = f"self.{flag}"
                elif cond is not None:
                    conditions[i] = ""  # written as the other side of its module's test
                continue
            text, t = self._item(n, g, scope, dims, inplace=self._in_place(n, g) and uses[n.inputs[0]] == 1)
            tainted |= t
            if cond is not None:  # a module only some calls have: None in the others, as torchvision's downsample
                one_line = f"{text} if {cond} else None"
                text = one_line if "\n" not in text and len(one_line) + len(n.segment or "") < 100 else \
                    f"(\n    {_indent(text, '    ')}\n    if {cond}\n    else None\n)"
                conditions[i] = f"{attribute('self', n.segment)} is not None"
            if n.kind == "layer" and n.op == "param":
                init.append("    " + (f"self.{n.segment} = {text}" if _plain(n.segment) else
                                      f"self.register_parameter({py_string(n.segment)}, {text})"))
            else:
                _add_module(n.segment, text, holders, lists, init)
        fwd = _Forward(g, self, root, conditions)
        lines = fwd.write()
        return _with_locals(init, scope) + ["", fwd.signature(), *[f"    {line}" for line in lines]], "nn.Module", \
            tainted

    def _chain_items(self, g: ir.Graph, scope: Scope, dims: list) -> tuple[list[str], bool]:
        items, tainted = [], False
        for n in g.nodes[1:]:
            text, t = self._item(n, g, scope, dims, inplace=self._in_place(n, g))
            cond, t2 = self._condition(n, scope)
            tainted |= t or t2
            items.append(text if cond is None else f"*([{text}] if {cond} else [])")  # a step some calls take
        return items, tainted

    def _condition(self, n: ir.GNode, scope: Scope) -> tuple[str | None, bool]:
        """(the `if`s that lead to a node, as Python in `scope`, or None where they hold for every call
        written with this class; whether one could not be written in the scope)."""
        if not scope.guards:  # a class per structure: the branches its calls took are built in
            return None, False
        parts = []
        implied = _implied_false(n.guard)
        for stmt, taken, env in n.guard:
            if id(stmt) in scope.decided or id(stmt) in implied:  # written around its container, or implied
                continue
            test = render(stmt.test, env, scope)
            if test.tainted:
                return None, True
            if not test.symbolic:
                continue  # decided the same way for every call of this class: nothing to write
            text = scope.write(test)
            parts.append(text if taken else f"not {_wrapped(test, 3)}")
        if not parts:
            return None, False
        return " and ".join(p if len(parts) == 1 else _wrapped_text(p) for p in parts), False

    def _item(self, n: ir.GNode, g: ir.Graph, scope: Scope, dims: list, inplace: bool) -> tuple[str, bool]:
        """A node's constructor, written in `scope` (the enclosing class's, or a chain's inlined one)."""
        if n.kind == "layer":
            layer = LAYERS[n.op]
            self.helpers.update(layer.helpers)
            return constructor(n, g, scope, self._seen(n, g, scope, dims) if n.inputs else _literal_dims(()), inplace)
        made = self._module(n, g, scope, dims)
        return (made.text if made.call is None else _call(made.call, made.params)), made.tainted

    def _module(self, n: ir.GNode, g: ir.Graph, scope: Scope, dims: list) -> _Made:
        """A block or named container: an nn.Sequential written in place, or a call of its (shared) class."""
        entry = self._seen(n, g, scope, dims)
        inner = self._inner_scope(n, scope, entry)
        merged = self._merged(n) if n.kind == "block" else None
        if merged is None and _is_chain(n.body, named=True):
            items, tainted = self._chain_items(n.body, inner, self._dims(n.body, inner, _entry_dims(n.body, inner)))
            self.functions_used |= inner.functions
            scope.used |= inner.used  # written in place: what it reads, its parent reads
            if any(c.label is not None for c in n.body.nodes[1:]):  # torchvision's Sequential(OrderedDict(...))
                self.ordered_dict = True
                names = [c.segment for c in n.body.nodes[1:]]
                return _Made(None, text=_sequential_named(names, items), tainted=tainted)
            return _Made(None, text=_sequential(items), tainted=tainted)
        params = self._class_params(n, guarded=merged is not None)
        first = n.body.nodes[n.body.inputs[0]].out_shape
        if merged is not None and n.op in self.written:  # every call shares the class written for the first
            body, base, cls_scope, py = self.written[n.op]
        elif merged is not None:
            mark = (len(self.classes), dict(self.by_text))
            try:
                cls_scope, py = self._class_scope(params, first, guards=True)
                body, base, tainted = self._body(merged, cls_scope)
                if tainted or not self._same_for_every_call(n.op, merged, params, first, body):
                    raise _Unwritable("the calls would not share this class")
            except _Unwritable:  # a class per structure after all; forget what the attempt wrote
                del self.classes[mark[0]:]
                self.by_text = mark[1]
                self.merges[n.op] = None
                return self._module(n, g, scope, dims)
            self.written[n.op] = (body, base, cls_scope, py)
        for attempt in ((params, None) if merged is None else ()):  # None: every value built in, no parameters
            cls_scope, py = self._class_scope(attempt, first)
            body, base, tainted = self._body(n.body, cls_scope)
            if not tainted:
                break
        self.functions_used |= cls_scope.functions
        used = [p for p in [IN, LAST, *params] if p in cls_scope.used]
        cls = self._share(n, body, base, used, py)
        values, tainted = [], False
        for p in used:
            v, t = self._argument(n, p, scope, entry)
            tainted |= t
            if v is not None:
                values.append(f"{py[p]}={v}")
        return _Made(cls.name, values, tainted=tainted)

    def _class_scope(self, params: list[str] | None, first: tuple, guards: bool = False) -> tuple[Scope, dict]:
        """A class's scope: its parameters (None: none, every value built in) and its input's channels."""
        if params is None:
            channels = literal(first[0] if first else 1)
            return Scope({IN: channels, "in_channels": channels}), {}
        py = self._python_names([IN, LAST, *params])
        cls_scope = Scope({p: param(p, py[p]) for p in params}, locals={}, taken=set(py.values()))
        cls_scope.names[IN] = param(IN, py[IN])
        cls_scope.names.setdefault("in_channels", cls_scope.names[IN])  # the language's name for it
        # its input's last size, where a channels-last layer reads it (ViT's tokens [L, D], Swin's [H, W, C]);
        # one size only (a flat input): the same as in_channels
        cls_scope.names[LAST] = cls_scope.names[IN] if len(first) == 1 else param(LAST, py[LAST])
        cls_scope.guards = guards
        return cls_scope, py

    def _same_for_every_call(self, op: str, merged: ir.Graph, params: list[str], first: tuple,
                             text: list[str]) -> bool:
        """Whether the merged class, written from each call's own nodes, is the same text every time: no
        call's numbers (a width read off its input, an argument not in the parameters) are built in."""
        members = self.members[op]
        for b, call in enumerate(self.calls[op]):
            cls_scope, _ = self._class_scope(params, call.body.nodes[call.body.inputs[0]].out_shape, guards=True)
            copies: dict[int, bool] = {}  # the variant's copies of merged nodes that read another node somewhere
            variant = _variant(merged, members, b, self.reads_another, copies)
            self.reads_another.update(copies)
            try:
                same = self._body(variant, cls_scope)[0] == text
            finally:
                for key in copies:  # their ids die with the variant
                    del self.reads_another[key]
            if not same:
                return False
        return True

    def _python_names(self, params: list[str]) -> dict[str, str]:
        """Python names for a class's parameters: the spec's, unless Python or the file has them."""
        ns = Namespace(self.names)
        ns.take("self")
        ns.take("x")
        return {p: ns.create("in_channels" if p == IN else "in_features" if p == LAST else p, "value") for p in params}

    def _class_params(self, n: ir.GNode, guarded: bool = False) -> list[str]:
        if n.kind != "block":
            return []
        d = self.definitions.get(n.op)
        exposed = (self.exposed_guarded if guarded else self.exposed).get(n.op, set())
        if guarded:
            exposed = exposed - self.baked.get(n.op, set())
        return [p.name for p in d.params if p.name in exposed] if d is not None else []

    def _in_place(self, n: ir.GNode, g: ir.Graph) -> bool:
        """_in_place; in a merged class, of what every call reads where that is not what `g` shows
        (merge.reads_another)."""
        if id(n) in self.reads_another:
            return self.reads_another[id(n)]
        return _in_place(n, g)

    # -- one class for calls of a block that took different branches of its `if`s (merge.py) ----------
    def _merged(self, n: ir.GNode) -> ir.Graph | None:
        """The body every call of this block shares, its `if`s kept (None: a class per structure). Only
        where the calls together took both sides of every `if` that has something on both sides, so that
        the class is right for any arguments, and where the calls differ only where the class says so."""
        if n.op in self.merges:
            return self.merges[n.op]
        self.merges[n.op] = None
        d = self.definitions.get(n.op)
        calls = self.calls.get(n.op, [])
        if d is None or not calls or not _has_if(d.body):
            return None
        members: dict[int, dict[int, ir.GNode]] = {}
        graph = merge([c.body for c in calls], members)
        if graph is None:
            return None
        self.members[n.op] = members
        for key, owns in reads_another(graph, members, [c.body for c in calls]).items():
            self.reads_another[key] = all(_in_place(own, og) and _uses_of(og, own.inputs[0]) == 1 for own, og in owns)
        self.kept.append(graph)  # its nodes' ids stay in reads_another: the graph must outlive any refusal
        # An `if` whose other side no call took, and which adds something there, is built in: the
        # parameters its test reads stay out of the class (ResNet's norm_layer when every call uses
        # batch norm), while its other `if`s are written (its downsample).
        self.baked[n.op] = {p for stmt in _one_sided([c.body for c in calls]) for p in _params_of(d, stmt.test)}
        self.merges[n.op] = graph
        return graph

    def _inner_scope(self, n: ir.GNode, scope: Scope, entry: tuple[Sym, Sym]) -> Scope:
        """The names a module's body reads, in its parent's terms (a chain is written in place). A named
        container is part of its block: it reads the block's names."""
        names: dict[str, Sym] = {**(scope.names if n.kind == "group" else {}), IN: entry[0], "in_channels": entry[0],
                                 LAST: entry[1]}
        if n.kind == "block" and n.source is not None:
            exprs, env = n.source
            before = set(scope.used)  # what the call passes is read only where the class takes it (_argument)
            for p, value in n.args.items():
                names[p] = render(exprs[p], env, scope) if p in exprs else literal(value)
            scope.used.intersection_update(before)
        inner = Scope(names)
        inner.functions = scope.functions
        if n.kind == "group":  # part of the same class: its lets and what it reads are the block's
            inner.locals, inner.taken, inner.used = scope.locals, scope.taken, scope.used
            inner.guards = scope.guards
            inner.decided = scope.decided | {id(stmt) for stmt, _, _ in n.guard}
        return inner

    def _argument(self, n: ir.GNode, p: str, scope: Scope, entry: tuple[Sym, Sym]) -> tuple[str | None, bool]:
        """(the value a call site passes for a class parameter, None where the class's default holds;
        whether that value could not be written in the scope's parameters)."""
        if p == IN:
            return scope.write(entry[0]), entry[0].tainted
        if p == LAST:
            return scope.write(entry[1]), entry[1].tainted
        exprs, env = n.source or ({}, {})
        default = _default_literal(self.definitions.get(n.op), p)
        if p in exprs:
            s = render(exprs[p], env, scope)
            if s.symbolic or s.tainted or s.text != default:
                return scope.write(s), s.tainted
            return None, False
        value = py_value(n.args[p])
        return (None if default == value else value), False

    def _share(self, n: ir.GNode, body: list[str], base: str, params: list[str], py: dict[str, str]) -> _Class:
        name = camel(n.op if n.kind == "block" else n.label or n.op)
        key = (name, "\n".join(body) + "|" + ",".join(params))
        if key in self.by_text:
            return self.by_text[key]
        d = self.definitions.get(n.op) if n.kind == "block" else None
        sig = []
        for p in params:
            if p in (IN, LAST):
                sig.append((py[p], "int", None))
            else:
                sig.append((py[p], _annotation(n.args[p]), _default_literal(d, p)))
        sig = _required_first(sig)
        cls = _Class(self.names.create(name, "Block"), base, self._doc(n, params), sig, body)
        self.classes.append(cls)
        self.by_text[key] = cls
        return cls

    def _doc(self, n: ir.GNode, params: list[str]) -> str:
        if n.kind == "block":
            d = self.definitions.get(n.op)
            where = f" of {file_name(d.span.file)}:{d.span.line}" if d is not None else ""
            x = n.body.nodes[0].out_shape
            shapes = "" if params else f": {show_shape(['N', *x])} -> {show_shape(['N', *n.out_shape])}"
            return f"The `{n.op}` block{where}{shapes}."
        article = "an" if n.op == "add" else "a"
        return f"`{n.label}`, {article} {n.op} of {file_name(self.net.file)}:{n.span.line}."

    # -- channels, in the scope's terms -----------------------------------------------------------
    def _dims(self, g: ir.Graph, scope: Scope, entry: dict[int, tuple[Sym, Sym]]) -> list:
        """For each node: (its first dimension, its last), as Python in `scope` where the spec says so."""
        out: list = []
        for i, n in enumerate(g.nodes):
            if n.kind == "input":
                out.append(entry.get(i, _literal_dims(n.out_shape)))
                continue
            ins = [self._seen(n, g, scope, out, j) if n.kind != "combine" else out[j] for j in n.inputs]
            out.append(self._node_dims(n, g, ins, scope))
        return out

    def _seen(self, n: ir.GNode, g: ir.Graph, scope: Scope, dims: list, j: int | None = None) -> tuple[Sym, Sym]:
        """The sizes of a node's input as every call that has the node sees them. In a merged class an
        input some calls lack passes its own input on there: `(hidden_dim if expand_ratio != 1 else
        in_channels)`; one the node never meets (the other side of the same `if`) is skipped."""
        j = n.inputs[0] if j is None else j
        before = g.nodes[j]
        if not scope.guards or not before.guard or not before.inputs or before.kind == "combine":
            return dims[j]
        if _exclusive(before, n):
            return self._seen(n, g, scope, dims, before.inputs[0])
        mine = {(id(stmt), taken) for stmt, taken, _ in n.guard}
        if all((id(stmt), taken) in mine for stmt, taken, _ in before.guard):  # present whenever n is
            return dims[j]
        cond, _ = self._condition(before, scope)
        if cond is None:
            return dims[j]
        other = self._seen(n, g, scope, dims, before.inputs[0])
        return tuple(a if a.text == b.text else Sym(f"{a.text} if {cond} else {b.text}", True, a.tainted or b.tainted,
                                                    0, a.reads | b.reads)
                     for a, b in zip(dims[j], other))  # type: ignore[return-value]

    def _node_dims(self, n: ir.GNode, g: ir.Graph, ins: list, scope: Scope) -> tuple[Sym, Sym]:
        y = n.out_shape
        lit = _literal_dims(y)
        symbolic_in = any(s.symbolic or s.tainted for d in ins for s in d)
        if n.kind == "combine":
            if n.op == "concat" and n.args.get("dim", 0) in (0, -len(y)):
                parts = [d[0] if g.nodes[j].batched else _literal_dims(g.nodes[j].out_shape[1:])[0]
                         for j, d in zip(n.inputs, ins)]
                if any(p.symbolic or p.tainted for p in parts):
                    return (total(parts), lit[1])
                return lit
            same = [d for j, d in zip(n.inputs, ins) if g.nodes[j].out_shape == y and g.nodes[j].batched]
            return same[0] if same else _taint(lit, symbolic_in)
        if n.kind in ("block", "group"):
            inner = self._inner_scope(n, scope, ins[0])
            body_dims = self._dims(n.body, inner, {n.body.inputs[0]: ins[0]})
            return body_dims[n.body.outputs[0][1]]
        layer = LAYERS[n.op]
        if not layer.sources:
            return lit
        exprs, env = n.source or ({}, {})

        def arg(name: str) -> Sym:
            return render(exprs[name], env, scope) if name in exprs else literal(n.args[name])
        if n.op in ("conv2d", "conv_transpose2d"):
            return (arg("out_channels"), lit[1])
        if n.op == "linear":
            out = arg("out_features")
            return (out if len(y) == 1 else ins[0][0], out)
        x = g.nodes[n.inputs[0]].out_shape
        if layer.category in SAME_SHAPE or n.op == "identity":
            return ins[0] if tuple(x) == tuple(y) else _taint(lit, symbolic_in)
        if n.op in SAME_CHANNELS:
            return (ins[0][0], lit[1])
        if n.op in ("permute", "transpose") and len(x) >= 1:  # ConvNeXt's channels-last layout, and back
            order = list(range(len(x)))
            if n.op == "permute":
                order = [d % len(x) for d in n.args["dims"]]
            else:
                a, b = n.args["dim0"] % len(x), n.args["dim1"] % len(x)
                order[a], order[b] = order[b], order[a]

            def pick(k: int) -> Sym:
                return ins[0][0] if k == 0 else ins[0][1] if k == len(x) - 1 else literal(x[k])
            return (pick(order[0]), pick(order[-1]))
        if n.op in ("chunk", "slice") and len(x) >= 1 and n.args["dim"] % len(x) == 0:
            part = _part_of(n.op, n.args, ins[0][0])  # ShuffleNet's halves: in_channels // 2
            if part is not None:
                return (part, part if len(y) == 1 else lit[1])
        if n.op == "flatten" and len(y) == 1 and (ins[0][0].symbolic or ins[0][0].tainted):
            rest = 1
            for d in x[1:]:
                rest *= d
            c = ins[0][0]
            s = Sym(f"{c.text if c.prec >= 6 else '(' + c.text + ')'} * {rest}" if rest != 1 else c.text,
                    c.symbolic, c.tainted, 6, c.reads)
            return (s, s)
        return _taint(lit, symbolic_in)


class _Forward:
    """Writes a forward pass over a body graph: one statement a line, a variable per live value.

    A value goes into its input's variable when that input dies at it (`x = self.conv1(x)`);
    otherwise into a new one, named after the node where the spec names it (`enc1`), else `out`
    or `branch`. A sum whose first operand is a fresh tensor dying there is made in place
    (`out += identity`), as is an activation reading one.
    """

    def __init__(self, g: ir.Graph, gen: Generator, root: bool, conditions: dict[int, str] | None = None) -> None:
        self.g, self.gen, self.root = g, gen, root
        # merged classes (codegen/merge.py): nodes only some calls have, and how forward tests for them;
        # an operand of a sum that only some calls have is computed where the sum is
        self.conditions = conditions or {}
        self.deferred = {i for i in self.conditions if i in g.left_out}  # an operand only some calls have,
        # left out of the sum where absent (not passed on by a step only some calls take)
        self.names = Namespace(gen.names)
        self.names.take("self")
        self.var: dict[int, str] = {}
        self.left = _uses(g)  # uses not yet written, per node
        self.total = dict(self.left)  # all uses, per node: a tensor read twice is never overwritten
        self.lines: list[str] = []
        self.fresh: set[int] = set()  # nodes whose value is a new tensor nothing else holds
        self.labelled: set[str] = set()  # variables named after a node the spec names
        self.lists = _module_lists(g)  # `modules` holders written as nn.ModuleLists

    def signature(self) -> str:
        args = ", ".join(f"{self.var[i]}: torch.Tensor" for i in self.g.inputs)
        result = "dict[str, torch.Tensor]" if _returns_dict(self.g) else "torch.Tensor"
        return f"def forward(self, {args}) -> {result}:"

    def write(self) -> list[str]:
        g = self.g
        for i in g.inputs:
            base = "x" if (not self.root or len(g.inputs) == 1) else g.nodes[i].op
            self.var[i] = self.names.create(base, "x")
        for i, n in enumerate(g.nodes):
            if n.kind != "input" and not n.training_only and i not in self.deferred:
                self._node(i, n)
        if g.training:  # aux heads: in eager training mode only, as torchvision's GoogLeNet and Inception
            main = self.lines
            self.lines = []
            for i, n in enumerate(g.nodes):
                if n.training_only:
                    self._node(i, n)
            results = [self.var[i] for _, i in (*g.outputs, *g.training)]
            self.lines.append(f"return {', '.join(results)}")
            main += ["if not torch.jit.is_scripting():", "    if self.training:",
                     *[f"        {line}" for line in self.lines]]
            self.lines = main
        if _returns_dict(g):
            items = ", ".join(f"{py_string(name)}: {self.var[i]}" for name, i in g.outputs)
            self.lines.append(f"return {{{items}}}")
        else:
            self.lines.append(f"return {self.var[g.outputs[0][1]]}")
        return self.lines

    def _node(self, i: int, n: ir.GNode) -> None:
        g = self.g
        if n.kind == "combine" and any(j in self.deferred for j in n.inputs):
            self._combine_optional(i, n)
            return
        ins = [self.var[j] for j in n.inputs]
        for j in n.inputs:
            self.left[j] -= 1
        last = [self.left[j] == 0 for j in n.inputs]
        if n.kind == "layer" and n.op == "identity" and not _has_module(n, g):
            self.var[i] = ins[0]  # no statement: the same tensor, whose uses are now its input's
            self.left[n.inputs[0]] += self.left[i]
            self.total[n.inputs[0]] += self.total[i] - 1
            if n.inputs[0] in self.fresh:
                self.fresh.add(i)
            return
        if n.kind == "layer" and n.op == "param":
            self.var[i] = member("self", n.segment, self.lists)
            return
        if n.kind == "combine":
            self._combine(i, n, ins, last)
            return
        if i in self.conditions:
            self._optional_step(i, n, ins, last)
            return
        reads_fresh = n.inputs[0] in self.fresh and self.total[n.inputs[0]] == 1 and id(n) not in self.gen.reads_another
        uses = self.left[i]
        if n.kind == "layer":  # a call such as channel_shuffle(x, 2) needs its def (functions: lower case)
            self.gen.helpers.update(h for h in LAYERS[n.op].helpers if h[0].islower())
        if n.kind == "layer" and takes_tensors(n):
            expr = functional(n, ins[0], extra=ins[1:])
        elif n.kind == "layer" and not _has_module(n, g):
            expr = functional(n, ins[0], inplace=reads_fresh and LAYERS[n.op].inplace is not None)
        else:
            expr = module_call(n, member("self", n.segment, self.lists), ins[0])
        nxt = g.nodes[i + 1] if i + 1 < len(g.nodes) else None
        if uses == 1 and nxt is not None and nxt.kind == "combine" and nxt.inputs and nxt.inputs[0] != i \
                and (nxt.op != "concat" or all(g.nodes[j].batched for j in nxt.inputs)) \
                and i in nxt.inputs:
            self.var[i] = expr  # an operand of the sum that follows: written inside it (`out += self.down(x)`)
            return
        # A variable named after a node the spec names is not taken over by a node of another name
        # (`expand3x3 = ...`, not `squeeze_activation = self.expand3x3(...)`).
        name = n.tensor or n.label  # `@inner0 = ...` names the variable too
        named = ins[0] in self.labelled and name is not None
        reuse = last[0] and ins[0].isidentifier() and (name is None or uses <= 1) and not named
        target = ins[0] if reuse else self._new(name if uses > 1 or named else None)
        if expr != target:
            self.lines.append(f"{target} = {expr}")
        self.var[i] = target
        if n.kind == "layer" and LAYERS[n.op].fresh:
            self.fresh.add(i)

    def _call_text(self, n: ir.GNode, ins: list[str]) -> str:
        """The expression that computes a node from its inputs' variables (no in-place tricks)."""
        g = self.g
        if n.kind == "layer" and n.op == "identity" and not _has_module(n, g):
            return ins[0]
        if n.kind == "layer":
            self.gen.helpers.update(h for h in LAYERS[n.op].helpers if h[0].islower())
        if n.kind == "layer" and takes_tensors(n):
            return functional(n, ins[0], extra=ins[1:])
        if n.kind == "layer" and not _has_module(n, g):
            return functional(n, ins[0])
        return module_call(n, member("self", n.segment, self.lists), ins[0])

    def _optional_step(self, i: int, n: ir.GNode, ins: list[str], last: list[bool]) -> None:
        """A step of a chain only some calls take: `if self.use_se: x = self.se(x)`."""
        expr = self._call_text(n, ins)
        cond = self.conditions[i]
        if last[0] and ins[0].isidentifier() and ins[0] not in self.labelled:
            target = ins[0]
        else:
            target = self._new(n.label)
            self.lines.append(f"{target} = {ins[0]}")
        self.lines += [f"if {cond}:", f"    {target} = {expr}"]
        self.var[i] = target

    def _operand(self, j: int) -> str:
        """A deferred operand (see `deferred`): its expression, its inputs' uses counted now."""
        n = self.g.nodes[j]
        ins = [self.var[k] for k in n.inputs]
        for k in n.inputs:
            self.left[k] -= 1
        return self._call_text(n, ins)

    def _new(self, label: str | None) -> str:
        name = self.names.create(label or ("out" if "out" not in self.names else "branch"), "value")
        if label:
            self.labelled.add(name)
        return name

    def _combine(self, i: int, n: ir.GNode, ins: list[str], last: list[bool]) -> None:
        if len(ins) == 1:  # an add or concat left with one branch (an `if` took the other): its input
            self.var[i] = ins[0]
            self.left[n.inputs[0]] += self.left[i]
            self.total[n.inputs[0]] += self.total[i] - 1
            if n.inputs[0] in self.fresh:
                self.fresh.add(i)
            return
        reusable = last[0] and ins[0].isidentifier() and ins[0] not in ins[1:] and \
            not (n.tensor and ins[0] in self.labelled)  # `@last_inner = add { ... }` gets a variable of its name
        if n.op == "add" and len(ins) > 1 and reusable and n.inputs[0] in self.fresh and self.total[n.inputs[0]] == 1:
            for other in ins[1:]:  # torchvision's `out += identity`
                self.lines.append(f"{ins[0]} += {other}")
            target = ins[0]
        else:
            if n.op == "concat":
                expr = f"torch.cat([{', '.join(_expanded(self.g, n, ins))}], dim={_torch_dim(n.args.get('dim', 0))})"
            else:
                expr = f" {'+' if n.op == 'add' else '*'} ".join(ins)
            target = ins[0] if reusable else self._new(n.tensor)
            self.lines.append(f"{target} = {expr}")
        self.var[i] = target
        if len(ins) > 1:
            self.fresh.add(i)


    def _combine_optional(self, i: int, n: ir.GNode) -> None:
        """A sum (or product) some of whose operands only some calls have: those added under their
        condition (`if self.use_res_connect: out = x + out`); two that exclude each other (`downsample`
        or the identity) as one operand chosen by the condition."""
        if n.op == "concat":
            raise _Unwritable("a concat whose branches differ between calls")
        sign = "+" if n.op == "add" else "*"
        always = [j for j in n.inputs if j not in self.deferred]
        optional = [j for j in n.inputs if j in self.deferred]
        pairs: list[tuple[int, int]] = []
        for a in optional:
            for b in optional:
                if a < b and _exclusive(self.g.nodes[a], self.g.nodes[b]):
                    pairs.append((a, b))
        chosen: list[str] = []
        paired = {x for pair in pairs for x in pair}
        for a, b in pairs:
            if not self.conditions[a]:  # the side without a module is tested through the other's
                a, b = b, a
            chosen.append(f"({self._operand(a)} if {self.conditions[a]} else {self._operand(b)})")
        base = [self.var[j] for j in always] + chosen
        for j in always:
            self.left[j] -= 1
        if not base:
            raise _Unwritable("a sum every operand of which is optional")
        first = always[0] if always else None
        reuse = first is not None and self.left[first] == 0 and self.var[first].isidentifier() \
            and self.total[first] == 1 and self.var[first] not in self.labelled
        target = self.var[first] if reuse else self._new(None)
        if reuse and n.op == "add" and first in self.fresh and len(base) > 1:  # torchvision's `out += identity`
            self.lines += [f"{target} += {other}" for other in base[1:]]
        elif f" {sign} ".join(base) != target:
            self.lines.append(f"{target} = {f' {sign} '.join(base)}")
        for j in optional:
            if j not in paired:
                expr = self._operand(j)
                self.lines += [f"if {self.conditions[j]}:", f"    {target} = {expr} {sign} {target}"]
        self.var[i] = target
        self.fresh.add(i)


class _Unwritable(Exception):
    """A merged class (codegen/merge.py) whose forward this writer cannot express: a class per structure."""


def _chosen_by_module(g: ir.Graph) -> set[int]:
    """Operands of a sum that exclude a module operand (ResNet's identity against its downsample)."""
    out: set[int] = set()
    for n in g.nodes:
        if n.kind != "combine":
            continue
        guarded = [j for j in n.inputs if g.nodes[j].guard]
        for a in guarded:
            for b in guarded:
                if a != b and _exclusive(g.nodes[a], g.nodes[b]) and _has_module(g.nodes[b], g) \
                        and not _has_module(g.nodes[a], g):
                    out.add(a)
    return out


def _exclusive(a: ir.GNode, b: ir.GNode) -> bool:
    """Two nodes behind opposite sides of the same `if` (one call has one, the others the other)."""
    sides = {id(stmt): taken for stmt, taken, _ in a.guard}
    return any(id(stmt) in sides and sides[id(stmt)] != taken for stmt, taken, _ in b.guard)


def _expanded(g: ir.Graph, n: ir.GNode, ins: list[str]) -> list[str]:
    """A concat's operands, a learned tensor expanded to the batch (`self.class_token.expand(x.shape[0], -1, -1)`)."""
    batch = next(v for j, v in zip(n.inputs, ins) if g.nodes[j].batched)
    rest = ", ".join(["-1"] * (len(n.out_shape)))
    return [v if g.nodes[j].batched else f"{v}.expand({batch}.shape[0], {rest})" for j, v in zip(n.inputs, ins)]


def _with_locals(lines: list[str], scope: Scope, before: int = 2) -> list[str]:
    """The class's `let`s as local variables of __init__, after super().__init__() (before it for a
    Sequential, whose items read them)."""
    if not scope.locals:
        return lines
    defs = [f"    {py} = {text}" for py, text in scope.locals.values()]
    return lines[:before] + defs + lines[before:]


def _values_of(target, exprs: dict, env: dict) -> dict:
    """A variant's arguments' values, and the defaults of the rest, as expansion bound them."""
    from .symbolic import _evaluated

    local: dict = {}
    for p in target.params:
        local[p.name] = _evaluated(exprs[p.name], env) if p.name in exprs else _evaluated(p.default, local)
    return local


def _uses(g: ir.Graph) -> dict[int, int]:
    left = {i: 0 for i in range(len(g.nodes))}
    for n in g.nodes:
        for j in n.inputs:
            left[j] += 1
    for _, j in g.outputs:
        left[j] += 1
    return left


def _uses_of(g: ir.Graph, i: int) -> int:
    return sum(n.inputs.count(i) for n in g.nodes) + sum(1 for _, j in g.outputs if j == i)


def _torch_dim(d: int) -> int:
    return d + 1 if d >= 0 else d


def _has_module(n: ir.GNode, g: ir.Graph) -> bool:
    """Whether a node is a submodule (or parameter) of its class: what has state, or is named, or is a module."""
    if n.kind in ("block", "group"):
        return True
    if n.kind != "layer":
        return False
    if n.op == "param":
        return True
    if takes_tensors(n):
        return False
    return n.label is not None or not stateless(n, g)


def _returns_dict(g: ir.Graph) -> bool:
    """Named outputs are returned by name, as torchvision's segmentation models and FPN return theirs (LRASPP's
    one `out` too); GoogLeNet's form, one output and others `if training`, returns a tensor in eval mode."""
    return len(g.outputs) > 1 or (g.outputs[0][0] != "" and not g.training)


def member(owner: str, segment: str, lists: set[str] = frozenset()) -> str:
    """The expression for a submodule: `self.conv1`, or through the modules holding it (`modules { ... }`):
    `self.backbone.layer3`, `self.fpn.inner_blocks[0]` where the holder is a ModuleList (in `lists`)."""
    parts = segment.split(".")
    for k, name in enumerate(parts):
        owner = f"{owner}[{name}]" if ".".join(parts[:k]) in lists else attribute(owner, name)
    return owner


def _module_lists(g: ir.Graph) -> set[str]:
    """The `modules` holders of a body whose modules are numbered 0, 1, ... in order: nn.ModuleLists, as
    torchvision's FPN holds its blocks."""
    children: dict[str, list[str]] = {}
    for n in g.nodes:
        if n.segment is not None and "." in n.segment and _has_module(n, g):
            holder, name = n.segment.rsplit(".", 1)
            children.setdefault(holder, []).append(name)
    return {h for h, names in children.items() if names == [str(k) for k in range(len(names))]}


def _add_module(segment: str, text: str, made: set[str], lists: set[str], init: list[str]) -> None:
    """The __init__ lines that make submodule `segment`, and the modules holding it on first use: `self.body =
    nn.Module()` (torchvision's IntermediateLayerGetter), or an nn.ModuleList where its modules are numbered."""
    parts = segment.split(".")
    for k in range(len(parts)):
        path, held_by = ".".join(parts[: k + 1]), ".".join(parts[:k])
        if path in made:
            continue
        made.add(path)
        owner = member("self", held_by, lists) if held_by else "self"
        value = text if k == len(parts) - 1 else "nn.ModuleList()" if path in lists else "nn.Module()"
        init.append("    " + (f"{owner}.append({_indent(value, '    ')})" if held_by in lists else
                              set_attribute(owner, parts[k], _indent(value, "    "))))


def _is_chain(g: ir.Graph, named: bool = False) -> bool:
    """A plain chain of modules, each reading the one before: an nn.Sequential (of named modules too where
    `named`: an OrderedDict's, as torchvision writes DenseNet's features)."""
    if len(g.inputs) != 1 or len(g.outputs) != 1 or len(g.nodes) < 2 or g.training:
        return False
    for i, n in enumerate(g.nodes[1:], start=1):
        if n.kind not in ("layer", "block", "group") or (n.label is not None and not named) or n.inputs != (i - 1,):
            return False
        if n.segment is not None and "." in n.segment:  # held by a `modules`: no Sequential item
            return False
        if n.kind == "layer" and (n.op == "param" or takes_tensors(n) or LAYERS[n.op].call is not None):
            return False
    return g.outputs[0][1] == len(g.nodes) - 1


def _in_place(n: ir.GNode, g: ir.Graph) -> bool:
    """In a chain: an in-place activation right after a layer whose output is fresh (nothing else reads it)."""
    if n.kind != "layer" or LAYERS[n.op].inplace is None:
        return False
    before = g.nodes[n.inputs[0]]
    return (before.kind == "layer" and LAYERS[before.op].fresh) or (before.kind == "combine" and len(before.inputs) > 1)


def _equality(test) -> tuple[str, object] | None:
    """(name, literal) of a test `name == literal`, else None."""
    if isinstance(test, ir.Compare) and test.ops == ("==",) and isinstance(test.first, ir.Name) and \
            isinstance(test.rest[0], (ir.Str, ir.Num)):
        return test.first.id, test.rest[0].value
    return None


def _implied_false(guard: tuple) -> set[int]:
    """The `if`s on a node's path that were not taken and need not be written: `x == "HS"` not taken
    where `x == "RE"` was (an `else if` chain), so `activation == "RE"` and not
    `(not activation == "HS") and (activation == "RE")`."""
    out = set()
    for i, (stmt, t, _) in enumerate(guard):
        eq = _equality(stmt.test)
        if t or eq is None:
            continue
        for inner, t2, _ in guard[i + 1:]:
            other = _equality(inner.test)
            if t2 and other is not None and other[0] == eq[0] and other[1] != eq[1] and _next_in_else(stmt, inner):
                out.add(id(stmt))
    return out


def _next_in_else(outer: ir.If, inner: ir.If) -> bool:
    """Whether `inner` is in `outer`'s else with no `let` before it (which could rebind the name tested)."""
    for st in outer.orelse:
        if st is inner:
            return True
        if isinstance(st, ir.Let):
            return False
    return False


def _has_if(body: tuple) -> bool:
    for st in body:
        if isinstance(st, ir.If):
            return True
        if isinstance(st, (ir.Repeat, ir.For)) and _has_if(st.body):
            return True
        if isinstance(st, ir.NodeStmt) and isinstance(st.node, ir.Container) and _has_if(st.node.body):
            return True
    return False


def _makes_nodes(body: tuple) -> bool:
    """Whether statements would add something to the graph (an `if`'s side no call took must not)."""
    for st in body:
        if isinstance(st, (ir.NodeStmt, ir.Output)):
            return True
        if isinstance(st, ir.If) and (_makes_nodes(st.body) or _makes_nodes(st.orelse)):
            return True
        if isinstance(st, (ir.Repeat, ir.For)) and _makes_nodes(st.body):
            return True
    return False


def _one_sided(bodies: list[ir.Graph]) -> list[ir.If]:
    """The `if`s the calls all decided one way whose other side would add something to the graph."""
    seen: dict[int, tuple[ir.If, set[bool]]] = {}

    def visit(g: ir.Graph) -> None:
        for node in g.nodes:
            for stmt, taken, _ in node.guard:
                seen.setdefault(id(stmt), (stmt, set()))[1].add(taken)
            if node.kind == "group" and node.body is not None:
                visit(node.body)
    for b in bodies:
        visit(b)
    return [stmt for stmt, outcomes in seen.values()
            if len(outcomes) == 1 and _makes_nodes(stmt.orelse if True in outcomes else stmt.body)]


def _params_of(d: ir.Definition, e: ir.Expr) -> set[str]:
    """The block's parameters an expression reads, through its lets (`frozen` reads norm_layer)."""
    from ..evaluate import names_in

    lets: dict[str, set[str]] = {}

    def collect(body: tuple) -> None:
        for st in body:
            if isinstance(st, ir.Let):
                lets.setdefault(st.name, set()).update(names_in(st.value))
            elif isinstance(st, ir.If):
                collect(st.body)
                collect(st.orelse)
            elif isinstance(st, (ir.Repeat, ir.For)):
                collect(st.body)
            elif isinstance(st, ir.NodeStmt) and isinstance(st.node, ir.Container):
                collect(st.node.body)
    collect(d.body)
    params = {p.name for p in d.params}
    seen, todo = set(), list(names_in(e))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += lets.get(name, ())
    return seen & params


def _variant(graph: ir.Graph, members: dict, b: int, unsafe: dict[int, bool], copies: dict[int, bool]) -> ir.Graph:
    """A merged body with the nodes of call `b` where it has them (its numbers, its arguments' values),
    for checking that writing the class from them gives the same text."""
    nodes = []
    for m in graph.nodes:
        own = members.get(id(m), {}).get(b)
        if own is None:
            nodes.append(m)
            continue
        update: dict = {"inputs": m.inputs, "guard": m.guard}
        if m.kind == "group" and m.body is not None:
            update["body"] = _variant(m.body, members, b, unsafe, copies)
        nodes.append(own.model_copy(update=update))
        if id(m) in unsafe:  # the copy stands for m: in place as m is
            copies[id(nodes[-1])] = unsafe[id(m)]
    return graph.model_copy(update={"nodes": tuple(nodes)})


def _flag_name(n: ir.GNode) -> str:
    """A flag's name: the `if`'s own when it tests a name (`use_res_connect`), else from the node."""
    stmt = n.guard[-1][0]
    if isinstance(stmt.test, ir.Name):
        return stmt.test.id
    return f"use_{n.label}" if n.label else ("use_identity" if n.op == "identity" else f"use_{n.op}")


def _wrapped(s: Sym, level: int) -> str:
    return f"({s.text})" if s.prec < level else s.text


def _wrapped_text(text: str) -> str:
    return f"({text})" if " " in text and not (text.startswith("(") and text.endswith(")")) else text


def _entry_dims(g: ir.Graph, scope: Scope) -> dict[int, tuple[Sym, Sym]]:
    if not g.inputs:
        return {}
    first = g.nodes[g.inputs[0]]
    c = scope.names.get(IN)
    if c is None:
        return {}
    last = scope.names.get(LAST) or _read_last(_size(first.out_shape[-1]) if first.out_shape else literal(1))
    return {g.inputs[0]: (c, last)}


def _read_last(s: Sym) -> Sym:
    """A class's input's last size, as a number that records its reading (see `LAST`)."""
    return Sym(s.text, s.symbolic, s.tainted, s.prec, s.reads | {LAST}, s.terms)


def _literal_dims(shape: tuple) -> tuple[Sym, Sym]:
    if not shape:
        return (literal(1), literal(1))
    return (_size(shape[0]), _size(shape[-1]))


def _size(d) -> Sym:
    """A dimension as a number; a symbolic size (a width W) as a value no constructor may read: the
    checker refuses any layer whose arguments or weights would depend on one (E410)."""
    return Sym(f"<size {d}>", tainted=True) if isinstance(d, Size) else literal(d)


def _part_of(op: str, a: dict, c: Sym) -> Sym | None:
    """The channels of a chunk or slice of `c` channels, as torch computes them for any `c`; None
    when `c` is a number (the node's shape says it) or the part does not depend on it."""
    if not (c.symbolic or c.tainted):
        return None

    def sym(text: str, prec: int) -> Sym:
        return Sym(text, c.symbolic, c.tainted, prec, c.reads)
    wrapped = c.text if c.prec >= 6 else f"({c.text})"
    if op == "slice":
        if a["end"] is not None:
            return None
        return c if a["start"] == 0 else sym(f"{c.text if c.prec >= 5 else wrapped} - {a['start']}", 5)
    k, i = a["chunks"], a["index"]
    if k == 1:
        return c
    exact = divided(c, k)
    if exact is not None:  # equal parts: ShuffleNet's halves of `2 * (oup // 2)` channels
        return exact
    if i == k - 1 and k == 2:
        return sym(f"{wrapped} // 2", 6)
    size = f"({c.text} + {k - 1}) // {k}"  # torch.chunk: ceil(c / k) each while c lasts, so maybe fewer
    if i == 0:
        return sym(size, 6)
    return sym(f"min({size}, {c.text if c.prec >= 5 else wrapped} - {i} * ({size}))", 9)


def _taint(dims: tuple[Sym, Sym], tainted: bool) -> tuple[Sym, Sym]:
    if not tainted:
        return dims
    return tuple(Sym(d.text, False, True, d.prec, d.reads) for d in dims)  # type: ignore[return-value]


def _plain(name: str | None) -> bool:
    from ..names import plain_attribute

    return name is not None and plain_attribute(name)


def _annotation(v) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", tuple: "tuple"}.get(type(v), "object")


def _default_literal(d, p: str) -> str | None:
    """A parameter's default as a literal, when the spec gives it as one (it reads no other parameter)."""
    if d is None:
        return None
    for q in d.params:
        if q.name == p and q.default is not None:
            from ..evaluate import names_in

            if names_in(q.default):
                return None
            from .symbolic import _value

            return _value(q.default, {}).text
    return None


def _required_first(sig: list) -> list:
    """Python wants parameters without defaults before those with."""
    return [s for s in sig if s[2] is None] + [s for s in sig if s[2] is not None]


def _short(v) -> str:
    from ..values import show

    return show(v, limit=60)


def signature(params: list[tuple[str, str, str | None]]) -> str:
    parts = [f"{n}: {t}" + (f" = {d}" if d is not None else "") for n, t, d in params]
    one = "def __init__(self, " + ", ".join(parts) + ") -> None:"
    if len(one) <= 100:
        return one
    return "def __init__(\n    self,\n" + "".join(f"    {p},\n" for p in parts) + ") -> None:"


def _indent(text: str, by: str) -> str:
    return text.replace("\n", "\n" + by)


def _sequential(items: list[str]) -> str:
    if sum(map(len, items)) < 70 and all("\n" not in i for i in items):
        return "nn.Sequential(" + ", ".join(items) + ")"
    return "nn.Sequential(\n" + "".join(f"    {_indent(i, '    ')},\n" for i in items) + ")"


def _sequential_named(names: list[str], items: list[str]) -> str:
    pairs = "".join(f"    ({py_string(k)}, {_indent(v, '    ')}),\n" for k, v in zip(names, items))
    return f"nn.Sequential(OrderedDict([\n{pairs}]))"


def _call(name: str, args: list[str]) -> str:
    one = f"{name}({', '.join(args)})"
    if len(one) <= 90:
        return one
    return f"{name}(\n" + "".join(f"    {a},\n" for a in args) + ")"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _wrap(line: str, limit: int = LINE_LENGTH) -> list[str]:
    """A line that ends in a call and is too long, with the call's arguments on lines of their own."""
    if len(line) <= limit:
        return [line]
    suffix = "," if line.endswith("),") else ""
    body = line[: len(line) - len(suffix)]
    depth, start, cuts = 0, -1, []
    quoted = False
    for i, ch in enumerate(body):
        if ch == '"' and (i == 0 or body[i - 1] != "\\"):
            quoted = not quoted
        if quoted:
            continue
        if ch in "([{":
            depth += 1
            if depth == 1 and start < 0:
                start = i
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and i != len(body) - 1:
                return [line]  # the outermost call does not end the line
        elif ch == "," and depth == 1:
            cuts.append(i)
    if start < 0 or not body.endswith(")"):
        return [line]
    bounds = [start, *cuts, len(body) - 1]
    args = [body[a + 1: b].strip() for a, b in itertools.pairwise(bounds)]
    indent = " " * (len(line) - len(line.lstrip()))
    one = f"{indent}    {', '.join(args)}"
    if len(one) <= limit:
        inner = [one]
    else:  # an argument still too long is a call itself, most likely: wrapped the same way. A lone one
        # gets no comma: in parentheses that group (`*(... if c else [])`) it would make a tuple
        comma = "," if len(args) > 1 else ""
        inner = [wrapped for a in args for wrapped in _wrap(f"{indent}    {a}{comma}", limit)]
    return [body[: start + 1], *inner, f"{indent}){suffix}"]


def generate(net: ir.Network, sources: dict[str, str], program=None) -> str:
    """The Python source of the network's nn.Module, deterministic for a spec and its overrides."""
    return Generator(net, program, spec_hash(sources)).run()


def file_name(path: str) -> str:
    """How generated files name a spec file: its name alone, so that the bytes do not depend on the
    folder it was compiled from or how its path was spelled (`specs/x.arch`, `./specs/x.arch`, ...).
    Raw text: whatever writes it into source escapes it (archspec/escape.py)."""
    return os.path.basename(path) or path


def spec_hash(sources: dict[str, str]) -> str:
    """SHA-256 of a spec's files (the root and its imports): their texts, and their paths relative
    to the deepest folder that holds them all, so any spelling of the same files hashes the same."""
    pseudo = {p for p in sources if p.startswith("<") or "\0" in p}  # text with no file behind it
    files = {p: t for p, t in sources.items() if p not in pseudo}
    keys = {p: p for p in pseudo}
    if files:
        real = {p: os.path.realpath(p) for p in files}
        top = os.path.commonpath([os.path.dirname(r) for r in real.values()])
        keys.update({p: os.path.relpath(r, top) for p, r in real.items()})
    h = hashlib.sha256()
    for path in sorted(sources, key=lambda p: keys[p]):
        h.update(keys[path].encode() + b"\0" + sources[path].encode() + b"\0")
    return h.hexdigest()


def _header(net: ir.Network, root_class: str, sha: str, uses_torch: bool, uses_math: bool,
            ordered: bool = False) -> list[str]:
    overrides = ", ".join(f"{k}={v}" for k, v in net.overrides.items()) or "none"
    outputs = ", ".join(f"{name} {show_shape(['N', *net.graph.nodes[i].out_shape])}" for name, i in net.graph.outputs) \
        if len(net.graph.outputs) > 1 else show_shape(["N", *net.out_shape])
    doc = [
        f"The `{net.name}` network, generated by archspec {__version__} from {file_name(net.file)}.",
        "",
        f"spec sha256: {sha}",
        f"overrides: {overrides}",
        f"input: {show_shape(['N', *net.input_shape])} -> output: {outputs}",
        f"parameters: {net.params:,}",
        "",
        "Edit the spec, not this file: `archspec compile` writes it again.",
    ]
    lines = [escape(line) for line in doc]
    return [
        f'"""{lines[0]}',
        *lines[1:],
        '"""',
        "",
        *(["import math"] if uses_math else []),
        *(["from collections import OrderedDict"] if ordered else []),
        *([""] if uses_math or ordered else []),
        *(["import torch"] if uses_torch else []),
        "from torch import nn",
        "",
        f"__all__ = [{py_string(root_class)}]",
        f"MODEL = {py_string(root_class)}",
        *_input_shape(net),
    ]


def _input_shape(net: ir.Network) -> list[str]:
    """INPUT_SHAPE: one sample's shape; for symbolic sizes an example, and INPUT_SIZES what any may be."""
    if not net.sizes:
        return [f"INPUT_SHAPE = {tuple(net.input_shape)!r}  # one sample: the batch dimension comes first"]
    from ..sizes import report

    found = report(net.constraints, net.sizes)
    values = found.pick(224)
    shape = tuple(d if isinstance(d, int) else values[str(d)] for d in net.input_shape)
    sizes = ", ".join(f"{py_string(a.name)}: {py_string(str(a))}" for a in found.variables)
    return [f"INPUT_SHAPE = {shape!r}  # an example (without the batch): any sizes INPUT_SIZES allows",
            "# the sizes the network takes (`archspec sizes` says which layers require what)",
            f"INPUT_SIZES = {{{sizes}}}"]


__all__ = ["generate", "spec_hash"]
