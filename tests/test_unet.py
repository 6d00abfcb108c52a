"""specs/unet.arch against a U-Net written here in plain torch, as the paper describes it (padded)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import archspec  # noqa: E402


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, base: int = 64) -> None:
        super().__init__()
        widths = [base, base * 2, base * 4, base * 8]
        for i, w in enumerate(widths, start=1):
            self.add_module(f"enc{i}", double_conv(in_channels if i == 1 else widths[i - 2], w))
            self.add_module(f"pool{i}", nn.MaxPool2d(2))
        self.bottleneck = double_conv(widths[-1], base * 16)
        below = base * 16
        for i in (4, 3, 2, 1):
            w = widths[i - 1]
            self.add_module(f"up{i}", nn.ConvTranspose2d(below, w, 2, stride=2))
            self.add_module(f"dec{i}", double_conv(2 * w, w))
            below = w
        self.head = nn.Conv2d(base, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i in range(1, 5):
            x = getattr(self, f"enc{i}")(x)
            skips.append(x)
            x = getattr(self, f"pool{i}")(x)
        x = self.bottleneck(x)
        for i in (4, 3, 2, 1):
            x = getattr(self, f"up{i}")(x)
            x = torch.cat([skips[i - 1], x], dim=1)
            x = getattr(self, f"dec{i}")(x)
        return self.head(x)


@pytest.mark.parametrize("size", [(64, 64), (48, 80)], ids=["square", "not-square"])
def test_the_spec_is_the_paper_s_u_net(size):
    spec = archspec.load("specs/unet.arch", input=(1, *size), base=8)
    reference = UNet(base=8).eval()
    assert spec.params == sum(p.numel() for p in reference.parameters())
    assert list(spec.output_shape) == [2, *size]
    ours = spec.to_torch().eval()
    ours.load_state_dict(reference.state_dict(), strict=True)  # the same module names
    x = torch.randn(2, 1, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-6)


def test_the_full_size_network_has_the_paper_s_parameter_count():
    # padded 3x3 convolutions with biases, 2x2 transposed convolutions, a 1x1 head: 31,030,658
    assert archspec.load("specs/unet.arch").params == sum(p.numel() for p in UNet().parameters()) == 31_030_658
