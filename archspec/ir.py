"""The IR: frozen pydantic models, one per node kind, every node with its source Span.

Two families live here. The syntax tree (`SourceFile` down to `Expr`) is what the parser
builds from the text; `Node` is the expanded network (blocks, loops and conditionals gone)
that shape inference annotates. The parser builds nodes with `model_construct`: its output
is correct by construction, and validating a 10,000-node tree again would cost more than
the parse (the schemas are built lazily, `defer_build`, for the same reason).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict

from .errors import Span


class IR(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True, arbitrary_types_allowed=True)
    span: Span = Span()


# ---- expressions -------------------------------------------------------------------

class Num(IR):
    value: Union[int, float]


class Bool(IR):
    value: bool


class Name(IR):
    id: str


class ListExpr(IR):
    items: tuple["Expr", ...]


class TupleExpr(IR):
    items: tuple["Expr", ...]


class BinOp(IR):
    op: str  # + - * / // % ** and or
    left: "Expr"
    right: "Expr"


class UnaryOp(IR):
    op: str  # - + not
    operand: "Expr"


class Compare(IR):
    first: "Expr"
    ops: tuple[str, ...]
    rest: tuple["Expr", ...]


class Cond(IR):
    test: "Expr"
    body: "Expr"
    orelse: "Expr"


class Index(IR):
    value: "Expr"
    index: "Expr"


class Arg(IR):
    name: Optional[str]  # None for a positional argument
    value: "Expr"


class FuncCall(IR):
    func: str
    args: tuple[Arg, ...]


Expr = Union[Num, Bool, Name, ListExpr, TupleExpr, BinOp, UnaryOp, Compare, Cond, Index, FuncCall]


# ---- statements --------------------------------------------------------------------

class NameTarget(IR):
    id: str


class TupleTarget(IR):
    items: tuple["Target", ...]


Target = Union[NameTarget, TupleTarget]


class Label(IR):
    name: str
    index: Optional[Expr] = None  # `b{i + 2}`


class Call(IR):
    """A layer or a block call; `args` is None when written bare (`relu`)."""

    name: str
    args: Optional[tuple[Arg, ...]] = None


class Container(IR):
    kind: Literal["seq", "add", "concat"]
    body: tuple["Stmt", ...]


class NodeStmt(IR):
    label: Optional[Label]
    node: Union[Call, Container]


class Input(IR):
    dims: tuple[Expr, ...]


class Repeat(IR):
    count: Expr
    body: tuple["Stmt", ...]


class For(IR):
    target: Target
    iter: Expr
    body: tuple["Stmt", ...]


class If(IR):
    test: Expr
    body: tuple["Stmt", ...]
    orelse: tuple["Stmt", ...] = ()


class Let(IR):
    name: str
    value: Expr


class Assert(IR):
    test: Expr
    message: Optional[str] = None


Stmt = Union[NodeStmt, Input, Repeat, For, If, Let, Assert]


# ---- definitions -------------------------------------------------------------------

class Param(IR):
    name: str
    type: Optional[str] = None  # int, float, bool, list, tuple; None: any
    default: Optional[Expr] = None


class Definition(IR):
    kind: Literal["block", "network"]
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]


class Import(IR):
    path: str


class SourceFile(IR):
    path: str
    imports: tuple[Import, ...]
    definitions: tuple[Definition, ...]


# ---- the expanded network ----------------------------------------------------------

class Node(IR):
    """One node of an expanded network: a layer, a block call, or a seq/add/concat.

    `label` is the name written in the spec (None when unnamed); `path` is the dotted module
    path, filled in by the naming pass. Shape inference fills in the rest.
    """

    kind: Literal["layer", "block", "seq", "add", "concat"]
    op: str  # the layer or block name, or the container kind
    args: dict[str, Any] = {}  # evaluated arguments, as given (layers: normalised)
    written: tuple[str, ...] = ()  # the argument names the user wrote, for display
    positional: int = 0  # how many of them were written by position
    label: Optional[str] = None
    children: tuple["Node", ...] = ()
    path: str = ""
    segment: Optional[str] = None  # the path segment this node adds, None if it adds none
    # filled in by shape inference
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    params: int = 0
    macs: int = 0
    rf: tuple[int, int, int, int] = (1, 1, 1, 1)  # size h, size w, stride h, stride w
    activation_bytes: int = 0


class Network(IR):
    """A network after expansion: its body as one seq node, and what it was built from."""

    name: str
    file: str
    input_shape: tuple[int, ...]
    input_span: Span = Span()
    root: Node
    overrides: dict[str, str] = {}
    arguments: dict[str, Any] = {}
    asserts: tuple[tuple[Assert, dict[str, Any]], ...] = ()
    warnings: tuple[Any, ...] = ()  # Diagnostics
    batch: int = 1
