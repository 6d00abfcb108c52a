"""Source -> module: the in-memory nn.Module is built by executing the generated source.

One source of truth: what `archspec compile -f python` writes is what runs. The source is
registered in `linecache` and as a module in `sys.modules`, so tracebacks show its lines and
TorchScript (which reads a class's source) can script it.
"""

from __future__ import annotations

import linecache
import re
import sys
import types
from math import prod

import torch

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def python_lines(source: str) -> list[str]:
    """The lines of `source` as Python's tokenizer counts them: ended by \\n, \\r\\n or \\r only.

    str.splitlines also breaks at \\v, \\f, \\x1c-\\x1e, NEL and U+2028/9. TorchScript compiles a
    class from the lines linecache holds, so a different split would compile other lines than
    Python ran (generated source holds none of these characters; this keeps it so for any source).
    """
    return _LINE.findall(source)


def load_source(source: str, tag: str) -> types.ModuleType:
    """Execute generated source as a module named after its content, so equal sources share it."""
    name = f"archspec_generated.{tag}"
    if name in sys.modules:
        return sys.modules[name]
    filename = f"<archspec:{tag}.py>"
    linecache.cache[filename] = (len(source), None, python_lines(source), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(spec, batch: int = 0, copies: int = 1) -> None:
    """Refuse, before allocating, a network that would not fit in the available memory (E610, exit 2).

    `copies` of its fp32 weights (the module, and what an export holds besides), and, when it is
    to be run at `batch`, its input and every layer's output at that batch: the static summary's
    activation size, an upper bound on what one forward pass keeps alive.
    """
    from ..errors import Span, io_error

    if getattr(spec, "symbolic", False):  # `input [3, H, W]`: what it is run at is an example of each size
        spec = spec.examples()[-1]
    weights = spec.params * 4 * copies
    net = spec.network
    activations = batch * (4 * prod(net.input_shape) + net.activation_bytes)
    need, have = weights + activations, available_memory()
    if have is not None and need > have:
        parts = f"{spec.params:,} parameters ({weights / 2**30:.1f} GiB as fp32"
        parts += f", {copies} copies)" if copies > 1 else ")"
        if batch:
            parts += f" and activations of {activations / 2**30:.1f} GiB at batch {batch}"
        raise io_error("E610", f"the network needs {need / 2**30:.1f} GiB: {parts}; this machine has "
                               f"{have / 2**30:.1f} GiB available", Span(net.file))


def instantiate(module: types.ModuleType, seed: int = 0) -> torch.nn.Module:
    """The network with initial weights fixed by `seed`, leaving the global RNG as it was."""
    cls = getattr(module, module.MODEL)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls()
