"""A spec's concrete syntax tree (every token kept) -> a Doc in the canonical layout, comments put back.

The layout is driven by the tree's shape, not by its rule names: a subtree whose first and last
tokens are `{` and `}` is a body (statements, one line each, indented); a `(` or `[` and its
matching bracket hold comma-separated items (filled onto lines aligned after the bracket, or one
item per line when the user left a trailing comma or a comment inside); every other token is
spaced by a few rules on its neighbours. A new statement or expression in the grammar is laid
out with no change here unless it needs a spacing rule of its own.

Comments, which the parser skips, are found in the text between tokens (archspec/format/comments.py)
and attached to a token. A comment on a line of its own is written on its own line again, before
the statement, bracketed item or closing bracket it leads. A comment after code is written at the
end of a line: its token's line where that is the end of a statement or of an item on a line of its
own, or after a body's `{` or a broken bracket's opening; anywhere else (mid-expression) it waits
for the next of those, so that it never lands inside a bracket that the next run would then lay out
differently. Two comments that end up on one line are joined there (`x  # a  # b`).
"""

from __future__ import annotations

from lark import Token, Tree

from .comments import gaps
from .doc import HARD, Align, Choice, Doc, Fill, Indent, Line, Suffix, group, render

_OPEN = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}


class Layout:
    """The Doc of one file's tree; `text` is the source the tree was parsed from (for its comments)."""

    def __init__(self, text: str, tree: Tree):
        self.tokens: list[Token] = []
        self.index: dict[int, int] = {}  # id(token) -> its index
        self.parent: dict[int, str] = {}  # id(token) -> the rule it belongs to
        self.bounds: dict[int, tuple[int, int]] = {}  # id(tree) -> its first and last token's index
        self.body_braces: set[int] = set()
        self._number(tree)
        self.gaps = gaps(text, self.tokens)
        self.handled: set[int] = set()  # tokens whose leading comments the layout has placed itself

    def _number(self, tree: Tree) -> None:
        """Index every token in order, and note each subtree's first and last token (no recursion)."""
        stack: list = [tree]
        order: list[Tree] = []
        while stack:
            node = stack.pop()
            if isinstance(node, Token):
                self.index[id(node)] = len(self.tokens)
                self.tokens.append(node)
                continue
            order.append(node)
            kids = [c for c in node.children if c is not None]
            for c in kids:
                if isinstance(c, Token):
                    self.parent[id(c)] = node.data
            if _is_body(node):
                self.body_braces.update((id(kids[0]), id(kids[-1])))
            stack.extend(reversed(kids))
        for node in reversed(order):  # children before parents
            firsts, lasts = [], []
            for c in node.children:
                if isinstance(c, Token):
                    firsts.append(self.index[id(c)])
                    lasts.append(self.index[id(c)])
                elif isinstance(c, Tree) and id(c) in self.bounds:
                    firsts.append(self.bounds[id(c)][0])
                    lasts.append(self.bounds[id(c)][1])
            if firsts:
                self.bounds[id(node)] = (min(firsts), max(lasts))

    # ---- the file ------------------------------------------------------------------------

    def file(self, tree: Tree) -> str:
        """The whole file: definitions one after another, a blank line around any with a body."""
        out: list[str] = []
        prev_multi = False
        for k, item in enumerate(c for c in tree.children if isinstance(c, Tree)):
            first = self.bounds[id(item)][0]
            comments = self._take_leading(first)
            text = render(self._statement([item]))
            multi = any(isinstance(c, Tree) and _is_body(c) for c in item.children)
            if k and (multi or prev_multi or (comments[0][1] if comments else self.gaps.blank[first])):
                out.append("")
            out += self._comment_lines(comments, self.gaps.blank[first])
            out.append(text)
            prev_multi = multi
        end = self._take_leading(len(self.tokens))
        if end:
            if out and end[0][1]:
                out.append("")
            out += self._comment_lines(end, False)
        return "\n".join(out) + "\n"

    def _take_leading(self, i: int) -> list[tuple[str, bool]]:
        self.handled.add(i)
        return self.gaps.leading.get(i, [])

    @staticmethod
    def _comment_lines(comments: list[tuple[str, bool]], blank_after: bool) -> list[str]:
        out: list[str] = []
        for j, (c, blank) in enumerate(comments):
            if j and blank:
                out.append("")
            out.append(c)
        if comments and blank_after:
            out.append("")
        return out

    # ---- statements and bodies -----------------------------------------------------------

    def _statement(self, children: list) -> Doc:
        return self._seq(list(_flatten(children)))

    def _body(self, tree: Tree, outer: list[Doc]) -> Doc:
        """`{ statements }`: one statement (or run of them) per line, indented; on one line where it was
        written on one line and fits; `{}` when empty."""
        kids = [c for c in tree.children if c is not None]
        open_, close = kids[0], kids[-1]
        stmts: list[list] = []
        for k, c in enumerate(kids[1:-1]):  # a keyword token (`return`) starts the statement after it
            if stmts and isinstance(kids[k], Token) and k > 0:
                stmts[-1].append(c)
            else:
                stmts.append([c])
        oi, ci = self.index[id(open_)], self.index[id(close)]
        opening = self._token(open_, outer)
        held = list(outer)  # comments held from the statement's head: let out at the body's first line break
        outer.clear()
        if not stmts and not self._has_comments(oi, ci):
            return [*held, opening, self._token(close, outer)]
        runs = self._runs(stmts)
        if open_.line == close.line:  # written on one line (so no comments inside): kept so where it fits
            inner = _joined([doc for _, doc in runs], Line("  "))
            return group([*held, opening, Indent([Line(" "), *inner]), Line(" "), self._token(close, outer)])
        return [*held, opening, Indent(self._lines(runs, ci)), HARD, self._token(close, outer)]

    def _lines(self, runs: list[tuple[int, Doc]], close: int) -> list[Doc]:
        """A body's lines: each run after its own-line comments, one blank line kept where there were
        any; the comments before the closing brace last."""
        parts: list[Doc] = []
        for k, (first, doc) in enumerate(runs):
            comments = self._take_leading(first)
            if k and (comments[0][1] if comments else self.gaps.blank[first]):
                parts.append(HARD)
            parts.append(HARD)
            for line in self._comment_lines(comments, self.gaps.blank[first]):
                parts += [line, HARD]
            parts.append(doc)
        for j, (c, blank) in enumerate(self._take_leading(close)):
            parts += [HARD] * (1 + (blank and (j > 0 or bool(runs)))) + [c]
        return parts

    def _runs(self, stmts: list[list]) -> list[tuple[int, Doc]]:
        """Statements grouped by the source line they share (`conv2d(64, kernel=1)  relu`), each group
        kept on one line, two spaces apart, where it fits; (first token's index, doc) per group."""
        runs: list[tuple[int, list[Doc]]] = []
        prev_end = None  # the line a one-line statement ended on, if the last one was on one line
        for s in stmts:
            lo, hi = self._span_of(s)
            first, last = self.tokens[lo], self.tokens[hi]
            self.handled.add(lo)  # its own-line comments go before its line (_body places them)
            doc = self._statement(s)
            one_line = first.line == last.end_line
            if one_line and prev_end == first.line:
                runs[-1][1].append(doc)
            else:
                runs.append((lo, [doc]))
            prev_end = last.end_line if one_line else None
        return [(lo, docs[0] if len(docs) == 1 else group(_joined(docs, Line("  ")))) for lo, docs in runs]

    def _span_of(self, children: list) -> tuple[int, int]:
        a, b = children[0], children[-1]
        lo = self.index[id(a)] if isinstance(a, Token) else self.bounds[id(a)][0]
        hi = self.index[id(b)] if isinstance(b, Token) else self.bounds[id(b)][1]
        return lo, hi

    # ---- token sequences and brackets -----------------------------------------------------

    def _seq(self, seq: list, outer: list[Doc] | None = None) -> Doc:
        """Tokens, bracketed groups and bodies, spaced by their neighbours.

        The comments of tokens at this level (not inside a bracket, where they make the bracket one
        item per line) are held back to the next body's `{` or the end of the statement or item: a
        comment let out mid-statement could land inside a bracket broken over lines, and the next
        run would then lay that bracket out differently."""
        held: list[Doc] = [] if outer is None else outer
        pieces: list[tuple[Doc, Token, Token]] = []
        i = 0
        while i < len(seq):
            x = seq[i]
            if isinstance(x, Tree):
                kids = [c for c in x.children if c is not None]
                pieces.append((self._body(x, held), kids[0], kids[-1]))
                i += 1
            elif x.type in _OPEN:
                j = _match(seq, i)
                pieces.append((self._brackets(seq[i:j + 1], held), x, seq[j]))
                i = j + 1
            else:
                pieces.append((self._token(x, held), x, x))
                i += 1
        split = self._assignment(pieces)
        if split is not None:  # `name = value`: the value on the next line where that takes fewer lines
            value = self._join(pieces[split + 1:])
            doc = [*self._join(pieces[:split + 1]), Choice([" ", *value], Indent([HARD, *value]))]
        else:
            doc = self._join(pieces)
        return doc + held if outer is None else doc

    def _join(self, pieces: list[tuple[Doc, Token, Token]]) -> list[Doc]:
        doc: list[Doc] = []
        for k, (d, first, _) in enumerate(pieces):
            if k:
                doc.append(self._space(pieces[k - 1][2], first))
            doc.append(d)
        return doc

    def _assignment(self, pieces: list[tuple[Doc, Token, Token]]) -> int | None:
        """The index of a statement's `=` (not a keyword argument's or a default's) with no body after it."""
        for k, (_, tok, _) in enumerate(pieces):
            if tok.type == "EQUAL" and self.parent.get(id(tok)) not in ("kwarg", "param") and 0 < k < len(pieces) - 1:
                if any(tok.type == "LBRACE" and id(tok) in self.body_braces for _, tok, _ in pieces[k + 1:]):
                    return None
                return k
        return None

    def _brackets(self, toks: list, outer: list[Doc]) -> Doc:
        open_, close = toks[0], toks[-1]
        if open_.type == "LBRACE":  # `layer{i + 1}`, `@p{i}`: part of a name, never broken
            return [self._token(open_, outer), self._seq(toks[1:-1], outer), self._token(close, outer)]
        items, commas = _split(toks[1:-1])
        if not items:
            return [self._token(open_, outer), self._token(close, outer)]
        trailing = len(commas) == len(items)
        magic = trailing and not (len(items) == 1 and self.parent.get(id(open_)) == "tuple")  # `(x,)` needs it
        if magic or self._has_comments(self.index[id(open_)], self.index[id(close)]):
            return self._exploded(open_, close, items, commas, outer)
        docs = [[self._seq(item), self._token(commas[k]) if k < len(commas) else []] for k, item in enumerate(items)]
        return group([self._token(open_, outer), Align(Fill(tuple(docs))), self._token(close, outer)])

    def _exploded(self, open_: Token, close: Token, items: list[list], commas: list[Token],
                  outer: list[Doc]) -> Doc:
        """One item per line, indented, each followed by a comma; the closing bracket on a line of its own."""
        comma_ok = len(commas) > 0
        parts: list[Doc] = []
        for k, item in enumerate(items):
            parts.append(HARD)
            first = self._first_token(item[0])
            for c, _ in self._take_leading(self.index[id(first)]):
                parts += [c, HARD]
            comma = self._token(commas[k]) if k < len(commas) else ("," if comma_ok else "")
            parts += [self._seq(item), comma]
        for c, _ in self._take_leading(self.index[id(close)]):
            parts += [HARD, c]
        opening = self._token(open_, outer)
        held = list(outer)  # comments held from before the bracket: let out at its first line break
        outer.clear()
        return [*held, opening, Indent(parts), HARD, self._token(close, outer)]

    def _first_token(self, x) -> Token:
        return x if isinstance(x, Token) else self.tokens[self.bounds[id(x)][0]]

    def _has_comments(self, lo: int, hi: int) -> bool:
        """Any comment between tokens lo and hi (after lo's code, before hi's)."""
        return any(i in self.gaps.trailing for i in range(lo, hi)) or \
            any(i in self.gaps.leading for i in range(lo + 1, hi + 1))

    def _token(self, tok: Token, outer: list[Doc] | None = None) -> Doc:
        """A token's text. Its comments go to `outer` (held for later by _seq), except the one trailing an
        opening bracket, which stays right after it (the bracket's first line break comes next)."""
        i = self.index[id(tok)]
        text = str(tok) if tok.type == "STRING" else " ".join(str(tok).split())  # `if  training`: one space
        before = [] if i in self.handled else [Suffix(c) for c, _ in self.gaps.leading.get(i, [])]
        after = [Suffix(self.gaps.trailing[i])] if i in self.gaps.trailing else []
        if outer is not None:
            outer += before
            before = []
            if tok.type not in _OPEN:
                outer += after
                after = []
        return [*before, text, *after] if before or after else text

    def _space(self, a: Token, b: Token) -> str:
        """The space between two neighbouring tokens: none inside brackets and names, none around the `=`
        of a keyword argument, after a unary sign, or before a call's `(` or an index's `[`; else one."""
        pa, pb = self.parent.get(id(a)), self.parent.get(id(b))
        if a.type in ("LPAR", "LSQB", "AT") or b.type in ("RPAR", "RSQB", "COMMA", "COLON"):
            return ""
        if b.type == "LBRACE":
            return " " if id(b) in self.body_braces else ""
        if a.type == "LBRACE" or b.type == "RBRACE":
            return ""
        if b.type == "LPAR" and (a.type == "NAME" or pb == "args"):
            return ""
        if b.type == "LSQB" and pb == "index":
            return ""
        if (a.type == "EQUAL" and pa == "kwarg") or (b.type == "EQUAL" and pb == "kwarg"):
            return ""
        if a.type == "ADD" and pa == "unary_op":
            return ""
        return " "


