"""Activations: elementwise functions, and softmax along a dimension. None changes the shape."""

from __future__ import annotations

from . import Arg, Layer, Shape, ShapeProblem, dim_index, register, same, torch_dim


def _plain(name: str, doc: str, module: str, call: str, inplace: str | None = None, args=()) -> Layer:
    """An elementwise activation: `call` is its function, `{x}` the input, `{...}` its arguments."""
    return Layer(name, doc, args, same, module,
                 functional=lambda a, x: call.format(x=x, **a),
                 inplace=(lambda a, x: inplace.format(x=x, **a)) if inplace else None, category="activation")


def _softmax_shape(layer: str):
    def shape(a: dict, x: Shape) -> Shape:
        dim_index(a["dim"], x, layer)
        return x
    return shape


def _prelu_weights(a: dict, x: Shape) -> dict[str, Shape]:
    n = a["num_parameters"]
    if n != 1 and (not x or x[0] != n):
        raise ShapeProblem("E404", f"prelu: num_parameters {n} is neither 1 nor the channels {x[0] if x else 0}")
    return {"weight": (n,)}


DIM = Arg("dim", "dim", torch="dim", to_torch=torch_dim)

register(
    _plain("relu", "max(x, 0)", "nn.ReLU", "torch.relu({x})", "nn.functional.relu({x}, inplace=True)"),
    _plain("relu6", "min(max(x, 0), 6)", "nn.ReLU6", "nn.functional.relu6({x})",
           "nn.functional.relu6({x}, inplace=True)"),
    _plain("leaky_relu", "x, or negative_slope * x below 0", "nn.LeakyReLU",
           "nn.functional.leaky_relu({x}, {negative_slope!r})", "nn.functional.leaky_relu({x}, {negative_slope!r}, "
           "inplace=True)", args=(Arg("negative_slope", "number", 0.01),)),
    _plain("elu", "x, or alpha * (exp(x) - 1) below 0", "nn.ELU", "nn.functional.elu({x}, {alpha!r})",
           args=(Arg("alpha", "number", 1.0),)),
    Layer("prelu", "leaky ReLU with a learned slope, one or one per channel",
          (Arg("num_parameters", "count", 1), Arg("init", "number", 0.25)), same, "nn.PReLU",
          weights=_prelu_weights, category="activation"),
    _plain("silu", "x * sigmoid(x) (swish)", "nn.SiLU", "nn.functional.silu({x})",
           "nn.functional.silu({x}, inplace=True)"),
    _plain("mish", "x * tanh(softplus(x))", "nn.Mish", "nn.functional.mish({x})"),
    _plain("hardswish", "x * relu6(x + 3) / 6", "nn.Hardswish", "nn.functional.hardswish({x})",
           "nn.functional.hardswish({x}, inplace=True)"),
    _plain("hardsigmoid", "relu6(x + 3) / 6", "nn.Hardsigmoid", "nn.functional.hardsigmoid({x})",
           "nn.functional.hardsigmoid({x}, inplace=True)"),
    _plain("sigmoid", "1 / (1 + exp(-x))", "nn.Sigmoid", "torch.sigmoid({x})"),
    _plain("tanh", "the hyperbolic tangent", "nn.Tanh", "torch.tanh({x})"),
    Layer("gelu", "x * Phi(x), exactly or by the tanh approximation",
          (Arg("approximate", "str", "none", choices=("none", "tanh")),), same, "nn.GELU",
          functional=lambda a, x: f"nn.functional.gelu({x})" if a["approximate"] == "none"
          else f'nn.functional.gelu({x}, approximate="tanh")', category="activation"),
    Layer("softmax", "softmax along a dimension (without the batch)", (DIM,), _softmax_shape("softmax"),
          "nn.Softmax", functional=lambda a, x: f"torch.softmax({x}, dim={torch_dim(a['dim'])})",
          category="activation"),
    Layer("log_softmax", "log of the softmax along a dimension (without the batch)", (DIM,),
          _softmax_shape("log_softmax"), "nn.LogSoftmax",
          functional=lambda a, x: f"torch.log_softmax({x}, dim={torch_dim(a['dim'])})", category="activation"),
    Layer("identity", "its input, unchanged", (), same, "nn.Identity", functional=lambda a, x: x,
          category="activation"),
)
