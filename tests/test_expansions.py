"""A block call is expanded once per file (archspec/passes/expand.py `_Expanded`): a later call with the
same definition, arguments, input shape and depth reuses its body's graph, placed at its own module
path, its input's span and receptive field recomputed. These tests hold the reuse to what expanding
afresh makes: every node of every network of the zoo, and of specs made to trip it (calls that differ
only in an argument's type, in the receptive field reaching them, in the network's input size, in
their nesting depth), compared field by field against an expansion with reuse switched off.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from archspec.errors import Sources
from archspec.loader import load_file, load_text
from archspec.passes import resolve
from archspec.sizes import Size

expand_module = importlib.import_module("archspec.passes.expand")
ROOT = Path(__file__).resolve().parent.parent
ZOO = sorted([*ROOT.glob("specs/*.arch"), *ROOT.glob("specs/torchvision/*.arch")])


def _values(env: dict) -> dict:
    """The plain values of an environment (its lets' provenance and tensor names left out: they are
    chains of earlier environments, compared through the nodes that made them)."""
    return {k: v for k, v in env.items() if not k.startswith(("@", "#"))}


def _fields(graph, out: list, where: str = "") -> list:
    """Every node's fields, bodies walked; the provenance (guard, source) by what it holds."""
    for k, n in enumerate(graph.nodes):
        f = {a: b for a, b in n.__dict__.items() if a not in ("body", "source", "guard")}
        f["guard"] = [(s.span, taken, _values(env)) for s, taken, env in n.guard]
        f["source"] = None if n.source is None else (n.source[0], _values(n.source[1]))
        out.append((f"{where}{k}", f))
        if n.body is not None:
            _fields(n.body, out, f"{where}{k}/")
    out.append((where, graph.inputs, graph.outputs, graph.training))
    return out


def _networks(program) -> list[str]:
    return [n for n in program.own if program.definitions[n].kind == "network"]


