"""The one way user text reaches generated source: escaped, ASCII, on one line.

File names, overrides, labels, block and network names, assert messages: whatever a user
wrote that ends up in a generated `.py` file (in a docstring, a comment or a string literal)
goes through `escape`, and values go through `py_value`, which renders them from their parsed
form, never from the text the user typed. The result holds only printable ASCII, never a quote
that could close the literal around it and never a line break of any kind (Python's tokenizer
and `str.splitlines` disagree on what a line break is: `\\v`, `\\f`, NEL and U+2028 split a line
for one and not the other), so it cannot end a docstring, start a statement or move a line.

User text drawn in a diagram takes the same care: `dot_string` quotes it for Graphviz's DOT, and
`printable` (which the HTML report uses too) shows whatever would not print as itself.
"""

from __future__ import annotations

import math
from typing import Any

_SHORT = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}  # literals are always in double quotes


def escape(text: str) -> str:
    """`text` as the inside of a Python string literal or docstring: printable ASCII only."""
    out = []
    for ch in text:
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            n = ord(ch)
            out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}")
    return "".join(out)


def py_string(text: str) -> str:
    """A Python string literal whose value is `text`."""
    return f'"{escape(text)}"'


def printable(text: str) -> str:
    """`text` with every character that would not print as itself (controls, line and paragraph
    separators, bidirectional overrides and other format characters, unassigned code points) shown
    as its escape: `\\x07`, `\\u202e`. Everything printable, in any script, is kept as it is."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _code(ch) for ch in text)


def _code(ch: str) -> str:
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def dot_string(text: str, tooltip: bool = False) -> str:
    """A quoted DOT string that Graphviz shows as `text`, for a label, or with `tooltip` for a tooltip.

    Each line of `text` (split on "\\n") is a line of the label; anything else that would not print
    is shown by `printable`. Graphviz reads `\\N`, `\\G`, `\\l` ... in a label as commands, and
    decodes `&amp;`-style entities in every string; a tooltip goes through its backslash
    substitution twice, so there one backslash is written as four.
    """
    slash = "\\\\\\\\" if tooltip else "\\\\"
    lines = []
    for line in text.split("\n"):
        line = printable(line).replace("\\", slash).replace('"', '\\"').replace("&", "&amp;")
        lines.append(line)
    return '"' + "\\n".join(lines) + '"'


def py_value(value: Any) -> str:
    """A Python literal for an evaluated spec value: numbers, bools, None, strings, lists and tuples."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"no literal for the non-finite float {value!r}")
        return repr(value)
    if isinstance(value, str):
        return py_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(py_value(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(py_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    raise TypeError(f"no Python literal for a {type(value).__name__}")
