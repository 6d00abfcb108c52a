"""Definitions a generated file carries when its network needs them: modules and functions torch
does not have under those names (ConvNeXt's LayerNorm2d, torchvision's Permute, StochasticDepth
and channel_shuffle), written as torchvision writes them, so the file needs torch alone.

A layer record names the helpers it needs (archspec/layers/); a helper may need others first.
"""

from __future__ import annotations

HELPERS: dict[str, tuple[tuple[str, ...], str]] = {
    # name: (helpers it needs, its source)
    "LayerNorm2d": ((), '''class LayerNorm2d(nn.LayerNorm):
    """Layer normalisation over the channels of an (N, C, H, W) tensor (torchvision's, ConvNeXt)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)'''),
    "Permute": ((), '''class Permute(nn.Module):
    """torch.permute as a module (torchvision.ops.misc.Permute)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)'''),
    "Transpose": ((), '''class Transpose(nn.Module):
    """Tensor.transpose as a module."""

    def __init__(self, dim0: int, dim1: int) -> None:
        super().__init__()
        self.dim0 = dim0
        self.dim1 = dim1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(self.dim0, self.dim1)'''),
    "Reshape": ((), '''class Reshape(nn.Module):
    """Tensor.reshape as a module, the batch dimension kept."""

    def __init__(self, shape: list[int]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape([x.shape[0]] + self.shape)'''),
    "Slice": ((), '''class Slice(nn.Module):
    """The range [start, end) of a dimension, as a module."""

    def __init__(self, start: int, end: int, dim: int = 1) -> None:
        super().__init__()
        self.start = start
        self.end = end
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.narrow(self.dim, self.start, self.end - self.start)'''),
    "Select": ((), '''class Select(nn.Module):
    """One index of a dimension, as a module."""

    def __init__(self, index: int, dim: int = 1) -> None:
        super().__init__()
        self.index = index
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.select(self.dim, self.index)'''),
    "Chunk": ((), '''class Chunk(nn.Module):
    """One of `chunks` parts of a dimension (torch.chunk), as a module."""

    def __init__(self, chunks: int, index: int, dim: int = 1) -> None:
        super().__init__()
        self.chunks = chunks
        self.index = index
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.chunk(self.chunks, dim=self.dim)[self.index]'''),
    "channel_shuffle": ((), '''def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of `groups` groups (torchvision's shufflenetv2.channel_shuffle)."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, num_channels, height, width)'''),
    "ChannelShuffle": (("channel_shuffle",), '''class ChannelShuffle(nn.Module):
    """channel_shuffle as a module."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)'''),
    "stochastic_depth": ((), '''def stochastic_depth(
    x: torch.Tensor, p: float, mode: str, training: bool = True
) -> torch.Tensor:
    """Drop the residual branch with probability p (torchvision.ops.stochastic_depth)."""
    if not training or p == 0.0:
        return x
    survival_rate = 1.0 - p
    size = [x.shape[0]] + [1] * (x.ndim - 1) if mode == "row" else [1] * x.ndim
    noise = torch.empty(size, dtype=x.dtype, device=x.device)
    noise = noise.bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return x * noise'''),
    "StochasticDepth": (("stochastic_depth",), '''class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth: the identity in eval mode."""

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stochastic_depth(x, self.p, self.mode, self.training)'''),
}


def needed(names: set[str]) -> list[str]:
    """The helpers `names` need, dependencies first, in a stable order."""
    out: list[str] = []

    def add(name: str) -> None:
        if name in out:
            return
        for dep in HELPERS[name][0]:
            add(dep)
        out.append(name)

    for name in sorted(names):
        add(name)
    return out


def source(name: str) -> str:
    return HELPERS[name][1]
