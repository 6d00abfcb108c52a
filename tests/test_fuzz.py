"""Fuzz the front end: mutated zoo specs either check or fail with archspec diagnostics.

Two families of mutants, both drawn by hypothesis from the zoo (specs/):
  (a) token-level: delete, duplicate, swap or replace tokens with others of the grammar's
      vocabulary, which mostly exercises the parser and name resolution;
  (b) value-level: change integer literals (0 and negatives included) and drop or add keyword
      arguments, which keeps the syntax valid and so reaches expansion and shape inference.
The property: `archspec check` returns 0, 1 or 2 and `archspec.load` either succeeds or raises
ArchError, whose every diagnostic has a stable code and a position; never another exception,
never a hang. Runs are derandomized so CI sees the same examples every time.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shutil
import signal
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import archspec
from archspec.cli import main
from archspec.codegen import source_of
from archspec.errors import Diagnostic
from archspec.parse import parser

SPECS = Path(__file__).resolve().parent.parent / "specs"
ZOO = sorted(str(p.relative_to(SPECS)) for p in SPECS.rglob("*.arch"))
TEXTS = {rel: (SPECS / rel).read_text() for rel in ZOO}
CODE = re.compile(r"[EW]\d{3}")
WHOLE_FILE = {"E001", "E002", "E003", "E004", "E005", "E006", "E212"}  # about a file, not a spot in it
HANG = 20.0  # seconds; one check of a zoo spec takes well under a tenth of that

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
FUZZ_VALUES = settings(FUZZ, max_examples=40)  # these reach the shape passes, so cost more each


# ---- the zoo, tokenized -----------------------------------------------------------------

def _importers() -> dict[str, list[str]]:
    """For each spec, the specs that import it: a mutated library is checked through them too."""
    out: dict[str, list[str]] = {rel: [] for rel in ZOO}
    for rel, text in TEXTS.items():
        for target in re.findall(r'^import "([^"]+)"', text, re.M):
            lib = str((Path(rel).parent / target))
            if lib in out:
                out[lib].append(rel)
    return out


IMPORTERS = _importers()


def _tokens(text: str) -> tuple[list[tuple[str, str, str]], str]:
    """[(gap before, token type, token text)] and the trailing gap; joining them gives the text back."""
    items, pos = [], 0
    for tok in parser().lex(text):
        items.append((text[pos:tok.start_pos], tok.type, str(tok)))
        pos = tok.end_pos
    return items, text[pos:]


TOKENS = {rel: _tokens(text) for rel, text in TEXTS.items()}


def _join(items: list[tuple[str, str, str]], tail: str) -> str:
    return "".join(gap + tok for gap, _, tok in items) + tail


def _vocabulary() -> list[str]:
    words = [t.pattern.value for t in parser().terminals if t.pattern.type == "str"]
    return sorted(words) + [
        "x", "conv2d", "relu", "linear", "residual", "params", "i", "range", "len", "kernel",  # NAME
        "0", "1", "3", "1.5", "10000000000", "1e999",  # NUMBER
        '"residual.arch"', '"nope.arch"', "==", "<", "+", "-", "*", "//", "/", "%", "**",
    ]


VOCAB = _vocabulary()
SMALL_INTS = ["0", "1", "2", "3", "4", "7", "16", "64", "1000", "-1", "-3", "0.5", "2 ** 40"]
# Keyword arguments to add, by layer; each list ends with one the layer does not take.
KWARGS = {
    "conv2d": ["stride=2", "stride=(1, 2)", "padding=1", "padding=[1]", "groups=2", "groups=3", "dilation=2",
               "bias=false", "kernel=0", "out_channels=0", "p=0.5"],
    "maxpool2d": ["stride=3", "padding=1", "padding=2", "dilation=2", "ceil_mode=true", "kernel=0", "groups=2"],
    "avgpool2d": ["stride=3", "padding=1", "ceil_mode=true", "count_include_pad=false", "dilation=2"],
    "adaptive_avgpool2d": ["output_size=(2, 2)", "output_size=0", "kernel=3"],
    "adaptive_maxpool2d": ["output_size=(2, 2)", "output_size=0", "kernel=3"],
    "linear": ["bias=false", "out_features=0", "kernel=3"],
    "batchnorm2d": ["eps=0", "momentum=2", "affine=false", "momentum=0.5", "p=0.5"],
    "batchnorm1d": ["eps=0", "momentum=2", "affine=false", "p=0.5"],
    "dropout": ["p=0.5", "p=2", "inplace=true"],
}
LAYER_NAMES = set(KWARGS) | {"flatten", "relu", "sigmoid", "tanh", "gelu", "identity"}
GENERIC = ["padding=1", "stride=2", "p=0.5"]  # for layers that take no arguments at all


# ---- strategies ---------------------------------------------------------------------------

@st.composite
def token_mutants(draw) -> tuple[str, str]:
    rel = draw(st.sampled_from(ZOO))
    items, tail = TOKENS[rel]
    items = list(items)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(items) - 1))
        gap, kind, tok = items[i]
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "replace"]))
        if op == "delete":
            items[i] = (gap, "", "")
        elif op == "duplicate":
            items.insert(i + 1, (" ", kind, tok))
        elif op == "swap":
            j = draw(st.integers(0, len(items) - 1))
            items[i], items[j] = (gap, items[j][1], items[j][2]), (items[j][0], kind, tok)
        else:
            items[i] = (gap, "?", draw(st.sampled_from(VOCAB + [t for _, _, t in items])))
    return rel, _join(items, tail)


def _kwarg_end(items: list, i: int) -> int:
    """The index of the `,` or `)` that ends the keyword argument starting at items[i]."""
    depth = 0
    for k in range(i + 2, len(items)):
        tok = items[k][2]
        if tok in ("(", "[", "{"):
            depth += 1
        elif tok in (")", "]", "}"):
            if depth == 0:
                return k
            depth -= 1
        elif tok == "," and depth == 0:
            return k
    return len(items)


def _headers(items: list) -> set[int]:
    """The indices of the tokens in `network NAME(...)` and `block NAME(...)`: parameters, not calls."""
    out: set[int] = set()
    for i, (_, kind, _) in enumerate(items):
        if kind in ("NETWORK", "BLOCK"):
            depth, end = 0, i
            for end in range(i + 2, len(items)):  # to the `)` that closes the parameter list
                depth += items[end][2] in ("(", "[", "{")
                depth -= items[end][2] in (")", "]", "}")
                if depth == 0:
                    break
            out.update(range(i, end + 1))
    return out


@st.composite
def value_mutants(draw) -> tuple[str, str]:
    rel = draw(st.sampled_from(ZOO))
    items, tail = TOKENS[rel]
    items = list(items)
    numbers = [i for i, (_, kind, _) in enumerate(items) if kind == "NUMBER"]
    for i in draw(st.lists(st.sampled_from(numbers), min_size=1, max_size=3)) if numbers else []:
        items[i] = (items[i][0], "NUMBER", draw(st.sampled_from(SMALL_INTS)))
    kwargs = [i for i in range(1, len(items) - 1)
              if items[i][1] == "NAME" and items[i + 1][2] == "=" and items[i - 1][2] in ("(", ",")]
    if kwargs and draw(st.booleans()):
        i = draw(st.sampled_from(kwargs))
        end = _kwarg_end(items, i)
        if end < len(items) and items[end][2] == ",":
            end += 1
        elif items[i - 1][2] == ",":
            i -= 1  # the last argument: drop the comma before it instead
        items[i:end] = [(items[i][0], "", "")]
    headers = _headers(items)
    layers = [i for i, (_, kind, tok) in enumerate(items) if kind == "NAME" and tok in LAYER_NAMES
              and i not in headers and (i + 1 == len(items) or items[i + 1][2] not in ("=", "in"))]
    if layers and draw(st.booleans()):
        i = draw(st.sampled_from(layers))
        gap, kind, tok = items[i]
        kwarg = draw(st.sampled_from(KWARGS.get(tok, GENERIC)))
        has_args = i + 1 < len(items) and items[i + 1][2] == "("
        items[i] = (gap, kind, tok + (f"({kwarg}, " if has_args else f"({kwarg})"))
        if has_args:
            items[i + 1] = (items[i + 1][0], "", "")  # the `(` is now part of the inserted text
    return rel, _join(items, tail)


# ---- the property --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """A copy of specs/, so a mutant can replace a file and still import its neighbours."""
    root = tmp_path_factory.mktemp("zoo")
    shutil.copytree(SPECS, root, dirs_exist_ok=True)
    return root


def _well_formed(diags: list[dict]) -> None:
    for d in diags:
        assert CODE.fullmatch(d["code"]), d
        assert d["file"], d
        if d["code"] not in WHOLE_FILE:
            assert d["line"] >= 1 and d["column"] >= 1, d


class Hung(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float):
    """Fail, rather than hang, when checking takes longer than `seconds` (where signals allow)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def hung(signum, frame):
        raise Hung(f"checking a mutant took more than {seconds:g} s")

    before = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def check_mutant(zoo: Path, rel: str, text: str) -> list[dict]:
    """Check the mutant where its original lives, and the specs importing it; the diagnostics."""
    target = zoo / rel
    paths = [str(target)] + [str(zoo / r) for r in IMPORTERS[rel]]
    target.write_text(text)
    try:
        with _deadline(HANG):
            assert _run(["check", *paths])[0] in (0, 1, 2)  # text: renders every diagnostic with its line
            code, stdout = _run(["check", "--format", "json", *paths])
            report = json.loads(stdout)
            assert report["exit_code"] == code
            _well_formed(report["diagnostics"])
            _check_api(target, text)
        return report["diagnostics"]
    finally:
        target.write_text(TEXTS[rel])


