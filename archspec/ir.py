"""The IR: frozen pydantic models, one per node kind, every node with its source Span.

Two families live here. The syntax tree (`SourceFile` down to `Expr`) is what the parser
builds from the text; `Node` is the expanded network (blocks, loops and conditionals gone)
that shape inference annotates. The parser builds nodes with `model_construct`: its output
is correct by construction, and validating a 10,000-node tree again would cost more than
the parse (the schemas are built lazily, `defer_build`, for the same reason).

`IR` gives `model_construct` and `model_copy` fast paths that make exactly what pydantic's
own make (the same __dict__, fields set, extra and private state) without its per-field
alias and default machinery: the parser and the passes build and copy every node of a
network, and pydantic's general versions were most of the time `archspec check` spent.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict

from .errors import Span

_MISSING = object()
_IMMUTABLE = (int, float, str, bool, type(None), Span)
_set = object.__setattr__


class IR(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True, arbitrary_types_allowed=True)
    span: Span = Span()

    @classmethod
    def model_construct(cls, _fields_set: set[str] | None = None, **values: Any):
        """pydantic's model_construct (no validation, defaults filled in), made for plain fields fast."""
        plan = _PLANS.get(cls) or _plan(cls)
        if plan is _GENERAL:
            return super().model_construct(_fields_set, **values)
        template, required, fresh = plan
        fields = dict(template)  # every field in declaration order, as pydantic orders __dict__
        fields.update(values)
        if len(fields) != len(template) or any(fields[name] is _MISSING for name in required):
            return super().model_construct(_fields_set, **values)  # unknown or missing fields: pydantic decides
        for name, default in fresh:
            if name not in values:
                fields[name] = deepcopy(default)  # a mutable default is never shared, as in pydantic
        m = cls.__new__(cls)
        _set(m, "__dict__", fields)
        _set(m, "__pydantic_fields_set__", set(values) if _fields_set is None else _fields_set)
        _set(m, "__pydantic_extra__", None)
        _set(m, "__pydantic_private__", None)
        return m

    def model_copy(self, *, update: Any = None, deep: bool = False):
        """pydantic's shallow model_copy with `update`, without its general machinery."""
        if deep or self.__pydantic_extra__ is not None or self.__pydantic_private__ is not None:
            return super().model_copy(update=update, deep=deep)
        cls = type(self)
        m = cls.__new__(cls)
        fields = self.__dict__.copy()
        fields_set = self.__pydantic_fields_set__.copy()
        if update:
            fields.update(update)
            fields_set.update(update.keys())
        _set(m, "__dict__", fields)
        _set(m, "__pydantic_fields_set__", fields_set)
        _set(m, "__pydantic_extra__", None)
        _set(m, "__pydantic_private__", None)
        return m


_GENERAL = object()  # a class the fast paths leave to pydantic
_PLANS: dict[type, Any] = {}


def _plan(cls: type[IR]) -> Any:
    """For model_construct: each field's default (or _MISSING), the required ones, the mutable defaults."""
    fields = cls.__pydantic_fields__
    general = (cls.__pydantic_post_init__ or cls.__private_attributes__ or cls.model_config.get("extra") == "allow"
               or any(f.alias is not None or f.validation_alias is not None or f.default_factory is not None
                      for f in fields.values()))
    if general:
        _PLANS[cls] = _GENERAL
        return _GENERAL
    template = {name: _MISSING if f.is_required() else f.default for name, f in fields.items()}
    required = tuple(name for name, f in fields.items() if f.is_required())
    fresh = tuple((name, v) for name, v in template.items() if v is not _MISSING and not _immutable(v))
    _PLANS[cls] = (template, required, fresh)
    return _PLANS[cls]


def _immutable(v: Any) -> bool:
    return isinstance(v, _IMMUTABLE) or (isinstance(v, tuple) and all(_immutable(x) for x in v))


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a network's tree is built (a decorator, too).

    The tree is acyclic, so the collector finds nothing in it, yet each full collection walks
    all of it: with the collector on, 4,000 residual blocks cost twice as much per block as
    250 did. Reference counting frees memory as usual; the collector resumes afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ---- expressions -------------------------------------------------------------------

class Num(IR):
    value: Union[int, float]


class Str(IR):
    value: str


class NoneLit(IR):
    pass


class Ref(IR):
    """`@name` or `@name{expr}`: the output of an earlier named node of the same body."""

    name: str
    index: Optional["Expr"] = None


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


Expr = Union[Num, Str, NoneLit, Bool, Name, Ref, ListExpr, TupleExpr, BinOp, UnaryOp, Compare, Cond, Index, FuncCall]


# ---- statements --------------------------------------------------------------------

class NameTarget(IR):
    id: str


class TupleTarget(IR):
    items: tuple["Target", ...]


Target = Union[NameTarget, TupleTarget]


class Label(IR):
    name: str  # as written, without quotes: `b`, or `block{i}-0`
    index: Optional[Expr] = None  # `b{i + 2}`
    parts: Optional[tuple[Union[str, Expr], ...]] = None  # a quoted label: text and {expr} parts, in order
    tensor: bool = False  # `@name = ...`: names the node's output tensor only, not its module


class Call(IR):
    """A layer or a block call; `args` is None when written bare (`relu`)."""

    name: str
    args: Optional[tuple[Arg, ...]] = None


