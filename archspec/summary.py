"""A network with shapes -> the layer summary, as rows, JSON, or a text table (all pure).

Rows follow the dataflow graph: at depth 1 the network's own nodes (layers, blocks, named
containers, and the add/mul/concat that anonymous containers lower into), and, down to
`depth`, the nodes of each block's and named container's body, indented under it.
"""

from __future__ import annotations

from contextvars import ContextVar
from fractions import Fraction
from typing import Any, Iterator

from . import ir
from .errors import Diagnostic
from .sizes import Pretty, Size
from .values import show


def rows(net: ir.Network, depth: int = 1, size=str) -> Iterator[dict[str, Any]]:
    """One row per node down to `depth`; depth 1 is the network body, children one deeper. Symbolic
    sizes are written by `size` (exact text for JSON; sizes.Pretty for people)."""
    token = _SIZE.set(size)
    try:
        yield from _rows(net.graph, 1, depth, net.batch)
    finally:
        _SIZE.reset(token)


_SIZE: ContextVar = ContextVar("archspec_size_text", default=str)


def _rows(g: ir.Graph, d: int, max_depth: int, batch: int) -> Iterator[dict[str, Any]]:
    for node in g.nodes:
        if node.kind == "input":
            continue
        yield {
            "name": node.segment or "",
            "path": node.path,
            "op": node.op,
            "kind": node.kind,
            "call": describe(node),
            "depth": d,
            "output_shape": _dims([batch, *node.out_shape] if node.batched else node.out_shape),
            "params": node.params,
            "macs": _figure(node.macs * batch),
            "receptive_field": {"size": [_number(node.rf[0]), _number(node.rf[1])],
                                "stride": [_number(node.rf[2]), _number(node.rf[3])]},
            "activation_bytes": _figure(node.activation_bytes * batch),
            "line": node.span.line,
            **({"training_only": True} if node.training_only else {}),
        }
        if d < max_depth and node.body is not None:
            yield from _rows(node.body, d + 1, max_depth, batch)


def _dims(shape) -> list:
    """A shape for JSON: ints, and the text of symbolic sizes (`"H//4"`)."""
    return [_figure(d) for d in shape]


def _figure(x: Any) -> Any:
    return _SIZE.get()(x) if isinstance(x, Size) else x


def _number(x: Any) -> int | float | str:
    """A receptive-field figure for JSON: an int, or a float where upsampling made it a fraction
    (the text of a symbolic size where the field is the whole input)."""
    if isinstance(x, Size):
        return _SIZE.get()(x)
    x = Fraction(x)
    return int(x) if x.denominator == 1 else float(x)


def describe(node: ir.GNode) -> str:
    """The call as a person would write it: `conv2d(64, kernel=3, padding=1)`.

    Only the arguments the spec wrote appear, by position or keyword as written.
    """
    if node.kind == "combine":
        dim = node.args.get("dim", 0)
        return f"concat(dim={dim})" if node.op == "concat" and dim else node.op
    if node.kind not in ("layer", "block"):
        return node.op
    shown = [n for n in node.written if n in node.args]
    parts = [_value(node.args[n]) if i < node.positional else f"{n}={_value(node.args[n])}"
             for i, n in enumerate(shown)]
    return f"{node.op}({', '.join(parts)})" if parts else node.op


def _value(v: Any) -> str:
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] and isinstance(v[0], int):
        return show(v[0])  # a square pair reads as one number, as written
    return show(v)


def _outputs(net: ir.Network) -> dict[str, list[int]]:
    g, b = net.graph, net.batch
    return {name or "output": _dims([b, *g.nodes[i].out_shape]) for name, i in g.outputs}


def as_dict(net: ir.Network, depth: int = 1) -> dict[str, Any]:
    b = net.batch
    out = {
        "network": net.name,
        "file": net.file,
        "input": _dims([b, *net.input_shape]),
        "batch": b,
        "overrides": dict(net.overrides),
        "layers": [{k: v for k, v in r.items() if k != "line"} for r in rows(net, depth)],
        "output_shape": _dims([b, *net.out_shape]),
        "totals": {
            "params": net.params,
            "macs": _figure(net.macs * b),
            "activation_bytes": _figure(net.activation_bytes * b),
        },
        "warnings": [w.message for w in net.warnings],
    }
    if len(net.graph.inputs) > 1:
        out["inputs"] = {name: _dims([b, *shape]) for name, shape in net.inputs}
    if len(net.graph.outputs) > 1:
        out["outputs"] = _outputs(net)
    return out


