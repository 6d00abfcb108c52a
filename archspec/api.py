"""The Python API: archspec.load(path, **overrides) and archspec.loads(text, **overrides)."""

from __future__ import annotations

from typing import Any

from . import ir
from .errors import ArchError, Diagnostic, Sources, Span, error, io_error
from .loader import Program, load_file, load_text
from .parse import parse_expr
from .passes import Overrides, expand, resolve, run_passes
from .render import render_expr
from .summary import as_dict, as_text


class Spec:
    """One network of a spec, checked: its expanded IR with shapes, and its warnings."""

    def __init__(self, network: ir.Network, program: Program, sources: Sources):
        self.network = network
        self.program = program
        self.sources = sources

    @property
    def name(self) -> str:
        return self.network.name

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return self.network.warnings

    @property
    def params(self) -> int:
        return self.network.params

    @property
    def macs(self) -> int:
        return self.network.macs

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.network.out_shape

    def summary(self, depth: int = 1) -> dict[str, Any]:
        """The layer summary as a dict (the JSON of `archspec summary --format json`)."""
        return as_dict(self.network, depth)

    def summary_text(self, depth: int = 1) -> str:
        return as_text(self.network, depth)

    @property
    def symbolic(self) -> bool:
        """Whether its input has symbolic sizes (`input [3, H, W]`)."""
        return bool(self.network.sizes)

    def at(self, input: tuple[int, ...]) -> "Spec":
        """The same network with its first input fixed to `input` (its sizes made numbers)."""
        net = self.network
        overrides = overrides_from(texts=dict(net.overrides), input=input, batch=net.batch)
        return build(self.program, self.sources, net.name, overrides)

    def sizes(self):
        """What its symbolic sizes may be (archspec/sizes.py's Report: `archspec sizes`)."""
        from .sizes import report

        return report(self.network.constraints, self.network.sizes)

    def example_shape(self, near: int = 224) -> tuple[int, ...]:
        """An input shape (without the batch) it accepts: its own, or valid sizes near `near`,
        a different one for each size (a non-square example for H and W)."""
        net = self.network
        if not self.symbolic:
            return tuple(net.input_shape)
        values = self.sizes().pick(near)
        return tuple(values[str(d)] if not isinstance(d, int) else d for d in net.input_shape)

    def examples(self) -> list["Spec"]:
        """Concrete instances to export and verify with: itself, or two valid sizes of a symbolic spec.

        The first two sizes near 64, 96, 128, 192 at which no tensor has a size of 1 that a larger input
        makes larger: torch.export specialises a size of 1 to a constant (0/1 specialisation), so a
        program exported where the FPN's last level is 1 pixel high accepts no other height."""
        if not self.symbolic:
            return [self]
        sizes = list(dict.fromkeys(self.example_shape(near) for near in (64, 96, 128, 192, 320)))
        found = [self.at(shape) for shape in sizes]
        largest = _ones(found[-1])
        good = [s for s in found[:-1] if _ones(s) <= largest]
        return (good + [s for s in found if s not in good])[:2]

    def to_torch(self, seed: int = 0):
        """The network as a torch nn.Module, built from its generated source."""
        from .codegen import build_module  # torch is imported here, never on the static path

        return build_module(self, seed=seed)

    def __repr__(self) -> str:
        return f"<Spec {self.name}: {self.params:,} params, output {list(self.output_shape)}>"


def _ones(spec: Spec) -> set[tuple[str, int]]:
    """(layer path, axis) of every size 1 in the network's tensors."""
    return {(n.path, axis) for n in ir.layers(spec.network.graph) if n.batched
            for axis, size in enumerate(n.out_shape) if size == 1}


def overrides_from(values: dict[str, Any] | None = None, texts: dict[str, str] | None = None,
                   input: tuple[int, ...] | None = None, batch: int = 1) -> Overrides:
    """Overrides from Python values (the API) or from `--set` texts in the language's syntax."""
    o = Overrides(input=_input_shape(input), batch=_batch(batch))
    # The value is recorded as its parsed expression rendered again, never as typed: a comment or
    # any other text the parser ignores is not carried into headers, metadata or run records.
    for key, text in (texts or {}).items():
        o.values[key] = parse_expr(text, f"<--set {key}>")
        o.texts[key] = render_expr(o.values[key])
    for key, value in (values or {}).items():
        o.values[key] = parse_expr(_literal(value, key), f"<{key}=>")
        o.texts[key] = render_expr(o.values[key])
    return o


def _is_size(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _input_shape(dims: Any) -> tuple[int, ...] | None:
    """`input=`: a shape without the batch dimension, such as (3, 224, 224), refused as the spec's
    own `input` statement would refuse it."""
    if dims is None:
        return None
    if not isinstance(dims, (tuple, list)) or not dims or not all(_is_size(d) for d in dims):
        raise error("E302", f"input= must be a tuple of positive ints such as (3, 224, 224), got {dims!r}",
                    Span("<input=>"))
    return tuple(dims)


def _batch(batch: Any) -> int:
    if not _is_size(batch):
        raise error("E302", f"batch= must be a positive int, got {batch!r}", Span("<batch=>"))
    return batch


def _literal(v: Any, key: str) -> str:
    if v is None:
        return "none"
    if isinstance(v, str):
        from .render import _string

        return _string(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_literal(x, key) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    raise error("E205", f"override `{key}`: cannot use a {type(v).__name__} value in a spec", Span(f"<{key}=>"))


def build(program: Program, sources: Sources, network: str | None, overrides: Overrides) -> Spec:
    with program.budget.active():  # every network of a file draws on the file's one budget
        net = run_passes(expand(program, network, overrides))
    return Spec(net, program, sources)


def load(path: str, network: str | None = None, *, input: tuple[int, ...] | None = None, batch: int = 1,
         allow_import_outside: bool = False, **overrides: Any) -> Spec:
    """Load, check and shape a network from a `.arch` file. Raises ArchError on any problem.

    Imports may reach only the file's folder and below, unless `allow_import_outside`."""
    sources = Sources()
    return _guarded(lambda: build(resolve(load_file(str(path), sources, allow_import_outside)), sources, network,
                                  overrides_from(overrides, input=input, batch=batch)))


def loads(text: str, network: str | None = None, *, input: tuple[int, ...] | None = None, batch: int = 1,
          name: str = "<input>", allow_import_outside: bool = False, **overrides: Any) -> Spec:
    """Like load(), from the text of a spec.

    `name` is the file name that errors show; when it names a file (not `<...>`), imports in the
    text are found relative to that file's folder, as they would be in the file itself.
    """
    sources = Sources()
    return _guarded(lambda: build(resolve(load_text(text, sources, name, allow_import_outside)), sources, network,
                                  overrides_from(overrides, input=input, batch=batch)))


def _guarded(fn):
    """Run a stage; Python's own recursion limit becomes the same error as too-deep nesting."""
    try:
        return fn()
    except RecursionError:
        raise io_error("E005", "the spec is nested too deeply to analyse") from None


__all__ = ["Spec", "load", "loads", "ArchError"]