class Container(IR):
    kind: Literal["seq", "add", "mul", "concat", "modules"]
    body: tuple["Stmt", ...]
    args: Optional[tuple[Arg, ...]] = None  # concat(dim=1)


class NodeStmt(IR):
    label: Optional[Label]
    node: Union[Call, Container, Ref]


class Input(IR):
    dims: tuple[Expr, ...]
    name: Optional[str] = None  # `input image [3, 224, 224]`; one unnamed input is `input`


class Output(IR):
    """`output out` (the value so far) or `output aux = @aux_head`: one named output of a network."""

    name: str
    ref: Optional[Ref] = None
    training: bool = False  # `output aux = @aux if training`: computed in training mode only


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


Stmt = Union[NodeStmt, Input, Output, Repeat, For, If, Let, Assert]


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
    alias: Optional[Call] = None  # `network resnet50(...) = resnet(...)`: a variant of another network


class FuncDef(IR):
    """`def name(params) = expr`, or with `let`s before its `return`: a pure function of values."""

    name: str
    params: tuple[Param, ...]
    lets: tuple[Let, ...]
    result: Expr


class Import(IR):
    path: str


class SourceFile(IR):
    path: str
    imports: tuple[Import, ...]
    definitions: tuple[Definition, ...]
    functions: tuple[FuncDef, ...] = ()


# ---- the expanded network: one dataflow form ----------------------------------------

class GNode(IR):
    """One node of a dataflow graph, in execution order, with its explicit inputs (node ids of the
    same graph), as torch.fx's nodes are.

    kind "input": a graph input; "layer": a layer of the registry; "combine": an anonymous add,
    mul or concat of its inputs; "block": a block call, and "group": a named seq/add/mul/concat,
    each a module whose `body` is a graph of its own. `seq`, `add`, `mul` and `concat` are sugar
    that lowers into these. `path` is the module path (the state_dict prefix) of layers, blocks
    and groups; `segment` the part of it this node adds, None if it adds none.
    """

    kind: Literal["input", "layer", "combine", "block", "group"]
    op: str  # layer or block name; the container kind of a group or combine; the input's name
    args: dict[str, Any] = {}  # evaluated arguments, normalised (tensor arguments as TensorRef)
    written: tuple[str, ...] = ()  # the argument names the user wrote, for display
    positional: int = 0  # how many of them were written by position
    inputs: tuple[int, ...] = ()
    label: Optional[str] = None
    label_span: Optional[Span] = None
    tensor: Optional[str] = None  # the name `@name = ...` gives its output (a variable's name in generated code)
    path: str = ""
    segment: Optional[str] = None
    body: Optional["Graph"] = None
    out_shape: tuple[int, ...] = ()
    batched: bool = True  # False for a learned tensor (`param`), which has no batch dimension
    params: int = 0
    macs: int = 0
    rf: tuple[Any, Any, Any, Any] = (1, 1, 1, 1)  # size h, size w, jump h, jump w (exact fractions)
    activation_bytes: int = 0
    training_only: bool = False  # read by training outputs only: not computed in eval mode
    source: Any = None  # where its arguments came from, for codegen: (argument -> Expr, the env it read)
    # the `if`s of its block that led to it: ((If statement, branch taken, env), ...), for codegen
    guard: tuple = ()


class Graph(IR):
    """A body: its nodes in execution order, its input nodes and its named outputs."""

    nodes: tuple[GNode, ...]
    inputs: tuple[int, ...] = ()
    outputs: tuple[tuple[str, int], ...] = ()  # (name, node id); one unnamed output is ("", id)
    training: tuple[tuple[str, int], ...] = ()  # outputs computed in training mode only
    # a body merged from several calls (codegen/merge.py): operands that a call without them leaves out
    left_out: tuple[int, ...] = ()

    def output(self) -> GNode:
        return self.nodes[self.outputs[0][1]]


class Network(IR):
    """A network after expansion: its graph, its inputs' shapes, and what it was built from."""

    name: str
    file: str
    input_shape: tuple[int, ...]  # of the first input
    input_span: Span = Span()
    graph: Graph
    overrides: dict[str, str] = {}
    arguments: dict[str, Any] = {}
    asserts: tuple[tuple[Assert, dict[str, Any]], ...] = ()
    warnings: tuple[Any, ...] = ()  # Diagnostics
    batch: int = 1
    variant: tuple = ()  # `network a(...) = b(...)`: each step's (argument expressions, env), for codegen
    sizes: tuple[str, ...] = ()  # the symbolic sizes of `input [3, H, W]`, in order; () when all are numbers
    constraints: tuple[Any, ...] = ()  # sizes.Constraint: what every valid value of them must satisfy
    params: int = 0
    macs: int = 0
    activation_bytes: int = 0

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.graph.output().out_shape

    @property
    def inputs(self) -> list[tuple[str, tuple[int, ...]]]:
        return [(self.graph.nodes[i].op, self.graph.nodes[i].out_shape) for i in self.graph.inputs]


def walk(graph: Graph) -> Iterator[GNode]:
    """Every node of a graph and of the graphs inside it, in execution order."""
    for n in graph.nodes:
        yield n
        if n.body is not None:
            yield from walk(n.body)


def layers(graph: Graph) -> Iterator[GNode]:
    """Every layer node, in execution order, through blocks and named containers."""
    return (n for n in walk(graph) if n.kind == "layer")
