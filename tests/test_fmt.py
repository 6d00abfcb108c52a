"""`archspec fmt`: idempotent, comments kept, meaning kept (the summary of every network of every spec,
and of the fuzz tests' mutants, equal before and after), expressions spaced as render_expr spaces them,
and the command's exit statuses, diffs and writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archspec import ir
from archspec.api import build, overrides_from
from archspec.cli import main
from archspec.errors import ArchError, Sources
from archspec.format import FormatterBug, comments, format_text
from archspec.loader import load_text
from archspec.parse import parse_text
from archspec.passes import resolve
from archspec.render import render_expr

SPECS = Path(__file__).resolve().parent.parent / "specs"
ZOO = sorted(SPECS.rglob("*.arch"))
PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def summaries(text: str, name: str) -> dict[str, object]:
    """Every network's summary (all depths), or the codes and messages of what stops the file loading."""
    sources = Sources()
    try:
        program = resolve(load_text(text, sources, name))
    except ArchError as exc:
        return {"error": [(d.code, d.message) for d in exc.diagnostics]}
    out: dict[str, object] = {}
    for net in (n for n in program.own if program.definitions[n].kind == "network"):
        try:
            out[net] = build(program, sources, net, overrides_from()).summary(depth=99)
        except ArchError as exc:
            out[net] = [(d.code, d.message) for d in exc.diagnostics]
    return out


# ---- the zoo ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ZOO, ids=lambda p: str(p.relative_to(SPECS)))
def test_the_zoo_keeps_its_meaning_and_formats_once(path):
    text = path.read_text()
    out = format_text(text, str(path))
    assert format_text(out, str(path)) == out
    before, after = summaries(text, str(path)), summaries(out, str(path))
    assert after == before
    assert "error" not in before and all(isinstance(s, dict) for s in before.values())  # it compared real summaries
    assert comments(out) == comments(text)


def test_the_zoo_compares_every_network():
    nets = summaries((SPECS / "torchvision" / "resnet.arch").read_text(), str(SPECS / "torchvision" / "resnet.arch"))
    assert {"resnet18", "resnet34", "resnet152", "wide_resnet101_2"} <= set(nets)
    assert nets["resnet18"]["totals"]["params"] == 11_689_512  # torchvision's figure


# ---- the layout ---------------------------------------------------------------------------------

MESSY = """\
# header


import "x.arch"   # trailing on import
import "y.arch"
def f(a,b=2) = a+b*-3   # c1
def g(x) {
  # lead in func
  let y = x**2   # t
  return (y,)
}
block b( x : int=1 , # after comma
  y = [1,2,
  # own line in list
  3], ) { # after brace
    a{i+1}=conv2d(x,k=-3,s=(1 if x else 2)) relu # two
    "n{i}" = @r{2}


    # lead of add
    add { mul {x} }
    for (a,b) in z { if not x { y } else if training {z} else {} }
    for a, b in z { }
    output o = @x   if   training
    if x {
      a
    }
    # before else
    else { b }
    let w = x   # tw
        + y  # after y
    seq {
    }
    seq {
      # only a comment
    }
    relu
    # before close
}
network n() {
  input [3, 224, 224]
  x = foo(1,
  2  # on 2
  )
}
# end comment

# last
"""

TIDY = """\
# header

import "x.arch"  # trailing on import
import "y.arch"
def f(a, b = 2) = a + b * -3  # c1

def g(x) {
    # lead in func
    let y = x ** 2  # t
    return (y,)
}

block b(
    x: int = 1,  # after comma
    y = [
        1,
        2,
        # own line in list
        3,
    ],
) {  # after brace
    a{i + 1} = conv2d(x, k=-3, s=(1 if x else 2))  relu  # two
    "n{i}" = @r{2}

    # lead of add
    add { mul { x } }
    for (a, b) in z { if not x { y } else if training { z } else {} }
    for a, b in z {}
    output o = @x if training
    if x {
        a
    } else { b }  # before else
    let w = x + y  # tw  # after y
    seq {}
    seq {
        # only a comment
    }
    relu
    # before close
}

network n() {
    input [3, 224, 224]
    x = foo(
        1,
        2,  # on 2
    )
}
# end comment

# last
"""


