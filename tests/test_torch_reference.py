"""archspec's static numbers against torch: shapes, parameters, MACs and receptive fields.

The torch side is built by hand here, never from archspec's codegen: the book's own code
(Dive into Deep Learning 7.6, 8.2, 8.6, with its Lazy modules materialised by a dummy
forward) and torchvision's models. What archspec computes without torch must equal what
torch does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torchvision
from book_nets import Residual, book_lenet, book_resnet, book_vgg
from torch import nn

import archspec
from archspec import ir

# ---- helpers --------------------------------------------------------------------------------


def materialise(net: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """Run one dummy forward so that Lazy modules learn their input sizes, as the book does."""
    torch.manual_seed(0)
    net.eval()
    with torch.no_grad():
        net(torch.zeros(shape))
    return net


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def hooked_macs(net: nn.Module, x: torch.Tensor) -> int:
    """MACs counted by torch itself: forward hooks on every Conv2d and Linear."""
    total = 0

    def conv(m: nn.Conv2d, inputs, out) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw  # = N*Cout*Hout*Wout*(Cin/g)*kh*kw

    def linear(m: nn.Linear, inputs, out) -> None:
        nonlocal total
        rows = inputs[0].numel() // m.in_features
        total += m.in_features * m.out_features * rows

    handles = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
               for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        net.eval()
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return total


def output_shapes(net: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, tuple[int, ...]]:
    """The output shape of each named submodule, from one forward pass."""
    shapes: dict[str, tuple[int, ...]] = {}
    modules = dict(net.named_modules())
    handles = []
    for name in names:
        def hook(m, inputs, out, name=name):
            shapes.setdefault(name, tuple(out.shape))  # a module called twice keeps its first output
        handles.append(modules[name].register_forward_hook(hook))
    try:
        net.eval()
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def walk(graph: ir.Graph) -> Iterator[ir.GNode]:
    return ir.walk(graph)


def layers_with_params(spec: archspec.Spec) -> dict[str, ir.Node]:
    return {n.path: n for n in walk(spec.network.graph) if n.kind == "layer" and n.params}


def param_names(spec: archspec.Spec) -> set[str]:
    """state_dict parameter names as archspec's module paths give them."""
    names = set()
    for path, node in layers_with_params(spec).items():
        names.add(path + ".weight")
        if node.args.get("bias", True):  # conv2d and linear with bias; batch norm's shift
            names.add(path + ".bias")
    return names


def rows(spec: archspec.Spec, depth: int = 1) -> list[dict]:
    return spec.summary(depth)["layers"]


# ---- (a, b) the book's networks, from its code ---------------------------------------------

VGG11_ARCH = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
RESNET18_ARCH = ((2, 64), (2, 128), (2, 256), (2, 512))

BOOK = {
    "lenet": ("specs/lenet.arch", lambda: book_lenet(), (1, 1, 28, 28)),
    "vgg11": ("specs/vgg11.arch", lambda: book_vgg(VGG11_ARCH), (1, 1, 224, 224)),
    "resnet18": ("specs/resnet18.arch", lambda: book_resnet(RESNET18_ARCH), (1, 1, 96, 96)),
}


@pytest.fixture(scope="module", params=sorted(BOOK))
def book_net(request) -> tuple[archspec.Spec, nn.Sequential, tuple[int, ...]]:
    path, build, shape = BOOK[request.param]
    return archspec.load(path), materialise(build(), shape), shape


def test_book_params(book_net):
    spec, net, _ = book_net
    assert spec.params == n_params(net)


def test_book_layer_summary(book_net):
    """The book's layer_summary, run in torch, against archspec's depth-1 rows."""
    spec, net, shape = book_net
    X = torch.zeros(shape)
    torch_rows = []
    with torch.no_grad():
        for layer in net:
            X = layer(X)
            torch_rows.append((tuple(X.shape), n_params(layer)))
    assert [(tuple(r["output_shape"]), r["params"]) for r in rows(spec)] == torch_rows


def test_book_macs(book_net):
    spec, net, shape = book_net
    assert spec.macs == hooked_macs(net, torch.zeros(shape))


def test_book_resnet18_inside_the_stages():
    """Depth 2 and 3 of the book's ResNet-18: every residual's shape, and its module names."""
    spec = archspec.load("specs/resnet18.arch")
    net = materialise(book_resnet(RESNET18_ARCH), (1, 1, 96, 96))
    deep = [r for r in rows(spec, 2) if r["depth"] == 2]
    shapes = output_shapes(net, torch.zeros(1, 1, 96, 96), [r["path"].replace("b1.", "0.") for r in deep])
    assert [tuple(r["output_shape"]) for r in deep] == [shapes[r["path"].replace("b1.", "0.")] for r in deep]
    # The book's Residual names its layers conv1, bn1, conv2, bn2, conv3, as archspec's residual block does;
    # only the stem differs: the book adds it unnamed, as net[0], where the spec calls it b1.
    ours = {name.replace("b1.", "0.", 1) if name.startswith("b1.") else name for name in param_names(spec)}
    assert ours == {name for name, _ in net.named_parameters()}


