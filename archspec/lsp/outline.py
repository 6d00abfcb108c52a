"""A document's outline (its blocks, networks and functions, with the modules they name) and
completion: layer and block names where a node may be written, keyword arguments inside a call.

Completion reads the text itself, not the syntax tree: the line being typed seldom parses. The
item around the cursor is scanned from its start, brackets and all, to know which call the cursor
is in, which of its arguments are given, and which names (parameters, `let`s, loop variables) the
item binds so far.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import ir
from ..errors import Span
from ..evaluate import BUILTINS
from ..layers import LAYERS, REQUIRED
from ..render import render_expr
from ..values import show
from .analysis import Analysis, walk_syntax
from .lookup import layer_doc, name_span, params_text

STATEMENTS = ("input", "output", "seq", "add", "mul", "concat", "repeat", "for", "if", "else", "let", "assert")
ITEMS = ("block", "network", "def", "import")
VALUES = ("true", "false", "none", "and", "or", "not", "in", "if", "else")
BLOCK_NAMES = ("in_channels", "in_shape")  # what a block's body may read of the tensor reaching it


@dataclass
class Symbol:
    name: str
    kind: str  # "block", "network", "function" or "module" (a named node)
    detail: str
    span: Span
    selection: Span
    children: list[Symbol] = field(default_factory=list)


def symbols(a: Analysis) -> list[Symbol]:
    """The document's definitions in order, each with the modules it names (`conv1 = ...`)."""
    out = []
    for d in sorted((*a.source.definitions, *a.source.functions), key=lambda d: (d.span.line, d.span.column)):
        kind = "function" if isinstance(d, ir.FuncDef) else d.kind
        detail = f"({params_text(d.params)})"
        if isinstance(d, ir.Definition) and d.alias is not None:
            detail += f" = {d.alias.name}(...)"
        children = [] if isinstance(d, ir.FuncDef) else [
            Symbol(x.label.name, "module", _node_text(x.node), x.span, x.label.span)
            for x in walk_syntax(d) if isinstance(x, ir.NodeStmt) and x.label is not None]
        children.sort(key=lambda s: (s.span.line, s.span.column))
        out.append(Symbol(d.name, kind, detail, d.span, name_span(d, a.text) or d.span, children))
    return out


def _node_text(n: ir.IR) -> str:
    if isinstance(n, ir.Call):
        return n.name
    if isinstance(n, ir.Container):
        return n.kind
    return f"@{n.name}" if isinstance(n, ir.Ref) else ""


@dataclass(frozen=True)
class Item:
    label: str
    kind: str  # layer, block, function, keyword, variable, argument, label
    detail: str = ""
    doc: str = ""
    insert: str | None = None
    sort: str = "5"


# A string, a comment, a name, a two-character operator, or any other character but a space.
_SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|==|!=|<=|>=|\*\*|//|\S')
_TAIL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class _Frame:
    bracket: str
    callee: str | None  # the name before a `(`
    header: bool = False  # the parameter list of a definition
    keywords: set[str] = field(default_factory=set)
    positional: int = 0
    keyword_now: bool = False  # the argument being written is `name=...`
    empty: bool = True  # nothing written since the `(` or the last comma


@dataclass
class _Scan:
    frames: list[_Frame] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # bound in the item so far
    item: str | None = None  # block, network or def
    headed: bool = False  # the item's parameter list has begun
    last: str = ""  # the last token before the cursor's word
    inside: str | None = None  # "comment" or "string" when the cursor is in one


def _scan(text: str, start: int, end: int) -> _Scan:
    s = _Scan()
    before = ""
    for m in _SCAN.finditer(text, start, end):
        tok = m.group()
        if tok[0] in '"#':
            if m.end() == end and (tok[0] == "#" or len(tok) < 2 or not tok.endswith('"')):
                s.inside = "comment" if tok[0] == "#" else "string"
        elif s.item is None and tok in ("block", "network", "def"):
            s.item = tok
        else:
            _token(s, tok, before)
        before = tok
    s.last = before
    return s


def _token(s: _Scan, tok: str, before: str) -> None:
    top = s.frames[-1] if s.frames else None
    if tok in "([{":
        header = tok == "(" and not s.frames and s.item is not None and not s.headed
        s.headed = s.headed or header
        s.frames.append(_Frame(tok, before if tok == "(" and _TAIL.match(before) else None, header=header))
    elif tok in ")]}":
        if s.frames:
            s.frames.pop()
    elif top is None:
        return
    elif tok == ",":
        if not top.keyword_now and not top.empty:
            top.positional += 1
        top.keyword_now, top.empty = False, True
    elif tok == "=" and top.bracket == "(":
        top.keyword_now = True
        top.keywords.add(before)
    else:
        if top.header and top.empty and _TAIL.match(tok):
            s.names.append(tok)
        elif before in ("let", "for"):
            s.names.append(tok)
        top.empty = False