def test_the_canonical_layout_with_comments_everywhere():
    out = format_text(MESSY)
    assert out == TIDY
    assert format_text(out) == out
    assert format_text(MESSY.replace("\n", "\r\n")) == TIDY


def test_comments_survive_in_order():
    """Every comment, in order; the two trailing an expression broken over lines end up on its one line."""
    merged = [c for c in comments(MESSY) if c not in ("# tw", "# after y")]
    merged.insert(comments(MESSY).index("# tw"), "# tw  # after y")
    assert len(merged) == 17 and comments(TIDY) == merged


def test_long_lists_fill_to_the_width_aligned_after_the_bracket():
    args = ", ".join(f"a{i}=value_{i}" for i in range(14))
    out = format_text(f"network n() {{\n    x = layer({args})\n}}\n")
    lines = out.splitlines()
    assert max(map(len, lines)) <= 120
    assert lines[1].startswith("    x = layer(a0=value_0, ") and lines[1].endswith(",")
    assert lines[2].startswith(" " * len("    x = layer(") + "a")
    assert "".join(out.split()) == "".join(f"network n() {{ x = layer({args}) }}".split())


def test_a_long_right_hand_side_moves_to_its_own_line_when_that_is_shorter():
    rows = ", ".join(f"({i}, {2 * i}, 3)" for i in range(6))
    head = "network convnext_tiny(num_classes: int = 1000, stochastic_depth_prob: float = 0.1) ="
    assert format_text(f"{head} convnext([{rows}])\n") == f"{head}\n    convnext([{rows}])\n"


def test_statements_on_one_line_stay_so_unless_too_long():
    short = "block b() {\n    conv2d(8, kernel=3)  relu\n    seq { relu  relu }\n}\n"
    assert format_text(short) == short
    long = "block b() {\n    seq { " + "  ".join(f"conv2d({i}, kernel=3, padding=1)" for i in range(5)) + " }\n}\n"
    out = format_text(long)
    assert out.splitlines()[1] == "    seq {" and out.splitlines()[-2] == "    }"


def test_blank_lines_around_definitions_with_bodies_and_at_most_one_anywhere():
    text = "network a() = b()\nnetwork c() = b()\nblock b() {\n    relu\n\n\n\n    relu\n}\nnetwork d() = b()\n"
    assert format_text(text) == ("network a() = b()\nnetwork c() = b()\n\nblock b() {\n    relu\n\n    relu\n}\n\n"
                                 "network d() = b()\n")


def test_a_parse_error_is_the_same_located_error_as_check_gives():
    with pytest.raises(ArchError) as exc:
        format_text("block b( {\n", "bad.arch")
    assert [(d.code, d.span.line, d.span.column) for d in exc.value.diagnostics] == [("E101", 1, 10)]


def test_the_safety_net_refuses_output_that_means_something_else(monkeypatch):
    import archspec.format as fmt

    monkeypatch.setattr(fmt.Layout, "file", lambda self, tree: "network n() {\n    input [3, 8, 8]\n}\n")
    with pytest.raises(FormatterBug) as exc:
        format_text("network n() {\n    input [3, 8, 9]\n}\n", "n.arch")
    assert exc.value.diagnostics[0].code == "E880"


# ---- expressions: spaced as render_expr spaces them ----------------------------------------------

def _c(cls, **kw):
    return cls.model_construct(**kw)


LEAVES = st.one_of(st.integers(0, 10**6).map(lambda v: _c(ir.Num, value=v)),
                   st.sampled_from([0.5, 1e-05, 2.0]).map(lambda v: _c(ir.Num, value=v)),
                   st.sampled_from(["x", "width", "training_mode"]).map(lambda v: _c(ir.Name, id=v)),
                   st.sampled_from(["HS", "a b", 'q"uote']).map(lambda v: _c(ir.Str, value=v)),
                   st.sampled_from([_c(ir.Bool, value=True), _c(ir.NoneLit)]))


