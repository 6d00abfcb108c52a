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
from ..summary import show_shape
from . import helpers
from .emit import constructor, functional, stateless, takes_tensors
from .symbolic import Scope, Sym, divided, exposable, functions_of, literal, param, python_function, render, total

IN = "#in"  # a scope's name for the channels of the tensor reaching the body (no spec name can be this)
LINE_LENGTH = 120  # the project's (pyproject.toml); longer lines are wrapped as a formatter would
SAME_SHAPE = frozenset({"activation", "normalisation", "regularisation"})
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
        for n in g.nodes:
            if not _has_module(n, g):
                continue
            text, t = self._item(n, g, scope, dims, inplace=_in_place(n, g) and uses[n.inputs[0]] == 1)
            tainted |= t
            if n.kind == "layer" and n.op == "param":
                init.append("    " + (f"self.{n.segment} = {text}" if _plain(n.segment) else
                                      f"self.register_parameter({py_string(n.segment)}, {text})"))
            else:
                init.append("    " + set_attribute("self", n.segment, _indent(text, "    ")))
        fwd = _Forward(g, self, root)
        lines = fwd.write()
        return _with_locals(init, scope) + ["", fwd.signature(), *[f"    {line}" for line in lines]], "nn.Module", \
            tainted

    def _chain_items(self, g: ir.Graph, scope: Scope, dims: list) -> tuple[list[str], bool]:
        items, tainted = [], False
        for n in g.nodes[1:]:
            text, t = self._item(n, g, scope, dims, inplace=_in_place(n, g))
            tainted |= t
            items.append(text)
        return items, tainted

    def _item(self, n: ir.GNode, g: ir.Graph, scope: Scope, dims: list, inplace: bool) -> tuple[str, bool]:
        """A node's constructor, written in `scope` (the enclosing class's, or a chain's inlined one)."""
        if n.kind == "layer":
            layer = LAYERS[n.op]
            self.helpers.update(layer.helpers)
            return constructor(n, g, scope, dims[n.inputs[0]] if n.inputs else _literal_dims(()), inplace)
        made = self._module(n, g, scope, dims)
        return (made.text if made.call is None else _call(made.call, made.params)), made.tainted

    def _module(self, n: ir.GNode, g: ir.Graph, scope: Scope, dims: list) -> _Made:
        """A block or named container: an nn.Sequential written in place, or a call of its (shared) class."""
        entry = dims[n.inputs[0]]
        inner = self._inner_scope(n, scope, entry)
        if _is_chain(n.body, named=True):
            items, tainted = self._chain_items(n.body, inner, self._dims(n.body, inner, _entry_dims(n.body, inner)))
            self.functions_used |= inner.functions
            scope.used |= inner.used  # written in place: what it reads, its parent reads
            if any(c.label is not None for c in n.body.nodes[1:]):  # torchvision's Sequential(OrderedDict(...))
                self.ordered_dict = True
                names = [c.segment for c in n.body.nodes[1:]]
                return _Made(None, text=_sequential_named(names, items), tainted=tainted)
            return _Made(None, text=_sequential(items), tainted=tainted)
        params = self._class_params(n)
        first = n.body.nodes[n.body.inputs[0]].out_shape
        for attempt in (params, None):  # None: every value built in, the class takes nothing
            if attempt is None:
                channels = literal(first[0] if first else 1)
                cls_scope, py = Scope({IN: channels, "in_channels": channels}), {}
            else:
                py = self._python_names([IN, *attempt])
                cls_scope = Scope({p: param(p, py[p]) for p in attempt}, locals={}, taken=set(py.values()))
                cls_scope.names[IN] = param(IN, py[IN])
                cls_scope.names.setdefault("in_channels", cls_scope.names[IN])  # the language's name for it
            body, base, tainted = self._body(n.body, cls_scope)
            if not tainted:
                break
        self.functions_used |= cls_scope.functions
        used = [p for p in [IN, *params] if p in cls_scope.used]
        cls = self._share(n, body, base, used, py)
        values, tainted = [], False
        for p in used:
            v, t = self._argument(n, p, scope, entry)
            tainted |= t
            if v is not None:
                values.append(f"{py[p]}={v}")
        return _Made(cls.name, values, tainted=tainted)

    def _python_names(self, params: list[str]) -> dict[str, str]:
        """Python names for a class's parameters: the spec's, unless Python or the file has them."""
        ns = Namespace(self.names)
        ns.take("self")
        ns.take("x")
        return {p: ns.create("in_channels" if p == IN else p, "value") for p in params}

    def _class_params(self, n: ir.GNode) -> list[str]:
        if n.kind != "block":
            return []
        d = self.definitions.get(n.op)
        exposed = self.exposed.get(n.op, set())
        return [p.name for p in d.params if p.name in exposed] if d is not None else []

    def _inner_scope(self, n: ir.GNode, scope: Scope, entry: tuple[Sym, Sym]) -> Scope:
        """The names a module's body reads, in its parent's terms (a chain is written in place). A named
        container is part of its block: it reads the block's names."""
        names: dict[str, Sym] = {**(scope.names if n.kind == "group" else {}), IN: entry[0], "in_channels": entry[0]}
        if n.kind == "block" and n.source is not None:
            exprs, env = n.source
            for p, value in n.args.items():
                names[p] = render(exprs[p], env, scope) if p in exprs else literal(value)
        inner = Scope(names)
        inner.functions = scope.functions
        if n.kind == "group":  # part of the same class: its lets and what it reads are the block's
            inner.locals, inner.taken, inner.used = scope.locals, scope.taken, scope.used
        return inner

    def _argument(self, n: ir.GNode, p: str, scope: Scope, entry: tuple[Sym, Sym]) -> tuple[str | None, bool]:
        """(the value a call site passes for a class parameter, None where the class's default holds;
        whether that value could not be written in the scope's parameters)."""
        if p == IN:
            return scope.write(entry[0]), entry[0].tainted
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
            if p == IN:
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
            ins = [out[j] for j in n.inputs]
            out.append(self._node_dims(n, g, ins, scope))
        return out

    def _node_dims(self, n: ir.GNode, g: ir.Graph, ins: list, scope: Scope) -> tuple[Sym, Sym]:
        y = n.out_shape
        lit = _literal_dims(y)
        symbolic_in = any(s.symbolic or s.tainted for d in ins for s in d)
        if n.kind == "combine":
            if n.op == "concat" and n.args.get("dim", 0) in (0, -len(y)):
                parts = [d[0] for d in ins]
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

    def __init__(self, g: ir.Graph, gen: Generator, root: bool) -> None:
        self.g, self.gen, self.root = g, gen, root
        self.names = Namespace(gen.names)
        self.names.take("self")
        self.var: dict[int, str] = {}
        self.left = _uses(g)  # uses not yet written, per node
        self.total = dict(self.left)  # all uses, per node: a tensor read twice is never overwritten
        self.lines: list[str] = []
        self.fresh: set[int] = set()  # nodes whose value is a new tensor nothing else holds
        self.labelled: set[str] = set()  # variables named after a node the spec names

    def signature(self) -> str:
        args = ", ".join(f"{self.var[i]}: torch.Tensor" for i in self.g.inputs)
        result = "dict[str, torch.Tensor]" if len(self.g.outputs) > 1 else "torch.Tensor"
        return f"def forward(self, {args}) -> {result}:"

    def write(self) -> list[str]:
        g = self.g
        for i in g.inputs:
            base = "x" if (not self.root or len(g.inputs) == 1) else g.nodes[i].op
            self.var[i] = self.names.create(base, "x")
        for i, n in enumerate(g.nodes):
            if n.kind != "input" and not n.training_only:
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
        if len(g.outputs) > 1:
            items = ", ".join(f"{py_string(name)}: {self.var[i]}" for name, i in g.outputs)
            self.lines.append(f"return {{{items}}}")
        else:
            self.lines.append(f"return {self.var[g.outputs[0][1]]}")
        return self.lines

    def _node(self, i: int, n: ir.GNode) -> None:
        g = self.g
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
            self.var[i] = attribute("self", n.segment)
            return
        if n.kind == "combine":
            self._combine(i, n, ins, last)
            return
        reads_fresh = n.inputs[0] in self.fresh and self.total[n.inputs[0]] == 1
        uses = self.left[i]
        if n.kind == "layer":  # a call such as channel_shuffle(x, 2) needs its def (functions: lower case)
            self.gen.helpers.update(h for h in LAYERS[n.op].helpers if h[0].islower())
        if n.kind == "layer" and takes_tensors(n):
            expr = functional(n, ins[0], extra=ins[1:])
        elif n.kind == "layer" and not _has_module(n, g):
            expr = functional(n, ins[0], inplace=reads_fresh and LAYERS[n.op].inplace is not None)
        else:
            expr = f"{attribute('self', n.segment)}({ins[0]})"
        nxt = g.nodes[i + 1] if i + 1 < len(g.nodes) else None
        if uses == 1 and nxt is not None and nxt.kind == "combine" and nxt.inputs and nxt.inputs[0] != i \
                and i in nxt.inputs:
            self.var[i] = expr  # an operand of the sum that follows: written inside it (`out += self.down(x)`)
            return
        # A variable named after a node the spec names is not taken over by a node of another name
        # (`expand3x3 = ...`, not `squeeze_activation = self.expand3x3(...)`).
        named = ins[0] in self.labelled and n.label is not None
        reuse = last[0] and ins[0].isidentifier() and (n.label is None or uses <= 1) and not named
        target = ins[0] if reuse else self._new(n.label if uses > 1 or named else None)
        if expr != target:
            self.lines.append(f"{target} = {expr}")
        self.var[i] = target
        if n.kind == "layer" and LAYERS[n.op].fresh:
            self.fresh.add(i)

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
        reusable = last[0] and ins[0].isidentifier() and ins[0] not in ins[1:]
        if n.op == "add" and len(ins) > 1 and reusable and n.inputs[0] in self.fresh and self.total[n.inputs[0]] == 1:
            for other in ins[1:]:  # torchvision's `out += identity`
                self.lines.append(f"{ins[0]} += {other}")
            target = ins[0]
        else:
            if n.op == "concat":
                expr = f"torch.cat([{', '.join(ins)}], dim={_torch_dim(n.args.get('dim', 0))})"
            else:
                expr = f" {'+' if n.op == 'add' else '*'} ".join(ins)
            target = ins[0] if reusable else self._new(None)
            self.lines.append(f"{target} = {expr}")
        self.var[i] = target
        if len(ins) > 1:
            self.fresh.add(i)


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


