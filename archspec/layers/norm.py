"""Normalisation: batch (trained, or frozen as torchvision's detection backbones), layer (channels last, or
channels first as ConvNeXt), group and instance norm."""

from __future__ import annotations

from math import prod

from . import Arg, Layer, Shape, ShapeProblem, channels, image, need_rank, register, same


def _norm_args(momentum: bool = True, affine: bool = True) -> tuple[Arg, ...]:
    args = (Arg("eps", "epsilon", 1e-5),)
    if momentum:
        args += (Arg("momentum", "optional_fraction", 0.1),)
    return args + (Arg("affine", "bool", affine),)


def batchnorm(layer: str, ranks: tuple[int, ...], what: str):
    def shape(a: dict, x: Shape) -> Shape:
        need_rank(x, layer, ranks, what)
        return x
    return shape


def _running(a: dict, x: Shape) -> dict[str, Shape]:
    return {"running_mean": (x[0],), "running_var": (x[0],), "num_batches_tracked": ()}


def _affine(a: dict, x: Shape) -> dict[str, Shape]:
    return channels(a, x) if a["affine"] else {}


def _frozen(a: dict, x: Shape) -> dict[str, Shape]:
    """torchvision.ops.FrozenBatchNorm2d: the affine terms are buffers too, so nothing is learned."""
    return {"weight": (x[0],), "bias": (x[0],), "running_mean": (x[0],), "running_var": (x[0],)}


def layernorm_shape(a: dict, x: Shape) -> Shape:
    if not 1 <= a["dims"] <= len(x):
        raise ShapeProblem("E405", f"layernorm: cannot normalise over the last {a['dims']} dimensions of an input "
                                   f"of shape {list(x)}")
    return x


def _normalized(a: dict, x: Shape) -> tuple[int, ...]:
    return tuple(x[len(x) - a["dims"]:])


def layernorm_weights(a: dict, x: Shape) -> dict[str, Shape]:
    if not a["affine"]:
        return {}
    return {"weight": _normalized(a, x), **({"bias": _normalized(a, x)} if a["bias"] else {})}


def layernorm2d_shape(a: dict, x: Shape) -> Shape:
    image(x, "layernorm2d")
    return x


def groupnorm_shape(a: dict, x: Shape) -> Shape:
    need_rank(x, "groupnorm", (1, 2, 3, 4), "a (channels, ...) input")
    if x[0] % a["num_groups"]:
        raise ShapeProblem("E404", f"groupnorm: num_groups {a['num_groups']} does not divide the channels {x[0]}")
    return x


def instancenorm_shape(a: dict, x: Shape) -> Shape:
    image(x, "instancenorm2d")
    if prod(x[1:]) < 2:
        raise ShapeProblem("E401", f"instancenorm2d: needs more than one value per channel, got {list(x)}")
    return x


register(
    Layer("batchnorm2d", "batch normalisation of a (C, H, W) input, per channel", _norm_args(),
          batchnorm("batchnorm2d", (3,), "a (channels, height, width) input"), "nn.BatchNorm2d", weights=_affine,
          buffers=_running, inferred=lambda a, x: {"num_features": x[0]}, fresh=True, category="normalisation"),
    Layer("batchnorm1d", "batch normalisation of a (features,) or (channels, length) input", _norm_args(),
          batchnorm("batchnorm1d", (1, 2), "a (features,) or (channels, length) input"), "nn.BatchNorm1d",
          weights=_affine, buffers=_running, inferred=lambda a, x: {"num_features": x[0]}, fresh=True,
          category="normalisation"),
    Layer("frozen_batchnorm2d", "batch normalisation with fixed statistics and affine terms, all buffers "
          "(torchvision.ops.FrozenBatchNorm2d, as detection backbones use)", (Arg("eps", "epsilon", 1e-5),),
          batchnorm("frozen_batchnorm2d", (3,), "a (channels, height, width) input"), "FrozenBatchNorm2d",
          buffers=_frozen, inferred=lambda a, x: {"num_features": x[0]}, fresh=True, helpers=("FrozenBatchNorm2d",),
          category="normalisation"),
    Layer("layernorm", "layer normalisation over the last `dims` dimensions (channels last)",
          (Arg("dims", "count", 1, torch=None), Arg("eps", "epsilon", 1e-5),
           Arg("affine", "bool", True, torch="elementwise_affine"), Arg("bias", "bool", True)),
          layernorm_shape, "nn.LayerNorm", weights=layernorm_weights,
          inferred=lambda a, x: {"normalized_shape": _normalized(a, x) if a["dims"] > 1 else x[-1]}, fresh=True,
          category="normalisation"),
    Layer("layernorm2d", "layer normalisation over the channels of a (C, H, W) input (ConvNeXt's LayerNorm2d)",
          (Arg("eps", "epsilon", 1e-5), Arg("affine", "bool", True, torch="elementwise_affine")),
          layernorm2d_shape, "LayerNorm2d", weights=_affine, inferred=lambda a, x: {"normalized_shape": x[0]},
          fresh=True, helpers=("LayerNorm2d",), category="normalisation"),
    Layer("groupnorm", "group normalisation: channels in `num_groups` groups",
          (Arg("num_groups", "count"), Arg("eps", "epsilon", 1e-5), Arg("affine", "bool", True)),
          groupnorm_shape, "nn.GroupNorm", weights=_affine, inferred=lambda a, x: {"num_channels": x[0]},
          fresh=True, category="normalisation"),
    Layer("instancenorm2d", "instance normalisation of a (C, H, W) input",
          (Arg("eps", "epsilon", 1e-5), Arg("momentum", "optional_fraction", 0.1), Arg("affine", "bool", False),
           Arg("track_running_stats", "bool", False)),
          instancenorm_shape, "nn.InstanceNorm2d", weights=_affine,
          buffers=lambda a, x: _running(a, x) if a["track_running_stats"] else {},
          inferred=lambda a, x: {"num_features": x[0]}, fresh=True, category="normalisation"),
)
__all__ = ["same"]
