"""Property: no user text ever becomes code in a generated module.

Arbitrary text (quotes, backslashes, `\\N`, NUL, every Unicode line break, non-ASCII) is fed
through every place where user text lands in generated source: the spec's file name, `--set`
overrides (a comment after the value, which the parser ignores), labels, block, network and
parameter names (any identifier the grammar takes, Python keywords and builtins among them).
The generated file must parse, hold only the statements the generator writes (a whitelist of
shapes), and, for text that can only land in strings, have exactly the AST of a benign spec
once string constants are blanked. The module built from it must keep the spec's paths as its
state_dict keys.
"""

from __future__ import annotations

import ast
import keyword

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec.api import build, overrides_from
from archspec.codegen import source_of
from archspec.errors import ArchError

LINE_BREAKS = ["\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
NASTY = ['"""', "'''", '"', "'", "\\", "\\N", "\\N{BULLET}", "\\x", "\\u12", "\0", "#", "\t", "é", "\U0001f600",
         "import os; os.system('x')", "\nimport os\n", *LINE_BREAKS]
TEXT = st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=6)), max_size=8).map("".join)
WORDS = keyword.kwlist + ["self", "super", "nn", "torch", "x", "out", "MODEL", "INPUT_SHAPE", "int", "list",
                          "None", "True", "none", "_3x3", "__x", "__init__", "forward", "Residual"]
IDENTIFIER = st.one_of(st.sampled_from(WORDS), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True))

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

SPEC = """
block {block}({param}: int, other: int = 1) {{
    add {{ seq {{ {label} = conv2d({param}, kernel=3, padding=other, dilation=other) relu }} identity }}
}}
network {network}(width: int = 4) {{
    input [4, 8, 8]
    {block}(4)
    {block}(4, 2)
    linear(width)
    assert output == [4, 8, width]
}}
"""


def _spec(block="blk", param="channels", label="conv", network="net") -> str:
    return SPEC.format(block=block, param=param, label=label, network=network)


# What the generator writes: module-level statements, class-level statements, function statements.
def _allowed_module(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Expr):
        return isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)
    if isinstance(stmt, ast.Import):
        return [a.name for a in stmt.names] == ["torch"]
    if isinstance(stmt, ast.ImportFrom):
        return stmt.module == "torch" and [a.name for a in stmt.names] == ["nn"]
    if isinstance(stmt, ast.Assign):
        return [t.id for t in stmt.targets if isinstance(t, ast.Name)] in (["__all__"], ["MODEL"], ["INPUT_SHAPE"])
    if isinstance(stmt, ast.ClassDef):
        return all(_allowed_class(s) for s in stmt.body)
    return False


def _allowed_class(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Expr):
        return isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)
    if isinstance(stmt, ast.FunctionDef) and stmt.name in ("__init__", "forward"):
        return all(_allowed_function(s) for s in stmt.body)
    return False


def _allowed_function(stmt: ast.stmt) -> bool:
    if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.Return)):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):  # super().__init__(...), add_module(...)
        f = stmt.value.func
        return isinstance(f, ast.Attribute) and f.attr in ("__init__", "add_module")
    return False


def _checked(source: str) -> ast.Module:
    assert source.isascii() and all(ch == "\n" or " " <= ch <= "~" for ch in source), "generated source is not " \
        "printable ASCII"
    tree = ast.parse(source)
    bad = [ast.dump(s)[:120] for s in tree.body if not _allowed_module(s)]
    assert not bad, f"statements the generator does not write: {bad}"
    return tree


def _blank_strings(tree: ast.Module) -> str:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree)


BENIGN = _blank_strings(ast.parse(source_of(archspec.loads(_spec(), name="net.arch"))))


@SETTINGS
@given(name=TEXT)
def test_a_file_name_lands_only_in_strings(name):
    spec = archspec.loads(_spec(), name=(name or "x") + ".arch")
    tree = _checked(source_of(spec))
    assert _blank_strings(tree) == BENIGN


@SETTINGS
@given(comment=TEXT)
def test_an_override_comment_never_reaches_the_source(comment):
    text = "4  # " + comment
    base = archspec.loads(_spec(), name="net.arch")
    try:
        spec = build(base.program, base.sources, None, overrides_from(texts={"width": text}))
    except ArchError as exc:  # a line break ends the comment, and what follows is a syntax error
        assert {d.code for d in exc.diagnostics} <= {"E101", "E102", "E103"}
        return
    source = source_of(spec)
    tree = _checked(source)
    assert _blank_strings(tree) == BENIGN
    assert "overrides: width=4\n" in source  # the value as parsed; nothing of the comment


@SETTINGS
@given(block=IDENTIFIER, param=IDENTIFIER, label=IDENTIFIER, network=IDENTIFIER)
def test_any_name_the_grammar_takes_gives_valid_code_or_a_located_error(block, param, label, network):
    if param == "other" or len({block, network}) < 2:
        return
    try:
        spec = archspec.loads(_spec(block, param, label, network), name="n.arch")
    except ArchError as exc:
        codes = ("E101", "E201", "E202", "E206", "E208", "E218")
        assert all(d.code in codes and d.span.line for d in exc.diagnostics), \
            exc.diagnostics
        return
    _checked(source_of(spec))
    module = spec.to_torch()
    keys = {k.rsplit(".", 1)[0] for k in module.state_dict()}
    assert keys == {f"0.{label}", f"1.{label}", "2"}  # the spec's paths: anonymous containers add none


def test_the_reported_example_no_longer_runs_code(tmp_path):
    """The review's example: a docstring closed by an override's comment, then code."""
    spec = archspec.load("specs/lenet.arch")
    evil = '10 # """; import os; os.system("echo PWNED"); """'
    spec = build(spec.program, spec.sources, None, overrides_from(texts={"num_classes": evil}))
    source = source_of(spec)
    _checked(source)
    assert "overrides: num_classes=10\n" in source and "PWNED" not in source


@pytest.mark.parametrize("name", ["\u2028x.arch", "a\vb.arch", "c\fd.arch", "e\x85f.arch", 'g"""h.arch'])
def test_torchscript_compiles_the_lines_python_ran(name, tmp_path):
    """A file name with a character str.splitlines breaks at shifted the lines TorchScript compiled."""
    import warnings

    import torch

    spec = archspec.loads(_spec(), name=name)
    module = spec.to_torch().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(module)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(scripted(x), module(x))
