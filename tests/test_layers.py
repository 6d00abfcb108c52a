"""The layer registry: every record complete, every layer against a torch reference built by hand.

Each registered layer has at least one case below: a spec of the layer on an input, and what torch
computes for it, written here with torch's own modules and functions (never archspec's codegen).
The static numbers (output shape, parameters, MACs) must be torch's, the generated module must
load the reference's state_dict as it is, and both must compute the same outputs in eval mode.
docs/language.md's layer table must list exactly the registry's layers with their signatures.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.layers import COERCE, LAYERS, REQUIRED
from archspec.values import TensorRef

ROOT = Path(__file__).resolve().parent.parent


class Fn(nn.Module):
    """A reference that is a function of its input (no state)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


# layer -> [(the spec's body, input shape without the batch, reference factory)]
CASES: dict[str, list] = {
    "conv2d": [("conv2d(8, kernel=3, stride=2, padding=1, groups=2)", (4, 9, 9),
                lambda: nn.Conv2d(4, 8, 3, 2, 1, groups=2)),
               ("conv2d(3, kernel=(1, 3), dilation=2, bias=false)", (2, 6, 7),
                lambda: nn.Conv2d(2, 3, (1, 3), dilation=2, bias=False))],
    "conv_transpose2d": [("conv_transpose2d(6, kernel=3, stride=2, padding=1, output_padding=1)", (4, 5, 5),
                          lambda: nn.ConvTranspose2d(4, 6, 3, 2, 1, 1)),
                         ("conv_transpose2d(4, kernel=2, stride=2, groups=2, bias=false)", (4, 3, 4),
                          lambda: nn.ConvTranspose2d(4, 4, 2, 2, groups=2, bias=False))],
    "linear": [("linear(5)", (7,), lambda: nn.Linear(7, 5)),
               ("linear(3, bias=false)", (2, 4, 6), lambda: nn.Linear(6, 3, bias=False))],
    "maxpool2d": [("maxpool2d(kernel=3, stride=2, padding=1, ceil_mode=true)", (2, 8, 8),
                   lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True))],
    "avgpool2d": [("avgpool2d(kernel=2, padding=1, ceil_mode=true, count_include_pad=false)", (2, 7, 7),
                   lambda: nn.AvgPool2d(2, padding=1, ceil_mode=True, count_include_pad=False))],
    "adaptive_avgpool2d": [("adaptive_avgpool2d((2, 3))", (2, 7, 7), lambda: nn.AdaptiveAvgPool2d((2, 3)))],
    "adaptive_maxpool2d": [("adaptive_maxpool2d(3)", (2, 7, 8), lambda: nn.AdaptiveMaxPool2d(3))],
    "batchnorm2d": [("batchnorm2d(eps=0.001, momentum=0.01)", (4, 5, 5), lambda: nn.BatchNorm2d(4, 1e-3, 0.01))],
    "batchnorm1d": [("batchnorm1d", (6,), lambda: nn.BatchNorm1d(6)),
                    ("batchnorm1d(affine=false)", (3, 5), lambda: nn.BatchNorm1d(3, affine=False))],
    "frozen_batchnorm2d": [("frozen_batchnorm2d(eps=0.001)", (4, 5, 5), lambda: _frozen(4, 1e-3))],
    "layernorm": [("layernorm", (5, 7), lambda: nn.LayerNorm(7)),
                  ("layernorm(dims=2, eps=0.000001)", (3, 4, 5), lambda: nn.LayerNorm((4, 5), eps=1e-6)),
                  ("layernorm(bias=false)", (6,), lambda: nn.LayerNorm(6, bias=False))],
    "layernorm2d": [("layernorm2d(eps=0.000001)", (4, 5, 5),
                     lambda: torchvision.models.convnext.LayerNorm2d(4, eps=1e-6))],
    "groupnorm": [("groupnorm(2)", (4, 5, 5), lambda: nn.GroupNorm(2, 4))],
    "instancenorm2d": [("instancenorm2d(affine=true)", (3, 5, 5), lambda: nn.InstanceNorm2d(3, affine=True))],
    "relu": [("relu", (3, 4, 4), nn.ReLU)],
    "relu6": [("relu6", (3, 4, 4), nn.ReLU6)],
    "leaky_relu": [("leaky_relu(0.2)", (3, 4, 4), lambda: nn.LeakyReLU(0.2))],
    "elu": [("elu(alpha=0.5)", (3, 4, 4), lambda: nn.ELU(0.5))],
    "prelu": [("prelu(num_parameters=3)", (3, 4, 4), lambda: nn.PReLU(3)), ("prelu", (5,), nn.PReLU)],
    "silu": [("silu", (3, 4, 4), nn.SiLU)],
    "mish": [("mish", (3, 4, 4), nn.Mish)],
    "hardswish": [("hardswish", (3, 4, 4), nn.Hardswish)],
    "hardsigmoid": [("hardsigmoid", (3, 4, 4), nn.Hardsigmoid)],
    "sigmoid": [("sigmoid", (3, 4, 4), nn.Sigmoid)],
    "tanh": [("tanh", (3, 4, 4), nn.Tanh)],
    "gelu": [("gelu", (3, 4, 4), nn.GELU), ('gelu(approximate="tanh")', (5,), lambda: nn.GELU("tanh"))],
    "softmax": [("softmax(0)", (5, 3), lambda: nn.Softmax(1))],
    "log_softmax": [("log_softmax(-1)", (5, 3), lambda: nn.LogSoftmax(-1))],
    "identity": [("identity", (3, 4), nn.Identity)],
    "dropout": [("dropout(0.3)", (3, 4), lambda: nn.Dropout(0.3))],
    "dropout2d": [("dropout2d(0.3)", (3, 4, 4), lambda: nn.Dropout2d(0.3))],
    "stochastic_depth": [('stochastic_depth(0.2, "batch")', (3, 4, 4),
                          lambda: torchvision.ops.StochasticDepth(0.2, "batch"))],
    "interpolate": [('interpolate(scale=2, mode="bilinear", align_corners=false)', (3, 4, 5),
                     lambda: Fn(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))),
                    ("interpolate(size=(7, 9))", (3, 4, 5), lambda: Fn(lambda x: F.interpolate(x, size=(7, 9))))],
    "pad": [('pad((1, 2, 0, 1), mode="reflect")', (2, 5, 5), lambda: nn.ReflectionPad2d((1, 2, 0, 1))),
            ("pad(2)", (2, 3, 3), lambda: nn.ZeroPad2d(2)),
            ("pad(1, value=0.5)", (2, 3, 3), lambda: nn.ConstantPad2d(1, 0.5)),
            ('pad(1, mode="replicate")', (2, 3, 3), lambda: nn.ReplicationPad2d(1))],
    "pixel_shuffle": [("pixel_shuffle(2)", (8, 3, 3), lambda: nn.PixelShuffle(2))],
    "pixel_unshuffle": [("pixel_unshuffle(2)", (2, 4, 6), lambda: nn.PixelUnshuffle(2))],
    "flatten": [("flatten", (2, 3, 4), nn.Flatten), ("flatten(start_dim=1)", (2, 3, 4), lambda: nn.Flatten(2))],
    "reshape": [("reshape((4, -1))", (2, 3, 4), lambda: Fn(lambda x: x.reshape(x.shape[0], 4, -1)))],
    "permute": [("permute((1, 2, 0))", (2, 3, 4), lambda: Fn(lambda x: x.permute(0, 2, 3, 1)))],
    "transpose": [("transpose(0, 2)", (2, 3, 4), lambda: Fn(lambda x: x.transpose(1, 3)))],
    "slice": [("slice(1, 3)", (4, 2, 2), lambda: Fn(lambda x: x[:, 1:3])),
              ("slice(0, 2, dim=1)", (4, 3, 2), lambda: Fn(lambda x: x[:, :, 0:2]))],
    "select": [("select(0)", (3, 4), lambda: Fn(lambda x: x[:, 0]))],
    "chunk": [("chunk(3, 2)", (7, 2, 2), lambda: Fn(lambda x: x.chunk(3, 1)[2]))],
    "channel_shuffle": [("channel_shuffle(2)", (4, 3, 3),
                         lambda: Fn(lambda x: torchvision.models.shufflenetv2.channel_shuffle(x, 2)))],
    "param": [('mul { identity  s = param([4, 1, 1], init="constant", value=0.5) }', (4, 3, 3),
               lambda: ScaleRef())],
    "multihead_attention": [("multihead_attention(2)", (5, 8), lambda: SelfAttentionRef(8, 2)),
                            ("multihead_attention(4, dropout=0.1, bias=false)", (3, 8),
                             lambda: SelfAttentionRef(8, 4, dropout=0.1, bias=False))],
    "shifted_window_attention": [("shifted_window_attention(4, 2, 2)", (9, 11, 8),
                                  lambda: _swin().ShiftedWindowAttention(8, [4, 4], [2, 2], 2)),
                                 ("shifted_window_attention((3, 4), 0, 4, qkv_bias=false)", (6, 8, 8),
                                  lambda: _swin().ShiftedWindowAttention(8, [3, 4], [0, 0], 4, qkv_bias=False))],
    "shifted_window_attention_v2": [("shifted_window_attention_v2(4, 2, 2)", (9, 11, 8),
                                     lambda: _swin().ShiftedWindowAttentionV2(8, [4, 4], [2, 2], 2))],
    "patch_merging_pad": [("patch_merging_pad", (5, 7, 3), lambda: Fn(_swin()._patch_merging_pad))],
}


