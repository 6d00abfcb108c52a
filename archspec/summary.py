"""A network with shapes -> the layer summary, as rows, JSON, or a text table (all pure)."""

from __future__ import annotations

from typing import Any, Iterator

from . import ir
from .errors import Diagnostic
from .layers import show


def rows(net: ir.Network, depth: int = 1) -> Iterator[dict[str, Any]]:
    """One row per node down to `depth`; depth 1 is the network body, children one deeper."""
    yield from _rows(net.root.children, 1, depth, net.batch)


def _rows(children, d: int, max_depth: int, batch: int) -> Iterator[dict[str, Any]]:
    for node in children:
        yield {
            "name": node.segment or "",
            "path": node.path,
            "op": node.op,
            "kind": node.kind,
            "call": describe(node),
            "depth": d,
            "output_shape": [batch, *node.out_shape],
            "params": node.params,
            "macs": node.macs * batch,
            "receptive_field": {"size": [node.rf[0], node.rf[1]], "stride": [node.rf[2], node.rf[3]]},
            "activation_bytes": node.activation_bytes * batch,
            "line": node.span.line,
        }
        if d < max_depth:
            yield from _rows(node.children, d + 1, max_depth, batch)


def describe(node: ir.Node) -> str:
    """The call as a person would write it: `conv2d(64, kernel=3, padding=1)`.

    Only the arguments the spec wrote appear, by position or keyword as written.
    """
    if node.kind not in ("layer", "block"):
        return node.kind
    shown = [n for n in node.written if n in node.args]
    parts = [_value(node.args[n]) if i < node.positional else f"{n}={_value(node.args[n])}"
             for i, n in enumerate(shown)]
    return f"{node.op}({', '.join(parts)})" if parts else node.op


def _value(v: Any) -> str:
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] and isinstance(v[0], int):
        return show(v[0])  # a square pair reads as one number, as written
    return show(v)


def as_dict(net: ir.Network, depth: int = 1) -> dict[str, Any]:
    b = net.batch
    return {
        "network": net.name,
        "file": net.file,
        "input": [b, *net.input_shape],
        "batch": b,
        "overrides": dict(net.overrides),
        "layers": [{k: v for k, v in r.items() if k != "line"} for r in rows(net, depth)],
        "output_shape": [b, *net.root.out_shape],
        "totals": {
            "params": net.root.params,
            "macs": net.root.macs * b,
            "activation_bytes": net.root.activation_bytes * b,
        },
        "warnings": [w.message for w in net.warnings],
    }


def _rf(r: dict) -> str:
    (h, w), (sh, sw) = r["size"], r["stride"]
    return f"{h}x{w}/{sh}" if sh == sw else f"{h}x{w}/{sh}x{sw}"


def as_text(net: ir.Network, depth: int = 1) -> str:
    table = [("name", "layer", "output shape", "params", "MACs", "RF size/stride")]
    for r in rows(net, depth):
        indent = "  " * (r["depth"] - 1)
        table.append((indent + (r["name"] or "·"), indent + r["call"], show_shape(r["output_shape"]),
                      f"{r['params']:,}", f"{r['macs']:,}", _rf(r["receptive_field"])))
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    right = (False, False, False, True, True, True)
    lines = []
    for row in table:
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)]
        lines.append("  ".join(cells).rstrip())
    total = net.root
    b = net.batch
    head = f"{net.name} ({net.file}): input {show_shape([b, *net.input_shape])}"
    if net.overrides:
        head += ", " + ", ".join(f"{k}={v}" for k, v in net.overrides.items())
    rule = "-" * len(lines[0])
    foot = [
        f"output {show_shape([b, *total.out_shape])}",
        f"params {total.params:,}  ({_si(total.params)})",
        f"MACs {total.macs * b:,}  ({_si(total.macs * b)}, batch {b})",
        f"activations {_mib(total.activation_bytes * b)} (fp32, batch {b})",
    ]
    return "\n".join([head, "", lines[0], rule, *lines[1:], rule, *foot]) + "\n"


def show_shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _si(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def one_line(net: ir.Network) -> str:
    t = net.root
    return (f"{net.file}: {net.name}: ok, input {show_shape([net.batch, *net.input_shape])} -> output "
            f"{show_shape([net.batch, *t.out_shape])}, {t.params:,} params, {_si(t.macs * net.batch)} MACs")


__all__ = ["rows", "as_dict", "as_text", "one_line", "describe", "show_shape", "Diagnostic"]
