"""torchvision's vision transformers, weight for weight: every `vit_*` and `swin_*` builder.

The harness of tests/test_torchvision.py (its helpers, imported, not copied) applied to
specs/torchvision/vit.arch and swin.arch:
- on the meta device (every builder, ViT-H/14's 632M parameters included): the same state_dict keys
  and shapes, the same parameter count as archspec computes statically, the same top-level children,
  and archspec's MACs equal to torch's flop counter (halved) on torchvision's model, attention
  included (its projections and its two matrix products: docs/language.md);
- really built (up to ViT-B and Swin-B): torchvision's state_dict loads with strict=True and no
  mapping, and with every parameter and normalisation statistic moved away from its initial value
  (torchvision initialises ViT's head to zeros) the outputs are equal in eval mode;
- one network of each file compiles to Python, TorchScript, pt2 and ONNX, verified, onnxruntime at
  batch 1 and 3; Swin V2 too, whose attention differs.

ViT is built for one image size (its position embedding has a row per patch), 224 by default, as
torchvision's builders; Swin takes any size and is checked at a small non-square one.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
import test_torchvision as harness  # noqa: E402  (tests/ is on the path under pytest)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

FAMILIES = ("vit_", "swin_")
BUILDERS = [n for n in torchvision.models.list_models(module=torchvision.models) if n.startswith(FAMILIES)]
PRESENT = [b for b in BUILDERS if b in harness.INDEX]
HEAVY = 100_000_000  # parameters above which a network is checked on the meta device only (ViT-L, ViT-H)
COMPILED = ["vit_b_32", "swin_t", "swin_v2_t"]  # the smallest of each file, and Swin V2's attention


def size(name: str) -> tuple[int, int, int]:
    return (3, 224, 224) if name.startswith("vit_") else (3, 96, 128)


def test_every_builder_has_its_network():
    assert len(BUILDERS) >= 11, "torchvision lists fewer transformers than expected"
    missing = [b for b in BUILDERS if b not in harness.INDEX]
    assert not missing, f"no spec in specs/torchvision/ for {missing}"


@pytest.mark.parametrize("name", PRESENT)
def test_the_same_weights_and_children_as_torchvision(name):
    harness.test_the_same_weights_and_children_as_torchvision(name)


@pytest.mark.parametrize("name", PRESENT)
def test_macs_are_torchs(name):
    """torchvision's model on the meta device, where nn.MultiheadAttention takes its plain path (its
    fused CPU kernel is invisible to the flop counter): linear layers, convolutions and matmuls."""
    s = harness.spec(name, size(name))
    tv = harness.theirs(name, meta=True)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        tv(torch.zeros(1, *size(name), device="meta"))
    assert s.macs == counter.get_total_flops() // 2


def shaken(net: torch.nn.Module) -> torch.nn.Module:
    """Normalisation statistics away from their defaults, and every parameter moved off its initial
    value (ViT's head and class token start at zero, Swin V2's logit scale at log 10)."""
    harness.perturb(net)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return net


@pytest.mark.parametrize("name", [n for n in PRESENT if harness.spec(n).params <= HEAVY])
def test_torchvisions_weights_load_and_the_outputs_agree(name):
    tv = shaken(harness.theirs(name))
    with harness.no_init():  # its weights are torchvision's
        ar = harness.ours(name, input=size(name))
    ar.load_state_dict(tv.state_dict(), strict=True)  # no mapping
    x = torch.randn(2, *size(name), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = tv(x), ar(x)
    assert want.abs().max() > 0.1, "a test that compares zeros shows nothing"
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * max(1.0, want.abs().max().item()))


@pytest.mark.parametrize("name", COMPILED)
def test_one_of_each_family_compiles_and_verifies(name, tmp_path):
    from archspec.compile import Options, compile_spec

    result = compile_spec(harness.spec(name, size(name)), Options(out_dir=str(tmp_path / name)))
    assert {c.artifact for c in result.checks} == {"torchscript", "pt2", "onnx"}
    assert [c.batch for c in result.checks if c.artifact == "onnx"] == [1, 3] and all(c.ok for c in result.checks)
