"""A document's text cut into its top-level items (`import`, `block`, `network`, `def`), each
parsed on its own and kept by its text, so that an edit re-parses only the item it touched.

An item is parsed after as many newlines as there are lines before it, so every span in it is the
span the whole file would give. The items that did not change come back from the cache as the
same objects, and whatever was built from them (an expanded network) can be kept as well
(analysis.py). Where an item does not parse, the whole text is parsed as `archspec check` parses
it, so a syntax error reads exactly as the command line reports it, and the items that do parse
still serve the outline, completion and go to definition.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field

from .. import ir
from ..errors import ArchError, Span, io_error
from ..parse import parse_text

# A string, a comment, a bracket, or an item's keyword at the start of a line. Strings and
# comments are matched only so that a bracket or a keyword inside them is not taken for one.
_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[(\[{)\]}]|^[ \t]*(?:import|block|network|def)\b', re.M)
_OPEN, _CLOSE = "([{", ")]}"


def item_starts(text: str) -> list[tuple[int, int]]:
    """(offset, line) of each top-level item; the first is (0, 1), with any comments before it."""
    starts = [(0, 1)]
    depth, seen, line, last = 0, False, 1, 0
    for m in _TOKENS.finditer(text):
        c = m.group()[0]
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c not in '"#' and (depth == 0 or c not in " \t"):
            # A keyword beginning a line outside any bracket, or at the very start of a line even
            # inside one: an item left unclosed while it is being typed does not swallow the rest.
            depth = 0
            line += text.count("\n", last, m.start())
            last = m.start()
            if seen:
                starts.append((m.start(), line))
            seen = True
    return starts


@dataclass
class Parsed:
    """A document's syntax: every item when the text parses, else the items that do and the error."""

    source: ir.SourceFile | None  # None when the text does not parse
    partial: ir.SourceFile  # the items that parse (all of them when `source` is not None)
    error: ArchError | None = None
    starts: list[tuple[int, int]] = field(default_factory=list)  # (offset, line) of each item


class ItemCache:
    """Parsed items by (file, first line, text); the least recently used are dropped past `size`."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, int, str], ir.SourceFile | ArchError] = OrderedDict()
        self.parsed = 0  # items parsed (not found in the cache), for tests and benchmarks

    def parse(self, text: str, file: str) -> Parsed:
        starts = item_starts(text)
        ends = [off for off, _ in starts[1:]] + [len(text)]
        parts = [self._item(file, line, text[off:end]) for (off, line), end in zip(starts, ends)]
        good = [p for p in parts if isinstance(p, ir.SourceFile)]
        if len(good) == len(parts):
            merged = _merge(good, file)
            return Parsed(merged, merged, None, starts)
        try:  # the whole text, as `archspec check` reads it: its error is the one to report
            whole = parse_text(text, file)
        except ArchError as exc:
            return Parsed(None, _merge(good, file), exc, starts)
        except RecursionError:  # as archspec.loads says it
            exc = io_error("E005", "the spec is nested too deeply to analyse", Span(file))
            return Parsed(None, _merge(good, file), exc, starts)
        return Parsed(whole, whole, None, starts)  # items that only fail when cut apart: trust the whole

    def _item(self, file: str, line: int, text: str) -> ir.SourceFile | ArchError:
        key = (file, line, text)
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            return found
        self.parsed += 1
        try:
            found = parse_text("\n" * (line - 1) + text, file)
        except ArchError as exc:
            found = exc
        except RecursionError:  # nested past what the parser survives: the whole text gives the error
            found = ArchError([])
        self._items[key] = found
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return found


def _merge(parts: list[ir.SourceFile], file: str) -> ir.SourceFile:
    if len(parts) == 1:
        return parts[0]
    return ir.SourceFile.model_construct(
        span=Span(file, 1, 1), path=file, imports=tuple(i for p in parts for i in p.imports),
        definitions=tuple(d for p in parts for d in p.definitions),
        functions=tuple(f for p in parts for f in p.functions))
