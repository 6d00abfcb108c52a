"""torchvision's segmentation networks and its ResNet-FPN detection backbone, weight for weight, with the
harness of tests/test_torchvision.py (its helpers imported, not copied).

specs/torchvision/segmentation.arch builds every builder of torchvision.models.segmentation (FCN and
DeepLabV3 on a dilated ResNet, DeepLabV3 and LR-ASPP on a dilated MobileNetV3-Large, with the aux head of
aux_loss=True), and specs/torchvision/fpn.arch resnet_fpn_backbone. Their parts are checked first: FCN's
head, DeepLabV3's head with its ASPP, whose pooling branch upsamples back to its input's size, the
dilated ResNet (resnet.arch's `dilated_stages`, torchvision's replace_stride_with_dilation) with batch
norm or frozen batch norm, and the dilated MobileNetV3. For each part and each network, against
torchvision's own module: the same state_dict keys and shapes, the parameter count archspec computes
statically, the same children, MACs equal to torch's flop counter (halved), torchvision's weights loaded
with strict=True and no mapping, and equal outputs (every named output: `out` and `aux`, `0` .. `3` and
`pool`) in eval mode with the normalisation statistics perturbed, at a non-square input. The smallest
network of each file compiles to Python, TorchScript, pt2 and ONNX, verified at batch 1 and 3.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from test_torchvision import on_meta, perturb  # noqa: E402  (tests/ is on the path under pytest)
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torchvision.models import segmentation  # noqa: E402
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone  # noqa: E402
from torchvision.models.segmentation.deeplabv3 import DeepLabHead  # noqa: E402
from torchvision.models.segmentation.fcn import FCNHead  # noqa: E402
from torchvision.ops import FrozenBatchNorm2d  # noqa: E402

import archspec  # noqa: E402
from archspec.errors import Sources  # noqa: E402
from archspec.loader import load_file  # noqa: E402

SEGMENTATION = 'import "specs/torchvision/segmentation.arch"\n'
RESNET = 'import "specs/torchvision/resnet.arch"\n'

# A ResNet-50 classifier on a dilated body, written as the segmentation networks write their backbone.
DILATED_RESNET = RESNET + """
network dilated_resnet50(replace_stride_with_dilation = [false, true, true], norm_layer: str = "batchnorm2d") {
    input [3, 72, 104]
    conv1 = conv2d(64, kernel=7, stride=2, padding=3, bias=false)
    if norm_layer == "frozen_batchnorm2d" { bn1 = frozen_batchnorm2d } else { bn1 = batchnorm2d }
    relu = relu
    maxpool = maxpool2d(kernel=3, stride=2, padding=1)
    for i, (blocks, (stride, first, dilation)) in enumerate(zip([3, 4, 6, 3],
                                                                dilated_stages(replace_stride_with_dilation))) {
        layer{i + 1} = resnet_layer(true, 64 * 2 ** i, blocks, stride, previous_dilation=first, dilation=dilation,
                                    norm_layer=norm_layer)
    }
    avgpool = adaptive_avgpool2d((1, 1))
    flatten
    fc = linear(1000)
}
"""


def _resnet(dilation: list[bool], norm: str):
    spec = archspec.loads(DILATED_RESNET, replace_stride_with_dilation=dilation, norm_layer=norm)
    layer = FrozenBatchNorm2d if norm == "frozen_batchnorm2d" else None
    return spec, lambda: torchvision.models.resnet50(replace_stride_with_dilation=dilation, norm_layer=layer)


def _head(call: str, shape: tuple[int, ...], reference):
    """A head as a segmentation network holds it, `classifier = ...`; torchvision's in a module of that name."""
    spec = archspec.loads(SEGMENTATION + f"network head() {{ input [{', '.join(map(str, shape))}]  "
                                         f"classifier = {call} }}")
    return spec, lambda: nn.Sequential(OrderedDict(classifier=reference()))


# name -> () -> (the spec, a factory of torchvision's module); the input is the spec's
PARTS = {
    "fcn_head": lambda: _head("fcn_head(21)", (1024, 9, 13), lambda: FCNHead(1024, 21)),
    "deeplab_head": lambda: _head("deeplab_head(21)", (2048, 9, 13), lambda: DeepLabHead(2048, 21)),
    "deeplab_head_rates": lambda: _head("deeplab_head(5, atrous_rates=[6, 12])", (40, 7, 10),
                                        lambda: DeepLabHead(40, 5, (6, 12))),
    "resnet50_dilated": lambda: _resnet([False, True, True], "batchnorm2d"),
    "resnet50_frozen_dilated": lambda: _resnet([True, False, True], "frozen_batchnorm2d"),
    "mobilenet_v3_large_dilated": lambda: (
        archspec.load("specs/torchvision/mobilenet_v3.arch", network="mobilenet_v3", dilated=True,
                      input=(3, 72, 104)),
        lambda: torchvision.models.mobilenet_v3_large(dilated=True)),
}


