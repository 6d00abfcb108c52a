"""torchvision's segmentation heads and the backbones under them, weight for weight, with the harness of
tests/test_torchvision.py (its helpers imported, not copied).

specs/torchvision/segmentation.arch holds FCN's head (every network's auxiliary classifier too) and
DeepLabV3's head with its ASPP, whose pooling branch upsamples back to its input's size; resnet.arch
gives the dilated ResNet (`dilated_stages`, torchvision's replace_stride_with_dilation) with batch norm
or frozen batch norm, and mobilenet_v3.arch the dilated MobileNetV3. For each, against torchvision's own
module: the same state_dict keys and shapes, the parameter count archspec computes statically,
torchvision's weights loaded with strict=True and no mapping, equal outputs in eval mode with the
normalisation statistics perturbed, at a non-square input, and MACs equal to torch's flop counter
(halved). One of them compiles to Python, TorchScript, pt2 and ONNX, verified at batch 1 and 3.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from test_torchvision import on_meta, perturb  # noqa: E402  (tests/ is on the path under pytest)
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torchvision.models.segmentation.deeplabv3 import DeepLabHead  # noqa: E402
from torchvision.models.segmentation.fcn import FCNHead  # noqa: E402
from torchvision.ops import FrozenBatchNorm2d  # noqa: E402

import archspec  # noqa: E402

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
