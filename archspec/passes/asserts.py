"""Check `assert` statements once the static results are known: CI budgets on a network."""

from __future__ import annotations

from typing import Any

from .. import ir
from ..errors import ArchError, Diagnostic
from ..evaluate import evaluate, names_in
from ..values import show


def results(net: ir.Network) -> dict[str, Any]:
    """The names an assert can read; per sample (batch 1), so budgets do not move with --batch."""
    return {
        "params": net.params,
        "macs": net.macs,
        "output": list(net.out_shape),
        "input": list(net.input_shape),
        "activation_bytes": net.activation_bytes,
    }


def check_asserts(net: ir.Network) -> ir.Network:
    known = results(net)
    failed: list[Diagnostic] = []
    for stmt, env in net.asserts:
        scope = {**env, **known}
        if evaluate(stmt.test, scope):
            continue
        shown = [f"{n} = {_fmt(scope[n])}" for n in sorted(names_in(stmt.test)) if n in known]
        message = stmt.message or "assertion failed"
        failed.append(Diagnostic("E501", message + (f" ({', '.join(shown)})" if shown else ""), stmt.span))
    if failed:
        raise ArchError(failed)
    return net


def _fmt(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else show(v)
