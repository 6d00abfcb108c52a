"""Text -> lark tree -> IR. Lark's errors become archspec errors here, with positions.

Reading a file is guarded too: a missing file, a directory, binary or non-UTF-8 bytes, an
empty or huge file, and input nested deeper than MAX_NESTING each give one clear error.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import lark
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ir
from .errors import ArchError, Span, error, io_error
from .files import read_regular

MAX_BYTES = 4 * 1024 * 1024  # a spec is a few kilobytes; this is far past any real one
MAX_NESTING = 64  # brackets of any kind; well below pydantic's own limit of about 255 levels
MAX_DEPTH = 256  # levels of the syntax tree (`1+1+...+1` nests without brackets); the zoo needs 17
GRAMMAR = Path(__file__).with_name("grammar.lark")

# How the parser's terminal names read in "expected ..." messages.
_PUNCT = {"LBRACE": "{", "RBRACE": "}", "LPAR": "(", "RPAR": ")", "LSQB": "[", "RSQB": "]",
          "COMMA": ",", "EQUAL": "=", "COLON": ":", "NAME": "a name", "NUMBER": "a number",
          "STRING": "a string", "CMP": "a comparison", "ADD": "+ or -", "MUL": "* / // %",
          "POW": "**", "$END": "end of file"}


@lru_cache(maxsize=1)
def parser() -> Lark:
    # Analysing the grammar takes about 80 ms, loading lark's cache of the analysis about 8 ms.
    return Lark(GRAMMAR.read_text(), parser="lalr", propagate_positions=True, cache=_grammar_cache(),
                start=["start", "expr"], maybe_placeholders=True)


def _grammar_cache() -> str | bool:
    """Where lark keeps the analysed grammar: beside the package, as Python keeps bytecode.

    There it survives a temp dir that changes between runs or cannot be written, and it is
    trusted as the code is (it is a pickle). Otherwise lark's default, the temp dir, or none
    at all when no folder can be written (lark's default would then fail).
    """
    folder = GRAMMAR.parent / "__pycache__"
    path = folder / f"grammar.lark.{lark.__version__}.{sys.implementation.cache_tag}.cache"
    if path.exists() or (not sys.dont_write_bytecode and _writable(folder)):
        return str(path)  # lark checks the grammar's hash inside, and rewrites a stale or broken file
    try:
        tempfile.gettempdir()
    except OSError:
        return False
    return True


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def read_source(path: str) -> str:
    """The text of a spec file, or an I/O error (exit status 2) saying what is wrong."""
    data = read_regular(path, MAX_BYTES, "spec file")
    if b"\0" in data:
        raise io_error("E002", "file is binary (it contains NUL bytes), not a spec", Span(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise io_error("E002", f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                       Span(path, line, col, line, col + 1)) from None
    if not text.strip():
        raise io_error("E003", "file is empty", Span(path))
    return text.lstrip("\ufeff")


def check_nesting(text: str, file: str) -> None:
    """Refuse input nested deeper than MAX_NESTING before the parser recurses into it."""
    depth = 0
    line, col = 1, 0
    in_comment = in_string = False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, in_comment, in_string = line + 1, 0, False, False
        elif in_comment:
            continue
        elif ch == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif ch == "#":
            in_comment = True
        elif ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise io_error("E005", f"input is nested too deeply (more than {MAX_NESTING} levels of brackets)",
                               Span(file, line, col, line, col + 1))
        elif ch in ")]}":
            depth -= 1


def parse_text(text: str, file: str = "<input>") -> ir.SourceFile:
    return _parse_source(text, file)


@lru_cache(maxsize=32)
def _parse_source(text: str, file: str) -> ir.SourceFile:
    # A file that several specs import is parsed once per process (`archspec check specs/*`):
    # the IR is frozen, so one copy serves every importer. Errors are raised anew, never cached.
    check_nesting(text, file)
    tree = _parse(text, file, "start")
    return _build(tree, file)


def parse_expr(text: str, file: str = "<input>") -> ir.Expr:
    """One expression, as written after `--set name=`."""
    check_nesting(text, file)
    return _build(_parse(text, file, "expr"), file)


def parse_file(path: str) -> tuple[ir.SourceFile, str]:
    text = read_source(path)
    return parse_text(text, path), text


def _parse(text: str, file: str, start: str) -> Tree:
    try:
        return parser().parse(text, start=start)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, file) from None


def _syntax_error(exc: UnexpectedInput, text: str, file: str) -> ArchError:
    line, col = getattr(exc, "line", 0) or 0, getattr(exc, "column", 0) or 0
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        shown = f"`{ch}`" if ch.isprintable() else f"U+{ord(ch):04X}" if ch else "end of file"
        return error("E102", f"unexpected character {shown}", Span(file, line, col, line, col + 1))
    # `accepts` is what the parser would really take next; `expected` also holds the lookaheads
    # of reductions that would fail later, so it names tokens that cannot come here.
    expected = _expected(getattr(exc, "accepts", None) or getattr(exc, "expected", None) or set())
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        last = text.rstrip().splitlines() or [""]
        line, col = len(last), len(last[-1]) + 1
        return error("E103", f"unexpected end of file; expected {expected}", Span(file, line, col, line, col + 1))
    tok = exc.token
    width = max(1, len(str(tok)))
    span = Span(file, line, col, line, col + width)
    stmt = _conditional_statement(tok, text)
    if stmt:
        example = "let x = (a if c else b)" if stmt == "let" else "assert (a if c else b)"
        return error("E101", f"unexpected `else`: a conditional expression in `{stmt}` needs parentheses, "
                             f"as in `{example}`", span)
    return error("E101", f"unexpected `{tok}`; expected {expected}", span)


def _conditional_statement(tok: Token, text: str) -> str | None:
    """`let` or `assert` when `tok` is the `else` of an unparenthesised `a if c else b` there.

    The grammar reads `let x = a if c` as a let followed by an if statement (an `if` after a
    statement starts a new one), so the `else` is where the parser notices.
    """
    if tok.type != "ELSE" or tok.start_pos is None:
        return None
    start = text.rfind("\n", 0, tok.start_pos) + 1
    words = text[start: tok.start_pos].split()
    if words and words[0] in ("let", "assert") and "if" in words:
        return words[0]
    return None


def _expected(names: set[str]) -> str:
    shown = []
    for name in names:
        if name in _PUNCT:
            shown.append(_PUNCT[name] if name.startswith("$") or name.isupper() and len(_PUNCT[name]) > 2
                         else f"`{_PUNCT[name]}`")
        else:
            try:
                term = parser().get_terminal(name)
                shown.append(f"`{term.pattern.value}`" if term.pattern.type == "str" else name.lower())
            except KeyError:
                shown.append(name.lower())
    shown = sorted(set(shown))
    if not shown:
        return "something else"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _build(tree: Tree, file: str):
    check_depth(tree, file)
    try:
        return _ToIR(file).transform(tree)
    except VisitError as exc:  # a builder raised: a bad literal, say
        if isinstance(exc.orig_exc, ArchError):
            raise exc.orig_exc from None
        raise


def check_depth(tree: Tree, file: str) -> None:
    """Refuse a tree deeper than MAX_DEPTH before the (recursive) builders and passes walk it."""
    stack = [(tree, 1)]
    while stack:  # a loop, not recursion: the point is to survive any depth
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            where = _span(file, node.meta)
            raise io_error("E005", f"input is nested too deeply (more than {MAX_DEPTH} levels of expressions "
                                   "and blocks)", Span(file, where.line, where.column, where.line, where.column + 1))
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))


# ---- the tree -> IR builders: one line each, thanks to the grammar's shaping ------------

def _span(file: str, meta) -> Span:
    if isinstance(meta, Token):
        return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)
    if getattr(meta, "empty", True):
        return Span(file)
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


@v_args(meta=True)
class _ToIR(Transformer):
    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _n(self, cls, meta, **kw):
        return cls.model_construct(span=_span(self.file, meta), **kw)

    # definitions
    def start(self, meta, items):
        imports = tuple(i for i in items if isinstance(i, ir.Import))
        defs = tuple(i for i in items if isinstance(i, ir.Definition))
        funcs = tuple(i for i in items if isinstance(i, ir.FuncDef))
        return ir.SourceFile.model_construct(span=Span(self.file, 1, 1), path=self.file, imports=imports,
                                             definitions=defs, functions=funcs)

    def func_def(self, meta, c):
        lets, result = c[2] if isinstance(c[2], tuple) else ((), c[2])
        return self._n(ir.FuncDef, meta, name=str(c[0]), params=c[1] or (), lets=lets, result=result)

    def func_body(self, meta, c):
        return (tuple(c[:-1]), c[-1])

    def import_stmt(self, meta, c):
        return self._n(ir.Import, meta, path=_string_value(c[0], self.file))

    def block_def(self, meta, c):
        return self._n(ir.Definition, meta, kind="block", name=str(c[0]), params=c[1] or (), body=c[2])

    def network_def(self, meta, c):
        if isinstance(c[2], ir.Call):  # a variant: another network's body, with these arguments
            return self._n(ir.Definition, meta, kind="network", name=str(c[0]), params=c[1] or (), body=(),
                           alias=c[2])
        return self._n(ir.Definition, meta, kind="network", name=str(c[0]), params=c[1] or (), body=c[2])

    def params(self, meta, c):
        return tuple(p for p in c if p is not None)

    def param(self, meta, c):
        return self._n(ir.Param, meta, name=str(c[0]), type=str(c[1]) if c[1] is not None else None, default=c[2])

    def body(self, meta, c):
        return tuple(c)

    # statements
    def input_stmt(self, meta, c):
        name = str(c[0]) if isinstance(c[0], Token) else None
        return self._n(ir.Input, meta, name=name, dims=tuple(x for x in c[1:] if x is not None))

    def output_stmt(self, meta, c):
        name = _string_value(c[0], self.file) if c[0].type == "STRING" else str(c[0])
        return self._n(ir.Output, meta, name=name, ref=c[1], training=c[2] is not None)

    def training(self, meta, c):
        return True

    def ref(self, meta, c):
        return self._n(ir.Ref, meta, name=str(c[0]), index=c[1])

    def mul(self, meta, c):
        return self._n(ir.Container, meta, kind="mul", body=c[0])

    def node_stmt(self, meta, c):
        return self._n(ir.NodeStmt, meta, label=c[0], node=c[1])

    def tensor_label(self, meta, c):
        return self._n(ir.Label, meta, name=str(c[0]), index=c[1], tensor=True)

    def modules(self, meta, c):
        return self._n(ir.Container, meta, kind="modules", body=c[0])

    def label(self, meta, c):
        tok = c[0]
        if tok.type == "STRING":
            parts = _interpolated(tok, self.file)
            return self._n(ir.Label, meta, name=str(tok)[1:-1], parts=parts)
        return self._n(ir.Label, meta, name=str(tok), index=c[1] if len(c) > 1 else None)

    def call(self, meta, c):
        return self._n(ir.Call, meta, name=str(c[0]), args=c[1])

    def seq(self, meta, c):
        return self._n(ir.Container, meta, kind="seq", body=c[0])

    def add(self, meta, c):
        return self._n(ir.Container, meta, kind="add", body=c[0])

    def concat(self, meta, c):
        return self._n(ir.Container, meta, kind="concat", args=c[0], body=c[1])

    def repeat_stmt(self, meta, c):
        return self._n(ir.Repeat, meta, count=c[0], body=c[1])

    def for_stmt(self, meta, c):
        return self._n(ir.For, meta, target=c[0], iter=c[1], body=c[2])

    def if_stmt(self, meta, c):
        orelse = c[2] if isinstance(c[2], tuple) else ((c[2],) if c[2] is not None else ())
        return self._n(ir.If, meta, test=c[0], body=c[1], orelse=orelse)

    def let_stmt(self, meta, c):
        return self._n(ir.Let, meta, name=str(c[0]), value=c[1])

    def assert_stmt(self, meta, c):
        return self._n(ir.Assert, meta, test=c[0], message=_string_value(c[1], self.file) if c[1] is not None else None)

    def name_target(self, meta, c):
        return self._n(ir.NameTarget, meta, id=str(c[0]))

    def tuple_target(self, meta, c):
        return self._n(ir.TupleTarget, meta, items=tuple(x for x in c if x is not None))

    def args(self, meta, c):
        return tuple(x for x in c if x is not None)

    def arg(self, meta, c):
        return self._n(ir.Arg, meta, name=None, value=c[0])

    def kwarg(self, meta, c):
        return self._n(ir.Arg, meta, name=str(c[0]), value=c[1])

    # expressions
    def number(self, meta, c):
        text = str(c[0]).replace("_", "")
        try:
            value = int(text) if text.isdigit() else float(text)
        except ValueError:  # Python refuses to convert an int of more than 4,300 digits
            shown = text if len(text) <= 20 else text[:20] + "..."
            raise error("E104", f"number `{shown}` is too long ({len(text):,} digits)",
                        _span(self.file, c[0])) from None
        if isinstance(value, float) and math.isinf(value):
            raise error("E104", f"number `{text[:20]}` is too large for a float", _span(self.file, c[0]))
        return self._n(ir.Num, meta, value=value)

    def string(self, meta, c):
        return self._n(ir.Str, meta, value=_string_value(c[0], self.file))

    def none(self, meta, c):
        return self._n(ir.NoneLit, meta)

    def true(self, meta, c):
        return self._n(ir.Bool, meta, value=True)

    def false(self, meta, c):
        return self._n(ir.Bool, meta, value=False)

    def name(self, meta, c):
        return self._n(ir.Name, meta, id=str(c[0]))

    def list(self, meta, c):
        return self._n(ir.ListExpr, meta, items=tuple(x for x in c if x is not None))

    def tuple(self, meta, c):
        return self._n(ir.TupleExpr, meta, items=tuple(x for x in c if x is not None))

    def empty_tuple(self, meta, c):
        return self._n(ir.TupleExpr, meta, items=())

    def binop(self, meta, c):
        return self._n(ir.BinOp, meta, op=str(c[1]), left=c[0], right=c[2])

    def or_op(self, meta, c):
        return self._n(ir.BinOp, meta, op="or", left=c[0], right=c[1])

    def and_op(self, meta, c):
        return self._n(ir.BinOp, meta, op="and", left=c[0], right=c[1])

    def not_op(self, meta, c):
        return self._n(ir.UnaryOp, meta, op="not", operand=c[0])

    def unary_op(self, meta, c):
        return self._n(ir.UnaryOp, meta, op=str(c[0]), operand=c[1])

    def comparison(self, meta, c):
        return self._n(ir.Compare, meta, first=c[0], ops=tuple(str(t) for t in c[1::2]), rest=tuple(c[2::2]))

    def conditional(self, meta, c):
        return self._n(ir.Cond, meta, body=c[0], test=c[1], orelse=c[2])

    def index(self, meta, c):
        return self._n(ir.Index, meta, value=c[0], index=c[1])

    def func_call(self, meta, c):
        return self._n(ir.FuncCall, meta, func=str(c[0]), args=c[1])


_ESCAPE = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "{": "{", "}": "}"}


def _string_value(tok: Token, file: str) -> str:
    """The value of a STRING token: its text between the quotes, escapes (\\" \\\\ \\n \\t \\{ \\}) resolved."""
    text, out, i = str(tok)[1:-1], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(_ESCAPE[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _interpolated(tok: Token, file: str) -> tuple:
    """A quoted label's parts: literal text, and each `{expr}` parsed as an expression (its position the
    place in the label), in order."""
    text = str(tok)[1:-1]
    parts: list = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            literal.append(_ESCAPE[text[i + 1]])
            i += 2
        elif ch == "{":
            end = text.find("}", i)
            if end < 0:
                col = tok.column + 1 + i
                raise error("E101", "a `{` in a name has no closing `}`", Span(file, tok.line, col, tok.line, col + 1))
            if literal:
                parts.append("".join(literal))
                literal = []
            inner = text[i + 1:end]
            try:
                expr = parse_expr(inner, file)
            except ArchError as exc:
                col = tok.column + 1 + i
                d = exc.diagnostics[0]
                raise error(d.code, f"in the name {str(tok)}: {d.message}",
                            Span(file, tok.line, col, tok.line, col + end - i + 1)) from None
            parts.append(_shifted(expr, tok.line, tok.column + 2 + i))
            i = end + 1
        else:
            literal.append(ch)
            i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _shifted(expr, line: int, column: int):
    """An expression parsed from a part of a line, its spans moved to where that part is."""
    span = Span(expr.span.file, line, column + expr.span.column - 1, line, column + expr.span.end_column - 1)
    updates = {"span": span}
    for name in type(expr).model_fields:
        v = getattr(expr, name)
        if isinstance(v, ir.IR):
            updates[name] = _shifted(v, line, column)
        elif isinstance(v, tuple) and v and all(isinstance(x, ir.IR) for x in v):
            updates[name] = tuple(_shifted(x, line, column) for x in v)
    return expr.model_copy(update=updates)


def display_path(path: str, importer: str | None = None) -> str:
    """The path of an imported file, relative to the importing file's folder."""
    if importer is None:
        return path
    return os.path.normpath(os.path.join(os.path.dirname(importer), path))
