"""Pools torch's ONNX exporter gets wrong or cannot write, exported exactly (archspec/export/lowering.py).

Sweeps, each as specs whose branches hold many pools side by side, compiled by `archspec compile`
(which runs the full ONNX checker and compares onnxruntime with the torch module, whose pools are
torch's own nn.MaxPool2d and friends, at batch 1 and 3):
- max and average pools with ceil_mode over small sizes, kernels, strides, paddings and dilations,
  count_include_pad both ways;
- adaptive average and max pools over every input and output size from 1 to 12, square or not.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import numpy as np

import archspec
from archspec.compile import Options, compile_spec
from archspec.export.lowering import adaptive_windows, pool_size


def _compile(text: str, folder: Path) -> archspec.Spec:
    spec = archspec.loads(text, name="sweep.arch")
    result = compile_spec(spec, Options(formats=("onnx",), out_dir=str(folder)))
    assert [c.batch for c in result.checks] == [1, 3] and all(c.ok for c in result.checks)
    onnx.checker.check_model(str(folder / f"{spec.name}.onnx"), full_check=True)
    return spec


def _valid(text: str) -> bool:
    try:
        archspec.loads(text, name="one.arch")
    except archspec.ArchError:
        return False
    return True


def _branches(pools: list[str], shape: tuple[int, int, int]) -> str:
    body = "".join(f"        seq {{ {p} flatten }}\n" for p in pools)
    return f"network sweep() {{\n    input [{', '.join(map(str, shape))}]\n    concat {{\n{body}    }}\n}}\n"


def test_the_reported_cases_export(tmp_path):
    """A ceil-mode pool whose last window torch drops (width 7, where ONNX's rule says 8), and an
    adaptive max pool of 7 to 3 (no translation in torch's exporter)."""
    for i, body in enumerate(["maxpool2d(kernel=(1, 1), stride=(3, 3), ceil_mode=true)\n    batchnorm2d",
                              "avgpool2d(kernel=(1, 1), stride=(3, 3), ceil_mode=true)\n    batchnorm2d",
                              "adaptive_maxpool2d(3)", "adaptive_avgpool2d(3)"]):
        shape = "[1, 1, 20]" if "ceil" in body else "[1, 7, 7]"
        spec = _compile(f"network n() {{\n    input {shape}\n    {body}\n}}\n", tmp_path / str(i))
        assert list(spec.output_shape) == ([1, 1, 7] if "ceil" in body else [1, 3, 3])


CEIL_SIZES = [(4, 5), (6, 7), (8, 9)]


@pytest.mark.parametrize("size", CEIL_SIZES, ids=[f"{h}x{w}" for h, w in CEIL_SIZES])
def test_ceil_mode_pools_export_exactly(size, tmp_path):
    h, w = size
    pools = []
    for k, s, p, d in itertools.product((1, 2, 3), (1, 2, 3), (0, 1), (1, 2)):
        pools.append(f"maxpool2d(kernel={k}, stride={s}, padding={p}, dilation={d}, ceil_mode=true)")
        if d == 1:
            for cip in ("true", "false"):
                pools.append(f"avgpool2d(kernel={k}, stride={s}, padding={p}, ceil_mode=true, count_include_pad={cip})")
    pools += ["maxpool2d(kernel=(2, 3), stride=(3, 2), padding=(1, 0), ceil_mode=true)",
              "avgpool2d(kernel=(3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=true)"]
    valid = [p for p in pools if _valid(_branches([p], (2, h, w)))]
    assert len(valid) > 40
    # the sweep holds the case the exporter got wrong: a last window torch drops and ONNX's rule keeps
    dropped = [(k, s, p, d) for k, s, p, d in itertools.product((1, 2, 3), (1, 2, 3), (0, 1), (1, 2))
               if 2 * p <= k and pool_size(h, k, s, p, d, True) < _onnx_ceil(h, k, s, p, d)]
    assert dropped
    _compile(_branches(valid, (2, h, w)), tmp_path)


def _onnx_ceil(n: int, k: int, s: int, p: int, d: int) -> int:
    """ONNX's output size with ceil_mode=1: it never drops a last window."""
    return -(-(n + 2 * p - (d * (k - 1) + 1)) // s) + 1


@pytest.mark.parametrize("n", range(1, 13))
def test_adaptive_pools_export_for_every_size(n, tmp_path):
    """Input n x (13 - n), every output size 1 to 12 on each axis in turn: windows that tile, that
    overlap, and outputs larger than the input."""
    pools = []
    for out in range(1, 13):
        pools += [f"adaptive_avgpool2d(({out}, {13 - out}))", f"adaptive_maxpool2d(({out}, {out}))"]
    _compile(_branches(pools, (2, n, 13 - n)), tmp_path)


def test_the_windows_are_torchs():
    """The window rule the lowering uses, against torch's own adaptive pooling of an index ramp."""
    import torch
    import torch.nn.functional as F

    for size, out in itertools.product(range(1, 13), range(1, 13)):
        ramp = torch.arange(size, dtype=torch.float64).reshape(1, 1, 1, size)
        lo = -F.adaptive_max_pool2d(-ramp, (1, out))[0, 0, 0]
        hi = F.adaptive_max_pool2d(ramp, (1, out))[0, 0, 0]
        assert [(int(a), int(b) + 1) for a, b in zip(lo, hi)] == adaptive_windows(size, out)


def test_the_output_size_rule_is_torchs():
    import torch
    import torch.nn.functional as F

    for n, k, s, p, d in itertools.product(range(1, 10), (1, 2, 3), (1, 2, 3), (0, 1), (1, 2)):
        if 2 * p > k or n + 2 * p < d * (k - 1) + 1:
            continue
        got = F.max_pool2d(torch.zeros(1, 1, n, 1), (k, 1), (s, 1), (p, 0), (d, 1), ceil_mode=True).shape[2]
        assert pool_size(n, k, s, p, d, True) == got
        assert np.isfinite(got)
