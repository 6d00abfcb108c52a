"""Random chains of layers, written twice: as a spec, and as a plain torch nn.Sequential built here by
hand from the same choices (not by archspec's code generator). tests/test_fuzz.py compares the two:
whether torch accepts the chain, every shape, the parameters, the MACs, and the ONNX export's
outputs in onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st


@dataclass(frozen=True)
class Layer:
    spec: str  # as a spec writes it
    kind: str
    args: tuple  # what the torch constructor gets, besides the input channels


def _pair(draw, lo: int, hi: int):
    a = draw(st.integers(lo, hi))
    return a if draw(st.booleans()) else (a, draw(st.integers(lo, hi)))


def _text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "(" + ", ".join(map(_text, v)) + ")"
    return str(v)


def _call(name: str, positional: list, **kw) -> str:
    parts = [_text(v) for v in positional] + [f"{k}={_text(v)}" for k, v in kw.items()]
    return f"{name}({', '.join(parts)})" if parts else name


@st.composite
def layers(draw) -> Layer:
    kind = draw(st.sampled_from(["conv2d", "maxpool2d", "avgpool2d", "adaptive_avgpool2d", "adaptive_maxpool2d",
                                 "batchnorm2d", "relu", "sigmoid", "gelu"]))
    if kind == "conv2d":
        out = draw(st.sampled_from([1, 2, 4, 6]))
        k, s, p, d = _pair(draw, 1, 4), _pair(draw, 1, 3), _pair(draw, 0, 2), _pair(draw, 1, 2)
        g = draw(st.sampled_from([1, 1, 2]))
        bias = draw(st.booleans())
        return Layer(_call("conv2d", [out], kernel=k, stride=s, padding=p, dilation=d, groups=g, bias=bias),
                     kind, (out, k, s, p, d, g, bias))
    if kind in ("maxpool2d", "avgpool2d"):
        k, s, p = _pair(draw, 1, 4), _pair(draw, 1, 3), _pair(draw, 0, 2)
        ceil = draw(st.booleans())
        if kind == "maxpool2d":
            d = _pair(draw, 1, 2)
            return Layer(_call(kind, [], kernel=k, stride=s, padding=p, dilation=d, ceil_mode=ceil), kind,
                         (k, s, p, d, ceil))
        cip = draw(st.booleans())
        return Layer(_call(kind, [], kernel=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip), kind,
                     (k, s, p, ceil, cip))
    if kind.startswith("adaptive"):
        size = _pair(draw, 1, 6)
        return Layer(_call(kind, [size]), kind, (size,))
    return Layer(kind, kind, ())


@st.composite
def chains(draw) -> tuple[tuple[int, int, int], list[Layer], int | None]:
    """(input C, H, W), the layers, and the width of a final flatten + linear (or None)."""
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 16)), draw(st.integers(1, 16)))
    chain = draw(st.lists(layers(), min_size=1, max_size=4))
    head = draw(st.sampled_from([None, 3]))
    return shape, chain, head


def spec_text(shape, chain: list[Layer], head: int | None) -> str:
    body = "".join(f"    {layer.spec}\n" for layer in chain)
    if head:
        body += f"    flatten\n    linear({head})\n"
    return f"network diff() {{\n    input [{', '.join(map(str, shape))}]\n{body}}}\n"


def reference(shape, chain: list[Layer], head: int | None):
    """The chain as torch modules, built by hand; raises whatever torch raises for an invalid chain."""
    import torch
    from torch import nn

    mods: list[nn.Module] = []
    x = torch.zeros(1, *shape)
    for layer in chain:
        m = _module(layer, x.shape[1])
        x = m.eval()(x)
        mods.append(m)
    if head:
        mods += [nn.Flatten(), nn.Linear(x[0].numel(), head)]
    net = nn.Sequential(*mods).eval()
    net(torch.zeros(1, *shape))
    with torch.no_grad():  # statistics away from their defaults, so batch norm computes something
        g = torch.Generator().manual_seed(0)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net


def _module(layer: Layer, c: int):
    from torch import nn

    a = layer.args
    if layer.kind == "conv2d":
        return nn.Conv2d(c, a[0], a[1], a[2], a[3], a[4], a[5], a[6])
    if layer.kind == "maxpool2d":
        return nn.MaxPool2d(a[0], a[1], a[2], a[3], ceil_mode=a[4])
    if layer.kind == "avgpool2d":
        return nn.AvgPool2d(a[0], a[1], a[2], ceil_mode=a[3], count_include_pad=a[4])
    if layer.kind == "adaptive_avgpool2d":
        return nn.AdaptiveAvgPool2d(a[0])
    if layer.kind == "adaptive_maxpool2d":
        return nn.AdaptiveMaxPool2d(a[0])
    if layer.kind == "batchnorm2d":
        return nn.BatchNorm2d(c)
    return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}[layer.kind]()
