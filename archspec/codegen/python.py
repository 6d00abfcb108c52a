"""The spec as the source of a torch nn.Module that reads as if written by hand.

Every node that adds a path segment and has children becomes a module: an `nn.Sequential`
when it is a plain chain of unnamed children (as the book and torchvision write VGG blocks,
stems and stages), otherwise a class with named submodules and a `forward` that follows the
spec's branches. The state_dict keys are the spec's paths.

Instances of one block that differ only in numbers (channels, strides) share one class: the
numbers that differ become constructor parameters, named after the block's own parameters
where their values agree (`Residual(in_channels=64, channels=128, stride=2)`).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import dataclass, field

from .. import __version__, ir
from ..escape import escape, py_string
from ..names import Namespace, attribute, camel, set_attribute
from ..summary import show_shape
from .layers import CALLS, IN_PLACE_CALLS, IN_PLACE_MODULES, MODULES, is_fresh, reads_fresh
from .parametrize import Variant, parametrize

LINE_LENGTH = 120  # the project's (pyproject.toml); longer lines are wrapped as a formatter would


@dataclass
class _Class:
    name: str
    base: str  # "nn.Module" or "nn.Sequential"
    doc: str
    params: list[tuple[str, str]]  # (name, type) of the constructor
    body: list[str]


@dataclass
class _Codegen:
    file: str
    definitions: dict[str, ir.Definition]
    classes: list[_Class] = field(default_factory=list)
    calls: dict[int, str] = field(default_factory=dict)  # id(node) -> the expression that builds it
    names: Namespace = field(default_factory=Namespace)  # the file's top level: its classes

    def class_name(self, base: str) -> str:
        return self.names.create(base, "Net")


def _segment_children(node: ir.Node) -> list[ir.Node]:
    """The children that add a path segment, found through anonymous containers."""
    out: list[ir.Node] = []
    for c in node.children:
        out += _segment_children(c) if c.segment is None else [c]
    return out


def _is_chain(node: ir.Node) -> bool:
    """A plain chain of unnamed children, through anonymous seqs only: an nn.Sequential."""
    def chain(n: ir.Node) -> bool:
        return all(c.segment is not None or (c.kind == "seq" and chain(c)) for c in n.children)
    return node.kind in ("seq", "block") and chain(node) and \
        all(c.label is None for c in _segment_children(node))


def _needs_class(node: ir.Node, is_root: bool = False) -> bool:
    return node.kind != "layer" and (is_root or not _is_chain(node))


def _attr(seg: str) -> str:
    return attribute("self", seg)


def _stateless_call(node: ir.Node) -> bool:
    return node.kind == "layer" and node.label is None and node.op in CALLS


def _indent(text: str, by: str) -> str:
    return text.replace("\n", "\n" + by)


def _sequential(items: list[str]) -> str:
    if sum(map(len, items)) < 70 and all("\n" not in i for i in items):
        return "nn.Sequential(" + ", ".join(items) + ")"
    return "nn.Sequential(\n" + "".join(f"    {_indent(i, '    ')},\n" for i in items) + ")"


def _call(name: str, args: list[str]) -> str:
    one = f"{name}({', '.join(args)})"
    if len(one) <= 90:
        return one
    return f"{name}(\n" + "".join(f"    {a},\n" for a in args) + ")"


def _last_layer(node: ir.Node) -> ir.Node | None:
    """The layer whose output a branch ends with, through anonymous seqs; None if it ends otherwise."""
    if node.kind == "layer":
        return node
    if node.kind == "seq" and node.segment is None and node.children:
        return _last_layer(node.children[-1])
    return None


def _height(node: ir.Node) -> int:
    return 1 + max((_height(c) for c in node.children), default=0)


class Generator:
    def __init__(self, net: ir.Network, definitions: dict[str, ir.Definition], sha: str):
        self.net = net
        self.sha = sha
        self.cg = _Codegen(net.file, definitions)

    def constructor(self, node: ir.Node) -> str:
        if node.kind == "layer":
            return MODULES[node.op](node)
        if id(node) in self.cg.calls:
            return self.cg.calls[id(node)]
        return _sequential(self.chain_items(node))

    def chain_items(self, node: ir.Node) -> list[str]:
        """The constructors of a chain's modules, in order; a ReLU after a conv or a norm works in place."""
        kids = _segment_children(node)
        return [IN_PLACE_MODULES[c.op](c) if reads_fresh(c, kids[i - 1] if i else None) else self.constructor(c)
                for i, c in enumerate(kids)]

    def run(self) -> str:
        """Classes bottom-up: a class's body needs its children's constructor calls."""
        levels: dict[int, list[ir.Node]] = {}
        self._collect(self.net.root, levels, is_root=True)
        for height in sorted(levels):
            groups: dict[str, list[ir.Node]] = {}
            for node in levels[height]:
                groups.setdefault(self._base_name(node), []).append(node)
            for base, nodes in groups.items():
                self._define(base, nodes)
        return self._render()

    def _collect(self, node: ir.Node, levels: dict[int, list[ir.Node]], is_root: bool = False) -> None:
        for c in node.children:
            self._collect(c, levels)
        if _needs_class(node, is_root) and (is_root or node.segment is not None):
            levels.setdefault(_height(node), []).append(node)

    def _base_name(self, node: ir.Node) -> str:
        if node is self.net.root:
            return camel(self.net.name)
        return camel(node.op if node.kind == "block" else node.label or node.kind)

    def _define(self, base: str, nodes: list[ir.Node]) -> None:
        variants = [Variant(node, self._body(node), self._block_args(node)) for node in nodes]
        for shared in parametrize(variants, self.cg.names):
            name = self.cg.class_name(base)
            first = shared.variants[0].node
            kind = "nn.Sequential" if _is_chain(first) else "nn.Module"
            self.cg.classes.append(_Class(name, kind, self._doc(first, shared.params), shared.params, shared.body))
            for v, call_args in zip(shared.variants, shared.call_args):
                self.cg.calls[id(v.node)] = _call(name, call_args)

    def _block_args(self, node: ir.Node) -> dict:
        args = dict(node.args) if node.kind == "block" else {}
        if node.in_shape:
            args.setdefault("in_channels", node.in_shape[0])
        return args

    def _doc(self, node: ir.Node, params) -> str:
        if node is self.net.root:
            return f"The `{self.net.name}` network of {file_name(self.net.file)}."
        if node.kind == "block":
            d = self.cg.definitions.get(node.op)
            where = f" of {file_name(d.span.file)}:{d.span.line}" if d is not None else ""
            shapes = "" if params else f": {show_shape(['N', *node.in_shape])} -> {show_shape(['N', *node.out_shape])}"
            return f"The `{node.op}` block{where}{shapes}."
        article = "an" if node.kind == "add" else "a"
        return f"`{node.label}`, {article} {node.kind} of {file_name(self.net.file)}:{node.span.line}."

    def _body(self, node: ir.Node) -> list[str]:
        if _is_chain(node):
            items = self.chain_items(node)
            return ["def __init__(self) -> None:", "    super().__init__(",
                    *[f"        {_indent(i, '        ')}," for i in items], "    )"]
        init = ["def __init__(self) -> None:", "    super().__init__()"]
        for c in _segment_children(node):
            if _stateless_call(c):
                continue
            make = _indent(self.constructor(c), "    ")
            init.append("    " + set_attribute("self", c.segment, make))
        fwd = _Forward()
        # A named add or concat is a module of its own: its forward sums or joins its branches.
        out = fwd.combine(node, "x") if node.kind in ("add", "concat") else fwd.chain(node.children, "x")
        return init + ["", "def forward(self, x: torch.Tensor) -> torch.Tensor:",
                       *[f"    {line}" for line in fwd.lines], f"    return {out}"]

    def _render(self) -> str:
        root = self.cg.classes[-1].name
        uses_torch = any("torch." in line for cls in self.cg.classes for line in cls.body)
        lines = _header(self.net, root, self.sha, uses_torch)
        for cls in self.cg.classes:
            lines += ["", "", f"class {cls.name}({cls.base}):", f'    """{escape(cls.doc)}"""', ""]
            for entry in cls.body:
                for line in entry.split("\n"):
                    lines += _wrap(f"    {line}") if line else [""]
        return "\n".join(lines) + "\n"