def perturb_frozen(net: nn.Module) -> nn.Module:
    """perturb (tests/test_torchvision.py), and frozen batch norm's buffers away from ones and zeros too."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, FrozenBatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return perturb(net)


def flop_macs(module: nn.Module, x: torch.Tensor) -> int:
    """torch's flop counter, halved: convolutions, linear layers and matmuls (resampling counts nothing)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("name", sorted(PARTS))
def test_a_part_is_torchvisions_weight_for_weight(name):
    spec, reference = PARTS[name]()
    tv = on_meta(reference).eval()
    with torch.device("meta"):
        meta = spec.to_torch()
    assert {k: tuple(v.shape) for k, v in meta.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in tv.state_dict().items()}
    assert spec.params == sum(p.numel() for p in tv.parameters())
    shape = spec.network.input_shape
    assert spec.macs == flop_macs(tv, torch.zeros(1, *shape, device="meta"))

    torch.manual_seed(0)
    tv = perturb_frozen(reference().eval())
    ours = spec.to_torch().eval()
    ours.load_state_dict(tv.state_dict(), strict=True)  # no mapping
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = tv(x), ours(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * max(1.0, want.abs().max().item()))


def test_the_pooling_branch_follows_its_input_size():
    """ASPP's pooling branch is upsampled to the size of the map reaching it (`like=@input`), as torchvision's
    is, not to the size the spec was checked at: a module built at 9x13 maps a 6x5 input to 6x5."""
    spec, _ = _head("aspp_pooling(8)", (4, 9, 13), None)
    assert spec.output_shape == (8, 9, 13)
    with torch.no_grad():
        assert tuple(spec.to_torch().eval()(torch.randn(1, 4, 6, 5)).shape) == (1, 8, 6, 5)


def test_the_deeplab_head_compiles_and_verifies(tmp_path):
    from archspec.compile import Options, compile_spec

    spec, _ = PARTS["deeplab_head_rates"]()
    result = compile_spec(spec, Options(out_dir=str(tmp_path / "head")))
    assert {c.artifact for c in result.checks} == {"torchscript", "pt2", "onnx"}
    assert [c.batch for c in result.checks if c.artifact == "onnx"] == [1, 3] and all(c.ok for c in result.checks)


# ---- the networks: torchvision's segmentation builders and resnet_fpn_backbone -----------------------------

SEGMENTATION_FILE = "specs/torchvision/segmentation.arch"
FPN_FILE = "specs/torchvision/fpn.arch"
INPUT = (3, 72, 104)  # non-square; every network here is fully convolutional


def _segmentation(name: str, **kw):
    """torchvision's builder as the spec builds it: no weights, and the aux head where the builder has one."""
    if not name.startswith("lraspp"):
        kw.setdefault("aux_loss", True)
    return lambda: getattr(segmentation, name)(weights=None, weights_backbone=None, **kw)


# network -> (its file, a factory of torchvision's model)
NETWORKS = {name: (SEGMENTATION_FILE, _segmentation(name))
            for name in torchvision.models.list_models(module=segmentation)}
NETWORKS["resnet50_fpn_backbone"] = (FPN_FILE, lambda: resnet_fpn_backbone(backbone_name="resnet50", weights=None))
HEAVY = ("fcn_resnet101", "deeplabv3_resnet101")  # on the meta device only, to keep the suite's time


def net_spec(name: str, **overrides) -> archspec.Spec:
    return archspec.load(NETWORKS[name][0], network=name, input=INPUT, **overrides)