def _is_body(node: Tree) -> bool:
    kids = [c for c in node.children if c is not None]
    return (len(kids) >= 2 and isinstance(kids[0], Token) and kids[0].type == "LBRACE"
            and isinstance(kids[-1], Token) and kids[-1].type == "RBRACE")


def _flatten(children: list):
    """The tokens of `children` in order, with each body kept whole (it is laid out on its own)."""
    stack = list(reversed(children))
    while stack:
        c = stack.pop()
        if c is None:
            continue
        if isinstance(c, Token) or _is_body(c):
            yield c
        else:
            stack.extend(reversed(c.children))


def _match(seq: list, i: int) -> int:
    """The index of the bracket closing seq[i]."""
    depth = 0
    for j in range(i, len(seq)):
        x = seq[j]
        if isinstance(x, Token):
            if x.type in _OPEN:
                depth += 1
            elif x.type in _OPEN.values():
                depth -= 1
                if depth == 0:
                    return j
    raise ValueError("unbalanced brackets in a parsed tree")  # the grammar pairs every bracket


def _split(inner: list) -> tuple[list[list], list[Token]]:
    """Items separated by the top-level commas, and those commas."""
    items: list[list] = [[]]
    commas: list[Token] = []
    depth = 0
    for x in inner:
        if isinstance(x, Token) and x.type in _OPEN:
            depth += 1
        elif isinstance(x, Token) and x.type in _OPEN.values():
            depth -= 1
        if depth == 0 and isinstance(x, Token) and x.type == "COMMA":
            commas.append(x)
            items.append([])
        else:
            items[-1].append(x)
    if not items[-1]:
        items.pop()
    return items, commas


def _joined(docs: list[Doc], sep: Doc) -> list[Doc]:
    out: list[Doc] = []
    for k, d in enumerate(docs):
        if k:
            out.append(sep)
        out.append(d)
    return out
