"""Property: a generated class's parameters are the spec's parameters.

The root class of a compiled network takes the spec parameters its formulas read
(`Densenet(growth_rate=48)`); its __init__ computes every width from them as the spec does. So
the class built with other arguments must be, tensor for tensor, the spec checked with those
arguments as `--set` overrides. A formula that dropped a term, or a width baked in as a number
where the class still takes the parameter it came from, shows up here as a shape mismatch.

Every network of every torchvision family file is compiled once, at its defaults; its class is
then built on the meta device with each numeric parameter changed in turn (ints halved, floats
halved, int lists halved element-wise), and compared with the spec at those values.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec.codegen import source_of
from archspec.codegen.build import load_source
from archspec.errors import ArchError

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = sorted((ROOT / "specs" / "torchvision").glob("*.arch"))
NETWORKS = [(f.name, n) for f in FAMILIES for n in re.findall(r"^network (\w+)", f.read_text(), re.M)]
OWN = [("unet.arch", "unet"), ("resnext.arch", "resnext"), ("densenet.arch", "densenet")]


def other(value):
    """Another value of the same type that keeps a network valid more often than not."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value // 2 if value >= 4 else value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.25
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [v // 2 if v >= 4 else v for v in value]
    return None


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def cases():
    for file, network in [*NETWORKS, *OWN]:
        folder = ROOT / "specs" / ("torchvision" if (file, network) in NETWORKS else "")
        yield pytest.param(folder / file, network, id=f"{file}:{network}")


@pytest.mark.parametrize("path, network", cases())
def test_the_class_built_with_other_arguments_is_the_spec_set_to_them(path, network):
    spec = archspec.load(path, network)
    module = load_source(source_of(spec), f"params_{network}")
    cls = getattr(module, module.MODEL)
    tried = 0
    for name, p in inspect.signature(cls).parameters.items():
        alternative = other(p.default)
        if alternative is None:
            continue
        try:
            expected_spec = archspec.load(path, network, **{name: alternative})
        except ArchError:
            continue  # not a valid network at that value: nothing to compare
        with torch.device("meta"):
            built = cls(**{name: alternative})
            expected = load_source(source_of(expected_spec), f"params_{network}_{name}")
            reference = getattr(expected, expected.MODEL)()
        assert shapes(built) == shapes(reference), f"{cls.__name__}({name}={alternative!r}) is not the spec at it"
        assert sum(t.numel() for t in built.parameters()) == expected_spec.params
        tried += 1
    assert tried or not any(other(p.default) is not None for p in inspect.signature(cls).parameters.values()), (
        "no parameter of the class could be changed")


# ---- merged classes: what a call reads may be another node than the merged graph shows ------------------

STEPS = ["conv2d(4, kernel=1)", "batchnorm2d", "identity", "relu", "hardswish", "sigmoid", "relu6",
         "maxpool2d(kernel=1)"]


@st.composite
def merged_blocks(draw):
    """A block of optional and fixed steps (each `if` reads one of two flags), called with different flags
    beside a residual identity, so that a step overwriting what it reads would change the sum."""
    steps = draw(st.lists(st.tuples(st.sampled_from(STEPS), st.sampled_from([None, "a", "b"])), min_size=1,
                          max_size=5))
    calls = draw(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=3, unique=True))
    lines = [f"    if {flag} {{ {step} }}" if flag else f"    {step}" for step, flag in steps]
    text = "block b(a: bool, b: bool) {\n" + "\n".join(lines) + "\n}\n\nnetwork n() {\n    input [4, 5, 5]\n"
    for a, b in calls:
        text += f"    add {{\n        b({str(a).lower()}, {str(b).lower()})\n        identity\n    }}\n"
    return text + "}\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(merged_blocks())
def test_a_merged_class_never_overwrites_what_a_call_reads(text):
    """One class for calls that took different branches: a step in place (ReLU(inplace=True)) only where,
    in every call, it reads a fresh tensor nothing else reads. `if a { conv2d }  relu` once overwrote the
    block's own input in the calls without the convolution; the module check (E607) and the input left
    as it was both catch that."""
    from archspec.export.verify import check_module

    spec = archspec.loads(text, name="merged.arch")
    module = spec.to_torch().eval()
    check_module(module, spec.network)
    x = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    before = x.clone()
    with torch.no_grad():
        module(x)
    assert torch.equal(x, before), "the module overwrote its input"


ELSE_IF = """block act(kind: str) {
    conv2d(4, kernel=1)
    if kind == "HS" { hardswish } else if kind == "RE" { relu }
}

network n() {
    input [4, 5, 5]
    act("HS")
    act("RE")
    act("none")
}
"""


def test_an_else_if_is_written_as_its_own_test():
    """`else if kind == "RE"` is `kind == "RE"` in the class, as a person writes it, not
    `(not kind == "HS") and (kind == "RE")`; with a `let` between the two tests the full condition stays."""
    from archspec.export.verify import check_module

    spec = archspec.loads(ELSE_IF, name="elseif.arch")
    source = source_of(spec)
    assert '*([nn.ReLU(inplace=True)] if kind == "RE" else [])' in source, source
    check_module(spec.to_torch(), spec.network)
    rebinding = ELSE_IF.replace('} else if kind == "RE"', '} else {\n        let kind = "RE"\n'
                                '        if kind == "RE"').replace("{ relu }\n}", "{ relu }\n    }\n}", 1)
    spec = archspec.loads(rebinding, name="elseif.arch")  # the let shadows the parameter: ReLU unless "HS"
    assert '*([nn.ReLU(inplace=True)] if not kind == "HS" else [])' in source_of(spec), source_of(spec)
    check_module(spec.to_torch(), spec.network)