def test_every_segmentation_builder_has_its_network():
    program = load_file(SEGMENTATION_FILE, Sources())
    defined = {n for n in program.own if program.definitions[n].kind == "network"}
    assert set(torchvision.models.list_models(module=segmentation)) <= defined


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_the_same_weights_children_and_macs_as_torchvision(name):
    """On the meta device: state_dict keys and shapes, the parameter count (archspec's, static), the
    children (the FPN's too: inner_blocks, layer_blocks, extra_blocks), the summary's top-level rows, and
    MACs against torch's flop counter at a non-square input."""
    spec = net_spec(name)
    tv = on_meta(NETWORKS[name][1]).eval()
    with torch.device("meta"):
        ours = spec.to_torch().eval()
    want = {k: tuple(v.shape) for k, v in tv.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert sorted(set(want) ^ set(got)) == [], "keys only one of them has"
    assert got == want
    assert spec.params == sum(p.numel() for p in tv.parameters())
    children = [n for n, _ in tv.named_children()]
    assert [n for n, _ in ours.named_children()] == children
    for child in children:
        assert [n for n, _ in getattr(ours, child).named_children()] == \
            [n for n, _ in getattr(tv, child).named_children()]
    rows = {r["name"].split(".")[0] for r in spec.summary(depth=1)["layers"]}
    assert set(children) <= rows, "summary --depth 1 shows torchvision's top-level children"
    assert spec.macs == flop_macs(tv, torch.zeros(1, *INPUT, device="meta"))


@pytest.mark.parametrize("name", sorted(n for n in NETWORKS if n not in HEAVY))
def test_torchvisions_weights_load_and_every_output_agrees(name):
    torch.manual_seed(0)
    tv = perturb_frozen(NETWORKS[name][1]().eval())
    ours = net_spec(name).to_torch().eval()
    ours.load_state_dict(tv.state_dict(), strict=True)  # no mapping
    x = torch.randn(2, *INPUT, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = tv(x), ours(x)
    assert list(got) == list(want), "the outputs by name, in torchvision's order"
    for key in want:
        scale = want[key].abs().max().item()
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5 * max(1.0, scale))


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_mobilenet_v3_large"])
def test_without_the_aux_head(name):
    """aux_loss=false, torchvision's default: no aux_classifier, and `out` alone (a dict still)."""
    spec = net_spec(name, aux_loss=False)
    tv = on_meta(_segmentation(name, aux_loss=False)).eval()
    with torch.device("meta"):
        ours = spec.to_torch().eval()
        got = ours(torch.zeros(1, *INPUT))
    assert sorted(ours.state_dict()) == sorted(tv.state_dict())
    assert [n for n, _ in ours.named_children()] == ["backbone", "classifier"]
    assert list(got) == ["out"] and tuple(got["out"].shape) == (1, 21, *INPUT[1:])


def test_an_fpn_on_resnet18_returning_three_stages():
    """resnet_fpn_backbone("resnet18", returned_layers=[2, 3, 4]): basic blocks with frozen batch norm,
    three lateral levels named 0 .. 2, and the pool."""
    tv = perturb_frozen(resnet_fpn_backbone(backbone_name="resnet18", weights=None, returned_layers=[2, 3, 4]))
    spec = archspec.load(FPN_FILE, network="resnet_fpn_backbone", input=INPUT, backbone_name="resnet18",
                         returned_layers=[2, 3, 4])
    assert spec.params == sum(p.numel() for p in tv.parameters())
    ours = spec.to_torch().eval()
    ours.load_state_dict(tv.eval().state_dict(), strict=True)
    x = torch.randn(1, *INPUT, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want, got = tv(x), ours(x)
    assert list(got) == list(want) == ["0", "1", "2", "pool"]
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5 * max(1.0, want[key].abs().max().item()))


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "resnet50_fpn_backbone"])
def test_one_of_each_family_compiles_and_verifies(name, tmp_path):
    """The smallest network of each file, to Python, TorchScript, pt2 and ONNX: every named output checked."""
    from archspec.compile import Options, compile_spec

    result = compile_spec(net_spec(name), Options(out_dir=str(tmp_path / name)))
    assert {c.artifact for c in result.checks} == {"torchscript", "pt2", "onnx"}
    assert [c.batch for c in result.checks if c.artifact == "onnx"] == [1, 3] and all(c.ok for c in result.checks)


def test_torchvisions_weights_in_an_onnx_of_any_size(tmp_path):
    """The spec as written (`input [3, H, W]`) compiled with torchvision's weights: ONNX, TorchScript and pt2
    with dynamic height and width, verified by the compile at two sizes the spec allows, then equal to
    torchvision's own model at sizes the compile never saw, square and not, every named output."""
    import re
    import subprocess
    import sys

    ort = pytest.importorskip("onnxruntime")
    name = "lraspp_mobilenet_v3_large"  # the smallest; the others share its size rules' kinds
    torch.manual_seed(0)
    tv = perturb(NETWORKS[name][1]().eval())
    weights = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), weights)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "archspec", "compile", NETWORKS[name][0], "--network", name,
                           "--weights", str(weights), "-o", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    sizes = re.search(r"and input 3x(\d+)x(\d+) and 3x(\d+)x(\d+)", done.stdout)
    assert sizes, done.stdout  # verified at two sizes the spec allows
    h1, w1, h2, w2 = map(int, sizes.groups())
    assert (h1, w1) != (h2, w2) and h1 != w1, "two sizes, one of them not square"
    session = ort.InferenceSession(str(out / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["out"]
    script = torch.jit.load(str(out / f"{name}.pt"))
    program = torch.export.load(str(out / f"{name}.pt2")).module()
    for h, w in ((48, 48), (57, 90)):
        x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            want = tv(x)["out"]
            assert tuple(want.shape) == (2, 21, h, w)
            runs = {"onnx": torch.from_numpy(session.run(None, {"input": x.numpy()})[0]),
                    "torchscript": script(x)["out"], "pt2": program(x)["out"]}
        for artifact, got in runs.items():
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=lambda m, a=artifact: f"{a}: {m}")
