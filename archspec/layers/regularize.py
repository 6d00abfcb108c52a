"""Regularisation: active in training only, the identity in eval mode."""

from __future__ import annotations

from . import Arg, Layer, need_rank, register, same


def _dropout2d_shape(a, x):
    need_rank(x, "dropout2d", (2, 3), "a (channels, height, width) or (channels, length) input")
    return x


register(
    Layer("dropout", "zero each value with probability p in training, scaling the rest by 1/(1-p)",
          (Arg("p", "prob", 0.5),), same, "nn.Dropout",
          functional=lambda a, x: f"nn.functional.dropout({x}, p={a['p']!r}, training=self.training)",
          category="regularisation"),
    Layer("dropout2d", "zero whole channels with probability p in training", (Arg("p", "prob", 0.5),),
          _dropout2d_shape, "nn.Dropout2d",
          functional=lambda a, x: f"nn.functional.dropout2d({x}, p={a['p']!r}, training=self.training)",
          category="regularisation"),
    Layer("stochastic_depth", "drop the residual branch with probability p in training, per sample (`row`) or "
          "for the whole batch (`batch`); torchvision.ops.StochasticDepth",
          (Arg("p", "prob"), Arg("mode", "str", "row", choices=("row", "batch"))), same, "StochasticDepth",
          functional=lambda a, x: f'stochastic_depth({x}, {a["p"]!r}, "{a["mode"]}", self.training)',
          helpers=("stochastic_depth", "StochasticDepth"), category="regularisation"),
)