def _frozen(n: int, eps: float) -> nn.Module:
    """torchvision's FrozenBatchNorm2d with its affine buffers away from ones and zeros."""
    m = torchvision.ops.FrozenBatchNorm2d(n, eps=eps)
    g = torch.Generator().manual_seed(2)
    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
    m.bias.copy_(torch.randn(n, generator=g))
    return m


class ScaleRef(nn.Module):
    def __init__(self):
        super().__init__()
        self.s = nn.Parameter(torch.full((4, 1, 1), 0.5))

    def forward(self, x):
        return x * self.s


class SelfAttentionRef(nn.MultiheadAttention):
    """torch's multi-head attention as ViT's encoder calls it: batch first, queries = keys = values."""

    def __init__(self, embed_dim, num_heads, **kwargs):
        super().__init__(embed_dim, num_heads, batch_first=True, **kwargs)
        with torch.no_grad():  # biases away from their zero init
            for b in (self.in_proj_bias, self.out_proj.bias):
                if b is not None:
                    b.normal_(generator=torch.Generator().manual_seed(4))

    def forward(self, x):
        return super().forward(x, x, x, need_weights=False)[0]


def _swin():
    return torchvision.models.swin_transformer


def _all_cases():
    for name, cases in CASES.items():
        for k, (body, shape, ref) in enumerate(cases):
            yield pytest.param(name, body, shape, ref, id=f"{name}-{k}")