def _grow(inner):
    args = st.lists(st.tuples(st.sampled_from([None, "k", "dim"]), inner), max_size=3).map(
        lambda xs: tuple(_c(ir.Arg, name=n, value=v) for n, v in sorted(xs, key=lambda a: a[0] is not None)))
    return st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "and", "or"]), inner, inner).map(
            lambda t: _c(ir.BinOp, op=t[0], left=t[1], right=t[2])),
        st.tuples(st.sampled_from(["-", "not"]), inner).map(lambda t: _c(ir.UnaryOp, op=t[0], operand=t[1])),
        st.tuples(inner, st.sampled_from(["==", "<", ">="]), inner).map(
            lambda t: _c(ir.Compare, first=t[0], ops=(t[1],), rest=(t[2],))),
        st.tuples(inner, inner, inner).map(lambda t: _c(ir.Cond, body=t[0], test=t[1], orelse=t[2])),
        st.tuples(inner, inner).map(lambda t: _c(ir.Index, value=t[0], index=t[1])),
        st.tuples(st.sampled_from(["max", "int"]), args).map(lambda t: _c(ir.FuncCall, func=t[0], args=t[1])),
        st.lists(inner, max_size=3).map(lambda xs: _c(ir.ListExpr, items=tuple(xs))),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: _c(ir.TupleExpr, items=tuple(xs))),
    )


EXPRS = st.recursive(LEAVES, _grow, max_leaves=8)


@PROPERTY
@given(expr=EXPRS)
def test_expressions_are_written_as_render_expr_writes_them(expr):
    text = render_expr(expr)
    if len(text) > 90:  # a longer one would be wrapped inside its brackets
        return
    assert format_text(f"def f() = {text}\n") == f"def f() = {text}\n"
    messy = " ".join(text.replace("(", " ( ").replace(",", " , ").split())  # the same tokens, spaced anyhow
    assert format_text(f"def f() = {messy}\n") == f"def f() = {text}\n"


# ---- the fuzz tests' specs: mutants of the zoo, and random chains ---------------------------------

from differential import chains, spec_text  # noqa: E402  (tests/ is on the path under pytest)
from test_fuzz import TOKENS, token_mutants, value_mutants  # noqa: E402

GAPS = [" ", "  ", "\t", "\n", "\n\n\n", " # note\n", "\n    # own line\n", "\n# at column 1\n\n"]


@st.composite
def respaced(draw, newlines: bool) -> tuple[str, str]:
    """A zoo spec with the same tokens and other whitespace between them: other spaces only, or (with
    `newlines`) up to 40 gaps replaced by line breaks, blank lines and comments."""
    rel = draw(st.sampled_from(sorted(TOKENS)))
    items, tail = TOKENS[rel]
    if newlines:
        changes = draw(st.dictionaries(st.integers(0, len(items) - 1), st.sampled_from(GAPS), max_size=40))
    else:
        rnd = draw(st.randoms(use_true_random=False))
    out = []
    for k, (gap, _, tok) in enumerate(items):
        if newlines:
            gap = changes.get(k, gap)
        elif "#" not in gap:
            gap = "\n".join(" " * rnd.randint(0 if j else 1, 3) for j, _ in enumerate(gap.split("\n")))
        out.append(gap + tok)
    return rel, "".join(out) + tail


def _formats_faithfully(rel: str, text: str) -> str:
    name = str(SPECS / rel)
    try:
        out = format_text(text, name)
    except FormatterBug:
        raise
    except ArchError as exc:  # exactly what the parser says
        with pytest.raises(ArchError) as parsed:
            parse_text(text, name)
        assert parsed.value.diagnostics == exc.diagnostics
        return "does not parse"
    assert format_text(out, name) == out
    assert summaries(out, name) == summaries(text, name)
    assert " ".join(comments(out)).split() == " ".join(comments(text)).split()  # all there, in order
    return "formatted"


@PROPERTY
@given(mutant=token_mutants())
def test_token_mutants_keep_their_meaning(mutant):
    _formats_faithfully(*mutant)


@settings(PROPERTY, max_examples=30)
@given(mutant=value_mutants())
def test_value_mutants_keep_their_meaning(mutant):
    assert _formats_faithfully(*mutant) == "formatted"


@PROPERTY
@given(mutant=respaced(newlines=False))
def test_other_spaces_between_the_same_tokens_give_the_same_layout(mutant):
    rel, text = mutant
    assert format_text(text, rel) == format_text((SPECS / rel).read_text(), rel)


