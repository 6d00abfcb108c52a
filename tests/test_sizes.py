"""Symbolic input sizes (`input [3, H, W]`), checked against the network at numbers.

The property: for a random chain of layers (tests/differential.py) written with `input [C, H, W]`,
and for every H and W on a grid, checking the spec at those numbers (`--input`) succeeds exactly
when the symbolic check's constraints hold for them, and then every node's shape and every MAC
count is the symbolic expression evaluated there. So a shape rule that builds a wrong expression,
a comparison that is not recorded, or a constraint that forbids a valid size shows up here.
Then U-Net, the zoo's symbolic spec: its constraints, `archspec sizes`, errors at sizes it refuses,
and one compiled module, TorchScript, pt2 and ONNX that take any valid size.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from differential import chains, spec_text  # noqa: E402  (tests/ is on the path under pytest)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec import ir
from archspec.sizes import Size, is_symbolic, report

GRID = [(h, w) for h in range(1, 30, 3) for w in range(1, 30, 4)]
PROPERTY = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _at(v, values):
    return v.at(values) if isinstance(v, Size) else v


def _nodes(net: ir.Network):
    return list(ir.walk(net.graph))


@PROPERTY
@given(case=chains())
def test_a_symbolic_check_is_every_numeric_check_at_once(case):
    (c, _, _), chain, head = case
    text = spec_text(("C_", "H", "W"), chain, head).replace("C_", str(c))
    try:
        spec = archspec.loads(text, name="sym.arch")
    except archspec.ArchError as exc:  # only a layer that needs the size as a number may refuse it
        codes = {d.code for d in exc.diagnostics}
        assert all(code[:2] in ("E3", "E4") for code in codes), (text, exc)  # values and shapes, located
        if codes == {"E410"}:
            return
        for h, w in GRID:  # refused symbolically for another reason: refused at every number too
            with pytest.raises(archspec.ArchError):
                archspec.loads(text, name="sym.arch", input=(c, h, w))
        return
    net = spec.network
    found = report(net.constraints, net.sizes)
    for h, w in GRID:
        values = {"H": h, "W": w}
        broken = found.valid(values)
        try:
            concrete = archspec.loads(text, name="sym.arch", input=(c, h, w)).network
        except archspec.ArchError as exc:
            assert broken, f"{h}x{w} breaks no constraint but fails:\n{text}\n{exc}"
            continue
        assert not broken, f"{h}x{w} checks, yet breaks {[str(b) for b in broken]}:\n{text}"
        for sym, num in zip(_nodes(net), _nodes(concrete)):
            assert tuple(_at(d, values) for d in sym.out_shape) == tuple(num.out_shape), (text, h, w, sym.path)
            assert _at(sym.macs, values) == num.macs, (text, h, w, sym.path)
        assert sym.params == num.params


UNET = "specs/unet.arch"


def test_unet_takes_multiples_of_16_and_says_which_layers_want_them():
    spec = archspec.load(UNET)
    assert spec.symbolic and [str(d) for d in spec.network.input_shape] == ["1", "H", "W"]
    found = spec.sizes()
    assert [str(a) for a in found.variables] == ["H >= 16 and H % 16 == 0", "W >= 16 and W % 16 == 0"]
    by = {(c.what, str(c)) for c, _ in found.binding}
    assert ("concat", "H == 2*(H//2)") in by and ("maxpool2d", "H//16 >= 1") in by
    assert not is_symbolic(spec.params) and spec.params == 31_030_658
    # MACs of the full network: 733,888 per pixel, as the concrete check counts at 128x128
    assert spec.network.macs.at({"H": 128, "W": 128}) == archspec.load(UNET, input=(1, 128, 128)).macs


def test_a_size_the_constraints_refuse_is_an_error_at_the_layer(capsys):
    from archspec.cli import main

    assert main(["check", UNET, "--input", "1,100,96"]) == 1
    err = capsys.readouterr().err
    assert "error[E403]" in err and "concat" in err and "specs/unet.arch:27" in err


def test_archspec_sizes_lists_the_constraints(capsys):
    from archspec.cli import main

    assert main(["sizes", UNET]) == 0
    out = capsys.readouterr().out
    assert "H >= 16 and H % 16 == 0" in out and "specs/unet.arch:33:5: concat: H == 2*(H//2)" in out
    assert main(["sizes", UNET, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sizes"]["W"]["low"] == 16 and data["sizes"]["W"]["period"] == 16
    assert any(c["by"] == "maxpool2d" and c["line"] == 21 for c in data["constraints"])


def test_the_summary_reads_the_sizes_as_the_constraints_allow(capsys):
    from archspec.cli import main

    assert main(["summary", UNET]) == 0
    out = capsys.readouterr().out
    assert "[1, 512, H/16, W/16]" in out and "MACs 733888*H*W" in out
    assert main(["summary", UNET, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output_shape"] == [1, 2, "H", "W"]
    assert data["layers"][4]["output_shape"] == [1, 256, "H//4", "W//4"]  # JSON: the exact expression


def test_a_layer_whose_weights_would_depend_on_the_size_is_refused():
    text = "network n() {\n    input [3, H, W]\n    conv2d(4, kernel=3)\n    flatten\n    linear(10)\n}\n"
    with pytest.raises(archspec.ArchError) as exc:
        archspec.loads(text, name="n.arch")
    (d,) = exc.value.diagnostics
    assert d.code == "E410" and d.span.line == 5 and "linear" in d.message
    assert archspec.loads(text, name="n.arch", input=(3, 8, 8)).params == 4 * 3 * 9 + 4 + 4 * 36 * 10 + 10


def test_check_target_onnx_refuses_pools_that_need_the_size(capsys, tmp_path):
    from archspec.cli import main

    spec = tmp_path / "ceil.arch"
    spec.write_text("network ceil() {\n    input [3, H, W]\n    maxpool2d(3, stride=2, ceil_mode=true)\n"
                    "    adaptive_avgpool2d(4)\n    adaptive_avgpool2d(1)\n}\n")
    assert main(["check", str(spec)]) == 0
    capsys.readouterr()
    assert main(["check", "--target", "onnx", str(spec)]) == 1
    err = capsys.readouterr().err
    assert err.count("error[E612]") == 2 and ":3:5:" in err and ":4:5:" in err and ":5:5:" not in err
    assert main(["check", "--target", "onnx", "--input", "3,32,40", str(spec)]) == 0


def test_one_compiled_unet_takes_any_valid_size(tmp_path):
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "unet"
    done = subprocess.run([sys.executable, "-m", "archspec", "compile", UNET, "--set", "base=4", "-o", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "and input 1x64x80 and 1x96x112" in done.stdout  # verified at two sizes the spec allows
    import numpy as np

    module = archspec.load(UNET, base=4).to_torch().eval()
    module.load_state_dict(torch.jit.load(str(out / "unet.pt")).state_dict())
    session = ort.InferenceSession(str(out / "unet.onnx"), providers=["CPUExecutionProvider"])
    program = torch.export.load(str(out / "unet.pt2")).module()
    script = torch.jit.load(str(out / "unet.pt"))
    for h, w in ((32, 48), (176, 32), (160, 16)):  # sizes none of the verification used, tall ones too
        x = torch.randn(2, 1, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            want = module(x)
            assert tuple(want.shape) == (2, 2, h, w)
            runs = [script(x), torch.from_numpy(session.run(None, {"input": x.numpy()})[0])]
            if min(h, w) >= 32:  # torch.export specialises a size of 1: at 16, the bottleneck's W/16
                runs.append(program(x))
            for got in runs:
                np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(AssertionError, match="Guard failed"):  # as torch.export documents: not silently wrong
        program(torch.randn(1, 1, 160, 16))


def test_the_examples_avoid_sizes_that_torch_export_would_make_constant():
    """torch.export makes a size of 1 a constant: exported at 64x65, where the FPN's pool level is 1 pixel
    high, the program refused 96x97 ("Guard failed: x.size()[2] <= 64"). The examples skip such sizes."""
    from archspec.api import _ones

    spec = archspec.load("specs/torchvision/fpn.arch", network="resnet50_fpn_backbone")
    small = spec.at(spec.example_shape(64))
    assert _ones(small), "at 64 some level is 1 pixel: the case this guards against"
    examples = spec.examples()
    assert len(examples) == 2 and small.network.input_shape not in [e.network.input_shape for e in examples]
    larger = spec.at(spec.example_shape(320))
    assert all(_ones(e) <= _ones(larger) for e in examples)
    unet = archspec.load(UNET).examples()  # where no size is 1, the first two sizes as before
    assert [e.network.input_shape for e in unet] == [(1, 64, 80), (1, 96, 112)]


def test_an_artifact_that_fails_on_an_input_is_e607_not_an_internal_error():
    pytest.importorskip("torch")
    from archspec.errors import ArchError
    from archspec.export.verify import verify

    spec = archspec.load(UNET, base=4, input=(1, 32, 32))
    module = spec.to_torch()

    def guarded(x):
        raise AssertionError("Guard failed: x.size()[2] <= 64")

    with pytest.raises(ArchError) as exc:
        verify(module, spec.network, {"pt2": guarded}, (1,))
    (d,) = exc.value.diagnostics
    assert d.code == "E607" and "pt2 fails on an input the torch module takes" in d.message
    assert "Guard failed" in d.message


sizes_ = st.recursive(
    st.one_of(st.integers(-5, 40), st.sampled_from(["H", "W"])),
    lambda inner: st.tuples(st.sampled_from(["+", "-", "*", "//"]), inner, inner), max_leaves=6)


def _size(tree, h: Size, w: Size):
    if isinstance(tree, int):
        return tree
    if isinstance(tree, str):
        return h if tree == "H" else w
    op, a, b = tree
    x, y = _size(a, h, w), _size(b, h, w)
    if op == "//":
        return x // (abs(y) + 1) if isinstance(y, int) else x
    if op == "*" and not isinstance(x, int) and not isinstance(y, int):
        return x + y  # products of sizes stay linear in each, as shapes are
    return {"+": x + y, "-": x - y, "*": x * y}[op]


@PROPERTY
@given(st.lists(sizes_, max_size=8))
def test_a_total_of_sizes_is_their_sum(trees):
    """sizes.total, which adds a module's MACs and activations with their terms merged once, is the
    same expression as adding them one at a time (the same terms), and the same number anywhere."""
    from archspec.sizes import total

    h, w = Size.var("H", 224), Size.var("W", 160)
    values = [_size(t, h, w) for t in trees]
    got, want = total(values), sum(values)
    assert type(got) is type(want)
    if isinstance(want, Size):
        assert got.terms == want.terms and got.sample == want.sample
        for hv, wv in GRID[::7]:
            assert got.at({"H": hv, "W": wv}) == want.at({"H": hv, "W": wv})
    else:
        assert got == want
