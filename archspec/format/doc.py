"""A small pretty-printer: documents made of text, line breaks and groups, printed to a width.

The algebra is Wadler's "prettier printer" as the JavaScript formatter prettier prints it: a
`Group` is printed flat (its soft lines as spaces) when it fits in the rest of the line, and
broken (its soft lines as newlines) when it does not; a `Fill` puts as many items on a line as
fit; an `Align` indents continuation lines to the column where it starts (the column after an
opening bracket); a `Suffix` (a trailing comment) is written at the end of its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

WIDTH = 120  # the zoo's (and the Python code's) line length
INDENT = 4
DEEP = 72  # a continuation line indented past this reads as lost at the right: prefer a fresh line


@dataclass(frozen=True)
class Line:
    """A line break: `flat` (a space by default) where its group is printed flat; a newline where broken."""

    flat: str = " "
    hard: bool = False  # always a newline, and its groups can never be flat


@dataclass(frozen=True)
class Group:
    contents: "Doc"
    broken: bool = field(default=False)  # holds a hard line, so it can never be flat


@dataclass(frozen=True)
class Indent:
    contents: "Doc"


@dataclass(frozen=True)
class Align:
    contents: "Doc"


@dataclass(frozen=True)
class Fill:
    """Items separated by spaces, broken onto a new line before an item that does not fit."""

    items: tuple["Doc", ...]


@dataclass(frozen=True)
class Suffix:
    text: str


@dataclass(frozen=True)
class Choice:
    """Two layouts of the rest of a statement: `second` where it takes fewer lines, or fewer lines too
    long, than `first` (a long right-hand side after `=` moves to a line of its own)."""

    first: "Doc"
    second: "Doc"


@dataclass(frozen=True)
class _FillRest:  # the printer's bookmark inside a Fill: a separator, then the remaining items
    items: tuple["Doc", ...]


Doc = Union[str, list, Line, Group, Indent, Align, Fill, Suffix, Choice, _FillRest]
HARD = Line(hard=True)
FLAT, BREAK = 0, 1


def group(contents: Doc) -> Group:
    return Group(contents, _has_hard(contents))


def _has_hard(doc: Doc) -> bool:
    stack = [doc]
    while stack:
        d = stack.pop()
        if isinstance(d, Line):
            if d.hard:
                return True
        elif isinstance(d, list):
            stack.extend(d)
        elif isinstance(d, (Indent, Align)):
            stack.append(d.contents)
        elif isinstance(d, Group):
            if d.broken:
                return True
        elif isinstance(d, Fill):
            stack.extend(d.items)
        elif isinstance(d, Choice):
            stack.append(d.first)
    return False


def render(doc: Doc, width: int = WIDTH) -> str:
    """The document as text; trailing spaces are never written (a blank line is empty)."""
    return "\n".join(line.rstrip() for line in _print(doc, width, 0, 0).split("\n"))


def _print(doc: Doc, width: int, ind: int, col: int, comments: bool = True) -> str:
    out: list[str] = []
    suffixes: list[str] = []
    stack: list[tuple[int, int, Doc]] = [(ind, BREAK, doc)]
    while stack:
        ind, mode, d = stack.pop()
        if isinstance(d, str):
            out.append(d)
            col += len(d)
        elif isinstance(d, list):
            stack.extend((ind, mode, x) for x in reversed(d))
        elif isinstance(d, Line):
            if mode == FLAT and not d.hard:
                out.append(d.flat)
                col += len(d.flat)
            else:
                out.extend(suffixes)
                suffixes.clear()
                out.append("\n" + " " * ind)
                col = ind
        elif isinstance(d, Indent):
            stack.append((ind + INDENT, mode, d.contents))
        elif isinstance(d, Align):
            stack.append((col, mode, d.contents))
        elif isinstance(d, Group):
            flat = mode == FLAT or (not d.broken and _fits([(ind, FLAT, d.contents)], stack, width - col))
            stack.append((ind, FLAT if flat else BREAK, d.contents))
        elif isinstance(d, Suffix):
            if comments:
                suffixes.append("  " + d.text)
        elif isinstance(d, Choice):
            stack.append((ind, mode, d.first if mode == FLAT else _pick(d, width, ind, col)))
        elif isinstance(d, Fill):
            _fill(d.items, ind, mode, stack, width - col)
        elif isinstance(d, _FillRest):
            last = len(d.items) == 1
            if mode == FLAT or _fits([(ind, FLAT, d.items[0])], stack if last else [], width - col - 1):
                out.append(" ")
                col += 1
            else:
                out.extend(suffixes)
                suffixes.clear()
                out.append("\n" + " " * ind)
                col = ind
            stack.append((ind, mode, Fill(d.items)))
    out.extend(suffixes)
    return "".join(out)


def _pick(d: Choice, width: int, ind: int, col: int) -> Doc:
    """Of the two layouts, the one with fewer lines over the width, then fewer lines, then continuation
    lines no deeper than DEEP; `first` on a tie. Each is printed on its own from here, so a Choice must
    end its statement (nothing follows on its line). Comments are left out: where a comment sits must
    not change the layout, or formatting twice would not give the same text."""
    def cost(doc: Doc) -> tuple[int, int, bool]:
        lines = (" " * col + _print(doc, width, ind, col, comments=False)).split("\n")
        deepest = max((len(line) - len(line.lstrip(" ")) for line in lines[1:]), default=0)
        return sum(len(line.rstrip()) > width for line in lines), len(lines), deepest > DEEP
    return d.second if cost(d.second) < cost(d.first) else d.first


def _fill(items: tuple[Doc, ...], ind: int, mode: int, stack: list, room: int) -> None:
    """Print the first item (flat if it fits, with what follows it when it is the last), then a
    bookmark that decides the separator before the next."""
    if not items:
        return
    if len(items) > 1:
        stack.append((ind, mode, _FillRest(items[1:])))
    fits = mode == FLAT or _fits([(ind, FLAT, items[0])], stack if len(items) == 1 else [], room)
    stack.append((ind, FLAT if fits else BREAK, items[0]))


def _fits(cmds: list[tuple[int, int, Doc]], rest: list[tuple[int, int, Doc]], room: int) -> bool:
    """Whether `cmds` (and then `rest`, up to its first line break) fit in `room` columns."""
    todo = list(cmds)
    k = len(rest)
    while room >= 0:
        if not todo:
            if k == 0:
                return True
            k -= 1
            todo.append(rest[k])
            continue
        ind, mode, d = todo.pop()
        if isinstance(d, str):
            room -= len(d)
        elif isinstance(d, list):
            todo.extend((ind, mode, x) for x in reversed(d))
        elif isinstance(d, Line):
            if mode == BREAK or d.hard:
                return True
            room -= len(d.flat)
        elif isinstance(d, (Indent, Align)):
            todo.append((ind, mode, d.contents))
        elif isinstance(d, Choice):
            todo.append((ind, mode, d.first))
        elif isinstance(d, Group):
            todo.append((ind, BREAK if d.broken else mode, d.contents))
        elif isinstance(d, Fill):
            if mode == BREAK:  # only the first item is sure to share the line
                todo.append((ind, mode, d.items[0] if d.items else ""))
            else:
                todo.extend((ind, mode, x) for x in reversed(_spaced(d.items)))
        elif isinstance(d, _FillRest):
            if mode == BREAK:
                return True
            todo.extend((ind, mode, x) for x in reversed(_spaced(d.items, lead=True)))
    return False


def _spaced(items: tuple[Doc, ...], lead: bool = False) -> list[Doc]:
    out: list[Doc] = []
    for i, x in enumerate(items):
        if i or lead:
            out.append(" ")
        out.append(x)
    return out
