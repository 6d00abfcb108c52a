"""`archspec diff A.arch[:NET] [B.arch[:NET]]`: what changed between two networks, module by module.

The two networks' dataflow graphs are walked (ir.walk) and their modules (layers, blocks, named
containers) matched by module path, the state_dict prefix: a module is added, removed, or changed in
its layer, arguments, output shape, parameters, MACs or receptive field. Then the totals. Exit 0 when
the networks are the same (every node, argument, shape and wire), 1 when they differ, as diff(1)
does, and 2 when either side cannot be built (its errors reported as `check` reports them) or on a
usage or I/O error: like diff(1)'s "trouble", so that 1 always means "they differ".
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from ..errors import EXIT_OK, EXIT_SPEC, EXIT_USAGE, ArchError, Diagnostic, Sources, Span

FIELDS = ("layer", "output_shape", "params", "macs", "receptive_field")  # compared per module, in this order


def add_parser(sub) -> None:
    from ..cli import _assignment, _positive, _spec_options

    p = sub.add_parser("diff", help="what changed between two networks, module by module: shapes, parameters, "
                       "MACs, receptive fields, and the totals")
    p.add_argument("a", metavar="A.arch[:NET]", help="the first spec (FILE:NET picks one of its networks)")
    p.add_argument("b", metavar="B.arch[:NET]", nargs="?", help="the second spec (default: the first again)")
    _spec_options(p)
    p.add_argument("--depth", type=_positive, default=1,
                   help="list modules this deep in nested blocks (default 1, as summary); the counts and the exit "
                        "status always take in the whole network")
    p.add_argument("--network-b", metavar="NAME", help="B's network (default: --network)")
    p.add_argument("--set-b", dest="overrides_b", action="append", type=_assignment, default=[],
                   metavar="NAME=VALUE", help="override a parameter of B only (after --set, which sets both)")
    p.add_argument("--format", choices=("text", "json"), default="text")


@dataclass
class Side:
    label: str  # as the user named it: FILE or FILE:NET
    file: str
    network: str | None
    overrides: dict[str, str]


def run(args: argparse.Namespace) -> int:
    from ..cli import fail, promote, report, status

    a = _side(args.a, args.network, dict(args.overrides))
    b_overrides = {**dict(args.overrides), **dict(args.overrides_b)}
    if args.b is None:  # the same file again: another network of it, or other overrides
        b = Side(args.a, a.file, args.network_b or a.network, b_overrides)
    else:
        b = _side(args.b, args.network_b or args.network, b_overrides)
    sources = Sources()
    specs, diags = [], []
    for side in (a, b):
        try:
            spec = _build(side, args, sources)
        except ArchError as exc:
            diags += exc.diagnostics
            continue
        specs.append(spec)
        diags += promote(list(spec.warnings), args.werror)
    diags = list(dict.fromkeys(diags))  # the same file twice: its warnings once
    if status(diags) != EXIT_OK or len(specs) < 2:
        return fail(args, diags, sources, EXIT_USAGE)
    report(diags, sources)  # warnings, on stderr
    result = compare(specs[0].network, specs[1].network, a.label, b.label, args.depth)
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.format == "json" else as_text(result))
    return EXIT_OK if result["same"] else EXIT_SPEC


def _side(text: str, network: str | None, overrides: dict[str, str]) -> Side:
    """FILE or FILE:NET; a path that exists is a file even with a colon in its name."""
    if not os.path.exists(text) and ":" in text:
        file, net = text.rsplit(":", 1)
        if net.isidentifier():
            return Side(text, file, net, overrides)
    return Side(text, text, network, overrides)


def _build(side: Side, args: argparse.Namespace, sources: Sources):
    from ..api import build, overrides_from
    from ..loader import load_file
    from ..passes import resolve

    try:
        program = resolve(load_file(side.file, sources, args.allow_import_outside))
        return build(program, sources, side.network, overrides_from(texts=side.overrides, input=args.input))
    except RecursionError:
        raise ArchError(Diagnostic("E005", "the spec is nested too deeply to analyse", Span(side.file),
                                   io=True)) from None


# ---- the comparison: pure, IR in, a JSON-ready dict out ------------------------------------------

def compare(na, nb, label_a: str = "A", label_b: str = "B", depth: int = 1 << 30) -> dict[str, Any]:
    """Two networks with shapes -> what differs, as data (the JSON of `archspec diff --format json`): the
    modules that differ down to `depth` (1: the network's own), the counts and totals over all of them."""
    ma, mb = _modules(na), _modules(nb)
    order = _merged(list(ma), list(mb))
    modules, counts = [], {"added": 0, "removed": 0, "changed": 0, "unchanged": 0}
    for path in order:
        x, y = ma.get(path), mb.get(path)
        changed = [f for f in FIELDS if x and y and x[f] != y[f]] + (["arguments"] if x and y and
                                                                     x["_args"] != y["_args"] else [])
        kind = "removed" if y is None else "added" if x is None else "changed" if changed else "unchanged"
        counts[kind] += 1
        if kind != "unchanged" and (x or y)["depth"] <= depth:
            modules.append({"path": path, "change": kind, "fields": changed, "a": _public(x), "b": _public(y)})
    ta, tb = _totals(na), _totals(nb)
    wiring = _wiring(na) != _wiring(nb)
    same = not modules and ta == tb and not wiring
    totals = {k: {"a": ta[k], "b": tb[k], **({"delta": tb[k] - ta[k]} if _ints(ta[k], tb[k]) else {})}
              for k in ta}
    return {"a": _about(na, label_a), "b": _about(nb, label_b), "same": same, "counts": counts,
            "modules": modules, "totals": totals, "wiring_differs": wiring and not modules}


def _modules(net) -> dict[str, dict[str, Any]]:
    """Every node with a module path, in execution order: its summary row's figures and its arguments."""
    from .. import ir
    from ..summary import rows

    args = {n.path: repr(sorted(n.args.items())) for n in ir.walk(net.graph) if n.path}
    out = {}
    for r in rows(net, depth=1 << 30):
        if r["path"]:
            out[r["path"]] = {"layer": r["call"], "kind": r["kind"], "depth": r["depth"],
                              "output_shape": r["output_shape"], "params": r["params"], "macs": r["macs"],
                              "receptive_field": r["receptive_field"], "activation_bytes": r["activation_bytes"],
                              "_args": args[r["path"]]}
    return out


def _public(m: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if m is None else {k: v for k, v in m.items() if not k.startswith("_")}


def _merged(pa: list[str], pb: list[str]) -> list[str]:
    """The paths of both sides in one order: A's, with B's new ones where B has them."""
    out: list[str] = []
    for _, i1, i2, j1, j2 in difflib.SequenceMatcher(None, pa, pb, autojunk=False).get_opcodes():
        out += pa[i1:i2] + [p for p in pb[j1:j2] if p not in pa[i1:i2]]
    return list(dict.fromkeys(out))


def _totals(net) -> dict[str, Any]:
    from .. import ir
    from ..summary import as_dict

    d = as_dict(net, depth=1)
    return {"params": d["totals"]["params"], "macs": d["totals"]["macs"],
            "activation_bytes": d["totals"]["activation_bytes"], "input": d["input"],
            "output_shape": d.get("outputs", d["output_shape"]), "layers": sum(1 for _ in ir.layers(net.graph))}


def _wiring(net) -> list:
    """Each node's kind, op, arguments and inputs, in execution order: the graph itself, paths aside."""
    from .. import ir

    return [(n.kind, n.op, repr(sorted(n.args.items())), n.inputs, n.training_only) for n in ir.walk(net.graph)]


def _about(net, label: str) -> dict[str, Any]:
    return {"label": label, "file": net.file, "network": net.name, "overrides": dict(net.overrides)}


def _ints(x: Any, y: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in (x, y))


# ---- text ------------------------------------------------------------------------------------

MARK = {"added": "+", "removed": "-", "changed": "~"}


def as_text(d: dict[str, Any]) -> str:
    from ..summary import rf_text, show_shape

    a, b = d["a"], d["b"]
    lines = [f"--- {_title(a)}", f"+++ {_title(b)}", ""]
    if d["modules"]:
        table = [("", "path", "layer", "output shape", "params", "MACs", "RF size/stride")]
        show = {"layer": str, "output_shape": show_shape, "params": _num, "macs": _num, "receptive_field": rf_text}
        for m in d["modules"]:
            cells = []
            for f in FIELDS:
                x, y = (m["a"] or {}).get(f), (m["b"] or {}).get(f)
                if x is None or y is None or x == y:
                    cells.append(show[f](y if x is None else x))
                else:
                    cells.append(f"{show[f](x)} -> {show[f](y)}")
            if "arguments" in m["fields"] and "layer" not in m["fields"]:
                cells[0] += " (other arguments)"
            table.append((MARK[m["change"]], m["path"], *cells))
        widths = [max(len(r[i]) for r in table) for i in range(7)]
        for r in table:
            lines.append("  ".join(c.rjust(w) if i >= 4 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                         .rstrip())
        lines.append("")
    elif d["wiring_differs"]:
        lines += ["every module matches, but the graphs are wired differently (their add, mul or concat nodes, "
                  "or which tensors they read)", ""]
    lines += _totals_text(d)
    c = d["counts"]
    lines.append(f"modules      (all depths) {c['added']} added, {c['removed']} removed, {c['changed']} changed, "
                 f"{c['unchanged']} unchanged" + ("  (the same network)" if d["same"] else ""))
    return "\n".join(lines) + "\n"


def _title(side: dict[str, Any]) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in side["overrides"].items())
    return f"{side['network']} ({side['file']}{', ' + extra if extra else ''})"


def _totals_text(d: dict[str, Any]) -> list[str]:
    from ..summary import show_shape

    def shape(v: Any) -> str:
        return ", ".join(f"{k} {show_shape(s)}" for k, s in v.items()) if isinstance(v, dict) else show_shape(v)

    out = []
    for key, name, fmt in (("input", "input", shape), ("output_shape", "output", shape), ("params", "params", _num),
                           ("macs", "MACs", _num), ("activation_bytes", "activations", _mib),
                           ("layers", "layers", _num)):
        t = d["totals"][key]
        text = fmt(t["a"]) if t["a"] == t["b"] else f"{fmt(t['a'])} -> {fmt(t['b'])}"
        if "delta" in t and t["delta"]:
            pct = f", {100 * t['delta'] / t['a']:+.1f}%" if t["a"] else ""
            change = _mib(t["delta"], sign=True) if key == "activation_bytes" else f"{t['delta']:+,}"
            text += f"  ({change}{pct})"
        out.append(f"{name:<12} {text}")
    return out


def _num(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _mib(v: Any, sign: bool = False) -> str:
    if not isinstance(v, int):
        return str(v)
    plus = "+" if sign else ""
    return f"{v / 2**20:{plus}.2f} MiB" if abs(v) >= 2**20 // 100 else f"{v / 2**10:{plus}.1f} KiB"