def test_every_layer_has_a_reference_case():
    assert set(LAYERS) == set(CASES), "add a case for each new layer (and no case for a layer that is gone)"


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_record_is_complete(name):
    layer = LAYERS[name]
    assert layer.name == name and layer.doc and layer.category and callable(layer.shape)
    assert isinstance(layer.module, str) or callable(layer.module)
    for arg in layer.args:
        assert arg.kind in COERCE, (name, arg.name)
        assert not arg.choices or arg.kind == "str", (name, arg.name)
        if arg.default is not REQUIRED and arg.default is not None:
            assert arg.coerce(arg.default) == arg.coerce(arg.default)  # a default its own kind takes
    if layer.inplace is not None:
        assert layer.functional is not None


def _macs(module, x) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("name, body, shape, ref", list(_all_cases()))
def test_a_layer_computes_what_torch_computes(name, body, shape, ref):
    spec = archspec.loads(f"network n() {{ input [{', '.join(map(str, shape))}]  {body} }}")
    torch.manual_seed(0)
    reference = ref().eval()
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = reference(x)
    assert tuple(spec.output_shape) == tuple(want.shape[1:])
    assert spec.params == sum(p.numel() for p in reference.parameters())
    module = spec.to_torch().eval()
    state = module.state_dict()
    assert len(reference.state_dict()) == len(state), (list(reference.state_dict()), list(state))
    with torch.no_grad():
        for m in reference.modules():  # statistics away from their defaults
            if hasattr(m, "running_var") and m.running_var is not None:
                m.running_var.uniform_(0.5, 2.0)
                m.running_mean.uniform_(-0.5, 0.5)
        theirs = reference.state_dict()
        mapped = {k: theirs[k.split(".", 1)[1] if "." in k else k] for k in state}
        module.load_state_dict(mapped, strict=True)
        want = reference(x)
        got = module(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert spec.macs == _macs(reference, x[:1]) or name not in ("conv2d", "conv_transpose2d", "linear")


@pytest.mark.parametrize("name", ["multihead_attention", "shifted_window_attention", "shifted_window_attention_v2"])
def test_attention_macs_are_torchs(name):
    """Attention's MACs (projections and the two matrix products) against the flop counter, on the meta
    device: on the CPU, nn.MultiheadAttention's fused eval-mode kernel is invisible to the counter."""
    for body, shape, ref in CASES[name]:
        spec = archspec.loads(f"network n() {{ input [{', '.join(map(str, shape))}]  {body} }}")
        with torch.device("meta"):
            reference = ref().eval()
            assert spec.macs == _macs(reference, torch.zeros(1, *shape)) > 0, body


def test_tensor_arguments_wire_a_second_input():
    """interpolate(like=@x): the size of another tensor, as torchvision's FPN and segmentation heads do."""
    spec = archspec.loads("network n() { input [3, 8, 10]  x = conv2d(4, kernel=3, padding=1)  "
                          "maxpool2d(kernel=2)  interpolate(like=@x)  add { identity  @x } }")
    assert list(spec.output_shape) == [4, 8, 10]
    module = spec.to_torch().eval()
    x = torch.randn(2, 3, 8, 10)
    with torch.no_grad():
        conv = module.x(x)
        want = F.interpolate(F.max_pool2d(conv, 2), size=conv.shape[-2:]) + conv
        torch.testing.assert_close(module(x), want)
    node = next(n for n in spec.network.graph.nodes if n.op == "interpolate")
    assert isinstance(node.args["like"], TensorRef) and len(node.inputs) == 2


def test_the_docs_layer_table_is_the_registry():
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    table = text[text.index("<!-- layers: generated from archspec/layers; pytest checks it -->"):]
    table = table[: table.index("<!-- end of layers -->")]
    rows = re.findall(r"^\| `([^`]+)` \|", table, re.M)
    assert rows == [LAYERS[name].signature() for name in sorted(LAYERS, key=lambda n: (LAYERS[n].category, n))]


def test_archspec_layers_lists_every_layer(capsys):
    import json

    from archspec.cli import main

    assert main(["layers", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [x["name"] for x in listed] == list(LAYERS)
    assert main(["layers"]) == 0
    out = capsys.readouterr().out
    assert all(LAYERS[name].signature() in out for name in LAYERS)
