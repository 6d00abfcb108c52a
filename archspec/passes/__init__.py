"""The passes over one expanded network: plain IR -> IR functions, run in a plain loop.

Before them, `resolve` checks the whole program and `expand` builds the network's dataflow graph,
every node named (its module path) and shaped as it is made.
"""

from __future__ import annotations

from .. import ir
from .asserts import check_asserts
from .expand import Overrides, expand
from .infer import infer_shapes
from .resolve import resolve

PASSES = (infer_shapes, check_asserts)


@ir.collector_paused()
def run_passes(net: ir.Network) -> ir.Network:
    for p in PASSES:
        net = p(net)
    return net


__all__ = ["PASSES", "Overrides", "expand", "resolve", "run_passes"]
