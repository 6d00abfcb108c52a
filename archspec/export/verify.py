"""Verification: every artifact computes what the torch module computes, on the same input.

Eval mode, batch 1 and a larger batch, fp32 tolerances stated per output. A mismatch names
the first layer, in execution order, whose output parts from the module's, found by
comparing intermediate outputs (module hooks against extra ONNX graph outputs).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .. import ir
from ..errors import Span, error, foreign_text
from .pt2 import example_input

RTOL, ATOL = 1e-4, 1e-5


@dataclass
class Check:
    artifact: str
    batch: int
    max_abs: float
    ok: bool
    shape: tuple = ()  # the input's shape without the batch (two of them for `input [3, H, W]`)


def arrays(y) -> list[np.ndarray]:
    """A module's outputs as float32 arrays, in the network's output order: one tensor, or the dict of a
    network with several outputs (the order ONNX gives them in)."""
    values = list(y.values()) if isinstance(y, dict) else list(y) if isinstance(y, (tuple, list)) else [y]
    return [v.float().cpu().numpy() for v in values]


def close(a: np.ndarray, b: np.ndarray, rtol: float = RTOL, atol: float = ATOL) -> bool:
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b)))


def verify(module: torch.nn.Module, net: ir.Network, runners: dict[str, Callable[[np.ndarray], np.ndarray]],
           batches: tuple[int, ...], onnx_path: str | None = None, providers: list[str] | None = None,
           rtol: float = RTOL, atol: float = ATOL) -> list[Check]:
    """Run every artifact; raise E607 at the first that disagrees with the module."""
    module.eval()
    checks = []
    for batch in batches:
        x = example_input(net.input_shape, batch, seed=1234 + batch).numpy()
        param = next(module.parameters(), None)
        with torch.no_grad():
            xt = torch.from_numpy(x)
            if param is not None:
                xt = xt.to(param.device, param.dtype)
            want = arrays(module(xt))
        for name, run in runners.items():
            try:
                got = run(x)  # the artifact's outputs, in order (one array for one output)
            except Exception as exc:  # an artifact that cannot run an input the module runs is wrong too
                raise error("E607", f"{name} fails on an input the torch module takes (batch {batch}, input "
                                    f"{'x'.join(map(str, net.input_shape))}): {foreign_text(exc)}",
                            Span(net.file)) from None
            got = [got] if isinstance(got, np.ndarray) else got
            same = len(got) == len(want) and all(g.shape == w.shape for g, w in zip(got, want))
            diff = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want)) if same else float("inf")
            ok = same and all(close(g, w, rtol, atol) for g, w in zip(got, want))
            checks.append(Check(name, batch, diff, ok, tuple(net.input_shape)))
            if not ok:
                where = ""
                if name == "onnx" and onnx_path:
                    layer = first_divergence(module, net, onnx_path, x, providers, rtol, atol)
                    if layer is not None:
                        where = f"; the first layer whose output differs is `{layer.path}` ({layer.op} at " \
                                f"{layer.span.file}:{layer.span.line})"
                raise error("E607", f"{name} output differs from the torch module at batch {batch}: max abs "
                                    f"difference {diff:.3g} (tolerance rtol {rtol:g}, atol {atol:g}){where}",
                            Span(net.file))
    return checks


def check_module(module: torch.nn.Module, net: ir.Network, batch: int = 2) -> None:
    """Check the module against a second reading of the spec: an interpreter that walks the dataflow
    graph, runs each layer with the module's own submodule at that path (its weights) or, for layers
    the module computes inline, one built from the same registry, and combines branches as the graph
    says. Every node's output shape must be the one archspec inferred, and the module's outputs must
    equal the interpreter's: so the generated forward wires the spec as written. Raises E607 at the
    first difference, in execution order."""
    subs = dict(module.named_modules())
    params = dict(module.named_parameters())
    was_training = module.training
    module.eval()
    try:
        xs = [example_input(net.graph.nodes[i].out_shape, batch, seed=k) for k, i in enumerate(net.graph.inputs)]
        with torch.no_grad():
            try:
                want = _run_graph(net.graph, [x.clone() for x in xs], subs, params, batch)
            except RuntimeError as exc:  # torch refused a layer the spec describes: a bug in a shape rule
                raise error("E607", f"running the spec layer by layer fails: {foreign_text(exc)}",
                            Span(net.file)) from None
            try:
                got = module(*[x.clone() for x in xs])
            except RuntimeError as exc:
                raise error("E607", f"the torch module fails on an input of the spec's shape: "
                                    f"{foreign_text(exc)}", Span(net.file)) from None
    finally:
        module.train(was_training)
    names = [name for name, _ in net.graph.outputs]
    if isinstance(got, dict):
        pairs = [(name, got[name], w) for name, w in zip(names, want)]
    else:
        pairs = [("", got, want[0])]
    for name, g, w in pairs:
        if tuple(g.shape) != tuple(w.shape) or not torch.allclose(g, w, rtol=RTOL, atol=ATOL):
            diff = float((g - w).abs().max()) if g.shape == w.shape else float("inf")
            which = f"output `{name}`" if name else "output"
            raise error("E607", f"the torch module's {which} differs from the spec's, run layer by layer: max abs "
                                f"difference {diff:.3g} (shapes {list(g.shape)} and {list(w.shape)})", Span(net.file))


def _where(n: ir.GNode) -> str:
    return f"`{n.path or n.op}` ({n.op} at {n.span.file}:{n.span.line})"


def _run_graph(g: ir.Graph, xs: list, subs: dict, params: dict, batch: int) -> list:
    """The graph's outputs for its inputs `xs`: each node computed from its inputs' values."""
    values: list = [None] * len(g.nodes)
    for i, x in zip(g.inputs, xs):
        values[i] = x
    for i, n in enumerate(g.nodes):
        if n.kind == "input":
            continue
        ins = [values[j] for j in n.inputs]
        if n.kind == "combine":
            if n.op == "concat":
                d = n.args.get("dim", 0)
                ins = [v if g.nodes[j].batched else v.expand(batch, *v.shape[1:]) for j, v in zip(n.inputs, ins)]
                y = torch.cat(ins, dim=d + 1 if d >= 0 else d)
            else:
                y = ins[0]
                for other in ins[1:]:
                    y = y + other if n.op == "add" else y * other
        elif n.kind in ("block", "group"):
            (y,) = _run_graph(n.body, [ins[0]], subs, params, batch)
        elif n.op == "param":
            y = params[n.path]
        else:
            y = _run_layer(n, g, ins, subs)
        want = (batch, *n.out_shape) if n.batched else tuple(n.out_shape)
        if tuple(y.shape) != want:
            raise error("E607", f"the spec's {_where(n)} gives shape {list(y.shape)} when run, but archspec "
                                f"inferred {list(want)}", n.span)
        values[i] = y
    return [values[i] for _, i in g.outputs]


@functools.lru_cache(maxsize=1)
def _helpers() -> dict:
    import math

    from ..codegen import helpers

    namespace = {"nn": torch.nn, "torch": torch, "math": math}
    for name in helpers.needed(set(helpers.HELPERS)):
        exec(helpers.source(name), namespace)  # noqa: S102 (our own definitions)
    return namespace


def _run_layer(n: ir.GNode, g: ir.Graph, ins: list, subs: dict) -> torch.Tensor:
    """A layer run with the module's own submodule at its path, or one the registry writes for it."""
    from ..codegen import emit
    from ..codegen.symbolic import Scope, literal

    namespace = dict(_helpers())
    if emit.takes_tensors(n):
        names = [f"v{k}" for k in range(len(ins))]
        namespace.update(dict(zip(names, ins)))
        return eval(emit.functional(n, names[0], extra=names[1:]), namespace)  # noqa: S307 (our own table)
    layer = subs.get(n.path)
    if layer is None:
        x = g.nodes[n.inputs[0]].out_shape
        dims = (literal(x[0]), literal(x[-1])) if x else (literal(1), literal(1))
        text, _ = emit.constructor(n, g, Scope({}), dims)
        layer = eval(text, namespace).eval()  # noqa: S307 (our own table)
    x = ins[0].clone()  # a copy: an in-place layer must not change a tensor another branch reads
    call = emit.module_call(n, "m", "x")
    return layer(x) if call == "m(x)" else eval(call, {"m": layer, "x": x})  # noqa: S307 (our own table)