def test_book_residual_blocks():
    """Section 8.6.2: Residual(3) and Residual(6, use_1x1conv=True, strides=2) on X of shape (4, 3, 6, 6)."""
    text = ('import "specs/residual.arch"\n'
            'network blk(c: int = 3, one: bool = false, s: int = 1) {\n'
            '    input [3, 6, 6]  residual(c, use_1x1conv=one, stride=s)\n}\n')
    for args, kwargs in (((3,), {}), ((6,), {"use_1x1conv": True, "strides": 2})):
        torch.manual_seed(0)
        blk = Residual(*args, **kwargs)
        y = blk(torch.randn(4, 3, 6, 6))
        spec = archspec.loads(text, batch=4, c=args[0], one=kwargs.get("use_1x1conv", False),
                              s=kwargs.get("strides", 1))
        assert spec.summary()["output_shape"] == list(y.shape)
        assert spec.params == n_params(blk)
        assert spec.macs * 4 == hooked_macs(blk, torch.zeros(4, 3, 6, 6))


# ---- (c) receptive fields against torch's gradients ---------------------------------------

class Add(nn.Module):
    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return sum(b(x) for b in self.branches)


class Concat(Add):
    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], 1)


def conv(cin: int, cout: int, k, stride=1, padding=0, dilation=1, groups=1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups)


def window(c: int, k, stride, padding=0, dilation=1) -> nn.Conv2d:
    """A max-pool's window as a linear map: a per-channel sum over the same (dilated) window.

    A max passes gradient to one input only; a sum of ones passes it to every input the window
    sees, which is what the receptive field counts.
    """
    return conv(c, c, k, stride, padding, dilation, groups=c)


