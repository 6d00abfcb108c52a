"""Where a spec's comments are. The parser skips them, so they are found in the text between tokens:
each is attached to a token, with the blank lines around it, for the layout to put back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lark import Token

_COMMENT = re.compile(r"#[^\n]*")
_COMMENT_OR_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')


def comments(text: str) -> list[str]:
    """The comments of a spec in order, each without trailing spaces."""
    return [m.group().rstrip() for m in _COMMENT_OR_STRING.finditer(text) if m.group().startswith("#")]


@dataclass
class Gaps:
    """The comments and blank lines between tokens, by token index (len(tokens) stands for the end)."""

    trailing: dict[int, str] = field(default_factory=dict)  # a comment on token i's line, after it
    leading: dict[int, list[tuple[str, bool]]] = field(default_factory=dict)  # own-line comments; blank before?
    blank: dict[int, bool] = field(default_factory=dict)  # a blank line right before token i


def gaps(text: str, tokens: list[Token]) -> Gaps:
    """A comment after code on its line trails the token before it; one on a line of its own leads the
    token after it (or the end of the file)."""
    out = Gaps()
    pos = 0
    for i in range(len(tokens) + 1):
        end = tokens[i].start_pos if i < len(tokens) else len(text)
        gap, last = text[pos:end], 0  # `last`: where the previous token or comment ended, in the gap
        for m in _COMMENT.finditer(gap):
            comment = m.group().rstrip()
            newlines = gap.count("\n", last, m.start())
            if i > 0 and newlines == 0:
                out.trailing[i - 1] = comment
            else:
                out.leading.setdefault(i, []).append((comment, newlines >= 2))
            last = m.end()
        out.blank[i] = gap.count("\n", last) >= 2
        if i < len(tokens):
            pos = tokens[i].end_pos
    return out