def first_divergence(module: torch.nn.Module, net: ir.Network, onnx_path: str, x: np.ndarray,
                     providers: list[str] | None, rtol: float, atol: float) -> ir.Node | None:
    """The first spec layer, in execution order, whose ONNX output differs from the module's."""
    import onnx
    import onnxruntime as ort

    captured: dict[str, np.ndarray] = {}

    def keep(name: str):
        def hook(m, args, out) -> None:  # returns None: a hook's return value would replace the output
            out = out[0] if isinstance(out, tuple) else out  # nn.MultiheadAttention's (output, weights)
            captured.setdefault(name, out.detach().float().cpu().numpy().copy())
        return hook

    hooks = [sub.register_forward_hook(keep(name)) for name, sub in module.named_modules() if name]
    param = next(module.parameters(), None)
    xt = torch.from_numpy(x) if param is None else torch.from_numpy(x).to(param.device, param.dtype)
    try:
        with torch.no_grad():
            module(xt)
    finally:
        for h in hooks:
            h.remove()
    model = onnx.load(onnx_path)
    last: dict[str, str] = {}
    for node in model.graph.node:
        path = next((p.value for p in node.metadata_props if p.key == "archspec.path"), "")
        if path and node.output:
            last[path] = node.output[0]
    layers = [n for n in ir.layers(net.graph) if n.path in last and n.path in captured]
    existing = {o.name for o in model.graph.output}
    for n in layers:
        if last[n.path] not in existing:
            model.graph.output.add(name=last[n.path])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    session = ort.InferenceSession(model.SerializeToString(), options, providers=providers or ["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = x.astype(np.float16) if param is not None and param.dtype == torch.float16 else x
    values = {k: v.astype(np.float32) for k, v in zip(names, session.run(None, {session.get_inputs()[0].name: feed}))}
    for n in layers:
        if not close(values[last[n.path]], captured[n.path], rtol, atol):
            return n
    return None
