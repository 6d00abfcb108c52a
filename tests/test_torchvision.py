"""torchvision's classification builders, weight for weight: the ground truth for specs/torchvision/.

Every builder of `torchvision.models.list_models(module=torchvision.models)` (but the ViT, Swin and
MaxViT families) has a network of the same name in a family file of specs/torchvision/, and:
- on the meta device (every builder, the largest included): the same state_dict keys and shapes,
  the same parameter count as archspec computes statically, the same top-level children, and
  archspec's MACs equal to torch's flop counter (halved, convolutions, linear layers and matmuls);
- really built (all but the largest): torchvision's own state_dict loads into the generated module
  with strict=True and no mapping, and with normalisation statistics perturbed away from their
  defaults the outputs are equal in eval mode, at a non-square input;
- one network of each family file compiles to Python, TorchScript, pt2 and ONNX, verified (the
  torch module against all three, onnxruntime at batch 1 and 3).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import archspec  # noqa: E402
from archspec.errors import Sources  # noqa: E402
from archspec.loader import load_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LATER = ("vit_", "swin_", "maxvit_")  # transformers: another issue's
BUILDERS = [n for n in torchvision.models.list_models(module=torchvision.models) if not n.startswith(LATER)]
HEAVY = 60_000_000  # parameters above which a network is checked on the meta device only
INPUT = {"inception_v3": (3, 299, 320), "googlenet": (3, 96, 128)}  # default (3, 96, 128): non-square
DEFAULT_INPUT = (3, 96, 128)


def _index() -> dict[str, str]:
    """network name -> its family file, for every network defined in specs/torchvision/."""
    out = {}
    for path in sorted((ROOT / "specs" / "torchvision").glob("*.arch")):
        program = load_file(str(path.relative_to(ROOT)), Sources())
        for name in program.own:
            if program.definitions[name].kind == "network":
                out[name] = str(path.relative_to(ROOT))
    return out


INDEX = _index()
PRESENT = [b for b in BUILDERS if b in INDEX]


@functools.cache
def spec(name: str, input: tuple[int, ...] | None = None) -> archspec.Spec:
    return archspec.load(INDEX[name], network=name, input=input)


def small(name: str) -> tuple[int, ...]:
    return INPUT.get(name, DEFAULT_INPUT)


@contextlib.contextmanager
def no_init():
    """Build without initialising (a few seconds saved per network): the weights are set by the test."""
    names = ["uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
             "xavier_normal_", "constant_", "zeros_", "ones_"]
    saved = {n: getattr(nn.init, n) for n in names}
    try:
        for n in names:
            setattr(nn.init, n, lambda t, *a, **k: t)
        yield
    finally:
        for n, f in saved.items():
            setattr(nn.init, n, f)


def on_meta(build):
    """A module built on the meta device; a builder that computes with tensors while it builds (RegNet's
    widths) is built on the CPU without initialising instead."""
    try:
        with torch.device("meta"):
            return build()
    except (NotImplementedError, RuntimeError):
        with no_init():
            return build()


def theirs(name: str, meta: bool = False) -> nn.Module:
    build = getattr(torchvision.models, name)
    return (on_meta(build) if meta else build()).eval()


def ours(name: str, meta: bool = False, input=None) -> nn.Module:
    s = spec(name, input)
    return (on_meta(s.to_torch) if meta else s.to_torch()).eval()


def test_every_builder_has_its_network():
    missing = [b for b in BUILDERS if b not in INDEX]
    assert not missing, f"no spec in specs/torchvision/ for {missing}"


@pytest.mark.parametrize("name", PRESENT)
def test_the_same_weights_and_children_as_torchvision(name):
    """state_dict keys and shapes, parameter count (archspec's own, computed statically), top-level children."""
    tv, ar = theirs(name, meta=True), ours(name, meta=True)
    want = {k: tuple(v.shape) for k, v in tv.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in ar.state_dict().items()}
    assert sorted(set(want) ^ set(got)) == [], "keys only one of them has"
    assert got == want
    assert spec(name).params == sum(p.numel() for p in tv.parameters())
    children = [n for n, _ in tv.named_children()]
    assert [n for n, _ in ar.named_children()] == children
    rows = {r["name"] for r in spec(name).summary(depth=1)["layers"]}
    assert set(children) <= rows, "summary --depth 1 lists torchvision's top-level children"


@pytest.mark.parametrize("name", PRESENT)
def test_macs_are_torchs(name):
    """archspec's MACs (static) against torch's flop counter on torchvision's model, halved, at a
    non-square input."""
    s = spec(name, small(name))
    tv = theirs(name, meta=True)
    device = next(tv.parameters()).device
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        tv(torch.zeros(1, *small(name), device=device))
    assert s.macs == counter.get_total_flops() // 2


def perturb(net: nn.Module) -> nn.Module:
    """Normalisation statistics and affine terms away from their defaults, so a misplaced norm shows."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)) and \
                    getattr(m, "weight", None) is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return net


LIGHT = [n for n in PRESENT if spec(n).params <= HEAVY]


@pytest.mark.parametrize("name", LIGHT)
def test_torchvisions_weights_load_and_the_outputs_agree(name):
    torch.manual_seed(0)
    tv = perturb(theirs(name))
    ar = ours(name, input=small(name))
    ar.load_state_dict(tv.state_dict(), strict=True)  # no mapping
    x = torch.randn(2, *small(name), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = tv(x), ar(x)
    scale = want.abs().max().item()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * max(1.0, scale))


def _representatives() -> list[str]:
    """The smallest network of each family file."""
    best: dict[str, str] = {}
    for name in PRESENT:
        f = INDEX[name]
        if f not in best or spec(name).params < spec(best[f]).params:
            best[f] = name
    return sorted(best.values())


@pytest.mark.parametrize("name", _representatives())
def test_one_of_each_family_compiles_and_verifies(name, tmp_path):
    from archspec.compile import Options, compile_spec

    s = spec(name, small(name))
    result = compile_spec(s, Options(out_dir=str(tmp_path / name)))
    assert {c.artifact for c in result.checks} == {"torchscript", "pt2", "onnx"}
    assert [c.batch for c in result.checks if c.artifact == "onnx"] == [1, 3] and all(c.ok for c in result.checks)