def _expand(program, name: str, reuse: bool, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as m:
        if not reuse:
            m.setattr(expand_module, "_call_key", lambda *a: None)
            program = program.model_copy(update={"expansions": {}})
        with program.budget.active():
            return expand_module.expand(program, name)


def _compare(program, monkeypatch: pytest.MonkeyPatch) -> int:
    """Expand every network of `program` with reuse (one memo for them all, as `archspec check` does)
    and without; return how many block calls were reused."""
    reused = 0
    for name in _networks(program):
        before = len(program.expansions)
        got = _expand(program, name, True, monkeypatch)
        want = _expand(program, name, False, monkeypatch)
        a, b = _fields(got.graph, []), _fields(want.graph, [])
        assert len(a) == len(b), name
        for x, y in zip(a, b):
            assert x == y, f"{name}: node {x[0]} differs from a fresh expansion"
        assert [s for s, _ in got.asserts] == [s for s, _ in want.asserts]
        assert _constraints(got) == _constraints(want), f"{name}: the size constraints differ"
        reused += _count_blocks(got.graph) - (len(program.expansions) - before)
    return reused


def _constraints(net) -> list:
    return [(str(c.left), c.op, str(c.right), c.where, c.what) for c in net.constraints]


def _count_blocks(graph) -> int:
    return sum((n.kind == "block") + (_count_blocks(n.body) if n.body is not None else 0) for n in graph.nodes)


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.name)
def test_reused_block_calls_equal_fresh_ones_across_the_zoo(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = resolve(load_file(str(path.relative_to(ROOT)), Sources()))
    _compare(program, monkeypatch)


def test_the_zoo_reuses_most_block_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reuse is real: ResNet-152's 36 identical bottlenecks of its third stage expand once."""
    program = resolve(load_file("specs/torchvision/resnet.arch", Sources()))
    assert _compare(program, monkeypatch) > 100


TRIP = """
block unit(c: int, scale: float = 1.0, gate: bool = false) {
  conv2d(c, kernel=3, padding=1)
  if gate { sigmoid } else { relu }
  assert c * scale > 0, "scale must be positive"
}
block pair(c: int) {
  unit(c)
  @skip = identity
  add {
    unit(c)
    @skip
  }
}
block deep(c: int) { pair(c) }
network small() {
  input [3, 20, 24]
  unit(8)
  unit(8)                  # the same call: reused, a larger receptive field reaching it
  unit(8, scale=1)         # an int where the default is a float: typed the same, so the same call
  unit(8, gate=true)
  maxpool2d(2)
  unit(8)                  # the same arguments at another input size
  pair(8)
  deep(8)                  # pair's calls one level deeper
  named = seq {
    unit(8)
    unit(8)
  }
  flatten
  linear(10)
}
network large() {
  input [3, 64, 48]        # another network's whole input: every field through a linear differs
  pair(8)
  unit(8)
  flatten
  linear(10)
}
"""


def test_reused_calls_keep_their_own_paths_spans_and_receptive_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    program = resolve(load_text(TRIP, Sources(), "<trip>"))
    assert _compare(program, monkeypatch) >= 5
    net = _expand(program, "small", True, monkeypatch)
    units = [n for n in net.graph.nodes if n.op == "unit"]
    assert [n.path for n in units] == ["0", "1", "2", "3", "5"]
    entry_spans = {n.body.nodes[0].span.line for n in units}
    assert len(entry_spans) == 5, "each call's body starts at its own call"
    fields = [n.rf for n in units]
    assert fields[0] != fields[1], "the second call sees a larger receptive field"


SYMBOLIC = (TRIP.replace("input [3, 20, 24]", "input [3, H, W]").replace("input [3, 64, 48]", "input [3, H, W]")
            .replace("  flatten\n", "  adaptive_avgpool2d(1)\n  flatten\n")
            .replace("linear differs\n  pair(8)", "linear differs\n  unit(8)  # small's first call\n  pair(8)"))


def test_symbolic_sizes_reuse_calls_with_their_constraints(monkeypatch: pytest.MonkeyPatch) -> None:
    """With `input [3, H, W]` the constraints a body's layers make are the network's own (`archspec
    sizes` names the layer of each): a reused call replays them into the network reusing it, and the
    constraints are those a fresh expansion finds, each at the first layer that makes it."""
    program = resolve(load_text(SYMBOLIC, Sources(), "<symbolic>"))
    assert "small's first call" in SYMBOLIC
    _compare(program, monkeypatch)
    fresh = program.model_copy(update={"expansions": {}})
    _expand(fresh, "small", True, monkeypatch)
    kept = len(fresh.expansions)
    large = _expand(fresh, "large", True, monkeypatch)
    assert len(fresh.expansions) - kept < _count_blocks(large.graph), "large reuses a call small made"
    assert large.sizes == ("H", "W") and large.constraints


def _samples_agree(graph, values: dict) -> int:
    """Every symbolic size in the graph is decided at its own network's samples; returns how many."""
    seen = 0
    for n in graph.nodes:
        for d in n.out_shape:
            if isinstance(d, Size):
                assert d.sample == d.at(values), (n.path, str(d), d.sample, d.at(values))
                seen += 1
        if n.body is not None:
            seen += _samples_agree(n.body, values)
    return seen


def test_a_size_name_that_is_another_variable_is_another_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """`H` is the first size of one network and the second of another, whose `transpose` brings its
    input to the same text [3, H, W]: the samples its sizes are decided at differ, so its first call is
    not the other network's first call, though their keys would agree on the shapes' text alone."""
    spec = SYMBOLIC.replace("network large() {\n  input [3, H, W]",
                            "network large() {\n  input [3, W, H]\n  transpose(1, 2)")
    assert spec != SYMBOLIC
    program = resolve(load_text(spec, Sources(), "<swapped>"))
    _compare(program, monkeypatch)
    for name in ("small", "large"):
        net = _expand(program, name, True, monkeypatch)
        first = net.graph.nodes[net.graph.inputs[0]].out_shape
        values = {str(d): d.sample for d in first if isinstance(d, Size)}
        assert len(values) == 2 and _samples_agree(net.graph, values) > 20


def test_an_argument_of_another_type_is_another_call(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = TRIP.replace("unit(8, scale=1)", "unit(8, scale=2.5)")
    program = resolve(load_text(spec, Sources(), "<trip>"))
    _compare(program, monkeypatch)
    keys = list(program.expansions)
    assert len(keys) == len(set(keys))
    frozen = expand_module._frozen
    assert frozen(1) != frozen(1.0) != frozen(True)
    assert frozen([1, (2, "a")]) != frozen((1, (2, "a")))