def complete(a: Analysis, line: int, col: int) -> list[Item]:
    """What may be written at the position, best first."""
    lines = a.text.splitlines(keepends=True)
    offset = sum(len(x) for x in lines[: line - 1]) + col - 1
    start = max((off for off, first in a.parsed.starts if off <= offset), default=0)
    prefix = _TAIL.search(a.text, 0, offset)
    word_start = prefix.start() if prefix and prefix.end() == offset else offset
    s = _scan(a.text, start, word_start)
    if s.inside is not None:
        return []
    if a.text[max(0, word_start - 1): word_start] == "@":
        return [Item(n, "label", sort="0") for n in _labels(a.text[start:word_start])]
    top = s.frames[-1] if s.frames else None
    if top is None:
        return [Item(k, "keyword") for k in ITEMS]
    if top.header:
        return [Item(t, "keyword") for t in ("int", "float", "bool", "str", "list", "tuple")] if s.last == ":" else []
    names = _names(a, s)
    if top.bracket == "(" and top.callee and s.last in ("(", ","):
        return _arguments(a, top) + names
    if top.bracket == "{" and s.last not in _OPERATORS:
        return _nodes(a) + [Item(k, "keyword", sort="6") for k in STATEMENTS] + names
    return names


_OPERATORS = {"+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", ">", "<=", ">=", "and", "or", "not", "in",
              "repeat", "if", "assert", "let", "return", "(", "[", ",", ":"}


def _labels(item: str) -> list[str]:
    found = re.findall(r"^[ \t]*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\{[^}\n]*\})?\s*=(?!=)", item, re.M)
    found += re.findall(r"\binput[ \t]+([A-Za-z_][A-Za-z0-9_]*)", item)
    return list(dict.fromkeys(n for n in found if n != "let"))


def _definitions(a: Analysis) -> dict[str, ir.Definition]:
    if a.program is not None:
        return a.program.definitions
    return {d.name: d for d in a.source.definitions}


def _nodes(a: Analysis) -> list[Item]:
    """Layers and blocks, where a node may be written."""
    out = [Item(n, "layer", LAYERS[n].signature(), layer_doc(n), sort="1") for n in LAYERS]
    for d in _definitions(a).values():
        if d.kind == "block":
            out.append(Item(d.name, "block", f"block {d.name}({params_text(d.params)})", sort="0"))
    return out


def _arguments(a: Analysis, frame: _Frame) -> list[Item]:
    """The keyword arguments of the call the cursor is in that are not given yet."""
    name = frame.callee or ""
    if name in LAYERS:
        params = [(x.name, x.default is REQUIRED, "" if x.default is REQUIRED else show(x.default), x.doc)
                  for x in LAYERS[name].args]
        sig = LAYERS[name].signature()
    else:
        d = _definitions(a).get(name) or _functions(a).get(name)
        if d is None:
            return []
        params = [(p.name, p.default is None, render_expr(p.default) if p.default is not None else "",
                   p.type or "") for p in d.params]
        sig = f"{name}({params_text(d.params)})"
    given = {p[0] for p in params[: frame.positional]} | frame.keywords
    return [Item(f"{n}=", "argument", f"{n}" + (f" = {default}" if not required else " (required)"),
                 f"```arch\n{sig}\n```\n\n{doc}".rstrip(), insert=f"{n}=", sort="0")
            for n, required, default, doc in params if n not in given]


def _functions(a: Analysis) -> dict[str, ir.FuncDef]:
    return a.program.functions if a.program is not None else {f.name: f for f in a.source.functions}


def _names(a: Analysis, s: _Scan) -> list[Item]:
    """Values that may be read here: the item's names, the file's functions, the builtins, literals."""
    out = [Item(n, "variable", sort="2") for n in dict.fromkeys(s.names)]
    if s.item == "block":
        out += [Item(n, "variable", "the tensor reaching the block", sort="3") for n in BLOCK_NAMES]
    out += [Item(f.name, "function", f"def {f.name}({params_text(f.params)})", sort="3")
            for f in _functions(a).values()]
    out += [Item(n, "function", "builtin", sort="4") for n in BUILTINS]
    return out + [Item(k, "keyword", sort="7") for k in VALUES]