@PROPERTY
@given(mutant=respaced(newlines=True))
def test_other_line_breaks_and_comments_keep_their_meaning(mutant):
    rel, text = mutant
    assert _formats_faithfully(rel, text) == "formatted"


@PROPERTY
@given(case=chains())
def test_random_chains_keep_their_meaning(case):
    assert _formats_faithfully("diff.arch", spec_text(*case)) == "formatted"


# ---- the command ------------------------------------------------------------------------------

UGLY = "network n() {\n  input [1, 8, 8]\n  conv2d(4,kernel=3)\n}\n"
PRETTY = "network n() {\n    input [1, 8, 8]\n    conv2d(4, kernel=3)\n}\n"


def _fmt(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["fmt", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_exits_1_and_lists_the_files_that_would_change(tmp_path, capsys):
    ugly, pretty = tmp_path / "ugly.arch", tmp_path / "pretty.arch"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    code, out, err = _fmt(capsys, "--check", str(ugly), str(pretty))
    assert code == 1 and f"would reformat {ugly}" in err and str(pretty) not in err and out == ""
    assert ugly.read_text() == UGLY
    assert _fmt(capsys, "--check", str(pretty))[0] == 0


def test_diff_prints_a_unified_diff_and_writes_nothing(tmp_path, capsys):
    ugly = tmp_path / "ugly.arch"
    ugly.write_text(UGLY)
    code, out, _ = _fmt(capsys, "--diff", str(ugly))
    assert code == 0 and ugly.read_text() == UGLY
    assert out.startswith(f"--- {ugly}\t(original)\n+++ {ugly}\t(formatted)\n@@ ")
    assert "-  conv2d(4,kernel=3)\n" in out and "+    conv2d(4, kernel=3)\n" in out
    assert _fmt(capsys, "--diff", "--check", str(ugly))[0] == 1


def test_fmt_rewrites_in_place_keeping_mode_and_links(tmp_path, capsys):
    target = tmp_path / "real.arch"
    target.write_text(UGLY)
    os.chmod(target, 0o640)
    link = tmp_path / "link.arch"
    link.symlink_to(target)
    code, _, err = _fmt(capsys, str(link))
    assert code == 0 and f"reformatted {link}" in err
    assert target.read_text() == PRETTY and link.is_symlink()
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.arch", "real.arch"]  # no temporary left
    assert _fmt(capsys, str(target))[0] == 0 and target.read_text() == PRETTY


def test_a_file_that_does_not_parse_is_reported_and_left_alone(tmp_path, capsys):
    bad, ugly = tmp_path / "bad.arch", tmp_path / "ugly.arch"
    bad.write_bytes(b"block b( {\n  relu\n")
    ugly.write_text(UGLY)
    code, _, err = _fmt(capsys, str(bad), str(ugly))
    assert code == 1
    assert f"{bad}:1:10: error[E101]" in err and "1 file reformatted" in err and "1 file failed" in err
    assert bad.read_bytes() == b"block b( {\n  relu\n" and ugly.read_text() == PRETTY


def test_unreadable_or_unwritable_files_exit_2(tmp_path, capsys, monkeypatch):
    code, _, err = _fmt(capsys, str(tmp_path / "missing.arch"))
    assert code == 2 and "error[E001]" in err
    ugly = tmp_path / "ugly.arch"
    ugly.write_text(UGLY)

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    code, _, err = _fmt(capsys, str(ugly))
    assert code == 2 and "No space left on device" in err
    assert ugly.read_text() == UGLY and [p.name for p in tmp_path.iterdir()] == ["ugly.arch"]


def test_a_formatter_bug_exits_3_and_writes_nothing(tmp_path, capsys, monkeypatch):
    import archspec.format as fmt

    monkeypatch.setattr(fmt.Layout, "file", lambda self, tree: "network n() {\n}\n")
    ugly = tmp_path / "ugly.arch"
    ugly.write_text(UGLY)
    code, _, err = _fmt(capsys, str(ugly))
    assert code == 3 and "error[E880]" in err and ugly.read_text() == UGLY