def _wrap(line: str, limit: int = LINE_LENGTH) -> list[str]:
    """A line that ends in a call and is too long, with the call's arguments on lines of their own."""
    if len(line) <= limit:
        return [line]
    suffix = "," if line.endswith("),") else ""
    body = line[: len(line) - len(suffix)]
    depth, start, cuts = 0, -1, []
    for i, ch in enumerate(body):
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
    inner = [one] if len(one) <= limit else [f"{indent}    {a}," for a in args]
    return [body[: start + 1], *inner, f"{indent}){suffix}"]


class _Forward:
    """Writes a forward pass: one statement a line, a variable per live branch."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.used = {"x"}

    def fresh(self, base: str) -> str:
        name, i = base, 2
        while name in self.used:
            name, i = f"{base}{i}", i + 1
        self.used.add(name)
        return name

    def expr(self, node: ir.Node, x: str, before: ir.Node | None = None) -> str | None:
        """A node as one expression of `x`, when it is one call (or nothing); `before` made `x`."""
        if node.segment is not None:
            if not _stateless_call(node):
                return f"{_attr(node.segment)}({x})"
            return (IN_PLACE_CALLS if reads_fresh(node, before) else CALLS)[node.op](node, x)
        if node.kind == "seq" and len(node.children) <= 1:
            return self.expr(node.children[0], x) if node.children else x
        return None

    def chain(self, children: tuple[ir.Node, ...], x: str, into: str | None = None) -> str:
        """Run children one after the other from `x`; returns the variable that holds the result
        (`into`, default `x`, unless a sum made in place in a branch's variable carries on in it)."""
        var = into or x
        before = None  # the node that made `x`, when known
        for c in children:
            e = self.expr(c, x, before)
            if e is None:
                e = self.combine(c, x) if c.kind in ("add", "concat") else self.chain(c.children, x, var)
            if e != var:
                if c.kind == "add" and e.isidentifier() and e != x:
                    var = e  # `out += identity` left the sum in `out`: go on in it, as torchvision does
                else:
                    self.lines.append(f"{var} = {e}")
            x, before = var, c
        return x

    def combine(self, node: ir.Node, x: str) -> str:
        """An add or concat: each branch from `x`, then their sum or concatenation."""
        parts = []
        in_place = False
        for i, b in enumerate(node.children):
            e = self.expr(b, x)
            if e is None:
                base = "out" if node.kind == "add" and i == 0 else "branch"
                e = self.chain((b,) if b.kind in ("add", "concat") else b.children, x, self.fresh(base))
                # The first branch ends in a fresh tensor nothing else reads (a conv's or a norm's
                # output, into a variable of its own): sum into it, as torchvision's `out += identity`.
                if i == 0:
                    in_place = is_fresh(_last_layer(b))
            parts.append(e)
        if node.kind == "add" and in_place and len(parts) > 1:
            self.lines += [f"{parts[0]} += {p}" for p in parts[1:]]
            return parts[0]
        return " + ".join(parts) if node.kind == "add" else f"torch.cat([{', '.join(parts)}], dim=1)"


def generate(net: ir.Network, sources: dict[str, str], definitions: dict[str, ir.Definition] | None = None) -> str:
    """The Python source of the network's nn.Module, deterministic for a spec and its overrides."""
    return Generator(net, definitions or {}, spec_hash(sources)).run()


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


def _header(net: ir.Network, root_class: str, sha: str, uses_torch: bool) -> list[str]:
    overrides = ", ".join(f"{k}={v}" for k, v in net.overrides.items()) or "none"
    doc = [
        f"The `{net.name}` network, generated by archspec {__version__} from {file_name(net.file)}.",
        "",
        f"spec sha256: {sha}",
        f"overrides: {overrides}",
        f"input: {show_shape(['N', *net.input_shape])} -> output: {show_shape(['N', *net.root.out_shape])}",
        f"parameters: {net.root.params:,}",
        "",
        "Edit the spec, not this file: `archspec compile` writes it again.",
    ]
    lines = [escape(line) for line in doc]
    return [
        f'"""{lines[0]}',
        *lines[1:],
        '"""',
        "",
        *(["import torch"] if uses_torch else []),
        "from torch import nn",
        "",
        f"__all__ = [{py_string(root_class)}]",
        f"MODEL = {py_string(root_class)}",
        f"INPUT_SHAPE = {tuple(net.input_shape)!r}  # one sample: the batch dimension comes first",
    ]


__all__ = ["generate", "spec_hash"]