def _is_chain(g: ir.Graph, named: bool = False) -> bool:
    """A plain chain of modules, each reading the one before: an nn.Sequential (of named modules too where
    `named`: an OrderedDict's, as torchvision writes DenseNet's features)."""
    if len(g.inputs) != 1 or len(g.outputs) != 1 or len(g.nodes) < 2 or g.training:
        return False
    for i, n in enumerate(g.nodes[1:], start=1):
        if n.kind not in ("layer", "block", "group") or (n.label is not None and not named) or n.inputs != (i - 1,):
            return False
        if n.kind == "layer" and (n.op == "param" or takes_tensors(n)):
            return False
    return g.outputs[0][1] == len(g.nodes) - 1


def _in_place(n: ir.GNode, g: ir.Graph) -> bool:
    """In a chain: an in-place activation right after a layer whose output is fresh (nothing else reads it)."""
    if n.kind != "layer" or LAYERS[n.op].inplace is None:
        return False
    before = g.nodes[n.inputs[0]]
    return (before.kind == "layer" and LAYERS[before.op].fresh) or (before.kind == "combine" and len(before.inputs) > 1)


def _entry_dims(g: ir.Graph, scope: Scope) -> dict[int, tuple[Sym, Sym]]:
    if not g.inputs:
        return {}
    first = g.nodes[g.inputs[0]]
    c = scope.names.get(IN)
    if c is None:
        return {}
    return {g.inputs[0]: (c, literal(first.out_shape[-1]) if first.out_shape else literal(1))}


def _literal_dims(shape: tuple) -> tuple[Sym, Sym]:
    if not shape:
        return (literal(1), literal(1))
    return (literal(shape[0]), literal(shape[-1]))


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
    else:  # an argument still too long is a call itself, most likely: wrapped the same way
        inner = [wrapped for a in args for wrapped in _wrap(f"{indent}    {a},", limit)]
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
        f"INPUT_SHAPE = {tuple(net.input_shape)!r}  # one sample: the batch dimension comes first",
    ]


__all__ = ["generate", "spec_hash"]
