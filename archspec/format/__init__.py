"""The formatter's core: a spec's text in the one canonical layout (`archspec fmt`, the language server).

    format_text(text, file) -> str

The layout: four-space indents, `{` on its statement's line and `}` on a line of its own, one
statement per line (statements the author put on one line, `conv2d(64, kernel=1)  relu` or
`seq { conv2d(c1, kernel=1)  relu }`, stay so, two spaces apart, where they fit), argument and
parameter lists filled to 120 columns with continuation lines aligned after the bracket, or one
item per line when the author left a trailing comma or a comment inside; a long value after a
statement's `=` on a line of its own where that takes fewer lines; spaces around binary operators
(as archspec/render.py writes expressions) and none around a keyword argument's `=`; a blank line
around every definition with a body, the author's blank lines elsewhere (at most one in a row),
and comments where they were. Formatting twice changes nothing.

Only whitespace, comments' places and trailing commas change. Every result is parsed again and
compared with the input, node for node and comment for comment, before it is returned: a
formatter bug raises E880 (exit 3) instead of changing what a spec means.
"""

from __future__ import annotations

from functools import lru_cache

from lark import Lark

from .. import ir
from ..errors import ArchError, Diagnostic, Span
from ..parse import GRAMMAR, _grammar_cache, parse_text
from .comments import comments
from .layout import Layout

__all__ = ["format_text", "comments", "FormatterBug"]


class FormatterBug(ArchError):
    """The formatter's output would not mean what its input meant (E880): a bug in archspec, exit 3."""


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The language's own grammar, every token kept (brackets, commas and keywords the IR drops)."""
    cache = _grammar_cache()
    if isinstance(cache, str):
        cache = cache.replace("grammar.lark.", "grammar.lark.all-tokens.")
    return Lark(GRAMMAR.read_text(), parser="lalr", propagate_positions=True, keep_all_tokens=True,
                maybe_placeholders=True, start="start", cache=cache)


def format_text(text: str, file: str = "<input>") -> str:
    """`text` in the canonical layout. A spec that does not parse raises its ArchError (E1xx, E005)."""
    text = text.lstrip("\ufeff")
    before = parse_text(text, file)  # the located syntax errors, exactly as `check` reports them
    tree = _parser().parse(text)
    out = Layout(text, tree).file(tree)
    if out != text:  # a file already in the layout needs no second parse
        _same_meaning(text, before, out, file)
    return out


def _same_meaning(text: str, before: ir.SourceFile, out: str, file: str) -> None:
    try:
        after = parse_text(out, file)
    except ArchError as exc:
        _bug(file, f"its output does not parse ({exc.diagnostics[0].message})")
    if _meaning(before) != _meaning(after):
        _bug(file, "its output parses to a different spec")
    if _words(comments(text)) != _words(comments(out)):  # two trailing comments may end up on one line
        _bug(file, "its output lost or moved a comment")


def _bug(file: str, why: str) -> None:
    raise FormatterBug(Diagnostic("E880", f"the formatter would change this file's meaning: {why}; the file is "
                                          "left as it was (a bug in archspec: please report it)", Span(file)))


def _words(texts: list[str]) -> list[str]:
    return [w for t in texts for w in t.split()]


def _meaning(root: ir.IR) -> list:
    """The syntax tree without positions, as a flat list (iterative: a tree may be 256 levels deep)."""
    out: list = []
    stack: list = [root]
    while stack:
        x = stack.pop()
        if isinstance(x, ir.IR):
            out.append(type(x).__name__)
            for key, value in x.__dict__.items():
                if key != "span":
                    out.append(key)
                    stack.append(value)
        elif isinstance(x, tuple):
            out.append(len(x))
            stack.extend(x)
        else:
            out.append(repr(x))
    return out
