"""The book's printed numbers, shape for shape: Dive into Deep Learning, chapters 7 and 8.

Every expected value below is typed from the book's printed output (its `layer_summary`
lines and the `torch.Size` results of sections 7.2-7.5 and 8.6), not from archspec's own
output, so these tests say whether archspec agrees with the book.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import archspec
from archspec.cli import main

# The book prints torch class names; these are the archspec ops that stand for them.
# "Sequential" stands for a block call or a seq.
BOOK_CLASS = {
    "Conv2d": "conv2d", "Sigmoid": "sigmoid", "AvgPool2d": "avgpool2d", "MaxPool2d": "maxpool2d",
    "Flatten": "flatten", "Linear": "linear", "ReLU": "relu", "Dropout": "dropout",
}


def layer_summary(spec: archspec.Spec) -> list[tuple[str, tuple[int, ...]]]:
    """The book's `layer_summary` as archspec sees it: (class, output shape) per top-level layer."""
    out = []
    for row in spec.summary(depth=1)["layers"]:
        cls = "Sequential" if row["kind"] in ("block", "group") else row["op"]
        out.append((cls, tuple(row["output_shape"])))
    return out


def book(lines: list[tuple[str, tuple[int, ...]]]) -> list[tuple[str, tuple[int, ...]]]:
    return [(BOOK_CLASS.get(cls, cls), shape) for cls, shape in lines]


# ---- 7.6 LeNet: model.layer_summary((1, 1, 28, 28)) ------------------------------------

LENET_BOOK = [
    ("Conv2d", (1, 6, 28, 28)),
    ("Sigmoid", (1, 6, 28, 28)),
    ("AvgPool2d", (1, 6, 14, 14)),
    ("Conv2d", (1, 16, 10, 10)),
    ("Sigmoid", (1, 16, 10, 10)),
    ("AvgPool2d", (1, 16, 5, 5)),
    ("Flatten", (1, 400)),
    ("Linear", (1, 120)),
    ("Sigmoid", (1, 120)),
    ("Linear", (1, 84)),
    ("Sigmoid", (1, 84)),
    ("Linear", (1, 10)),
]


def test_lenet_layer_summary():
    spec = archspec.load("specs/lenet.arch")
    assert list(spec.network.input_shape) == [1, 28, 28]
    assert len(LENET_BOOK) == 12
    assert layer_summary(spec) == book(LENET_BOOK)


def test_lenet_params_and_macs():
    spec = archspec.load("specs/lenet.arch")
    # conv 6*1*25+6, conv 16*6*25+16, linear 400*120+120, 120*84+84, 84*10+10
    assert spec.params == 156 + 2_416 + 48_120 + 10_164 + 850 == 61_706
    # conv 6*28*28*25, conv 16*10*10*6*25, then the three linear layers' weights
    assert spec.macs == 117_600 + 240_000 + 48_000 + 10_080 + 840 == 416_520
    totals = spec.summary()["totals"]
    assert (totals["params"], totals["macs"]) == (61_706, 416_520)


# ---- 8.2 VGG-11: VGG(arch=((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))).layer_summary((1, 1, 224, 224))

VGG11_BOOK = [
    ("Sequential", (1, 64, 112, 112)),
    ("Sequential", (1, 128, 56, 56)),
    ("Sequential", (1, 256, 28, 28)),
    ("Sequential", (1, 512, 14, 14)),
    ("Sequential", (1, 512, 7, 7)),
    ("Flatten", (1, 25088)),
    ("Linear", (1, 4096)),
    ("ReLU", (1, 4096)),
    ("Dropout", (1, 4096)),
    ("Linear", (1, 4096)),
    ("ReLU", (1, 4096)),
    ("Dropout", (1, 4096)),
    ("Linear", (1, 10)),
]


def test_vgg11_layer_summary():
    spec = archspec.load("specs/vgg11.arch")
    assert list(spec.network.input_shape) == [1, 224, 224]
    assert len(VGG11_BOOK) == 13
    assert layer_summary(spec) == book(VGG11_BOOK)


# ---- 8.6 ResNet-18: ResNet18().layer_summary((1, 1, 96, 96)) ------------------------------

RESNET18_BOOK = [
    ("Sequential", (1, 64, 24, 24)),
    ("Sequential", (1, 64, 24, 24)),
    ("Sequential", (1, 128, 12, 12)),
    ("Sequential", (1, 256, 6, 6)),
    ("Sequential", (1, 512, 3, 3)),
    ("Sequential", (1, 10)),
]


def test_resnet18_layer_summary():
    spec = archspec.load("specs/resnet18.arch")
    assert list(spec.network.input_shape) == [1, 96, 96]
    assert len(RESNET18_BOOK) == 6
    assert layer_summary(spec) == book(RESNET18_BOOK)
    # the book names its stages b1 .. b5 and last (self.net.add_module(f'b{i+2}', ...))
    assert [r["path"] for r in spec.summary()["layers"]] == ["b1", "b2", "b3", "b4", "b5", "last"]


# ---- 8.6.2 the residual block: X = torch.randn(4, 3, 6, 6) ---------------------------------

RESIDUAL = """
import "specs/residual.arch"
network blk(channels: int = 3, use_1x1conv: bool = false, stride: int = 1) {
    input [3, 6, 6]
    residual(channels, use_1x1conv=use_1x1conv, stride=stride)
}
"""


def test_residual_keeps_the_shape():
    """blk = Residual(3); blk(X).shape -> torch.Size([4, 3, 6, 6])"""
    spec = archspec.loads(RESIDUAL, batch=4)
    assert spec.summary()["output_shape"] == [4, 3, 6, 6]