# (spec body on a 2-channel input, torch module, static receptive field (h, w) and jump (h, w))
RF_CASES = {
    "two 3x3": ("conv2d(4, kernel=3, padding=1)  relu  conv2d(4, kernel=3, padding=1)",
                lambda: nn.Sequential(conv(2, 4, 3, padding=1), nn.ReLU(), conv(4, 4, 3, padding=1)),
                (5, 5), (1, 1)),
    "stride": ("conv2d(4, kernel=3, stride=2)  conv2d(4, kernel=3)",
               lambda: nn.Sequential(conv(2, 4, 3, stride=2), conv(4, 4, 3)),
               (7, 7), (2, 2)),
    "dilation": ("conv2d(4, kernel=3, dilation=2, padding=2)  conv2d(4, kernel=3, dilation=3)",
                 lambda: nn.Sequential(conv(2, 4, 3, padding=2, dilation=2), conv(4, 4, 3, dilation=3)),
                 (11, 11), (1, 1)),
    "rectangular": (("conv2d(3, kernel=(3, 5), stride=(2, 1), padding=(1, 2))  "
                     "maxpool2d((2, 3), stride=(2, 3), padding=(0, 1))  conv2d(2, kernel=(1, 3))"),
                    lambda: nn.Sequential(conv(2, 3, (3, 5), stride=(2, 1), padding=(1, 2)),
                                          window(3, (2, 3), stride=(2, 3), padding=(0, 1)), conv(3, 2, (1, 3))),
                    (5, 13), (4, 3)),
    "dilated max-pool": ("maxpool2d(3, stride=2, padding=1, dilation=2)  conv2d(2, kernel=3)",
                         lambda: nn.Sequential(window(2, 3, stride=2, padding=1, dilation=2), conv(2, 2, 3)),
                         (9, 9), (2, 2)),
    "lenet's encoder": (("conv2d(6, kernel=5, padding=2)  sigmoid  avgpool2d(kernel=2, stride=2)  "
                         "conv2d(16, kernel=5)  sigmoid  avgpool2d(kernel=2, stride=2)"),
                        lambda: nn.Sequential(conv(2, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
                                              conv(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2)),
                        (16, 16), (4, 4)),
    "residual": (("add { seq { conv2d(2, kernel=3, padding=1)  conv2d(2, kernel=3, padding=1) }  identity }  "
                  "conv2d(2, kernel=3, stride=2)"),
                 lambda: nn.Sequential(Add(nn.Sequential(conv(2, 2, 3, padding=1), conv(2, 2, 3, padding=1)),
                                           nn.Identity()), conv(2, 2, 3, stride=2)),
                 (7, 7), (2, 2)),
    "inception": (("concat { conv2d(2, kernel=1)  seq { conv2d(2, kernel=1)  conv2d(2, kernel=5, padding=2) }  "
                   "seq { maxpool2d(kernel=3, stride=1, padding=1)  conv2d(2, kernel=1) } }  "
                   "maxpool2d(kernel=3, stride=2, padding=1)"),
                  lambda: nn.Sequential(Concat(conv(2, 2, 1), nn.Sequential(conv(2, 2, 1), conv(2, 2, 5, padding=2)),
                                               nn.Sequential(window(2, 3, 1, padding=1), conv(2, 2, 1))),
                                        window(6, 3, 2, padding=1)),
                  (7, 7), (2, 2)),
    "resnet stem": (("conv2d(4, kernel=7, stride=2, padding=3)  batchnorm2d  relu  "
                     "maxpool2d(kernel=3, stride=2, padding=1)"),
                    lambda: nn.Sequential(conv(2, 4, 7, stride=2, padding=3), nn.BatchNorm2d(4), nn.ReLU(),
                                          window(4, 3, 2, padding=1)),
                    (11, 11), (4, 4)),
}

SIZE = 48  # large enough that the centre pixel's field lies wholly inside the input


def gradient_extent(net: nn.Module, i: int, j: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the inputs with a nonzero gradient for output pixel (i, j)."""
    x = torch.ones(1, 2, SIZE, SIZE, dtype=torch.float64, requires_grad=True)
    net(x)[0, :, i, j].sum().backward()  # every channel: a concat's channels come from different branches
    seen = x.grad.abs().sum((0, 1)) > 0
    rows = seen.any(1).nonzero().flatten()
    cols = seen.any(0).nonzero().flatten()
    top, bottom, left, right = int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())
    assert 0 < top and bottom < SIZE - 1 and 0 < left and right < SIZE - 1, "the field touches the border"
    return top, left, bottom - top + 1, right - left + 1


@pytest.mark.parametrize("case", RF_CASES)
def test_receptive_field_against_gradients(case):
    body, build, size, jump = RF_CASES[case]
    spec = archspec.loads(f"network n() {{ input [2, {SIZE}, {SIZE}]  {body} }}")
    net = build().double().eval()
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            # positive weights, so no cancellation hides an input from the gradient; small ones, so
            # that no sigmoid saturates to a zero gradient
            nn.init.constant_(m.weight, 0.1)
            nn.init.zeros_(m.bias)
    x = torch.zeros(1, 2, SIZE, SIZE, dtype=torch.float64)
    assert spec.output_shape == tuple(net(x).shape[1:])
    rf = spec.network.graph.output().rf
    assert (rf[:2], rf[2:]) == (size, jump)  # typed by hand: the rule r += d*(k-1)*j, j *= s
    h, w = spec.output_shape[1:]
    i, j = h // 2, w // 2
    top, left, *extent = gradient_extent(net, i, j)
    assert tuple(extent) == rf[:2]
    # one output pixel further on, the field moves by the jump
    top2, left2, *_ = gradient_extent(net, i + 1, j + 1)
    assert (top2 - top, left2 - left) == rf[2:]


# ---- (d) torchvision ----------------------------------------------------------------------

TORCHVISION = {"vgg11": "specs/torchvision/vgg.arch", "resnet18": "specs/torchvision/resnet.arch",
               "resnet50": "specs/torchvision/resnet.arch", "resnext50_32x4d": "specs/torchvision/resnet.arch"}


@pytest.fixture(scope="module", params=sorted(TORCHVISION))
def torchvision_net(request) -> tuple[archspec.Spec, nn.Module]:
    torch.manual_seed(0)
    model = getattr(torchvision.models, request.param)().eval()  # no weights: nothing is downloaded
    return archspec.load(TORCHVISION[request.param], network=request.param), model


def test_torchvision_params(torchvision_net):
    spec, model = torchvision_net
    assert spec.params == n_params(model)


def test_torchvision_module_paths(torchvision_net):
    """archspec's module paths are torchvision's: its state_dict loads with no mapping."""
    spec, model = torchvision_net
    assert set(layers_with_params(spec)) == {name.rsplit(".", 1)[0] for name, _ in model.named_parameters()}
    assert param_names(spec) == {name for name, _ in model.named_parameters()}
    modules = dict(model.named_modules())
    for path, node in layers_with_params(spec).items():
        assert node.params == n_params(modules[path]), path


def test_torchvision_shapes(torchvision_net):
    """The output shape of every layer with parameters, against torchvision's forward pass."""
    spec, model = torchvision_net
    ours = layers_with_params(spec)
    x = torch.zeros(1, *spec.network.input_shape)
    theirs = output_shapes(model, x, list(ours))
    assert {p: (1, *n.out_shape) for p, n in ours.items()} == theirs


def test_torchvision_macs(torchvision_net):
    spec, model = torchvision_net
    assert spec.macs == hooked_macs(model, torch.zeros(1, *spec.network.input_shape))


# ---- (e) one layer at a time, edge cases included -----------------------------------------

# (spec layer, torch module, input shape without the batch); a case torch refuses must be refused
LAYER_CASES = [
    ("conv2d(5, kernel=3, stride=2, padding=1, dilation=2, groups=1)", nn.Conv2d(4, 5, 3, 2, 1, 2), (4, 9, 11)),
    ("conv2d(6, kernel=(1, 3), groups=2, bias=false)", nn.Conv2d(4, 6, (1, 3), groups=2, bias=False), (4, 5, 5)),
    ("conv2d(6, kernel=5)", nn.Conv2d(4, 6, 5), (4, 4, 8)),                                      # too small
    ("maxpool2d(2, stride=1, padding=1, dilation=2)", nn.MaxPool2d(2, 1, 1, 2), (3, 9, 9)),
    # PyTorch bounds a max-pool's padding by half the kernel, not half its dilated span
    ("maxpool2d(3, stride=1, padding=2, dilation=2)", nn.MaxPool2d(3, 1, 2, 2), (3, 9, 9)),
    ("maxpool2d(3, stride=2, ceil_mode=true)", nn.MaxPool2d(3, 2, ceil_mode=True), (3, 8, 8)),
    # with ceil_mode a window may overhang the input and still give one output
    ("maxpool2d(3, stride=3, ceil_mode=true)", nn.MaxPool2d(3, 3, ceil_mode=True), (3, 2, 2)),
    ("avgpool2d(3, stride=3, ceil_mode=true)", nn.AvgPool2d(3, 3, ceil_mode=True), (3, 2, 2)),
    ("avgpool2d(3, stride=3)", nn.AvgPool2d(3, 3), (3, 2, 2)),
    ("maxpool2d((5, 4), stride=(2, 4), padding=(2, 1), dilation=2, ceil_mode=true)",
     nn.MaxPool2d((5, 4), (2, 4), (2, 1), 2, ceil_mode=True), (1, 6, 4)),
    ("avgpool2d(2, padding=1)", nn.AvgPool2d(2, padding=1), (3, 5, 5)),
    ("avgpool2d(2, padding=2)", nn.AvgPool2d(2, padding=2), (3, 5, 5)),
    ("adaptive_avgpool2d((3, 2))", nn.AdaptiveAvgPool2d((3, 2)), (3, 7, 9)),
    ("adaptive_maxpool2d(4)", nn.AdaptiveMaxPool2d(4), (3, 7, 9)),
    ("linear(7)", nn.Linear(5, 7), (5,)),
    ("linear(7, bias=false)", nn.Linear(5, 7, bias=False), (3, 5)),
    ("flatten", nn.Flatten(), (3, 4, 5)),
    ("batchnorm2d", nn.BatchNorm2d(3), (3, 4, 5)),
    ("batchnorm2d(affine=false)", nn.BatchNorm2d(3, affine=False), (3, 4, 5)),
    ("batchnorm1d", nn.BatchNorm1d(6), (6,)),
    ("batchnorm1d", nn.BatchNorm1d(6), (6, 4)),
    ("dropout(0.1)", nn.Dropout(0.1), (3, 4, 5)),
    ("gelu", nn.GELU(), (3, 4)),
]


@pytest.mark.parametrize("layer, module, shape", LAYER_CASES, ids=[f"{c[0]} on {list(c[2])}" for c in LAYER_CASES])
def test_layer_against_torch(layer, module, shape):
    try:
        y = module.eval()(torch.zeros(2, *shape))
        want = tuple(y.shape[1:]) if y.numel() else None
    except RuntimeError:
        want = None
    dims = ", ".join(map(str, shape))
    text = f"network n() {{ input [{dims}]  {layer} }}"
    if want is None:
        with pytest.raises(archspec.ArchError):
            archspec.loads(text)
        return
    spec = archspec.loads(text)
    assert spec.output_shape == want
    assert spec.params == n_params(module)
    assert spec.macs * 2 == hooked_macs(module, torch.zeros(2, *shape))
