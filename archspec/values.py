"""The language's values as the language writes them: their type names and their display.

Values are plain Python values: int, float, bool, str, None (`none`), list and tuple; a reference
to a tensor (`@enc2`) is a TensorRef. An error message quotes a value through `show`, which cuts
it short however large it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TensorRef:
    """The value of `@name`: the output of an earlier node of the same body (its node id)."""

    name: str
    node: int


def type_name(v: Any) -> str:
    if isinstance(v, TensorRef):
        return "tensor"
    return {bool: "bool", int: "int", float: "float", list: "list", tuple: "tuple", str: "str",
            type(None): "none"}.get(type(v), "value")


SHOWN = 80  # the most characters of a value an error message quotes


def show(v: Any, limit: int = SHOWN) -> str:
    """A value as the language writes it, cut to about `limit` characters (`...` where cut).

    The walk stops once the text is long enough, so a huge or deeply shared list costs no more
    than a short one to show."""
    out: list[str] = []
    size = 0
    stack: list[Any] = [v]
    while stack:
        item = stack.pop()
        if isinstance(item, _Text):
            piece = item.text
        elif isinstance(item, bool):
            piece = "true" if item else "false"
        elif isinstance(item, (list, tuple)):
            close = "]" if isinstance(item, list) else ("," if len(item) == 1 else "") + ")"
            stack.append(_Text(close if len(item) <= limit else ", ..." + close))
            shown = item[:limit]  # no more items than characters to show
            for i, x in enumerate(reversed(shown)):
                stack.append(x)
                if i < len(shown) - 1:
                    stack.append(_Text(", "))
            piece = "[" if isinstance(item, list) else "("
        elif item is None:
            piece = "none"
        elif isinstance(item, str):
            piece = '"' + item[: limit + 1].replace("\\", "\\\\").replace('"', '\\"') + '"'
        elif isinstance(item, TensorRef):
            piece = f"@{item.name}"
        elif isinstance(item, int) and item.bit_length() > 4 * limit:
            piece = f"<an int of {item.bit_length():,} bits>"
        else:
            piece = repr(item)
        out.append(piece)
        size += len(piece)
        if size > limit:
            return "".join(out)[:limit] + "..."
    return "".join(out)


class _Text:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def text(v: Any) -> str:
    """A value as `str()` and a name's `{...}` part give it: a string as it is, others as `show` writes them."""
    return v if isinstance(v, str) else show(v, limit=1_000)