def rf_text(r: dict) -> str:
    (h, w), (sh, sw) = r["size"], r["stride"]
    return f"{_frac(h)}x{_frac(w)}/{_frac(sh)}" if sh == sw else f"{_frac(h)}x{_frac(w)}/{_frac(sh)}x{_frac(sw)}"


def _frac(x: int | float) -> str:
    if isinstance(x, (int, str)):
        return str(x)
    f = Fraction(x).limit_denominator(1 << 20)
    return f"{f.numerator}/{f.denominator}"


def as_text(net: ir.Network, depth: int = 1) -> str:
    pretty = Pretty(net)  # symbolic sizes as the constraints let a reader see them: H/16, 733888*H*W
    table = [("name", "layer", "output shape", "params", "MACs", "RF size/stride")]
    for r in rows(net, depth, pretty):
        indent = "  " * (r["depth"] - 1)
        call = r["call"] + (" (training)" if r.get("training_only") else "")
        table.append((indent + (r["name"] or "·"), indent + call, show_shape(r["output_shape"]),
                      _comma(r["params"]), _comma(r["macs"]), rf_text(r["receptive_field"])))
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    right = (False, False, False, True, True, True)
    lines = []
    for row in table:
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)]
        lines.append("  ".join(cells).rstrip())
    b = net.batch
    head = f"{net.name} ({net.file}): input {show_shape([b, *net.input_shape])}"
    if len(net.graph.inputs) > 1:
        head += " (" + ", ".join(f"{n} {show_shape([b, *s])}" for n, s in net.inputs) + ")"
    if net.overrides:
        head += ", " + ", ".join(f"{k}={v}" for k, v in net.overrides.items())
    rule = "-" * len(lines[0])
    if len(net.graph.outputs) > 1:
        outputs = "outputs " + ", ".join(f"{name or 'output'} {show_shape([b, *net.graph.nodes[i].out_shape], pretty)}"
                                         for name, i in net.graph.outputs)
    else:
        outputs = f"output {show_shape([b, *net.out_shape], pretty)}"
    foot = [
        outputs,
        f"params {net.params:,}  ({_si(net.params)})",
        f"MACs {net.macs * b:,}  ({_si(net.macs * b)}, batch {b})" if isinstance(net.macs, int) else
        f"MACs {pretty(net.macs * b)}  (batch {b})",
        f"activations {_mib(net.activation_bytes * b)} (fp32, batch {b})" if isinstance(net.activation_bytes, int)
        else f"activations {pretty(net.activation_bytes * b)} bytes (fp32, batch {b})",
    ]
    if net.sizes:
        found = pretty.found
        foot.append("sizes " + "; ".join(str(a) for a in found.variables) + "  (archspec sizes: which layers)")
    return "\n".join([head, "", lines[0], rule, *lines[1:], rule, *foot]) + "\n"


def show_shape(shape, size=str) -> str:
    return "[" + ", ".join(size(d) for d in shape) + "]"


def _si(n: int) -> str:
    if not isinstance(n, int):  # a symbolic size (archspec/sizes.py): its expression
        return str(n)
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _comma(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int) else str(x)


def _mib(n: int) -> str:
    if isinstance(n, Size):
        return f"{n} bytes"
    return f"{n / 2**20:.2f} MiB"


def one_line(net: ir.Network) -> str:
    pretty = Pretty(net)
    outs = "output " + show_shape([net.batch, *net.out_shape], pretty) if len(net.graph.outputs) == 1 else \
        f"{len(net.graph.outputs)} outputs"
    macs = _si(net.macs * net.batch) if isinstance(net.macs, int) else pretty(net.macs * net.batch)
    line = (f"{net.file}: {net.name}: ok, input {show_shape([net.batch, *net.input_shape])} -> {outs}, "
            f"{net.params:,} params, {macs} MACs")
    if net.sizes:
        line += " (" + "; ".join(str(a) for a in pretty.found.variables) + ")"
    return line


__all__ = ["rows", "as_dict", "as_text", "one_line", "describe", "show_shape", "Diagnostic"]