def test_residual_with_1x1_conv_halves_the_resolution():
    """blk = Residual(6, use_1x1conv=True, strides=2); blk(X).shape -> torch.Size([4, 6, 3, 3])"""
    spec = archspec.loads(RESIDUAL, batch=4, channels=6, use_1x1conv=True, stride=2)
    assert spec.summary()["output_shape"] == [4, 6, 3, 3]


def test_residual_without_1x1_conv_cannot_change_channels():
    """Residual(6) on 3 channels cannot add its input to its output: the book needs use_1x1conv."""
    with pytest.raises(archspec.ArchError) as info:
        archspec.loads(RESIDUAL, channels=6)
    assert info.value.diagnostics[0].code == "E402"


def test_batch_flag_equals_the_batch_argument(tmp_path, capsys):
    """`archspec summary --batch 4` prints what load(..., batch=4) computes."""
    path = tmp_path / "blk.arch"
    path.write_text(RESIDUAL.replace("specs/residual.arch", str(Path("specs/residual.arch").resolve())))
    # The spec imports the zoo's residual.arch by its absolute path, outside its own folder: allowed
    # only when asked for.
    assert main(["summary", str(path), "--batch", "4", "--set", "channels=6", "--set", "use_1x1conv=true",
                 "--set", "stride=2", "--format", "json", "--allow-import-outside"]) == 0
    printed = json.loads(capsys.readouterr().out)
    api = archspec.load(str(path), batch=4, channels=6, use_1x1conv=True, stride=2,
                        allow_import_outside=True).summary()
    assert printed == api
    assert printed["output_shape"] == [4, 6, 3, 3]


# ---- 7.2 and 7.4: cross-correlation shapes --------------------------------------------------

def one_layer(layer: str, input_shape: tuple[int, ...]) -> archspec.Spec:
    dims = ", ".join(str(d) for d in input_shape)
    return archspec.loads(f"network example() {{ input [{dims}]  {layer} }}")


@pytest.mark.parametrize("layer, x, out", [
    ("conv2d(1, kernel=2)", (1, 3, 3), (1, 2, 2)),              # corr2d(X, K), X 3x3, K 2x2
    ("conv2d(1, kernel=(1, 2))", (1, 6, 8), (1, 6, 7)),         # edge detection, K = [[1, -1]]
    ("conv2d(1, kernel=(1, 2))", (1, 8, 6), (1, 8, 5)),         # corr2d(X.t(), K)
    ("conv2d(1, kernel=(1, 2), bias=false)", (1, 6, 8), (1, 6, 7)),  # the learned LazyConv2d
    ("conv2d(3, kernel=2)", (2, 3, 3), (3, 2, 2)),              # corr2d_multi_in_out, K: [3, 2, 2, 2]
    ("conv2d(2, kernel=1)", (3, 3, 3), (2, 3, 3)),              # corr2d_multi_in_out_1x1, K: [2, 3, 1, 1]
])
def test_cross_correlation_shapes(layer, x, out):
    assert one_layer(layer, x).output_shape == out


def test_multi_in_out_kernel_size():
    """K = torch.stack((K, K + 1, K + 2), 0); K.shape -> torch.Size([3, 2, 2, 2])."""
    spec = one_layer("conv2d(3, kernel=2, bias=false)", (2, 3, 3))
    assert spec.params == 3 * 2 * 2 * 2


# ---- 7.3 padding and stride: comp_conv2d on X = torch.rand(size=(8, 8)) ----------------------

@pytest.mark.parametrize("layer, out", [
    ("conv2d(1, kernel=3, padding=1)", (8, 8)),
    ("conv2d(1, kernel=(5, 3), padding=(2, 1))", (8, 8)),
    ("conv2d(1, kernel=3, padding=1, stride=2)", (4, 4)),
    ("conv2d(1, kernel=(3, 5), padding=(0, 1), stride=(3, 4))", (2, 2)),
])
def test_padding_and_stride(layer, out):
    assert one_layer(layer, (1, 8, 8)).output_shape == (1, *out)


# ---- 7.5 pooling ------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", ["maxpool2d(2, stride=1)", "avgpool2d(2, stride=1)"])
def test_pool2d_on_3x3(layer):
    """pool2d(X, (2, 2)) and pool2d(X, (2, 2), 'avg') on a 3x3 X give 2x2 (the book's pool2d has stride 1)."""
    assert one_layer(layer, (1, 3, 3)).output_shape == (1, 2, 2)


@pytest.mark.parametrize("layer, out", [
    ("maxpool2d(3)", (1, 1)),                                           # tensor([[[[10.]]]])
    ("maxpool2d(3, padding=1, stride=2)", (2, 2)),                      # [[5., 7.], [13., 15.]]
    ("maxpool2d((2, 3), stride=(2, 3), padding=(0, 1))", (2, 2)),       # [[5., 7.], [13., 15.]]
])
def test_pooling_on_4x4(layer, out):
    """X = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))."""
    assert one_layer(layer, (1, 4, 4)).output_shape == (1, *out)


def test_pooling_keeps_the_channels():
    """X = torch.cat((X, X + 1), 1); nn.MaxPool2d(3, padding=1, stride=2)(X) has two 2x2 channels."""
    spec = one_layer("maxpool2d(3, padding=1, stride=2)", (2, 4, 4))
    assert spec.output_shape == (2, 2, 2)
    assert spec.params == 0 and spec.macs == 0


def test_stride_defaults_to_the_kernel():
    """nn.MaxPool2d(3): "the stride and the pooling window have the same shape by default"."""
    spec = one_layer("maxpool2d(3)", (1, 4, 4))
    assert spec.network.graph.nodes[1].args["stride"] == (3, 3)  # node 0 is the input
