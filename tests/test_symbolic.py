"""Property: the channel formulas the generator writes compute what they stand for, for every value.

A generated class computes its widths from its parameters (`in_channels=2 * (oup // 2)`); the
text must mean the same number as the spec for any argument, not only the one the spec was
checked with. Sums of channels (concat), their equal parts (chunk), and slices are built from
random pieces, written as text, and evaluated against plain integer arithmetic.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from archspec.codegen.python import _part_of
from archspec.codegen.symbolic import Sym, divided, param, total

# (text, precedence, the value for p) of pieces a channel count is made of
PIECES = [
    ("p", 10, lambda p: p),
    ("p // 2", 6, lambda p: p // 2),
    ("p * 3", 6, lambda p: p * 3),
    ("p // 2 * 3", 6, lambda p: p // 2 * 3),
    ("3 * p // 4", 6, lambda p: 3 * p // 4),
    ("p + 1", 5, lambda p: p + 1),
    ("p - 5", 5, lambda p: p - 5),
    ("(p + 1) // 2", 6, lambda p: (p + 1) // 2),
    ("p % 4", 6, lambda p: p % 4),
    ("q[1]", 9, lambda p: p + 7),
]


def sym(i: int) -> Sym:
    text, prec, _ = PIECES[i]
    return Sym(text, True, prec=prec, reads=frozenset({"p"}))


def value(i: int, p: int) -> int:
    return PIECES[i][2](p)


parts = st.lists(st.one_of(st.integers(0, len(PIECES) - 1).map(lambda i: ("sym", i)),
                           st.integers(-3, 50).map(lambda n: ("int", n))), min_size=1, max_size=6)
P = st.integers(-40, 200)


def build(ps):
    return [sym(i) if kind == "sym" else Sym(str(i)) for kind, i in ps]


def expected(ps, p):
    return sum(value(i, p) if kind == "sym" else i for kind, i in ps)


def run(text: str, p: int) -> int:
    return eval(text, {}, {"p": p, "q": [0, p + 7]})  # noqa: S307 - the generator's own text


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(parts, P)
def test_a_sum_of_channels_is_their_sum(ps, p):
    assert run(total(build(ps)).text, p) == expected(ps, p)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.lists(parts, min_size=1, max_size=3), P, st.integers(1, 4))
def test_sums_of_sums_and_their_equal_parts(groups, p, k):
    inner = [total(build(ps)) for ps in groups]
    whole = total(inner * k)  # k equal copies: every term a multiple of k
    want = sum(expected(ps, p) for ps in groups)
    assert run(whole.text, p) == k * want
    part = divided(whole, k)
    assert part is not None and run(part.text, p) == want
    # a product or a floor division of the sum reads the whole sum (precedence kept)
    assert run(f"3 * {whole.text if whole.prec > 6 else '(' + whole.text + ')'}", p) == 3 * k * want


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.one_of(st.integers(0, len(PIECES) - 1).map(lambda i: [("sym", i)]), parts), st.integers(1, 5),
       st.data(), st.integers(1, 300))
def test_a_chunk_has_torchs_size_for_any_channels(ps, k, data, p):
    c = total(build(ps))
    n = expected(ps, p)
    if n < 1:
        return
    i = data.draw(st.integers(0, k - 1))
    size = -(-n // k)
    if i * size >= n:
        return  # torch.chunk gives fewer chunks: the shape rule refuses it
    part = _part_of("chunk", {"chunks": k, "index": i, "dim": 0}, c)
    if part is None:  # a number: the node's own shape is written instead
        assert not c.symbolic
        return
    assert run(part.text, p) == min(size, n - i * size)


@given(st.integers(0, 20), st.integers(25, 300))
@settings(max_examples=100, deadline=None, derandomize=True, database=None)
def test_an_open_slice_is_what_is_left(start, p):
    part = _part_of("slice", {"start": start, "end": None, "dim": 0}, total([param("p"), Sym("3")]))
    assert part is not None and run(part.text, p) == p + 3 - start