def _check_api(target: Path, text: str) -> None:
    """archspec.load, or loads where no import needs the file's folder: a Spec or an ArchError; and a
    spec that checks gives Python source that parses (a name that broke the generated file once)."""
    try:
        if "import" in text:
            spec = archspec.load(str(target))
        else:
            spec = archspec.loads(text, name=str(target))
    except archspec.ArchError as exc:
        _well_formed([_as_dict(d) for d in exc.diagnostics])
        return
    ast.parse(source_of(spec))


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    # An internal error would exit 3; let it raise instead, so hypothesis shows and shrinks it.
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), \
            mock.patch.dict(os.environ, {"ARCHSPEC_TRACEBACK": "1"}):
        code = main(argv)
    return code, out.getvalue()


def _as_dict(d: Diagnostic) -> dict:
    return {"code": d.code, "file": d.span.file, "line": d.span.line, "column": d.span.column}


def _event(diags: list[dict]) -> None:
    """What the mutants ran into (pytest --hypothesis-show-statistics shows the mix)."""
    event("codes: " + (" ".join(sorted({d["code"] for d in diags})) or "none"))


@FUZZ
@given(mutant=token_mutants())
def test_token_mutants_fail_cleanly(zoo, mutant):
    rel, text = mutant
    _event(check_mutant(zoo, rel, text))


@FUZZ_VALUES
@given(mutant=value_mutants())
def test_value_mutants_reach_the_shape_passes(zoo, mutant):
    rel, text = mutant
    diags = check_mutant(zoo, rel, text)
    _event(diags)
    # Values and arguments change, the syntax does not: these mutants get past the parser.
    assert not [d for d in diags if d["code"].startswith("E1")], diags


def test_the_zoo_itself_checks(zoo):
    for rel in ZOO:
        assert check_mutant(zoo, rel, TEXTS[rel]) == [], rel


# ---- differential: random chains against a plain-torch reference, then ONNX --------------------

from differential import chains, reference, spec_text  # noqa: E402  (tests/ is on the path under pytest)

DIFF = settings(FUZZ, max_examples=80)
DIFF_ONNX = settings(FUZZ, max_examples=14)


def _reference_or_error(shape, chain, head):
    torch = pytest.importorskip("torch")
    try:
        return reference(shape, chain, head), None
    except (RuntimeError, ValueError) as exc:  # torch refuses the chain
        return None, exc
    finally:
        del torch


def _macs(net, shape) -> int:
    """Multiply-accumulates of convolutions and linear layers, as torch's flop counter counts them, halved."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, *shape))
    return counter.get_total_flops() // 2


@DIFF
@given(case=chains())
def test_differential_shapes_params_and_macs_agree_with_torch(case):
    """archspec accepts exactly the chains torch runs, with torch's shapes, parameters and MACs."""
    import torch

    shape, chain, head = case
    text = spec_text(shape, chain, head)
    ref, refused = _reference_or_error(shape, chain, head)
    try:
        spec = archspec.loads(text, name="diff.arch")
    except archspec.ArchError as exc:
        assert ref is None, f"archspec refuses what torch runs:\n{text}\n{exc}"
        _well_formed([_as_dict(d) for d in exc.diagnostics])
        event("both refuse")
        return
    assert ref is not None, f"archspec accepts what torch refuses ({refused}):\n{text}"
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for m in ref]
    with torch.no_grad():
        ref(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    assert [tuple(n.out_shape) for n in spec.network.graph.nodes[1:]] == shapes, text
    assert spec.params == sum(p.numel() for p in ref.parameters()), text
    assert spec.macs == _macs(ref, shape), text
    event("both accept")


@DIFF_ONNX
@given(case=chains())
def test_differential_onnx_equals_the_reference_in_onnxruntime(case, tmp_path_factory):
    """A sample of the valid chains, compiled to ONNX with the reference's weights: onnxruntime at batch 1
    and 3 equals the plain-torch reference."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from archspec.compile import Options, compile_spec

    shape, chain, head = case
    ref, _ = _reference_or_error(shape, chain, head)
    if ref is None:
        event("torch refuses: nothing to export")
        return
    spec = archspec.loads(spec_text(shape, chain, head), name="diff.arch")
    folder = tmp_path_factory.mktemp("diff")
    torch.save(ref.state_dict(), folder / "ref.pth")
    compile_spec(spec, Options(formats=("onnx",), out_dir=str(folder / "out"), weights=str(folder / "ref.pth")))
    session = ort.InferenceSession(str(folder / "out" / "diff.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            want = ref(x).numpy()
        (got,) = session.run(None, {"input": x.numpy()})
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=spec_text(shape, chain, head))
    event("exported")
